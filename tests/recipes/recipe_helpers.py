"""Helpers of the separation recipe tests: tiny stems folders and Trainer settings."""
from pathlib import Path

import numpy as np
import soundfile as sf

SOURCES = ["drums", "vocals"]
SR = 44100


def write_stems(root: Path, splits: dict, seconds: float = 2.0, sources=SOURCES, seed: int = 0,
                sr: int = SR, channels: int = 2) -> Path:
    """``root/<split>/t<i>/<source>.wav``: band-limited noise bursts per source (distinct spectra)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    for split, count in splits.items():
        for i in range(count):
            d = root / split / f"t{i}"
            d.mkdir(parents=True, exist_ok=True)
            for j, s in enumerate(sources):
                x = rng.standard_normal((n, channels)).astype(np.float32)
                k = 4 + 12 * j  # smoothing length: the second source is darker
                x = np.stack([np.convolve(x[:, c], np.ones(k) / k, mode="same") for c in range(channels)], 1)
                env = (np.sin(np.linspace(0, (3 + j) * np.pi, n)) ** 2)[:, None]
                sf.write(d / f"{s}.wav", (0.3 * x * env).astype(np.float32), sr, subtype="FLOAT")
    return root


def trainer_kwargs(tmp_path, **kw):
    base = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                accelerator="cpu", devices=1, default_root_dir=str(tmp_path), num_sanity_val_steps=0)
    base.update(kw)
    return base
