"""ONNX export of separators (``booster export`` for ``task: separation``).

Shape glossary: B batch (chunks), C channels, F frequency bins, T frames, S samples, N sources.

The host's plug-in says what its graph is: ``onnx_form(host, chunk, boosted=) -> dict`` with ``inputs`` /
``outputs`` (``[{name, shape, meaning}]``), the ``pre`` / ``post`` steps the runner does outside the graph
(:mod:`booster.export.dsp`: the STFT before, the inverse STFT after, with the host's exact framing),
``output`` (the name of the stems ``[B, N, C, chunk]`` after ``post``), optionally ``exporter`` (what
:func:`booster.export.graph.to_onnx` should use, default "auto") and ``batch`` (1: the graph's batch is
fixed to one chunk, its shapes say 1 instead of "B"), and ``patch``, a context manager under
which ``host(*graph inputs)`` returns the graph outputs (the host's STFT and iSTFT replaced by the graph's
inputs and outputs). A boosted model is exported as **one graph**: the chunk's audio goes through the
traceable MuQ (:mod:`booster.export.backbone`) up to the deepest layer used, then the host with its
adapters (:class:`booster.export.graph.BoostedGraph`) -- one file, one call per chunk, and the features are
those of the chunk's own audio, as ``booster separate`` computes them (the kit's ``context="chunk"``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from booster.errors import ConfigError
from booster.training import boosting
from booster.training.hosts import chunk_seconds, load_plugin
from booster.training.inference import inference_segment

from .dsp import run_steps
from .graph import graph_module, to_onnx, weight_bytes
from .manifest import MUQ_LICENCE, common_fields

TASK = "separation"
# MSST's demix (booster.training.chunking.msst_apply), what the runner's msst_chunked does.
MSST_RULE = ("an input no longer than `chunk` is one chunk, weight 1; else: border = chunk - step; when the input "
             "is longer than 2 border, reflect-pad it (no edge repeat) by border at both ends; chunks start at "
             "0, step, 2 step, ... while below the padded length; a chunk running past the end is reflect-padded "
             "when more than chunk // 2 of it is audio, else zero-padded; each output's audio part is weighted "
             "by `window`, summed, divided by the summed weights (0 where they are 0); the border is cut off")
MSST_WINDOW = {"kind": "msst", "formula": "ones(chunk) with w[:fade] = linspace(0, 1, fade) except on the first "
               "chunk and w[-fade:] = linspace(1, 0, fade) except on the last (a first chunk keeps its fade-out), "
               "fade = chunk // 10"}


def default_chunk_seconds(model, meta: dict) -> float:
    """What ``booster separate`` chunks this model by (a boosted model: its training segment)."""
    return inference_segment(model, meta, chunk_seconds(meta["host"]["name"], boosting.host_of(model),
                                                        meta.get("segment", 10.0)))


def form_of(model, meta: dict, chunk: int) -> dict:
    """The plug-in's ``onnx_form`` for this model; a host without one, or one it refuses: one line."""
    name = meta["host"]["name"]
    form_fn = getattr(load_plugin(name), "onnx_form", None)
    if form_fn is None:
        raise ConfigError(f"{name} separators cannot be exported to ONNX: its plug-in (booster.adapters.{name}) "
                          "has no onnx_form")
    return form_fn(boosting.host_of(model), int(chunk), boosted=boosting.is_boosted(model))


def example_inputs(form: dict, channels: int, chunk: int, batch: int = 2, seed: int = 0) -> tuple:
    """Graph inputs for a random mix ``[batch, C, chunk]`` (through the form's own ``pre`` steps)."""
    mix = (0.1 * np.random.default_rng(seed).standard_normal((batch, channels, chunk))).astype(np.float32)
    table = run_steps(form["pre"], {"mix": mix})
    return tuple(torch.from_numpy(table[i["name"]]) for i in form["inputs"])


def backbone_entry(model, meta: dict) -> dict | None:
    """``{name, source, identity, licence}`` of a boosted model's backbone; None when plain."""
    if not boosting.is_boosted(model):
        return None
    from booster.muq.registry import lookup
    src = str(meta.get("backbone"))
    entry = lookup(src)
    if entry is not None:
        licence = entry.licence
    elif src == "debug":
        licence = "random weights built in code (MuQ.debug): no third-party weights"
    else:
        licence = MUQ_LICENCE + " (if these are other weights, their own licence applies)"
    ident = dict(meta.get("backbone_identity") or {})
    return {"name": ident.get("name", src), "source": src, "identity": ident, "licence": licence}


def export_graphs(model, meta: dict, out_dir: Path, *, chunk: int, opset: int = 18, fp16: bool = False) -> dict:
    """Write ``out_dir/model.onnx``; return the manifest (common fields + ``sources``, ``output``)."""
    model = model.cpu().eval()
    channels = int(meta["channels"])
    form = form_of(model, meta, chunk)
    module = graph_module(model)
    extra = weight_bytes(boosting.backbone_of(model)) if boosting.is_boosted(model) else 0
    with form["patch"](), torch.no_grad():
        batch = int(form.get("batch", 0))          # 0: any batch; 1: the graph takes one chunk per call
        args = example_inputs(form, channels, chunk, batch=batch or 2)
        info = to_onnx(module, args, Path(out_dir) / "model.onnx", input_names=[i["name"] for i in form["inputs"]],
                       output_names=[o["name"] for o in form["outputs"]], opset=opset, fp16=fp16, extra_bytes=extra,
                       exporter=form.get("exporter", "auto"), dynamic_batch=not batch)
    dtype = lambda items: [dict(i, dtype="float32") for i in items]   # noqa: E731
    graph = dict(info, inputs=dtype(form["inputs"]), outputs=dtype(form["outputs"]))
    overlap, chunking = chunking_fields(meta, chunk)
    out = common_fields(task=TASK, host=meta["host"]["name"], boosted=boosting.is_boosted(model),
                        sample_rate=int(meta["sample_rate"]), channels=channels, chunk=chunk, overlap=overlap,
                        graphs=[graph], pre=form["pre"], post=form["post"], backbone=backbone_entry(model, meta))
    if chunking["mode"] == "msst":
        out.update(hop=chunking["step"], window=dict(MSST_WINDOW, fade=chunk // 10))
    out.update(chunking=chunking, sources=list(meta["sources"]), output=form["output"],
               output_meaning=f"{form['output']} [B, N, C, {chunk}]: the N sources in the order of `sources`")
    return out


def chunking_fields(meta: dict, chunk: int) -> tuple[float, dict]:
    """``(overlap, chunking)`` as ``booster separate`` chunks this model: the kit's cross-fade at the model's
    recorded overlap (default 0.25), or MSST's ``demix`` for a model that records ``{"mode": "msst",
    "num_overlap": N}`` (``booster convert msst``): chunk starts ``step = chunk // N`` apart."""
    from booster.recipes.separation.inference import default_overlap, model_chunking
    from booster.training.chunking import msst_step
    chunking = model_chunking(meta)
    if chunking["mode"] != "msst":
        return default_overlap(meta), {"mode": "kit"}
    step = msst_step(chunk, num_overlap=int(chunking["num_overlap"]))
    return 1 - step / chunk, {"mode": "msst", "num_overlap": int(chunking["num_overlap"]), "step": step,
                              "rule": MSST_RULE}
