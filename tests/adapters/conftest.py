import io
import hashlib

import pytest
import torch

from adapter_helpers import tiny_htdemucs  # noqa: E402


@pytest.fixture
def demucs_repo(tmp_path):
    """A local demucs repo in demucs' own format: ``<sig>-<sha256[:8]>.th`` packages + bag YAML files."""
    from demucs.states import get_state
    sigs = []
    for seed in (0, 1):
        model = tiny_htdemucs(seed)
        args, kwargs = model._init_args_kwargs
        pkg = {"klass": type(model), "args": args, "kwargs": kwargs, "state": get_state(model, None, half=False),
               "training_args": {}}
        buf = io.BytesIO()
        torch.save(pkg, buf)
        sig = f"tiny{seed}"
        (tmp_path / f"{sig}-{hashlib.sha256(buf.getvalue()).hexdigest()[:8]}.th").write_bytes(buf.getvalue())
        sigs.append(sig)
    (tmp_path / "bag1.yaml").write_text(f"models: ['{sigs[0]}']\n")
    (tmp_path / "bag2.yaml").write_text(f"models: {sigs}\nsegment: 1\n")
    return tmp_path
