"""The backbone contract: what every generic module (inject, cache, the recipe kit) may use of a backbone.

Shape glossary: B batch, C channels, S samples, L layers, T frames, D feature dim.

A backbone is any object with

* ``sample_rate`` (int): the rate its own input runs at (MuQ: 24000);
* ``frame_rate`` (float): frames per second of its features (MuQ: 25.0);
* ``hidden_size`` (int): D;
* ``num_layers`` (int): depth; valid hidden-state indices are ``0..num_layers``;
* ``extract(wav, sample_rate, layers) -> Features``: ``wav`` ``[S]``, ``[C, S]`` or ``[B, C, S]`` at any
  ``sample_rate`` and length; ``Features.hidden`` ``[B, L, T, D]``;
* ``identity`` (dict): ``{"name", "architecture", "fingerprint"}`` (fingerprint: a hash of the weights).

:class:`booster.MuQ` implements it, and :class:`booster.TorchBackbone` wraps any torch module that maps
audio to hidden states in it (a ``backbone:`` value ``py:package.module:function`` names a factory of
one, :func:`load_backbone`). Generic code calls only these names and the helpers below; it never
imports ``booster.muq`` internals. Freezing is the booster's policy, not the backbone's: :func:`freeze`
puts a backbone in eval mode without gradients, and a boosted model keeps it so (the backbone class
itself can train, e.g. in the pretraining recipe).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .errors import BoosterError, CheckpointError, ConfigError
from .features import resolve_layers  # noqa: F401  (one implementation, in features; public here too)

CONTRACT = ("sample_rate", "frame_rate", "hidden_size", "num_layers", "extract", "identity")


@runtime_checkable
class Backbone(Protocol):
    """Structural type of a backbone (see the module docstring)."""

    sample_rate: int
    frame_rate: float
    hidden_size: int
    num_layers: int
    identity: dict

    def extract(self, wav, sample_rate: int, layers=None):  # -> booster.features.Features
        ...


def check_backbone(backbone) -> None:
    """Raise :class:`ConfigError` naming every contract attribute ``backbone`` lacks."""
    missing = [name for name in CONTRACT if not hasattr(backbone, name)]
    if missing:
        raise ConfigError(f"{type(backbone).__name__} is not a backbone: it lacks {missing} "
                          f"(the contract: {', '.join(CONTRACT)}; see booster.backbone)")


def depth(backbone_or_depth) -> int:
    return int(backbone_or_depth if isinstance(backbone_or_depth, int) else backbone_or_depth.num_layers)


def identity(backbone) -> dict:
    """``backbone.identity`` plus its shape (``hidden_size``, ``num_layers``, ``frame_rate``)."""
    return {**dict(getattr(backbone, "identity", {}) or {}), "hidden_size": int(backbone.hidden_size),
            "num_layers": int(backbone.num_layers), "frame_rate": float(backbone.frame_rate)}


def check_identity(expected: dict | None, backbone, *, what: str, allow_other_weights: bool = False) -> None:
    """The one backbone-fingerprint policy (adapter files, checkpoints, saved models).

    Shape (hidden size, depth) must match, always. A different weight fingerprint is a
    :class:`CheckpointError` too (features of other weights make trained adapters meaningless), unless
    ``allow_other_weights=True`` (e.g. to fine-tune adapters onto a new checkpoint of the same
    architecture). ``what`` names the thing being loaded in the message.
    """
    if not expected:
        return
    have = identity(backbone)
    shape = (expected.get("hidden_size"), expected.get("num_layers"))
    if None not in shape and (int(shape[0]), int(shape[1])) != (have["hidden_size"], have["num_layers"]):
        raise CheckpointError(f"{what} was trained on backbone {expected.get('name')!r} with hidden size "
                              f"{shape[0]} and {shape[1]} layers; the backbone given ({have.get('name')!r}) has "
                              f"hidden size {have['hidden_size']} and {have['num_layers']} layers. Load the same "
                              "backbone checkpoint.")
    want, got = expected.get("fingerprint"), have.get("fingerprint")
    if want and got and want != got and not allow_other_weights:
        raise CheckpointError(f"{what} was trained on backbone {expected.get('name')!r} (fingerprint {want}); "
                              f"the backbone given is {have.get('name')!r} (fingerprint {got}). Load the same "
                              "backbone checkpoint, or pass allow_other_weights=True to use these weights anyway.")


def freeze(backbone):
    """The booster's freezing policy: no gradients, eval mode (BatchNorm statistics never update)."""
    backbone.requires_grad_(False)
    backbone.eval()
    return backbone


def load_backbone(src, seed: int = 0):
    """What a ``backbone:`` config value / ``--checkpoint`` names: ``"debug"`` (the tiny built-in MuQ with
    random weights from ``seed``), a registered name, a local directory in the official layout, a hub id,
    or ``"py:package.module:function"``, a factory returning a backbone (e.g. a
    :class:`booster.TorchBackbone`; called with ``seed=`` when it takes it). Returned frozen (:func:`freeze`)."""
    if isinstance(src, str) and src.startswith(FACTORY_PREFIX):
        bb = _from_factory(src, seed)
    else:
        from .muq import load_backbone as _load  # the one concrete backbone family shipped today
        bb = _load(src, seed) if _accepts_seed(_load) else _load(src)
    check_backbone(bb)
    return freeze(bb)


FACTORY_PREFIX = "py:"


