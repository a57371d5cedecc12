import io
import hashlib

import pytest
import torch

SOURCES = ["drums", "bass"]


def tiny_htdemucs(seed: int = 0):
    from demucs.htdemucs import HTDemucs
    torch.manual_seed(seed)
    return HTDemucs(sources=SOURCES, channels=8, depth=2, nfft=512, t_layers=1, t_heads=2, segment=1,
                    samplerate=8000)


def tiny_separator(seed: int = 0):
    from openunmix.model import OpenUnmix, Separator
    torch.manual_seed(seed)
    targets = {n: OpenUnmix(nb_bins=129, nb_channels=2, hidden_size=16, nb_layers=1) for n in ["vocals", "drums"]}
    return Separator(targets, n_fft=256, n_hop=64, sample_rate=8000.0, nb_channels=2)


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
