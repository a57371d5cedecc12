"""The torch side of the export: a boosted model as one traceable module, and ``torch.onnx.export`` around it.

Shape glossary: B batch, C channels, F frequency bins, T frames, S samples, L layers, D feature dim.

:class:`BoostedGraph` runs what :class:`booster.injection.Boosted`'s live path runs (the backbone on the host
input, at the host's rate, then the host with its adapters) with the backbone's features computed by a
traceable copy of the backbone (:mod:`booster.export.backbone`): same numbers, no inference-mode or Python
checks in the way of tracing. :func:`to_onnx` exports a module with ``torch.onnx.export`` — the dynamo
exporter first, the TorchScript one when dynamo fails — weights in an external file when they exceed 2 GB,
optionally converted to float16.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from booster.errors import ConfigError
from booster.features import Features
from booster.training import boosting

TWO_GB = 2 ** 31 - 2 ** 24   # protobuf's limit with room for the graph itself


class BoostedGraph(nn.Module):
    """``forward(*graph inputs)``: features of ``input_fn(*inputs)`` from the traceable backbone, then the boosted
    model (its adapters active) called on the same inputs. ``call``: how the boosted model is called (default
    ``model(*inputs)``; a plug-in's export form patches the host, see :mod:`booster.export.separation`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        from .backbone import traceable_backbone
        self.model = model
        self.features = traceable_backbone(boosting.backbone_of(model), boosting.feature_layers(model))

    def forward(self, *inputs):
        wav, sr = self.model.input_fn(*inputs)
        hidden = self.features(wav, int(sr))                           # [B, L, T, D]
        feats = Features(hidden, self.features.layers, self.features.frame_rate)
        with self.model.use_features(feats):
            return self.model(*inputs)


def graph_module(model: nn.Module) -> nn.Module:
    """The module to export for ``model``: itself when plain, :class:`BoostedGraph` when boosted."""
    return BoostedGraph(model) if boosting.is_boosted(model) else model


def weight_bytes(module: nn.Module) -> int:
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


EXPORTERS = ("torchscript", "dynamo")


def to_onnx(module: nn.Module, args: tuple, path: Path, *, input_names: list[str], output_names: list[str],
            opset: int = 18, fp16: bool = False, extra_bytes: int = 0, exporter: str = "auto",
            dynamic_batch: bool = True) -> dict:
    """Export ``module(*args)`` to ``path``; the first axis of every input and output is the dynamic batch
    ``B`` (``dynamic_batch=False``: the example's batch, fixed). Returns ``{"file", "exporter", "external_data", "fp16"}``. ``extra_bytes``: weights outside
    ``module.parameters()`` (a boosted model's backbone), for the 2 GB decision. ``exporter``: "dynamo"
    (``torch.onnx.export(dynamo=True)``), "torchscript" (``dynamo=False``) or "auto": TorchScript first, the
    dynamo exporter when it fails. Both give the same graphs here (tests/export); TorchScript exports the debug
    boosted HTDemucs in 3 s where dynamo takes 35-57 s on this machine, hence the order."""
    if exporter not in ("auto",) + EXPORTERS:
        raise ConfigError(f"exporter must be auto, torchscript or dynamo, got {exporter!r}")
    module.eval()
    big = weight_bytes(module) + extra_bytes > TWO_GB
    errors = []
    for name in (EXPORTERS if exporter == "auto" else (exporter,)):
        try:
            with _quiet(), _no_fused_attention():
                _export(name, module, args, path, input_names, output_names, opset, big, dynamic_batch)
            break
        except Exception as e:   # the exporters raise many kinds; each one's first line is reported
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
            for f in path.parent.glob(path.name + "*"):
                f.unlink()
    else:
        raise ConfigError(f"this model cannot be exported to ONNX: {'; '.join(errors)}")
    info = {"file": path.name, "exporter": name, "external_data": big, "fp16": bool(fp16)}
    if errors:
        info["other_exporter_error"] = errors[0]
    if fp16:
        to_fp16(path, big)
    return info


def _export(name, module, args, path, input_names, output_names, opset, big, dynamic_batch) -> None:
    if name == "dynamo":
        batch = torch.export.Dim("B", min=1, max=1024)
        shapes = tuple({0: batch} if dynamic_batch else None for _ in args)
        params = list(inspect.signature(module.forward).parameters.values())
        if len(params) == 1 and params[0].kind is inspect.Parameter.VAR_POSITIONAL:
            shapes = (shapes,)          # forward(*inputs): one entry holding them all
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=True, dynamic_shapes=shapes, external_data=big,
                          optimize=True, verify=False)
    else:
        dyn = {n: {0: "B"} for n in list(input_names) + list(output_names)} if dynamic_batch else None
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False, dynamic_axes=dyn, do_constant_folding=True,
                          external_data=big)


@contextlib.contextmanager
def _no_fused_attention():
    """nn.MultiheadAttention's eval fast path is one fused op (``_native_multi_head_attention``) that ONNX has
    no counterpart for; without it the same attention is traced from matmuls and a softmax."""
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


def to_fp16(path: Path, external: bool) -> None:
    """Weights of the graph at ``path`` as float16, inputs and outputs kept float32 (onnxruntime's converter)."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(path))
    # ScatterElements with reduction "add" (Mel-Band-RoFormer's mask averaging) has no float16 CPU kernel: float32
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=external,
                                    op_block_list=list(DEFAULT_OP_BLOCK_LIST) + ["ScatterElements"])
    for f in path.parent.glob(path.name + "*"):
        f.unlink()
    onnx.save_model(half, str(path), save_as_external_data=external,
                    location=path.name + ".data" if external else None)


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and warnings by the page; keep them out of the command's output."""
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")
        yield
