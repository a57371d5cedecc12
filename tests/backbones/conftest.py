"""Fixtures of the bring-your-own-backbone tests: the toy backbone of toy_backbone.py, one thread."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # `py:toy_backbone:make` resolves from any test folder


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread here (tests/conftest.py: one_thread)."""


@pytest.fixture
def toy():
    import toy_backbone
    return toy_backbone.make(seed=0)
