"""Injection of frozen backbone features into a host model through zero-initialised adapters.

Shape glossary: B batch, C channels, F frequency bins, T frames, S samples, L layers, D feature dim.

``boosted = booster.inject(model, backbone, sites, layers=...)`` wraps ``model`` (kept as
``boosted.host``) in a :class:`Boosted` module with the same forward signature and output. Each call:

1. maps the host's arguments to ``(waveform [B, C, S] or [B, S], sample_rate)`` with ``input_fn``
   (default: the first positional argument at the host's sample rate) and runs the backbone once on it
   (frozen, under ``inference_mode``), unless precomputed features were given with
   :meth:`Boosted.use_features`;
2. runs the host; forward hooks at every :class:`Site` add the adapted features to the tensor there.

Time alignment: backbone frame ``k`` is centred at ``features.start + k / 25`` s; a site tensor with T
frames is taken to tile the host input evenly, frame ``j`` centred at ``input_start + (j + 0.5) * span / T``
where ``span`` is the host input's duration; values are linearly interpolated (edges clamp). A plug-in's
``span_fn`` gives ``(offset, span)`` when the frames lie elsewhere, for all sites or per site (a site's frames
depend on its depth in the host: a function of the :class:`Site`).
Adapter files: :func:`save_adapters` / :func:`load_adapters` (safetensors weights + JSON description).
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import inspect
import re
import threading
import weakref
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from .backbone import backbone_features, check_backbone, freeze, resolve_layers
from .errors import ConfigError
from .features import Features
from .fusion import FUSIONS, SiteAdapter, parse_layout

_ACTIVE = threading.local()  # per thread: {id(Boosted): forward context}


@dataclass(frozen=True)
class Site:
    """One injection point in a host model.

    ``path``: dotted submodule name as in ``model.named_modules()`` (``"encoder.0"``; ``"encoder[0]"`` is
    accepted too). ``where``: ``"output"`` (default) or ``"input"`` of that module. ``layout``: axes of the
    tensor there, e.g. ``"B C T"``, ``"B C F T"``, ``"B T C"``, ``"T B C"``. ``element``: for a module that
    takes or returns a tuple, which element (an index; for inputs also a keyword name); inputs default to
    the first positional argument. ``fusion``: ``"add"`` (gated add) or ``"film"``. ``channels``: size of
    the C axis (inferred from Conv/Linear/norm/LSTM modules when omitted). ``layers``: backbone layers for
    this site (default: all layers given to :func:`inject`).
    """

    path: str
    layout: str
    where: str = "output"
    element: int | str | None = None
    fusion: str = "add"
    channels: int | None = None
    layers: tuple[int, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "path", re.sub(r"\[(\w+)\]", r".\1", self.path).strip("."))
        parse_layout(self.layout)
        if self.where not in ("input", "output"):
            raise ConfigError(f"Site.where must be 'input' or 'output', got {self.where!r}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"Site.fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))

    def describe(self) -> str:
        elem = "" if self.element is None else f"[{self.element}]"
        return f"'{self.path}' {self.where}{elem} ({self.layout}, {self.fusion})"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Site":
        return cls(**{k: d[k] for k in ("path", "layout", "where", "element", "fusion", "channels", "layers")
                      if k in d})


def find_module(model: nn.Module, path: str) -> nn.Module:
    """``model``'s submodule at dotted ``path``; a :class:`ConfigError` lists the closest real names."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(path, names, n=6, cutoff=0.4)
        top = [n for n, _ in model.named_children()]
        raise ConfigError(f"{type(model).__name__} has no submodule {path!r}; closest names: "
                          f"{close or 'none'}; top-level submodules: {top}. Site paths are names from "
                          "model.named_modules(), e.g. 'encoder.0'.") from None


def infer_channels(module: nn.Module, where: str) -> int | None:
    """Channel count at a module's input or output for common layer types, else None."""
    inp = where == "input"
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.in_channels if inp else module.out_channels
    if isinstance(module, nn.Linear):
        return module.in_features if inp else module.out_features
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return module.num_features
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1]
    if isinstance(module, nn.RNNBase):
        return module.input_size if inp else module.hidden_size * (2 if module.bidirectional else 1)
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim
    return None


