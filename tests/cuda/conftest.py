"""Fixtures of the fake-CUDA tests; the harness and its work-arounds are documented in fake_cuda.py."""
import pytest

from fake_cuda import fake_cuda_mode


@pytest.fixture
def fake_cuda(monkeypatch):
    """The whole test body under fake CUDA (with the work-arounds); yields the mode."""
    with fake_cuda_mode(monkeypatch) as mode:
        yield mode
