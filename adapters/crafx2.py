"""Host plug-in for the CRAFx2-style per-stem mixer (:mod:`booster.models.crafx2`).

Shape glossary: B batch, N stems, C channels, S samples, T frames.

Default site: ``latent_in``, the input of the latent block (``"B C T"`` with ``C = N * filters``: each stem
slot has its own channels, so the adapter conditions each slot differently; ``sample_rate / hop`` frames
per second). MuQ runs on the sum of the input stems; the latent frames tile the input zero-padded to a
multiple of ``hop`` samples (``span_fn``). No published weights: train with
``booster fit --config mixing/crafx2_baseline``.
"""
from __future__ import annotations

from torch import nn

from booster.errors import ConfigError
from booster.injection import Boosted, Site
from booster.models.crafx2 import CRAFx2

from .mix_wave_unet import mixer_plugin_parts, task_kwargs

NAME = PRESET = "crafx2"


_host, site_channels, io_functions, prepare = mixer_plugin_parts(NAME, CRAFx2, "CRAFx2")


def build(*, size: str = "full", pretrained: str | None = None, pretrained_repo: str | None = None,
          overrides: dict | None = None, **task) -> CRAFx2:
    """CRAFx2 of ``size`` ("debug" | "full"); task keywords ``stems``, ``sample_rate``, ``channels``;
    ``overrides``: ``filters``, ``kernel``, ``hop``, ``tcn_blocks``, ``se_ratio``."""
    if pretrained or pretrained_repo:
        raise ConfigError("CRAFx2 has no published weights; leave pretrained unset (train it with "
                          "`booster fit --config mixing/crafx2_baseline`)")
    return CRAFx2.build(size, **task_kwargs(task, overrides))


def architecture(model: nn.Module) -> dict:
    return _host(model).architecture()


def from_architecture(**kwargs) -> CRAFx2:
    return CRAFx2(**kwargs)


def default_sites(model: nn.Module, *, fusion: str = "add") -> list[Site]:
    host = _host(model)
    return [Site("latent_in", "B C T", channels=host.site_channels("latent_in"), fusion=fusion)]


def boost(model: nn.Module, backbone, *, layers=None, sites: list[Site] | None = None, fusion: str = "add",
          train_host: bool = True) -> Boosted:
    """Boost a CRAFx2 with ``backbone`` features at its latent block (or explicit ``sites``). At
    initialisation the result returns exactly the host's output."""
    host, kw = prepare(model)
    sites = default_sites(host, fusion=fusion) if sites is None else \
        [s if isinstance(s, Site) else Site.from_dict(s) for s in sites]
    return Boosted(host, backbone, sites, layers=layers, train_host=train_host, preset=PRESET, **kw)


def chunk_seconds(model: nn.Module) -> float:
    """Chunk length for whole-track mixing (the BiLSTM sees this much context)."""
    return 10.0
