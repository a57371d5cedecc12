"""ONNX export of trained models and the torch-free runner (``booster export``, ``booster.export.runner``).

:func:`export_model` loads a ``.ckpt`` / ``.safetensors`` model with the kit, checks the output folder and
hands the model to its task's exporter, ``booster.export.<task>.export_graphs(model, meta, out_dir, chunk=,
opset=, fp16=) -> dict`` (the task's part of the manifest; it writes the ``.onnx`` file(s)), then writes
``manifest.json`` (:mod:`booster.export.manifest`). The runner (:mod:`booster.export.runner`) and the
manifest module import no torch; this module imports it only inside :func:`export_model`.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from booster.errors import ConfigError

__all__ = ["export_model"]


def export_model(src: str | os.PathLike, out_dir: str | os.PathLike, *, chunk_seconds: float | None = None,
                 opset: int = 18, fp16: bool = False) -> Path:
    """Export the model file ``src`` into ``out_dir`` (``model.onnx`` [+ more graphs], ``manifest.json``);
    returns the manifest's path. ``chunk_seconds``: chunk length (default: what ``booster separate`` /
    ``transcribe`` use for this model). ``fp16``: weights stored as float16 (inputs/outputs stay float32).
    A task without an exporter, or a host that cannot be exported: one-line :class:`ConfigError`."""
    from booster.fsutil import check_finite_option, output_dir
    from booster.training.checkpoint import load_model

    from .manifest import write_manifest

    if chunk_seconds is not None:
        check_finite_option(chunk_seconds, "--chunk-seconds", positive=True)
    if not 7 <= int(opset) <= 23:
        raise ConfigError(f"--opset must be between 7 and 23, got {opset}")
    model, meta = load_model(src, option="--model")
    task = meta.get("task")
    try:
        exporter = importlib.import_module(f"booster.export.{task}")
    except ModuleNotFoundError as e:
        if e.name != f"booster.export.{task}":
            raise
        raise ConfigError(f"{task!r} models cannot be exported to ONNX yet (no booster.export.{task})") from None
    with output_dir(out_dir, "-o") as out:
        part = exporter.export_graphs(model, meta, out, chunk=_chunk_samples(exporter, model, meta, chunk_seconds),
                                      opset=int(opset), fp16=bool(fp16))
        return write_manifest(out, part)


def _chunk_samples(exporter, model, meta: dict, seconds: float | None) -> int:
    """The chunk in samples: ``--chunk-seconds`` or the task's default (``exporter.default_chunk_seconds``)."""
    if seconds is None:
        seconds = exporter.default_chunk_seconds(model, meta)
    n = int(round(float(seconds) * int(meta["sample_rate"])))
    if n < 1:
        raise ConfigError(f"--chunk-seconds {seconds} is shorter than one sample")
    return n
