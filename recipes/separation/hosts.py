"""Host separators: HTDemucs (demucs package) and Open-Unmix (openunmix package).

A host is described by a JSON-safe *spec* ``{"name": ..., "kwargs": {...}}`` so that checkpoints never
pickle classes: :func:`build_host` creates the module from typed keyword arguments, :func:`host_spec`
gives the spec of a module built here, :func:`host_from_spec` rebuilds it. Every host maps a mixture
``[B, C, S]`` to sources ``[B, N, C, S]`` (B batch, C channels, S samples, N sources).

Debug sizes (``size="debug"``) are tiny and built in code, for tests and demos.
"""
from __future__ import annotations

import fractions
import json
import math
from pathlib import Path

import torch
from torch import nn

from booster.errors import CheckpointError, ConfigError

HOSTS = ("htdemucs", "openunmix")

# Small HTDemucs: 2 encoder levels, 8 channels, 1 cross-transformer layer (~25 k parameters).
HTDEMUCS_DEBUG = dict(channels=8, depth=2, nfft=512, t_layers=1, t_heads=2, dconv_comp=4,
                      t_cape_augment=False)
# Small Open-Unmix: 512-point STFT, 16 hidden units, 1 LSTM layer, 128 bins fed to the network.
OPENUNMIX_DEBUG = dict(n_fft=512, n_hop=128, hidden_size=16, nb_layers=1, max_bin=128)
OPENUNMIX_FULL = dict(n_fft=4096, n_hop=1024, hidden_size=512, nb_layers=3, max_bin=1487)
SEPARATOR_KEYS = ("n_fft", "n_hop", "niter", "softmask", "residual", "wiener_win_len")


def _jsonable(value):
    """Demucs stores Fractions and tuples in its init kwargs; make them JSON values."""
    if isinstance(value, fractions.Fraction):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def build_host(name: str, *, sources: list[str], sample_rate: int = 44100, channels: int = 2,
               segment: float = 10.0, size: str = "full", kwargs: dict | None = None,
               pretrained: str | None = None, pretrained_repo: str | None = None) -> nn.Module:
    """Create a host separator.

    ``name``: "htdemucs" | "openunmix"; ``size``: "full" (the host's published architecture) or
    "debug"; ``kwargs`` override architecture arguments. ``pretrained``: for HTDemucs a demucs model
    name or signature (``demucs.pretrained.get_model(pretrained, repo=pretrained_repo)``); for
    Open-Unmix a folder holding ``<source>.json`` + ``<source>.pth`` per source (Open-Unmix's layout) or
    an Open-Unmix model name (umxhq, umxl...) when online. ``segment`` (seconds) is HTDemucs' training
    length and the chunk length used at inference.
    """
    if name not in HOSTS:
        raise ConfigError(f"unknown host {name!r}; choose one of {', '.join(HOSTS)}")
    if size not in ("full", "debug"):
        raise ConfigError(f"size must be 'full' or 'debug', got {size!r}")
    sources = list(sources)
    if pretrained:
        model = (_pretrained_htdemucs if name == "htdemucs" else _pretrained_openunmix)(
            pretrained, pretrained_repo, sources, sample_rate, channels, kwargs or {})
    elif name == "htdemucs":
        from demucs.htdemucs import HTDemucs
        kw = dict(HTDEMUCS_DEBUG) if size == "debug" else {}
        kw.update(kwargs or {})
        kw.update(sources=sources, audio_channels=channels, samplerate=sample_rate, segment=segment)
        model = HTDemucs(**kw)
        model._booster_spec = {"name": "htdemucs", "kwargs": _jsonable(kw)}
    else:
        kw = dict(OPENUNMIX_DEBUG if size == "debug" else OPENUNMIX_FULL)
        kw.update(kwargs or {})
        kw.update(sources=sources, nb_channels=channels, sample_rate=sample_rate)
        model = _openunmix(**kw)
    model._booster_segment = float(segment)
    return model


def _separator_class():
    from openunmix.model import Separator

    class OpenUnmixSeparator(Separator):
        """Open-Unmix's Separator with a training output: inside :func:`spectrogram_output` the forward
        returns the per-target magnitude estimates ``[B, N, C, F, T]`` (what Open-Unmix is trained on)
        instead of waveforms ``[B, N, C, S]``; the call signature stays ``forward(audio [B, C, S])``."""

        output_spectrograms = False

        def forward(self, audio):
            if not self.output_spectrograms:
                return super().forward(audio)
            X = self.complexnorm(self.stft(audio))
            return torch.stack([m(X) for m in self.target_models.values()], dim=1)

    return OpenUnmixSeparator


