"""Fixtures of the LoRA tests: debug hosts boosted with the debug MuQ, LoRA on them, tiny stems folders."""
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))   # recipe_helpers (write_stems)
warnings.filterwarnings("ignore", message=".*(LeafSpec|num_workers|does not have many workers|window was not).*")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread here (tests/conftest.py: one_thread)."""


@pytest.fixture(scope="session")
def stems_root(tmp_path_factory) -> Path:
    from recipe_helpers import write_stems
    return write_stems(tmp_path_factory.mktemp("stems"), {"train": 2, "valid": 1, "test": 1}, seconds=1.5)
