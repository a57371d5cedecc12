"""Boost demucs' Hybrid Transformer Demucs (``demucs.htdemucs.HTDemucs``) with MuQ features.

Shape glossary: B batch, C channels, F frequency bins, T frames, S samples.

Default sites: both inputs of the cross-domain transformer, ``crosstransformer`` input 0 (frequency
branch, ``[B, C, F, T]``) and input 1 (time branch, ``[B, C, T]``). ``encoder=[i, ...]`` /
``tencoder=[i, ...]`` add the outputs of those frequency / time encoder layers. MuQ runs on the mix
``[B, 2, S]`` at ``model.samplerate``; in eval mode a mix shorter than the training segment is padded
exactly as HTDemucs pads it, so the features cover what the host sees.

``boost`` accepts an ``HTDemucs`` or the ``BagOfModels`` that ``demucs.pretrained.get_model`` returns:
a bag of one model gives that model boosted; a bag of several gives a new ``BagOfModels`` of boosted
members (or pass ``member=i`` to boost one). Boosted models work with ``demucs.apply.apply_model``.
"""
from __future__ import annotations

from fractions import Fraction

import torch.nn.functional as F
from torch import nn

from booster.errors import ConfigError
from booster.inject import Boosted, Site

PRESET = "htdemucs"


def _htdemucs_class():
    from demucs.htdemucs import HTDemucs
    return HTDemucs


def transformer_channels(model: nn.Module) -> int:
    """Channels C of the tensors entering ``model.crosstransformer``."""
    return int(model.bottom_channels or model.encoder[-1].conv.out_channels)


def default_sites(model: nn.Module, *, transformer: bool = True, encoder=(), tencoder=(),
                  fusion: str = "add") -> list[Site]:
    """Sites for an HTDemucs: transformer inputs and/or chosen encoder / time-encoder layer outputs."""
    sites = []
    if transformer:
        if model.crosstransformer is None:
            raise ConfigError("this HTDemucs has no cross-domain transformer (t_layers=0); use "
                              "transformer=False with encoder=[...] / tencoder=[...] sites")
        c = transformer_channels(model)
        sites += [Site(path="crosstransformer", where="input", element=0, layout="B C F T", channels=c,
                       fusion=fusion),
                  Site(path="crosstransformer", where="input", element=1, layout="B C T", channels=c,
                       fusion=fusion)]
    for name, layers, layout in (("encoder", encoder, "B C F T"), ("tencoder", tencoder, "B C T")):
        stack = getattr(model, name)
        for i in layers:
            if not -len(stack) <= int(i) < len(stack):
                raise ConfigError(f"{name}[{i}] does not exist: this HTDemucs has {len(stack)} {name} layers")
            i = int(i) % len(stack)
            if getattr(stack[i], "empty", False):
                raise ConfigError(f"{name}[{i}] only holds a merge convolution (its output is injected into the "
                                  "frequency branch); pick another layer")
            sites.append(Site(path=f"{name}.{i}", layout=layout, channels=stack[i].conv.out_channels,
                              fusion=fusion))
    if not sites:
        raise ConfigError("no sites chosen: keep transformer=True or name encoder/tencoder layers")
    return sites


def site_channels(model: nn.Module, site: Site) -> int | None:
    """Channels C at ``site`` in this HTDemucs (used to check adapter files on load)."""
    if site.path == "crosstransformer":
        return transformer_channels(model)
    name, _, index = site.path.partition(".")
    if name in ("encoder", "tencoder") and index.isdigit() and site.where == "output":
        return getattr(model, name)[int(index)].conv.out_channels
    return None


def io_functions(model: nn.Module) -> dict:
    """``input_fn`` for an HTDemucs: ``(mix [B, C, S] padded as HTDemucs pads it, model.samplerate)``."""
    def input_fn(mix=None, *args, **kwargs):
        mix = kwargs.get("mix", mix)
        if model.use_train_segment and not model.training:
            length = int(Fraction(model.segment) * model.samplerate)
            if mix.shape[-1] < length:
                mix = F.pad(mix, (0, length - mix.shape[-1]))
        return mix, int(model.samplerate)
    return {"input_fn": input_fn}


def prepare(model: nn.Module, *, member: int | None = None) -> tuple[nn.Module, dict]:
    """The HTDemucs to boost inside ``model`` (itself, the only / chosen member of a bag) and the
    keyword arguments :class:`Boosted` needs for it."""
    from demucs.apply import BagOfModels
    if isinstance(model, BagOfModels):
        if member is None and len(model.models) != 1:
            raise ConfigError(f"this BagOfModels has {len(model.models)} models; pass member=i to boost one, "
                              "or call boost() on the bag without member to boost each")
        model = model.models[member or 0]
    if isinstance(model, Boosted):
        raise ConfigError("this model is already boosted; boost its .host or load adapters onto a fresh model")
    if not isinstance(model, _htdemucs_class()):
        raise ConfigError(f"booster.adapters.htdemucs boosts demucs.htdemucs.HTDemucs (or a BagOfModels of them), "
                          f"got {type(model).__name__}")
    return model, io_functions(model)


def boost(model: nn.Module, backbone: nn.Module, *, layers=None, transformer: bool = True, encoder=(),
          tencoder=(), sites: list[Site] | None = None, fusion: str = "add", train_host: bool = True,
          member: int | None = None):
    """Boost an HTDemucs (or a demucs ``BagOfModels``) with ``backbone`` features.

    ``layers``: MuQ hidden-state indices (default all). ``transformer``: inject into both inputs of the
    cross-domain transformer. ``encoder`` / ``tencoder``: indices of frequency / time encoder layers
    whose outputs also get features. ``sites``: explicit :class:`~booster.inject.Site` list instead.
    ``fusion``: ``"add"`` or ``"film"``. ``train_host``: train the HTDemucs with the adapters (default True; False freezes it).
    Returns a :class:`~booster.inject.Boosted` (or, for a bag of several models without ``member``, a
    ``BagOfModels`` of them, each saved separately with ``booster.save_adapters``).
    """
    from demucs.apply import BagOfModels
    if isinstance(model, BagOfModels) and member is None and len(model.models) > 1:
        members = [boost(m, backbone, layers=layers, transformer=transformer, encoder=encoder,
                         tencoder=tencoder, sites=sites, fusion=fusion, train_host=train_host)
                   for m in model.models]
        return BagOfModels(members, weights=model.weights)
    host, kw = prepare(model, member=member)
    sites = sites if sites is not None else default_sites(host, transformer=transformer, encoder=encoder,
                                                          tencoder=tencoder, fusion=fusion)
    return Boosted(host, backbone, sites, layers=layers, train_host=train_host, preset=PRESET, **kw)


def load(model: nn.Module, backbone: nn.Module, path, *, member: int | None = None) -> Boosted:
    """``booster.load_adapters`` for a bag with several members: load onto member ``member``."""
    from booster.inject import load_adapters
    host, _ = prepare(model, member=member)
    return load_adapters(host, backbone, path)
