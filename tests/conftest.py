import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
sys.path.insert(0, str(Path(__file__).parent))  # helpers such as official_layout
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def one_thread():
    """One intra-op thread: debug models gain nothing from more on the shared 2-core machine. Folders whose
    tests all want it use it from an autouse fixture of their conftest."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def hash_count(monkeypatch):
    """Counts sha256 objects made by booster.fingerprint (one per weight-fingerprint computation)."""
    import hashlib
    import types

    import booster.fingerprint as fingerprint_module
    count = [0]

    def sha256(*args, **kwargs):
        count[0] += 1
        return hashlib.sha256(*args, **kwargs)

    monkeypatch.setattr(fingerprint_module, "hashlib", types.SimpleNamespace(sha256=sha256))
    return count


@pytest.fixture(scope="session")
def debug_muq():
    from booster import MuQ
    return MuQ.debug(seed=0)


# Every device present: CPU always, CUDA when available. Tests that take `device` run once per device,
# so the same suite checks a GPU when run on one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)
