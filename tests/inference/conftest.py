"""Fixtures of the train = inference tests: one synthetic set at 44.1 kHz (stems, mix, MIDI) for every task."""
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message=".*(LeafSpec|num_workers|does not have many workers).*")


@pytest.fixture(scope="session")
def song_root(tmp_path_factory) -> Path:
    """1 train + 1 valid + 1 test song of 3 s at 44.1 kHz (numpy renderer), stems + mix/ + midi/."""
    from booster.data.synth import generate_dataset
    root = tmp_path_factory.mktemp("songs")
    generate_dataset(root, split={"train": 1, "valid": 1, "test": 1}, seconds=3.0, seed=0, renderer="numpy",
                     sample_rate=44100)
    return root


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread here (tests/conftest.py: one_thread)."""