class spectrogram_output:
    """``with spectrogram_output(host): host(mix)`` gives target spectrograms ``[B, N, C, F, T]``."""

    def __init__(self, host: nn.Module):
        self.host = host

    def __enter__(self):
        self.host.output_spectrograms = True
        return self.host

    def __exit__(self, *exc):
        self.host.output_spectrograms = False


def _openunmix(*, sources, nb_channels, sample_rate, n_fft, n_hop, hidden_size, nb_layers, max_bin=None,
               unidirectional=False, niter=0, softmask=False, residual=False, wiener_win_len=300) -> nn.Module:
    from openunmix.model import OpenUnmix

    nb_bins = n_fft // 2 + 1
    if max_bin is not None and not 0 < max_bin <= nb_bins:
        raise ConfigError(f"openunmix max_bin must be in (0, {nb_bins}], got {max_bin}")
    targets = {s: OpenUnmix(nb_bins=nb_bins, nb_channels=nb_channels, hidden_size=hidden_size,
                            nb_layers=nb_layers, unidirectional=unidirectional, max_bin=max_bin)
               for s in sources}
    sep = _separator_class()(targets, niter=niter, softmask=softmask, residual=residual, sample_rate=sample_rate,
                    n_fft=n_fft, n_hop=n_hop, nb_channels=nb_channels, wiener_win_len=wiener_win_len)
    sep.sources = list(sources)
    sep.samplerate = sample_rate
    sep.audio_channels = nb_channels
    sep._booster_spec = {"name": "openunmix", "kwargs": _jsonable(dict(
        sources=list(sources), nb_channels=nb_channels, sample_rate=sample_rate, n_fft=n_fft, n_hop=n_hop,
        hidden_size=hidden_size, nb_layers=nb_layers, max_bin=max_bin, unidirectional=unidirectional,
        niter=niter, softmask=softmask, residual=residual, wiener_win_len=wiener_win_len))}
    return sep


def _pretrained_htdemucs(name, repo, sources, sample_rate, channels, overrides) -> nn.Module:
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs
    from demucs.pretrained import get_model

    try:
        model = get_model(name, repo=Path(repo) if repo else None)
    except Exception as e:  # demucs raises ModelLoadingError, URL errors offline, ...
        where = f"in {repo!r}" if repo else "online (no network?); pass pretrained_repo=<folder with .th files>"
        raise CheckpointError(f"cannot load demucs model {name!r} {where}: {type(e).__name__}: {e}") from None
    if isinstance(model, BagOfModels):
        if len(model.models) != 1:
            raise CheckpointError(f"demucs model {name!r} is a bag of {len(model.models)} models; fine-tune "
                                  "one of its members (pass its signature) instead")
        model = model.models[0]
    if not isinstance(model, HTDemucs):
        raise CheckpointError(f"demucs model {name!r} is a {type(model).__name__}, not HTDemucs")
    if list(model.sources) != list(sources) or model.audio_channels != channels or model.samplerate != sample_rate:
        raise ConfigError(f"demucs model {name!r} separates {model.sources} ({model.audio_channels} channels, "
                          f"{model.samplerate} Hz) but the recipe asks for {sources} ({channels} channels, "
                          f"{sample_rate} Hz); change sources/channels/sample_rate in the config")
    if overrides:
        raise ConfigError("host_kwargs cannot change the architecture of a pretrained demucs model")
    args, kwargs = model._init_args_kwargs
    kw = dict(kwargs)
    if args:
        kw["sources"] = list(args[0])
    model._booster_spec = {"name": "htdemucs", "kwargs": _jsonable(kw)}
    return model


