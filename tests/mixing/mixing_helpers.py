"""Helpers of the mixing tests: a tiny synthetic stems + reference-mix set and small stem folders."""
from pathlib import Path

import numpy as np
import soundfile as sf

SLOTS = ["drums", "bass", "other", "vocals"]
SR = 16000  # the generator's rate in these tests (small files, fast steps)


def generate(root: Path, splits=None, seconds: float = 2.0) -> Path:
    """The project's synthetic generator (numpy renderer): stems + mix/mixture.wav per track."""
    from booster.data.synth import generate_dataset
    generate_dataset(root, split=dict(splits or {"train": 2, "valid": 1, "test": 1}), seconds=seconds, seed=0,
                     renderer="numpy", sample_rate=SR)
    return root


def write_folder(folder: Path, files: dict, seconds: float = 1.0, seed: int = 0) -> Path:
    """``folder/<name>.wav`` for ``{name: (sample_rate, channels)}``: noise bursts, distinct per file."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (sr, ch) in files.items():
        x = 0.2 * rng.standard_normal((int(seconds * sr), ch)).astype(np.float32)
        sf.write(folder / f"{name}.wav", x, sr, subtype="FLOAT")
    return folder
