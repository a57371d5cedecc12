"""Fixtures of the transcription tests: a tiny synthetic set (stems + MIDI) and a pairs tree made from it."""
import shutil
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
warnings.filterwarnings("ignore", message=".*(LeafSpec|num_workers|does not have many workers|smaller than the logging).*")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """2 train + 1 valid + 1 test songs of 3 s at 16 kHz (stems layout with midi/<stem>.mid)."""
    from booster.data.synth import generate_dataset
    root = tmp_path_factory.mktemp("tr_synth")
    generate_dataset(root, split={"train": 2, "valid": 1, "test": 1}, seconds=3.0, seed=0, sample_rate=16000,
                     mix=False)
    return root


@pytest.fixture(scope="session")
def pairs_root(synth_root, tmp_path_factory) -> Path:
    """x.wav + x.mid pairs in train/validation/test folders (the chord stems of ``synth_root``)."""
    root = tmp_path_factory.mktemp("tr_pairs")
    for src, dst in (("train", "train"), ("valid", "validation"), ("test", "test")):
        for track in sorted((synth_root / src).iterdir()):
            (root / dst).mkdir(parents=True, exist_ok=True)
            shutil.copy(track / "other.wav", root / dst / f"{track.name}.wav")
            shutil.copy(track / "midi" / "other.mid", root / dst / f"{track.name}.mid")
    return root


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread here (tests/conftest.py: one_thread)."""
