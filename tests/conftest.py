import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
sys.path.insert(0, str(Path(__file__).parent))  # helpers such as official_layout
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def debug_muq():
    from booster import MuQ
    return MuQ.debug(seed=0)
