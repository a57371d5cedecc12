import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def mix_data(tmp_path_factory):
    """A generated set: train 2, valid 1, test 1 tracks of 2 s at 16 kHz with reference mixes."""
    from mixing_helpers import generate
    return generate(tmp_path_factory.mktemp("mixdata"))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread here (tests/conftest.py: one_thread)."""