def default_input_fn(host: nn.Module, sample_rate: int | None = None) -> Callable:
    """``input_fn(*args, **kwargs) -> (waveform, sample_rate)``: the host's first positional argument
    (or its first named parameter given as keyword) at ``sample_rate`` if given, else a ``sample_rate=``
    argument of the call, else ``host.samplerate`` (demucs) or ``host.sample_rate``."""
    params = list(inspect.signature(host.forward).parameters)
    has_attr = any(getattr(host, a, None) is not None for a in ("samplerate", "sample_rate"))
    if sample_rate is None and not has_attr and "sample_rate" not in params:
        raise ConfigError(f"cannot tell the sample rate of {type(host).__name__}'s input: it has no "
                          "`samplerate`/`sample_rate` attribute or `sample_rate` argument. Pass "
                          "sample_rate=... (or input_fn=...) to booster.inject.")

    def input_fn(*args, **kwargs):
        wav = args[0] if args else kwargs.get(params[0]) if params else None
        if not isinstance(wav, torch.Tensor):
            raise ConfigError(f"{type(host).__name__} was called without a waveform tensor as first argument; "
                              "pass input_fn=... to booster.inject to say where the audio is")
        sr = sample_rate or kwargs.get("sample_rate") or getattr(host, "samplerate", None) \
            or getattr(host, "sample_rate", None)
        return wav, int(sr)
    return input_fn


FROZEN_BY_BOOSTER = "_booster_frozen"  # attribute of a host: names of the parameters train_host=False froze


def set_host_trainable(host: nn.Module, train: bool) -> None:
    """``train=False``: freeze every host parameter (the names of those it froze are kept on the host).
    ``train=True``: unfreeze what an earlier ``train_host=False`` froze and nothing else: parameters the host
    keeps frozen itself (Open-Unmix's STFT window, rotary frequencies) stay frozen. (Setting them trainable
    made a boosted Open-Unmix train the window its loss's target spectrograms are computed with.)"""
    frozen = set(getattr(host, FROZEN_BY_BOOSTER, ()))
    if train:
        for name, p in host.named_parameters():
            if name in frozen:
                p.requires_grad_(True)
        frozen = set()
    else:
        frozen |= {name for name, p in host.named_parameters() if p.requires_grad}
        host.requires_grad_(False)
    host.__dict__[FROZEN_BY_BOOSTER] = sorted(frozen)


class _SiteHook:
    """Forward (pre-)hook on a host submodule; inert unless its :class:`Boosted` owner is running."""

    def __init__(self, owner: "Boosted | None", index: int):
        self.owner = weakref.ref(owner) if owner is not None else None
        self.index = index

    def __deepcopy__(self, memo):
        owner = self.owner() if self.owner is not None else None
        return _SiteHook(memo.get(id(owner)), self.index)  # a copied host alone gets an inert hook

    def _context(self):
        owner = self.owner() if self.owner is not None else None
        ctx = getattr(_ACTIVE, "ctx", {}).get(id(owner)) if owner is not None else None
        return owner, ctx

    def __call__(self, module, *rest):
        owner, ctx = self._context()
        if ctx is None:
            return None
        site = owner.sites[self.index]
        if site.where == "output":
            return _replace(rest[-1], site, lambda x: owner._apply_site(self.index, x, ctx))
        args, kwargs = rest
        if isinstance(site.element, str):
            if site.element not in kwargs:
                raise ConfigError(f"site {site.describe()}: no keyword argument {site.element!r} in this call")
            kwargs = dict(kwargs, **{site.element: owner._apply_site(self.index, kwargs[site.element], ctx)})
            return args, kwargs
        return _replace(tuple(args), site, lambda x: owner._apply_site(self.index, x, ctx), default=0), kwargs