def _from_factory(src: str, seed: int):
    """The backbone ``py:package.module:function`` returns; every way it can fail is one ConfigError line.
    The module is imported as Python would, with the current folder on the path (as ``python -m`` has it)."""
    import importlib
    import os
    import sys
    target = src[len(FACTORY_PREFIX):]
    mod_name, _, fn_name = target.partition(":")
    if not mod_name or not fn_name or ":" in fn_name:
        raise ConfigError(f"backbone {src!r}: expected 'py:package.module:function' (a function returning a "
                          "backbone, e.g. a booster.TorchBackbone)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:   # not found, or the module itself failed to import
        raise ConfigError(f"backbone {src!r}: cannot import {mod_name!r} ({type(e).__name__}: {e}); it must be "
                          "installed, on PYTHONPATH or in the current folder") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"backbone {src!r}: module {mod_name!r} has no function {fn_name!r}")
    try:
        bb = fn(seed=seed) if _accepts(fn, "seed") else fn()
    except BoosterError:
        raise
    except Exception as e:
        raise ConfigError(f"backbone {src!r}: the factory raised {type(e).__name__}: {e}") from None
    missing = [name for name in CONTRACT if not hasattr(bb, name)]
    if missing:
        hint = (" (wrap the module in booster.TorchBackbone(module, sample_rate=..., frame_rate=..., "
                "num_layers=..., hidden_size=..., name=...))" if isinstance(bb, torch.nn.Module) else "")
        raise ConfigError(f"backbone {src!r}: the factory returned a {type(bb).__name__}, not a backbone: it "
                          f"lacks {missing}{hint}")
    if not isinstance(bb, torch.nn.Module):
        raise ConfigError(f"backbone {src!r}: the factory returned a {type(bb).__name__}; a boosted model needs "
                          "a torch.nn.Module backbone (booster.TorchBackbone wraps one)")
    return bb


def _accepts_seed(fn) -> bool:
    import inspect
    try:
        return "seed" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _accepts(fn, name: str) -> bool:
    """Whether callable ``fn`` takes keyword ``name`` (inspected once per function)."""
    import inspect
    key = (getattr(fn, "__func__", fn), name)
    if key not in _ACCEPTS:
        try:
            params = inspect.signature(fn).parameters
            _ACCEPTS[key] = name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            _ACCEPTS[key] = False
    return _ACCEPTS[key]


_ACCEPTS: dict = {}


def backbone_features(backbone, wav, sample_rate: int, layers=None, *, out_device=None, out_dtype=None, **opts):
    """The one live-extraction path: ``Features`` (``hidden`` ``[B, L, T, D]``) of ``wav`` (``[S]``,
    ``[C, S]`` or ``[B, C, S]`` at ``sample_rate``) through the backbone's own ``extract``.

    Every caller (training's live features, :class:`booster.injection.Boosted`'s live path, chunked
    inference, the feature cache) comes here, so what MuQ sees is resampled and band-limited the same way
    everywhere. The booster's freezing policy holds: a backbone found in training mode is put back in eval
    mode; no autograd graph is built. ``out_device`` / ``out_dtype``: where the features are kept (e.g.
    ``"cpu"`` for whole-track features in host memory), passed to ``extract`` when it takes them, else
    applied after. ``opts``: further ``extract`` options (``window``, ``overlap``, ``precision``...).
    """
    if getattr(backbone, "training", False):
        backbone.eval()
    opts, move = _split_options(backbone.extract, opts, out_device, out_dtype)
    with torch.no_grad():
        feats = backbone.extract(wav, int(sample_rate), layers, **opts)
    return feats.to(**move) if move else feats


def _split_options(fn, opts: dict, out_device, out_dtype) -> tuple[dict, dict]:
    """``(the options fn takes, the placement to apply afterwards)``: extraction options a backbone's
    ``extract`` / ``extract_file`` does not take (``window``, ``precision``... are MuQ's) are left out (the
    contract names only ``wav, sample_rate, layers``); ``out_device`` / ``out_dtype`` it does not take are
    applied to the result instead."""
    taken = {k: v for k, v in opts.items() if _accepts(fn, k)}
    move = {}
    for key, value in (("out_device", out_device), ("out_dtype", out_dtype)):
        if value is not None:
            if _accepts(fn, key):
                taken[key] = value
            else:
                move[key[4:]] = value
    return taken, move


def extract_file(backbone, path, layers=None, sample_rate: int | None = None, *, out_device=None,
                 out_dtype=None, **opts):
    """Features of an audio file (mono), read at ``sample_rate`` (default: the backbone's own rate).

    ``sample_rate`` = the host's rate makes the backbone see what it sees in training (the host's input,
    then the backbone's own resampling): the file read at that rate goes through the backbone's own
    ``extract_file(path, layers, read_rate=...)`` when it takes ``read_rate`` (bounded memory, window by
    window), else through :class:`booster.audio.FileReader` and :func:`backbone_features`.
    Without ``sample_rate``: ``extract_file(path, layers)`` when the backbone has one, else the file at
    ``backbone.sample_rate``. ``opts``: extraction options (``window``, ``overlap``, ``precision``...),
    passed where the backbone takes them."""
    fn = getattr(backbone, "extract_file", None)
    rate = int(sample_rate or backbone.sample_rate)
    if sample_rate is not None:
        opts = {**opts, "read_rate": rate}
    if fn is not None and (sample_rate is None or _accepts(fn, "read_rate")):
        taken, move = _split_options(fn, opts, out_device, out_dtype)
        if getattr(backbone, "training", False):
            backbone.eval()
        with torch.no_grad():
            feats = fn(path, layers, **taken)
        return feats.to(**move) if move else feats
    from .audio import FileReader
    opts.pop("read_rate", None)
    reader = FileReader(path, rate, 1)
    return backbone_features(backbone, reader(0, reader.length), rate, layers, out_device=out_device,
                             out_dtype=out_dtype, **opts)
