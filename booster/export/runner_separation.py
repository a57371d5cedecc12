"""The runner's separation part: an audio file -> ``OUT/<name>/<source>.wav`` (numpy, soundfile, onnxruntime).

Shape glossary: B batch (chunks), C channels, S samples, N sources.

Per chunk batch ``[B, C, chunk]``: the manifest's ``pre`` steps, the graph, the ``post`` steps, which leave
the stems ``[B, N, C, chunk]`` under the manifest's ``output`` name; the chunks are cross-faded into
``[N, C, S]`` (:func:`booster.export.runner.chunked`) and written as float WAV at the model's rate, one file
per source in the order of ``sources``: the layout ``booster separate`` writes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from booster.errors import AudioError

from .runner import chunked, graph_runner, read_audio


def separate(x: np.ndarray, manifest: dict, sessions: dict, *, batch_size: int = 1) -> np.ndarray:
    """``x`` ``[C, S]`` at the manifest's rate -> stems ``[N, C, S]``."""
    run = graph_runner(manifest, sessions)
    return chunked(x, manifest, lambda chunks: run(chunks)[manifest["output"]], batch_size=batch_size)


def process_file(manifest: dict, sessions: dict, path: str | os.PathLike, out_dir: str | os.PathLike, *,
                 batch_size: int = 1, name: str | None = None) -> dict[str, Path]:
    """Separate ``path`` into ``out_dir/<name>/<source>.wav`` (``name``: the file name without extension)."""
    import soundfile as sf

    stems = separate(read_audio(path, manifest), manifest, sessions, batch_size=batch_size)
    if not np.isfinite(stems).all():
        raise AudioError(f"the graph produced non-finite samples for {str(path)!r}")
    folder = Path(out_dir) / (name or Path(path).stem)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for k, source in enumerate(manifest["sources"]):
        paths[source] = folder / f"{source}.wav"
        sf.write(str(paths[source]), stems[k].T, int(manifest["sample_rate"]), subtype="FLOAT")
    return paths