def _replace(value, site: Site, fn, default: int | None = None):
    """``value`` with ``fn`` applied to the element ``site.element`` (or ``default``; None: ``value`` itself)."""
    element = site.element if site.element is not None else default
    if element is None:
        if isinstance(value, (tuple, list)):
            raise ConfigError(f"site {site.describe()}: the module's {site.where} is a {type(value).__name__} "
                              f"of {len(value)} elements; choose one with Site(element=...)")
        return fn(value)
    i = int(element)
    if not isinstance(value, (tuple, list)) or not -len(value) <= i < len(value):
        n = len(value) if isinstance(value, (tuple, list)) else "no"
        raise ConfigError(f"site {site.describe()}: element {i} asked but the module's {site.where} has {n} "
                          "elements")
    out = list(value)
    out[i] = fn(out[i])
    return tuple(out) if isinstance(value, tuple) else out


@dataclass
class _Context:
    hidden: torch.Tensor          # [B, L, T_feat, D], a normal (non-inference) tensor
    layers: tuple[int, ...]
    frame_rate: float
    start: float                  # time of feature frame 0
    input_start: float | torch.Tensor  # time of host input sample 0 (same origin); or [B] per item
    spans: list                   # per site: (offset, seconds) of the interval its frames tile, from input_start
    cache: dict = field(default_factory=dict)


