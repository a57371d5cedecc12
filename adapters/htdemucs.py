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

Host plug-in (``booster.plugins``): ``build`` (debug / full size, published demucs weights),
``architecture`` / ``from_architecture`` (demucs' own captured init arguments, as JSON), ``loss``
(waveform L1, as demucs' solver), ``chunk_seconds`` (the model's training segment), ``from_published``,
``lora_targets`` (the cross-transformer's attention and feed-forward projections).
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from booster import hub
from booster.errors import CheckpointError, ConfigError, DownloadError
from booster.injection import Boosted, Site

PRESET = NAME = "htdemucs"
# Small HTDemucs: 3 encoder levels, 8 channels, 1 cross-transformer layer (~95 k parameters). Three levels, not
# two: the cross-transformer attends over (bins x frames) tokens, 4x fewer per level (6x faster per chunk on CPU).
DEBUG = dict(channels=8, depth=3, nfft=512, t_layers=1, t_heads=2, dconv_comp=4, t_cape_augment=False)


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


def lora_targets(model: nn.Module) -> list[str]:
    """LoRA targets (:mod:`booster.lora`): the cross-domain transformer's attention (packed q/k/v and output
    projections) and feed-forward linears."""
    return [n for n, m in model.named_modules()
            if n.startswith("crosstransformer.") and isinstance(m, (nn.Linear, nn.MultiheadAttention))]


def io_functions(model: nn.Module) -> dict:
    """``input_fn`` for an HTDemucs: ``(mix [B, C, S] padded as HTDemucs pads it, model.samplerate)``;
    ``span_fn``: per site, the interval its frames tile (:func:`site_span`)."""
    def padded(samples: int) -> int:  # what HTDemucs.forward pads a mix of `samples` to
        if model.use_train_segment and not model.training:
            return max(samples, int(Fraction(model.segment) * model.samplerate))
        return samples

    def input_fn(mix=None, *args, **kwargs):
        mix = kwargs.get("mix", mix)
        length = padded(mix.shape[-1])
        return (F.pad(mix, (0, length - mix.shape[-1])) if length > mix.shape[-1] else mix), int(model.samplerate)

    def span_fn(mix=None, *args, **kwargs):
        length = padded(kwargs.get("mix", mix).shape[-1])
        return lambda site: site_span(model, site, length)
    return {"input_fn": input_fn, "span_fn": span_fn}


def site_span(model: nn.Module, site: Site, length: int) -> tuple[float, float]:
    """``(offset, seconds)`` the frames at ``site`` tile, for a (padded) mix of ``length`` samples.

    Frequency branch (``encoder.<i>``, ``crosstransformer`` element 0): ``_spec`` reflect-pads
    ``hop // 2 * 3`` samples, takes a centred STFT and keeps frames ``2 .. 2 + ceil(length / hop)``, so frame
    ``j`` lies at sample ``(j + 0.5) * hop`` (the encoders convolve over frequency only). Time branch
    (``tencoder.<i>``, ``crosstransformer`` element 1): each encoder pads its input to a multiple of its stride
    and convolves (kernel k, stride s, padding p), frame ``j`` at ``s * j - p + (k - 1) / 2`` of the level
    below. Any other site: the mix tiled evenly. (Without this the T frames were taken to tile ``length``,
    up to a frame off at the end when ``length`` is not a multiple of the hop or the time stride.)
    """
    sr = float(model.samplerate)
    name, _, rest = site.path.partition(".")
    index = rest.split(".")[0]
    transformer = site.path == "crosstransformer"
    if (transformer and site.element in (1, "xt")) or (name == "tencoder" and index.isdigit()):
        step, first, frames = 1.0, 0.0, length
        for layer in model.tencoder[:len(model.tencoder) if transformer else int(index) + 1]:
            k, s, p = layer.conv.kernel_size[0], layer.conv.stride[0], layer.conv.padding[0]
            frames = (-(-frames // s) * s + 2 * p - k) // s + 1
            first, step = first + step * (-p + (k - 1) / 2), step * s
        return (first - step / 2) / sr, frames * step / sr
    if transformer or (name == "encoder" and index.isdigit()):
        hop = model.hop_length
        first = 2 * hop - hop // 2 * 3
        return (first - hop / 2) / sr, -(-length // hop) * hop / sr
    return 0.0, length / sr


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
    whose outputs also get features. ``sites``: explicit :class:`~booster.injection.Site` list instead.
    ``fusion``: ``"add"`` or ``"film"``. ``train_host``: train the HTDemucs with the adapters (default True; False freezes it).
    Returns a :class:`~booster.injection.Boosted` (or, for a bag of several models without ``member``, a
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
    from booster.adapter_io import load_adapters
    host, _ = prepare(model, member=member)
    return load_adapters(host, backbone, path)


# ---- host plug-in: build, describe, rebuild, train ------------------------------------------------
def build(*, size: str = "full", pretrained: str | None = None, pretrained_repo: str | None = None,
          overrides: dict | None = None, sources: list[str], sample_rate: int = 44100, channels: int = 2,
          segment: float = 10.0) -> nn.Module:
    """An HTDemucs separating ``sources`` (``[B, C, S]`` → ``[B, N, C, S]``): published weights
    (``pretrained``: a demucs name or signature, ``pretrained_repo``: a local folder of .th files), or a new
    model of the ``"full"`` (demucs' defaults) or ``"debug"`` size with ``overrides``. ``segment``: its
    training length in seconds (also the inference chunk)."""
    if pretrained:
        if overrides:
            raise ConfigError("host_kwargs cannot change the architecture of a pretrained demucs model")
        return _pretrained(pretrained, pretrained_repo, list(sources), sample_rate, channels)
    kw = dict(DEBUG) if size == "debug" else {}
    kw.update(overrides or {})
    kw.update(sources=list(sources), audio_channels=channels, samplerate=sample_rate, segment=segment)
    return _htdemucs_class()(**kw)


def architecture(model: nn.Module) -> dict:
    """demucs' captured init arguments of ``model`` (what its own release packages store)."""
    args, kwargs = model._init_args_kwargs
    kw = dict(kwargs)
    if args:
        kw["sources"] = list(args[0])
    return {k: (float(v) if isinstance(v, Fraction) else v) for k, v in kw.items()}


def from_architecture(**kwargs) -> nn.Module:
    return _htdemucs_class()(**kwargs)


def loss(model: nn.Module, mix: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Per-source waveform L1 ``[N]`` (demucs' solver); ``mix`` ``[B, C, S]``, ``sources`` ``[B, N, C, S]``."""
    est = model(mix)
    assert est.shape == sources.shape, (est.shape, sources.shape)
    return F.l1_loss(est, sources, reduction="none").mean(dim=(2, 3)).mean(0)


def chunk_seconds(model: nn.Module) -> float:
    return float(model.segment)


def from_published(name: str) -> nn.Module | None:
    """A published demucs HTDemucs by name (``htdemucs`` or ``demucs:<name>``), else None. Offline, when its
    weights are not cached: :class:`~booster.errors.DownloadError` at once (for ``booster separate --model``)."""
    bare = name.split(":", 1)[1] if name.startswith("demucs:") else name
    if not re.fullmatch(r"[A-Za-z0-9_]+", bare) or published_urls(bare) is None:
        return None
    return _pretrained(bare, None, None, None, None,
                       remedy="or pass --model a .ckpt from `booster fit` or a .safetensors separator file")


# ---- published weights: demucs' list of release files, torch's hub cache, a fast offline check ---------------
DOWNLOAD_HOST = "dl.fbaipublicfiles.com"   # where demucs' release files (.th) are downloaded from


def published_urls(name: str) -> list[str] | None:
    """Download URLs of the ``.th`` files of the published demucs model ``name`` (a bag name such as
    ``htdemucs`` or a single signature such as ``955717e8``), from the lists shipped with demucs; None when
    demucs publishes no model of that name."""
    import yaml
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    urls = _parse_remote_files(REMOTE_ROOT / "files.txt")   # {signature: url}
    if name in urls:
        return [urls[name]]
    bag = REMOTE_ROOT / f"{name}.yaml"
    if not bag.is_file():
        return None
    sigs = yaml.safe_load(bag.read_text())["models"]
    return [urls[s] for s in sigs] if all(s in urls for s in sigs) else None


def missing_files(urls: list[str]) -> list[str]:
    """The URLs in ``urls`` whose file is not in torch's hub cache (:func:`booster.hub.hub_checkpoints`) yet."""
    return [u for u in urls if not (hub.hub_checkpoints() / u.rsplit("/", 1)[1]).is_file()]


def _load_release(name: str, remedy: str) -> nn.Module:
    """demucs' release ``name`` through torch's hub cache (demucs' legacy repository: no Hugging Face
    round trips); checks the download host once, first, when a file is missing."""
    from demucs.pretrained import REMOTE_ROOT, AnyModelRepo, BagOnlyRepo, RemoteRepo, _parse_remote_files

    missing = missing_files(published_urls(name))
    if missing and not hub.reachable(DOWNLOAD_HOST):
        files = " ".join(u.rsplit("/", 1)[1] for u in missing)
        raise DownloadError(f"demucs model {name!r} is not downloaded and cannot be ({DOWNLOAD_HOST} is unreachable: "
                            f"offline?): put {files} (from {missing[0].rsplit('/', 1)[0]}/) into "
                            f"{hub.hub_checkpoints()}, {remedy}")
    repo = RemoteRepo(_parse_remote_files(REMOTE_ROOT / "files.txt"))
    return AnyModelRepo(repo, BagOnlyRepo(REMOTE_ROOT, repo)).get_model(name).eval()


FIT_REMEDY = ("or pass --model.pretrained_repo DIR (a folder holding those .th files), or --model.pretrained null "
              "to train from scratch")


def _pretrained(name, repo, sources, sample_rate, channels, remedy: str = FIT_REMEDY) -> nn.Module:
    from demucs.apply import BagOfModels
    from demucs.pretrained import get_model
    if repo is None and published_urls(name) is None:
        raise CheckpointError(f"demucs publishes no model {name!r}: give a name such as htdemucs, htdemucs_ft, "
                              "a signature, or a local folder of .th files with --model.pretrained_repo")
    try:
        model = get_model(name, repo=Path(repo)) if repo else _load_release(name, remedy)
    except DownloadError:
        raise
    except Exception as e:  # demucs raises ModelLoadingError, a damaged download, ...
        where = f"from {repo!r}" if repo else f"from torch's hub cache {str(hub.hub_checkpoints())!r}"
        raise CheckpointError(f"cannot load demucs model {name!r} {where}: {type(e).__name__}: {e}") from None
    if isinstance(model, BagOfModels):
        if len(model.models) != 1:
            raise CheckpointError(f"demucs model {name!r} is a bag of {len(model.models)} models; fine-tune "
                                  "one of its members (pass its signature) instead")
        model = model.models[0]
    if not isinstance(model, _htdemucs_class()):
        raise CheckpointError(f"demucs model {name!r} is a {type(model).__name__}, not HTDemucs")
    if sources is not None and (list(model.sources) != list(sources) or model.audio_channels != channels
                                or model.samplerate != sample_rate):
        raise ConfigError(f"demucs model {name!r} separates {model.sources} ({model.audio_channels} channels, "
                          f"{model.samplerate} Hz) but the recipe asks for {sources} ({channels} channels, "
                          f"{sample_rate} Hz); change sources/channels/sample_rate in the config")
    return model


def onnx_form(model: nn.Module, chunk: int, *, boosted: bool = False) -> dict:
    """How ``booster export`` makes this HTDemucs an ONNX graph (STFT / iSTFT in the runner):
    :mod:`booster.adapters._onnx_htdemucs`."""
    from ._onnx_htdemucs import onnx_form as form
    return form(model, chunk, boosted=boosted)
