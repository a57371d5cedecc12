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
def _one_thread():
    """One intra-op thread: the tiny debug models gain nothing from more, and on a shared 2-core
    machine spinning OpenMP threads of parallel test runs slow each other down by orders of magnitude."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