class Boosted(nn.Module):
    """A host model with backbone features injected at :class:`Site` s. Build with :func:`inject`.

    Call it exactly like the host. Attributes not found on the wrapper are read from the host
    (``boosted.samplerate``, ``boosted.sources``...). ``state_dict()`` holds ``host.*`` and ``adapters.*``;
    the frozen backbone is held outside the module tree (``boosted.backbone``): it is not in
    ``parameters()``/``state_dict()`` and never saved in adapter files, but follows ``.to(device)``.
    """

    def __init__(self, host: nn.Module, backbone: nn.Module, sites, *, layers=None,
                 input_fn: Callable | None = None, span_fn: Callable | None = None,
                 sample_rate: int | None = None, train_host: bool = True, preset: str | None = None):
        super().__init__()
        sites = [sites] if isinstance(sites, Site) else list(sites)
        if not sites:
            raise ConfigError("booster.inject needs at least one Site")
        check_backbone(backbone)
        layers = resolve_layers(backbone, layers)
        self.host = host
        object.__setattr__(self, "backbone", freeze(backbone))  # the booster's policy: frozen, eval
        self.sites = sites
        self.layers = layers
        self.train_host = bool(train_host)
        self.preset = preset
        self.sample_rate_override = sample_rate
        self.input_fn = input_fn or default_input_fn(host, sample_rate)
        self.span_fn = span_fn
        self._features: tuple[Features, float | None, float | None] | None = None
        set_host_trainable(host, self.train_host)
        self.adapters = nn.ModuleList()
        self._handles = []
        for i, site in enumerate(sites):
            site_layers = resolve_layers(backbone, site.layers) if site.layers else layers
            missing = [k for k in site_layers if k not in layers]
            if missing:
                raise ConfigError(f"site {site.describe()} uses layers {missing} not in layers={layers}")
            module = find_module(host, site.path)
            channels = site.channels or infer_channels(module, site.where)
            if channels is None:
                raise ConfigError(f"cannot infer the channel count at site {site.describe()} "
                                  f"({type(module).__name__}); pass Site(..., channels=N)")
            for hooks in (module._forward_hooks, module._forward_pre_hooks):
                for key, h in list(hooks.items()):
                    if not isinstance(h, _SiteHook):
                        continue
                    other = h.owner() if h.owner is not None else None
                    if other is None:  # left behind by a discarded Boosted (or a copied host): drop it
                        del hooks[key]
                    elif other is not self:
                        raise ConfigError(f"{site.path!r} is already boosted by another Boosted model; call "
                                          "its .remove() first or boost a copy of the host")
            self.adapters.append(SiteAdapter(num_layers=len(site_layers), dim=backbone.hidden_size,
                                             channels=channels, fusion=site.fusion))
            hook = _SiteHook(self, i)
            if site.where == "output":
                self._handles.append(module.register_forward_hook(hook))
            else:
                self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
        self.site_layers = [resolve_layers(backbone, s.layers) if s.layers else layers for s in sites]
        self.__signature__ = inspect.signature(host.forward)

    # ---- attribute passthrough, device moves, copies ----------------------------------------
    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            host = self.__dict__.get("_modules", {}).get("host")
            if host is None or name.startswith("__"):
                raise
            return getattr(host, name)

    def train(self, mode: bool = True):
        """Train/eval the host and adapters; the backbone stays in eval mode (booster's freezing policy)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        p = next(self.adapters.parameters(), None)
        if p is not None:
            self.backbone.to(p.device)
        return self

    def __deepcopy__(self, memo):
        memo[id(self.backbone)] = self.backbone  # the frozen backbone is shared, never copied
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    def remove(self) -> nn.Module:
        """Detach the hooks from the host and return it (unboosted)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        return self.host

    # ---- public API --------------------------------------------------------------------------
    def adapter_parameters(self):
        """Iterator over the adapters' parameters only (what an optimizer should train)."""
        return self.adapters.parameters()

    @contextlib.contextmanager
    def use_features(self, features: Features, *, input_start: float = 0.0, duration: float | None = None):
        """Use precomputed ``features`` instead of running the backbone inside this block.

        ``features.hidden`` ``[B, L, T, D]`` must hold every layer this model uses and the host call's
        batch. Times: feature frame ``k`` lies at ``features.start + k / features.frame_rate`` seconds and
        the host input's first sample at ``input_start`` seconds on the same time line (default 0: the
        features' origin is the start of the host input, as for features of exactly this input, or a slice
        re-expressed relative to the chunk). For a chunk at ``t0`` seconds of a track either pass the
        track's time line::

            with boosted.use_features(track.slice_time(t0, t0 + dur, margin=2), input_start=t0):
                out = boosted(chunk)

        or shift the slice so that the chunk starts at 0 (``Features(s.hidden, s.layers, s.frame_rate,
        s.start - t0)``). Both give the live result up to MuQ's own context effects. A forward whose input
        start lies outside the features raises :class:`ConfigError` (the usual sign of a missing
        ``input_start``). ``duration``: the host input's duration in seconds (default: from
        ``input_fn``/``span_fn``). ``input_start`` may also be a tensor ``[B]``, one start per batch item
        (a batch of chunks of one track, each with its own slice of the features: see
        ``booster.training.chunking``).
        """
        if not isinstance(features, Features):
            raise ConfigError(f"use_features expects booster.Features, got {type(features).__name__}")
        missing = [k for k in self.layers if k not in features.layers]
        if missing:
            raise ConfigError(f"features lack layers {missing}; this model uses layers {self.layers} "
                              f"(extract with layers={list(self.layers)})")
        if features.dim != self.backbone.hidden_size:
            raise ConfigError(f"features have D={features.dim}, the adapters expect "
                              f"{self.backbone.hidden_size}")
        if isinstance(input_start, torch.Tensor):
            if input_start.shape != (features.hidden.shape[0],):
                raise ConfigError(f"input_start as a tensor must hold one start per batch item, [B="
                                  f"{features.hidden.shape[0]}], got {tuple(input_start.shape)}")
            input_start = input_start.detach().to("cpu", torch.float64)
        else:
            input_start = float(input_start)
        prev = self._features
        self._features = (features, input_start, duration)
        try:
            yield self
        finally:
            self._features = prev

    def forward(self, *args, **kwargs):
        ctx = self._make_context(args, kwargs)
        table = getattr(_ACTIVE, "ctx", None)
        if table is None:
            table = _ACTIVE.ctx = {}
        prev = table.get(id(self))
        table[id(self)] = ctx
        try:
            return self.host(*args, **kwargs)
        finally:
            if prev is None:
                table.pop(id(self), None)
            else:
                table[id(self)] = prev

    # ---- internals ---------------------------------------------------------------------------
    def _spans(self, args, kwargs, wav=None, sr=None) -> list[tuple[float, float]]:
        """Per site, (offset, duration) in seconds of the interval its frames tile, relative to the input.
        ``span_fn`` may return one answer for all sites or a function ``site -> answer``."""
        if self.span_fn is None:
            if wav is None:
                wav, sr = self.input_fn(*args, **kwargs)
            return [(0.0, wav.shape[-1] / sr)] * len(self.sites)
        r = self.span_fn(*args, **kwargs)
        answers = [r(site) for site in self.sites] if callable(r) else [r] * len(self.sites)
        return [(float(a[0]), float(a[1])) if isinstance(a, (tuple, list)) else (0.0, float(a)) for a in answers]

    def _make_context(self, args, kwargs) -> _Context:
        if self._features is not None:
            feats, input_start, duration = self._features
            spans = [(0.0, duration)] * len(self.sites) if duration is not None else self._spans(args, kwargs)
            feats = feats.select(self.layers)
            tol = 1.5 / feats.frame_rate
            lo, hi = (float(input_start.min()), float(input_start.max())) if isinstance(input_start, torch.Tensor) \
                else (input_start, input_start)
            if not (feats.start - tol <= lo and hi <= feats.start + feats.num_frames / feats.frame_rate):
                raise ConfigError(
                    f"the host input starts at {lo:.3f} s but the features given to use_features "
                    f"cover {feats.start:.3f}..{feats.start + feats.num_frames / feats.frame_rate:.3f} s; pass "
                    "input_start=<chunk offset> (e.g. t0 of slice_time(t0, ...)) or features of this input")
        else:
            wav, sr = self.input_fn(*args, **kwargs)
            if not isinstance(wav, torch.Tensor) or wav.dim() not in (1, 2, 3):
                shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
                raise ConfigError(f"input_fn must give a waveform [S], [B, S] or [B, C, S], got {shape}")
            spans = self._spans(args, kwargs, wav, sr)
            batched = wav.reshape(1, 1, -1) if wav.dim() == 1 else wav[:, None] if wav.dim() == 2 else wav
            feats = backbone_features(self.backbone, batched.detach(), sr, self.layers)  # eval, no_grad
            input_start = 0.0
        hidden = feats.hidden.clone()  # leave inference mode: autograd may save it for the adapters
        return _Context(hidden, feats.layers, feats.frame_rate, feats.start, input_start, spans)

    def _apply_site(self, index: int, x, ctx: _Context):
        site = self.sites[index]
        idx = [ctx.layers.index(k) for k in self.site_layers[index]]
        hidden = ctx.hidden if idx == list(range(len(ctx.layers))) else ctx.hidden[:, idx]
        offset, span = ctx.spans[index]
        return self.adapters[index](x, hidden, layout=parse_layout(site.layout), frame_rate=ctx.frame_rate,
                                    start=ctx.start, span_start=ctx.input_start + offset, span=span,
                                    where=site.describe())

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}, sites=[{'; '.join(s.describe() for s in self.sites)}]"


def inject(model: nn.Module, backbone: nn.Module, sites, *, layers=None, input_fn: Callable | None = None,
           span_fn: Callable | None = None, sample_rate: int | None = None, train_host: bool = True) -> Boosted:
    """Boost ``model`` with ``backbone`` features at ``sites`` (a :class:`Site` or a list of them).

    ``layers``: backbone hidden-state indices to use (default all, ``0..backbone.num_layers``).
    ``input_fn(*args, **kwargs) -> (waveform, sample_rate)`` picks the audio from the host call (default:
    first positional argument at ``sample_rate`` / the host's ``samplerate``/``sample_rate``).
    ``span_fn(*args, **kwargs) -> seconds`` (or ``(offset, seconds)``, or a function of the ``Site`` giving
    either, when sites lie at different depths) gives the interval the site frames tile, relative to the
    input's first sample (default: ``(0, the waveform's duration)``). ``train_host``: train the host end-to-end with the adapters (default True); False freezes it.
    The host is modified in place (hooks, requires_grad); :meth:`Boosted.remove` undoes the hooks.
    """
    return Boosted(model, backbone, sites, layers=layers, input_fn=input_fn, span_fn=span_fn,
                   sample_rate=sample_rate, train_host=train_host)