def _pretrained_openunmix(name, repo, sources, sample_rate, channels, overrides) -> nn.Module:
    folder = Path(repo or name).expanduser()
    if not folder.is_dir():
        try:
            import openunmix
            loader = getattr(openunmix, f"{name}_spec")
            targets = loader(targets=list(sources), device="cpu", pretrained=True)
        except Exception as e:
            raise CheckpointError(f"cannot load Open-Unmix model {name!r}: {type(e).__name__}: {e}. Pass a folder "
                                  "holding <source>.json + <source>.pth (Open-Unmix's training output)") from None
        first = next(iter(targets.values()))
        n_fft, n_hop = 4096, 1024
        hidden, layers = first.hidden_size, first.lstm.num_layers
        states = {s: m.state_dict() for s, m in targets.items()}
    else:
        states, infos = {}, {}
        for s in sources:
            cfg, pth = folder / f"{s}.json", sorted(folder.glob(f"{s}*.pth"))
            if not cfg.is_file() or not pth:
                raise CheckpointError(f"Open-Unmix folder {str(folder)!r} has no {s}.json / {s}.pth for source {s!r}")
            infos[s] = json.loads(cfg.read_text())["args"]
            states[s] = torch.load(pth[0], map_location="cpu", weights_only=True)
        a = infos[sources[0]]
        n_fft, n_hop, hidden = int(a["nfft"]), int(a["nhop"]), int(a["hidden_size"])
        layers = int(a.get("nb_layers", 3))
        if int(a["nb_channels"]) != channels:
            raise ConfigError(f"Open-Unmix checkpoint has {a['nb_channels']} channels, the recipe asks {channels}")
    max_bin = int(next(iter(states.values()))["input_mean"].shape[0])
    kw = dict(n_fft=n_fft, n_hop=n_hop, hidden_size=hidden, nb_layers=layers, max_bin=max_bin)
    kw.update({k: v for k, v in overrides.items() if k in SEPARATOR_KEYS})
    sep = _openunmix(sources=list(sources), nb_channels=channels, sample_rate=sample_rate, **kw)
    for s in sources:
        missing, unexpected = sep.target_models[s].load_state_dict(states[s], strict=False)
        if missing or [k for k in unexpected if k != "sample_rate"]:
            raise CheckpointError(f"Open-Unmix weights for {s!r} do not match: missing {missing}, "
                                  f"unexpected {unexpected}")
    return sep


def host_spec(model: nn.Module) -> dict:
    """``{"name", "kwargs", "segment"}`` of a host built by :func:`build_host` (JSON-safe)."""
    spec = getattr(model, "_booster_spec", None)
    if spec is None:
        raise ConfigError(f"{type(model).__name__} was not built by booster.recipes.separation.hosts.build_host")
    return {**spec, "segment": float(getattr(model, "_booster_segment", 10.0))}


def host_from_spec(spec: dict) -> nn.Module:
    """Rebuild a host (random weights) from :func:`host_spec` output."""
    name, kw = spec.get("name"), dict(spec.get("kwargs", {}))
    if name == "htdemucs":
        from demucs.htdemucs import HTDemucs
        try:
            model = HTDemucs(**kw)
        except TypeError as e:
            raise CheckpointError(f"checkpoint's HTDemucs arguments do not fit this demucs version: {e}") from None
        model._booster_spec = {"name": name, "kwargs": kw}
    elif name == "openunmix":
        model = _openunmix(**kw)
    else:
        raise CheckpointError(f"checkpoint names an unknown host {name!r}; known: {', '.join(HOSTS)}")
    model._booster_segment = float(spec.get("segment", 10.0))
    return model


def host_sources(model: nn.Module) -> list[str]:
    return list(model.sources)


def host_segment(model: nn.Module) -> float:
    """Chunk length (seconds) for inference: HTDemucs' training segment, else the recipe's segment."""
    seg = getattr(model, "segment", None)
    if seg is not None and not isinstance(model, nn.ModuleDict):
        try:
            return float(seg)
        except (TypeError, ValueError):
            pass
    return float(getattr(model, "_booster_segment", 10.0))


def is_openunmix(model: nn.Module) -> bool:
    return hasattr(model, "target_models")


def spectrogram(model: nn.Module, wav: torch.Tensor) -> torch.Tensor:
    """Open-Unmix magnitude spectrogram: ``[..., C, S]`` → ``[..., C, F, T]``."""
    lead = wav.shape[:-2]
    flat = wav.reshape(-1, *wav.shape[-2:])
    mag = model.complexnorm(model.stft(flat))
    return mag.reshape(*lead, *mag.shape[1:])


def frames_for(seconds: float, rate: float) -> int:
    return int(math.ceil(seconds * rate))
