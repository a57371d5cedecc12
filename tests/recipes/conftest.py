"""Fixtures of the separation recipe tests: tiny stems folders written on the fly."""
import warnings
from pathlib import Path

import pytest

from recipe_helpers import write_stems

warnings.filterwarnings("ignore", message=".*(LeafSpec|num_workers|does not have many workers).*")

@pytest.fixture(scope="session")
def stems_root(tmp_path_factory) -> Path:
    return write_stems(tmp_path_factory.mktemp("stems"), {"train": 2, "valid": 1, "test": 1})


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread here (tests/conftest.py: one_thread)."""
