"""Byte-reproducible float32 WAV writing.

libsndfile adds a ``PEAK`` chunk to float WAV files that contains the time of writing, so two writes
of the same samples differ in 4 bytes. :func:`write_wav` zeroes that timestamp, making files a pure
function of their samples (the synthetic generator is tested by file hash). Shapes: ``[C, S]``.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..errors import AudioError


def write_wav(path: str | os.PathLike, wav: np.ndarray, sample_rate: int) -> None:
    """Write ``wav`` ``[C, S]`` as 32-bit float WAV, atomically, with a zero PEAK timestamp."""
    import soundfile as sf

    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 2:
        raise AudioError(f"write_wav expects [C, S] audio, got shape {tuple(wav.shape)} for {str(path)!r}")
    if not np.isfinite(wav).all():
        raise AudioError(f"refusing to write non-finite samples to {str(path)!r}")
    buf = io.BytesIO()
    sf.write(buf, wav.T, int(sample_rate), subtype="FLOAT", format="WAV")
    data = bytearray(buf.getvalue())
    at = data.find(b"PEAK", 12, 512)
    if at >= 0:  # chunk id, size (4), version (4), timestamp (4)
        data[at + 12:at + 16] = b"\0\0\0\0"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(bytes(data))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
