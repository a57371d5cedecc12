"""Host plug-in for Mix-Wave-U-Net (:mod:`booster.models.mix_wave_unet`), the mixing recipe's U-Net mixer.

Shape glossary: B batch, N stems, C channels, S samples, T frames.

Default site: the bottleneck output (``"B C T"``, ``filters * (levels + 1)`` channels at ``1 / 2**levels``
of the sample rate); ``decoder=(0, 1, ...)`` adds decoder levels (``up.<i>``, 0 = deepest). MuQ runs on the
sum of the input stems (``[B, N, C, S]`` → ``[B, C, S]``, then MuQ's own mono downmix and resampling).
Time alignment (``span_fn``, per site): a site at level ``m`` (bottleneck: ``m = levels``; ``up.<i>``:
``levels - 1 - i``) has frame ``j`` at input sample ``j * 2**m``, where decimation ``x[..., ::2]`` puts it.
There are no published weights: train with ``booster fit --config mixing/wave_unet_baseline``.
"""
from __future__ import annotations

from torch import nn

from booster.errors import ConfigError
from booster.injection import Boosted, Site
from booster.models.mix_wave_unet import MixWaveUNet

NAME = PRESET = "mix_wave_unet"


def mixer_plugin_parts(name: str, cls: type, label: str):
    """The plug-in functions both mixing hosts share (their models expose ``site_channels(path)``,
    ``input_fn`` and ``span_fn``): ``(host_of, site_channels, io_functions, prepare)`` for plug-in ``name``
    handling ``cls`` (``label`` names it in errors)."""

    def host_of(model: nn.Module):
        host = model.host if isinstance(model, Boosted) else model
        if not isinstance(host, cls):
            raise ConfigError(f"booster.adapters.{name} handles booster.models.{cls.__name__}, "
                              f"got {type(host).__name__}")
        return host

    def site_channels(model: nn.Module, site: Site) -> int | None:
        try:
            return host_of(model).site_channels(site.path)
        except ConfigError:
            return None

    def io_functions(model: nn.Module) -> dict:
        host = host_of(model)
        return {"input_fn": host.input_fn, "span_fn": host.span_fn}

    def prepare(model: nn.Module, **options) -> tuple[nn.Module, dict]:
        if isinstance(model, Boosted):
            raise ConfigError(f"this {label} is already boosted; boost its .host or a fresh model")
        return host_of(model), io_functions(model)

    return host_of, site_channels, io_functions, prepare


_host, site_channels, io_functions, prepare = mixer_plugin_parts(NAME, MixWaveUNet, "Mix-Wave-U-Net")


def task_kwargs(task: dict, overrides: dict | None) -> dict:
    """Model keyword arguments from the recipe's task fields (``stems``, ``sample_rate``, ``channels``)
    and architecture ``overrides``; ``channels`` is the channel count of every stem."""
    kw = {k: v for k, v in {**task, **dict(overrides or {})}.items() if v is not None}
    kw.pop("segment", None)
    if "channels" in kw:
        kw.setdefault("in_channels", kw.pop("channels"))
    return kw


def build(*, size: str = "full", pretrained: str | None = None, pretrained_repo: str | None = None,
          overrides: dict | None = None, **task) -> MixWaveUNet:
    """Mix-Wave-U-Net of ``size`` ("debug" | "full"); task keywords ``stems``, ``sample_rate``, ``channels``;
    ``overrides``: ``levels``, ``filters``, ``down_kernel``, ``up_kernel`` (see :class:`MixWaveUNet`)."""
    if pretrained or pretrained_repo:
        raise ConfigError("Mix-Wave-U-Net has no published weights; leave pretrained unset (train it with "
                          "`booster fit --config mixing/wave_unet_baseline`)")
    return MixWaveUNet.build(size, **task_kwargs(task, overrides))


def architecture(model: nn.Module) -> dict:
    return _host(model).architecture()


def from_architecture(**kwargs) -> MixWaveUNet:
    return MixWaveUNet(**kwargs)


def default_sites(model: nn.Module, *, decoder=(), fusion: str = "add") -> list[Site]:
    """The bottleneck, plus the decoder levels listed in ``decoder``."""
    host = _host(model)
    paths = ["bottleneck"] + [f"up.{int(i)}" for i in decoder]
    return [Site(p, "B C T", channels=host.site_channels(p), fusion=fusion) for p in paths]


def boost(model: nn.Module, backbone, *, layers=None, sites: list[Site] | None = None, fusion: str = "add",
          train_host: bool = True, decoder=()) -> Boosted:
    """Boost a Mix-Wave-U-Net with ``backbone`` features at :func:`default_sites` (or explicit ``sites``,
    given as :class:`Site` or dicts). At initialisation the result returns exactly the host's output."""
    host, kw = prepare(model)
    sites = default_sites(host, decoder=decoder, fusion=fusion) if sites is None else \
        [s if isinstance(s, Site) else Site.from_dict(s) for s in sites]
    return Boosted(host, backbone, sites, layers=layers, train_host=train_host, preset=PRESET, **kw)


def chunk_seconds(model: nn.Module) -> float:
    """Chunk length for whole-track mixing."""
    return 10.0
