"""What the kit needs from a (possibly) boosted model: host, backbone, layers, features in, state out.

A model is either a plain host or a :class:`booster.injection.Boosted` wrapper around one; these helpers
work for both, so recipes never test for boosting themselves.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from booster.errors import CheckpointError, ConfigError
from booster.features import Features
from booster.injection import Boosted


def is_boosted(model: nn.Module) -> bool:
    return isinstance(model, Boosted)


def host_of(model: nn.Module) -> nn.Module:
    return model.host if is_boosted(model) else model


def backbone_of(model: nn.Module):
    """The frozen backbone of a boosted model (None for a plain host)."""
    return model.backbone if is_boosted(model) else None


def feature_layers(model: nn.Module) -> tuple[int, ...]:
    """Backbone hidden-state indices the boosted model reads."""
    if not is_boosted(model):
        raise ConfigError(f"{type(model).__name__} is not boosted: it reads no backbone layers")
    return tuple(int(i) for i in model.layers)


def using(model: nn.Module, features: Features | None, input_start: float | torch.Tensor = 0.0):
    """Context in which ``model`` uses ``features`` instead of running the backbone (no-op when
    ``features`` is None or the model is not boosted). ``input_start``: seconds, or ``[B]`` per item."""
    if features is None or not is_boosted(model):
        return contextlib.nullcontext()
    return model.use_features(features, input_start=input_start)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of what a checkpoint holds: host + adapters. A boosted model keeps its frozen backbone
    outside the module tree, so ``state_dict()`` already excludes it."""
    return model.state_dict()


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load :func:`trainable_state` output; every missing or unexpected key is a :class:`CheckpointError`."""
    expected = trainable_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not match the model: missing {missing[:8]}"
                              f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
                              f"{' ...' if len(unexpected) > 8 else ''}; was it trained with another host, "
                              "size, sources or boost setting?")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"checkpoint does not match the model: {k} has shape {tuple(state[k].shape)} "
                                  f"in the file, {tuple(v.shape)} in the model; was it trained with other "
                                  "layers, sites or host settings?")
    model.load_state_dict(state, strict=True)
