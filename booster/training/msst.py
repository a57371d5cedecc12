"""An MSST model (config + checkpoint) as a kit separator: the host and its model description.

:func:`load_msst` is :func:`booster.msst.build_msst` (core: config reading, the mapping onto the host, the
strict weight load) plus the description :func:`booster.training.checkpoint.describe` makes, so
``save_model(path, *load_msst(config, ckpt))`` writes the file ``booster separate --model`` reads.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from booster.msst import TASK, build_msst

from .checkpoint import describe
from .hosts import HostSpec, jsonable, load_plugin


def load_msst(config_path: str | Path, checkpoint_path: str | Path, *,
              model_type: str | None = None) -> tuple[nn.Module, dict]:
    """``(host in eval mode, meta)``: ``meta["segment"]`` the config's chunk in seconds, ``meta["overlap"]``
    ``1 - 1/inference.num_overlap``, ``meta["chunking"]`` ``{"mode": "msst", "num_overlap": N}`` (so
    ``booster separate`` chunks as MSST's ``demix``); ``model_type`` "bs_roformer" | "mel_band_roformer"
    (default: the config's ``training.model_type``, else told by its model keys)."""
    kind, model, task = build_msst(config_path, checkpoint_path, model_type=model_type)
    spec = HostSpec(kind, jsonable(load_plugin(kind).architecture(model)))
    chunking = {"mode": "msst", "num_overlap": int(task["msst_num_overlap"])}   # separate chunks as MSST does
    return model, describe(TASK, spec, model, chunking=chunking, **task)
