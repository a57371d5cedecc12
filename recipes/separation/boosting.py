"""The recipe's only contact with the injection presets (booster.adapters.<host>.boost).

Everything the recipe needs from a boosted model goes through these functions: build it, know which
MuQ layers it reads, run it on precomputed features, reach the host inside it, slice a track's features
for one chunk. Shapes: mixture ``[B, C, S]``, sources ``[B, N, C, S]``.
"""
from __future__ import annotations

import contextlib
import importlib

import torch
from torch import nn

from booster.errors import CheckpointError, ConfigError
from booster.features import Features
from booster.muq import load_backbone  # noqa: F401  ("debug", a directory or a hub id)

FEATURE_MARGIN = 2  # extra 25 Hz frames on each side of a chunk, so interpolation has neighbours




def boost_host(host_name: str, host: nn.Module, backbone, **kwargs) -> nn.Module:
    """``booster.adapters.<host_name>.boost(host, backbone, **kwargs)``."""
    try:
        preset = importlib.import_module(f"booster.adapters.{host_name}")
    except ModuleNotFoundError as e:
        raise ConfigError(f"no injection preset for {host_name!r} in this build ({e.name} is missing); "
                          "train the baseline (boost: false) or install the adapters") from None
    try:
        return preset.boost(host, backbone, **kwargs)
    except TypeError as e:
        raise ConfigError(f"invalid boost_kwargs for {host_name}: {e}") from None


def is_boosted(model: nn.Module) -> bool:
    return hasattr(model, "adapter_parameters") and hasattr(model, "use_features")


def host_of(model: nn.Module) -> nn.Module:
    return model.host if is_boosted(model) else model


def feature_layers(model: nn.Module) -> tuple[int, ...]:
    """MuQ hidden-state indices the boosted model reads."""
    for name in ("layers", "feature_layers"):
        layers = getattr(model, name, None)
        if layers is not None:
            return tuple(int(i) for i in layers)
    raise ConfigError(f"{type(model).__name__} does not say which MuQ layers it reads")


def backbone_of(model: nn.Module):
    return getattr(model, "backbone", None)


def using(model: nn.Module, features: Features | None, input_start: float = 0.0):
    """Context in which ``model`` uses ``features`` instead of running MuQ (no-op when not boosted).
    ``input_start``: where the model input's first sample lies on the features' time line (seconds)."""
    if features is None or not is_boosted(model):
        return contextlib.nullcontext()
    return model.use_features(features, input_start=input_start)


def chunk_features(full: Features, start: float, duration: float) -> Features:
    """The frames of a track's features that cover ``[start, start + duration)`` seconds, plus
    ``FEATURE_MARGIN`` frames each side (times stay on the track's time line)."""
    return full.slice_time(start, start + duration, margin=FEATURE_MARGIN)


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of the trainable part (host + adapters). A boosted model keeps its frozen backbone
    outside the module tree, so its ``state_dict()`` already excludes it."""
    return model.state_dict()


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load :func:`adapter_state` output; every missing or unexpected key is an error."""
    expected = adapter_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not match the model: missing {missing[:8]}"
                              f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
                              f"{' ...' if len(unexpected) > 8 else ''}")
    model.load_state_dict(state, strict=True)
