"""The manifest of an exported model folder (``DIR/manifest.json``): stdlib only, no torch.

Shape glossary: B batch (chunks run together), C channels, F frequency bins, T frames, S samples, N sources.

A folder written by ``booster export`` holds the ONNX graph(s) and this JSON file, which says everything a
host program needs to run them: how to cut the input into chunks, what to compute outside the graph before
and after each chunk (``pre`` / ``post``: STFT, iSTFT... with all their settings) and how to put the chunks
back together. The runner :mod:`booster.export.runner` is the reference reader.

Common fields (every task):

``format`` ("muq-booster-onnx"), ``format_version`` (1), ``toolkit_version``, ``task``, ``host`` (plug-in
name), ``boosted`` (bool), ``sample_rate`` (Hz), ``channels``, ``chunk`` (samples per chunk), ``hop`` (samples
between chunk starts), ``overlap`` (fraction, ``hop = max(1, int((1 - overlap) * chunk))``), ``window``
(how overlapping chunk outputs are weighted: ``{"kind": "triangle", ...}``, see :data:`WINDOW`),
``latency`` (samples of input the first finished output sample needs: one chunk), ``graphs`` (``[{file,
exporter, inputs: [{name, shape, dtype, meaning}], outputs: [...]}]``; ``shape`` entries are ints or the
string "B"), ``pre`` / ``post`` (lists of steps, :mod:`booster.export.dsp`), ``backbone`` (``{name,
identity, licence}`` or null) and the task's own fields (separation: ``sources``, ``output``, ``chunking``:
``{"mode": "kit"}``, or ``{"mode": "msst", "num_overlap", "step", "rule"}`` for a model converted from MSST,
whose ``hop`` is then ``step`` and whose ``window`` is MSST's fades; absent means "kit").
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from booster.errors import CheckpointError, ConfigError

FORMAT = "muq-booster-onnx"
FORMAT_VERSION = 1
FILENAME = "manifest.json"
COMMON = ("format", "format_version", "toolkit_version", "task", "host", "boosted", "sample_rate", "channels",
          "chunk", "hop", "overlap", "window", "latency", "graphs", "pre", "post", "backbone")
# The kit's cross-fade (booster/training/chunking.py: triangle): for an output chunk of n frames, weight
# w[j] = (j + 1) / m for j < n // 2 and (n - j) / m after, m = max(w); sum of w * out over chunks / sum of w.
WINDOW = {"kind": "triangle", "power": 1.0,
          "formula": "w[j] = j + 1 for j < n // 2, else n - j; w /= max(w); out = sum(w * chunk) / sum(w)"}
MUQ_LICENCE = ("MuQ weights (OpenMuQ/MuQ-*) are released under CC-BY-NC 4.0: non-commercial use only; a "
               "graph that contains them carries that licence")


def stride(chunk: int, overlap: float, unit: int = 1) -> int:
    """Samples between chunk starts, as ``booster.training.chunking.chunk_starts`` computes it."""
    return max(unit, int((1 - overlap) * chunk) // unit * unit)


def common_fields(*, task: str, host: str, boosted: bool, sample_rate: int, channels: int, chunk: int,
                  overlap: float, graphs: list, pre: list, post: list, backbone: dict | None) -> dict:
    """The fields every manifest has (toolkit version read from the package, no torch)."""
    from booster import __version__
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "toolkit_version": __version__, "task": task,
            "host": host, "boosted": bool(boosted), "sample_rate": int(sample_rate), "channels": int(channels),
            "chunk": int(chunk), "hop": stride(int(chunk), float(overlap)), "overlap": float(overlap),
            "window": dict(WINDOW), "latency": int(chunk), "graphs": graphs, "pre": pre, "post": post,
            "backbone": backbone}


def write_manifest(folder: str | os.PathLike, manifest: dict) -> Path:
    """Write ``folder/manifest.json`` (checked first: every common field present, format and version ours)."""
    missing = [k for k in COMMON if k not in manifest]
    if missing:
        raise ConfigError(f"manifest lacks the fields {missing}")
    if manifest["format"] != FORMAT or manifest["format_version"] != FORMAT_VERSION:
        raise ConfigError(f"manifest format must be {FORMAT!r} version {FORMAT_VERSION}")
    from booster.fsutil import write_text
    return write_text(Path(folder) / FILENAME, json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of an exported folder; one line (:class:`CheckpointError`) for a missing folder or file,
    unreadable JSON, another format, an unknown version or missing fields."""
    folder = Path(folder).expanduser()
    path = folder / FILENAME
    if not folder.is_dir():
        raise CheckpointError(f"{str(folder)!r} is not an exported model folder (no such folder)")
    if not path.is_file():
        raise CheckpointError(f"{str(folder)!r} has no {FILENAME}: export a model with `booster export --model "
                              "CKPT -o DIR`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{str(path)!r} is not a readable manifest ({type(e).__name__}: {e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{str(path)!r} is not a muq-booster ONNX manifest (format {got!r}, expected "
                              f"{FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} has manifest format version {manifest.get('format_version')!r}; "
                              f"this runner reads version {FORMAT_VERSION} only: re-export the model with this "
                              "muq-booster or use the runner of the version that wrote it")
    missing = [k for k in COMMON if k not in manifest]
    if missing:
        raise CheckpointError(f"{str(path)!r} lacks the manifest fields {missing}")
    return manifest
