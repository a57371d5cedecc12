import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def tiny_host():
    from inject_helpers import TinyHost
    torch.manual_seed(0)
    return TinyHost()
