"""Fixtures for the data tests: small synthetic sets generated once per session."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory):
    """``(root, report)``: 3 train + 1 valid tracks of 3 s, rendered with the best available renderer."""
    from booster.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    report = generate_dataset(root, split={"train": 3, "valid": 1}, seconds=3.0, seed=0)
    return root, report


@pytest.fixture()
def scratch_set(synth_set, tmp_path):
    """A writable copy of the train split of ``synth_set`` (for corrupting files)."""
    root, _ = synth_set
    dst = tmp_path / "set"
    shutil.copytree(root / "train", dst)
    return dst
