"""The frozen MuQ backbone: config, mel front end, conv subsampling, conformer, loading, extraction."""
from .config import SAMPLE_RATE, MuQConfig
from .model import MuQ, MuQOutput, load_backbone

__all__ = ["MuQ", "MuQConfig", "MuQOutput", "SAMPLE_RATE", "load_backbone"]
