"""Boost Open-Unmix (``openunmix.model.OpenUnmix`` / ``Separator``) with MuQ features.

Shape glossary: B batch, C channels, F frequency bins, T frames, S samples.

Default site: the input of the LSTM, i.e. right after the first fully connected layer + batch norm
(+ tanh), before the recurrent stack. Open-Unmix is time-first there: ``[T, B, C]`` (layout ``"T B C"``,
C = ``hidden_size``). Only the LSTM sees the features; its skip connection keeps the plain encoding.

Two ways to boost:

* **Separator** (recommended): ``boost(separator, backbone)`` puts a site in every target model
  (``target_models.<name>.lstm``) and wraps the Separator, whose forward receives the waveform
  ``[B, C, S]`` at ``separator.sample_rate``: MuQ runs once per call and all targets share the features.
  The STFT frames (``center=True``, frame ``j`` centred at sample ``j * n_hop``) are aligned exactly.
* **OpenUnmix alone**: its forward receives a spectrogram ``[B, C, F, T]``, not audio, so it cannot run
  MuQ itself. Give features explicitly: ``with boosted.use_features(backbone.extract(wav, sr, layers)):
  boosted(spec)``. ``sample_rate`` / ``n_hop`` say how the spectrogram frames map to time.

Host plug-in (``booster.plugins``): ``build`` (debug / full size, Open-Unmix checkpoint folders or
names) gives a :class:`TrainableSeparator`; ``architecture`` / ``from_architecture`` its JSON arguments;
``loss``: magnitude-spectrogram MSE per target (open-unmix's training).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from openunmix.model import OpenUnmix, Separator
from torch import nn

from booster.errors import CheckpointError, ConfigError
from booster.injection import Boosted, Site

PRESET = NAME = "openunmix"
# Small Open-Unmix: 512-point STFT, 16 hidden units, 1 LSTM layer, 128 bins fed to the network.
DEBUG = dict(n_fft=512, n_hop=128, hidden_size=16, nb_layers=1, max_bin=128)
FULL = dict(n_fft=4096, n_hop=1024, hidden_size=512, nb_layers=3, max_bin=1487)
SEPARATOR_KEYS = ("n_fft", "n_hop", "niter", "softmask", "residual", "wiener_win_len")


def _classes():
    return OpenUnmix, Separator


def default_sites(model: nn.Module, *, targets=None, fusion: str = "add") -> list[Site]:
    """LSTM-input sites: one for a bare OpenUnmix, one per (chosen) target of a Separator."""
    open_unmix, separator = _classes()
    if isinstance(model, open_unmix):
        return [Site(path="lstm", where="input", layout="T B C", channels=model.hidden_size, fusion=fusion)]
    names = list(model.target_models) if targets is None else list(targets)
    unknown = [n for n in names if n not in model.target_models]
    if unknown or not names:
        raise ConfigError(f"targets {unknown or names} not in this Separator; it has {list(model.target_models)}")
    return [Site(path=f"target_models.{n}.lstm", where="input", layout="T B C",
                 channels=model.target_models[n].hidden_size, fusion=fusion) for n in names]


def io_functions(model: nn.Module, *, sample_rate: float = 44100.0, n_hop: int = 1024) -> dict:
    """``input_fn`` and ``span_fn`` for a Separator (waveform input) or a bare OpenUnmix (spectrogram)."""
    open_unmix, _ = _classes()
    if isinstance(model, open_unmix):
        def input_fn(*args, **kwargs):
            raise ConfigError("a boosted bare OpenUnmix receives a spectrogram, not audio, so it cannot run MuQ: "
                              "wrap the call in boosted.use_features(backbone.extract(wav, sample_rate, layers)) "
                              "or boost the openunmix Separator instead")

        def span_fn(x=None, *args, **kwargs):  # x: [B, C, F, T] spectrogram, centred STFT frames
            t = kwargs.get("x", x).shape[-1]
            return -n_hop / 2 / sample_rate, t * n_hop / sample_rate
        return {"input_fn": input_fn, "span_fn": span_fn}

    rate = float(model.sample_rate)  # read once here: per call it is a device->host sync on CUDA

    def sep_input(audio=None, *args, **kwargs):
        return kwargs.get("audio", audio), int(round(rate))

    def sep_span(audio=None, *args, **kwargs):  # torch.stft(center=True): 1 + S // hop frames
        sr, hop = rate, model.stft.n_hop
        frames = 1 + kwargs.get("audio", audio).shape[-1] // hop
        return -hop / 2 / sr, frames * hop / sr
    return {"input_fn": sep_input, "span_fn": sep_span}


def site_channels(model: nn.Module, site: Site) -> int | None:
    """None: Open-Unmix sites are LSTM inputs, whose channels the generic check reads."""
    return None


def prepare(model: nn.Module, *, sample_rate: float = 44100.0, n_hop: int = 1024) -> tuple[nn.Module, dict]:
    open_unmix, separator = _classes()
    if isinstance(model, Boosted):
        raise ConfigError("this model is already boosted; boost its .host or load adapters onto a fresh model")
    if not isinstance(model, (open_unmix, separator)):
        raise ConfigError(f"booster.adapters.openunmix boosts openunmix.model.OpenUnmix or Separator, got "
                          f"{type(model).__name__}")
    return model, io_functions(model, sample_rate=sample_rate, n_hop=n_hop)


def boost(model: nn.Module, backbone: nn.Module, *, layers=None, targets=None, sites: list[Site] | None = None,
          fusion: str = "add", train_host: bool = True, sample_rate: float = 44100.0,
          n_hop: int = 1024) -> Boosted:
    """Boost an Open-Unmix ``Separator`` (MuQ runs on its waveform input) or a bare ``OpenUnmix``
    (features through ``boosted.use_features``). ``targets``: Separator targets to boost (default all).
    ``sample_rate`` / ``n_hop``: only for a bare OpenUnmix, how its spectrogram frames map to time.
    """
    host, kw = prepare(model, sample_rate=sample_rate, n_hop=n_hop)
    sites = sites if sites is not None else default_sites(host, targets=targets, fusion=fusion)
    return Boosted(host, backbone, sites, layers=layers, train_host=train_host, preset=PRESET, **kw)


# ---- host plug-in: a Separator built from JSON arguments, with a training output ------------------
class TrainableSeparator(Separator):
    """Open-Unmix's Separator (one :class:`OpenUnmix` per source) built from JSON-safe arguments, with a
    training output: inside :func:`spectrogram_output` the forward returns the per-target magnitude
    estimates ``[B, N, C, F, T]`` (what Open-Unmix is trained on) instead of waveforms ``[B, N, C, S]``;
    the call signature stays ``forward(audio [B, C, S])``."""

    def __init__(self, *, sources, nb_channels, sample_rate, n_fft, n_hop, hidden_size, nb_layers,
                 max_bin=None, unidirectional=False, niter=0, softmask=False, residual=False, wiener_win_len=300):
        nb_bins = n_fft // 2 + 1
        if max_bin is not None and not 0 < max_bin <= nb_bins:
            raise ConfigError(f"openunmix max_bin must be in (0, {nb_bins}], got {max_bin}")
        targets = {s: OpenUnmix(nb_bins=nb_bins, nb_channels=nb_channels, hidden_size=hidden_size,
                                nb_layers=nb_layers, unidirectional=unidirectional, max_bin=max_bin)
                   for s in sources}
        super().__init__(targets, niter=niter, softmask=softmask, residual=residual, sample_rate=sample_rate,
                         n_fft=n_fft, n_hop=n_hop, nb_channels=nb_channels, wiener_win_len=wiener_win_len)
        self.init_kwargs = dict(sources=list(sources), nb_channels=nb_channels, sample_rate=sample_rate,
                                n_fft=n_fft, n_hop=n_hop, hidden_size=hidden_size, nb_layers=nb_layers,
                                max_bin=max_bin, unidirectional=unidirectional, niter=niter, softmask=softmask,
                                residual=residual, wiener_win_len=wiener_win_len)
        self.sources, self.samplerate, self.audio_channels = list(sources), sample_rate, nb_channels
        self.output_spectrograms = False

    def forward(self, audio):
        if not self.output_spectrograms:
            return super().forward(audio)
        X = self.complexnorm(self.stft(audio))
        return torch.stack([m(X) for m in self.target_models.values()], dim=1)


class spectrogram_output:
    """``with spectrogram_output(host): host(mix)`` gives target spectrograms ``[B, N, C, F, T]``."""

    def __init__(self, host: nn.Module):
        self.host = host

    def __enter__(self):
        self.host.output_spectrograms = True
        return self.host

    def __exit__(self, *exc):
        self.host.output_spectrograms = False


def spectrogram(model: nn.Module, wav: torch.Tensor) -> torch.Tensor:
    """Open-Unmix magnitude spectrogram: ``[..., C, S]`` → ``[..., C, F, T]``."""
    lead = wav.shape[:-2]
    flat = wav.reshape(-1, *wav.shape[-2:])
    mag = model.complexnorm(model.stft(flat))
    return mag.reshape(*lead, *mag.shape[1:])


def build(*, size: str = "full", pretrained: str | None = None, pretrained_repo: str | None = None,
          overrides: dict | None = None, sources: list[str], sample_rate: int = 44100, channels: int = 2,
          segment: float | None = None) -> nn.Module:
    """A :class:`TrainableSeparator` for ``sources``: new (``"full"``: Open-Unmix's published sizes,
    ``"debug"``: tiny) with ``overrides``, or the weights of an Open-Unmix checkpoint folder (``<source>.json``
    + ``<source>.pth`` per source; ``pretrained_repo`` or ``pretrained``) or name (umxhq, umxl: online)."""
    if pretrained or pretrained_repo:
        return _pretrained(pretrained, pretrained_repo, list(sources), sample_rate, channels, overrides or {})
    kw = dict(DEBUG if size == "debug" else FULL)
    kw.update(overrides or {})
    return TrainableSeparator(sources=list(sources), nb_channels=channels, sample_rate=sample_rate, **kw)


def architecture(model: nn.Module) -> dict:
    if not isinstance(model, TrainableSeparator):
        raise ConfigError(f"the openunmix plug-in describes TrainableSeparator models, got {type(model).__name__}")
    return dict(model.init_kwargs)


def from_architecture(**kwargs) -> nn.Module:
    return TrainableSeparator(**kwargs)


def loss(model: nn.Module, mix: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Per-target magnitude-spectrogram MSE ``[N]`` (open-unmix's train script)."""
    host = model.host if isinstance(model, Boosted) else model
    Y = spectrogram(host, sources)                      # [B, N, C, F, T]
    with spectrogram_output(host):
        Y_hat = model(mix)                              # [B, N, C, F, T], adapters active
    assert Y_hat.shape == Y.shape, (Y_hat.shape, Y.shape)
    return ((Y_hat - Y) ** 2).mean(dim=(2, 3, 4)).mean(0)


DOWNLOAD_HOST = "zenodo.org"   # where Open-Unmix's published weights are downloaded from
REMEDY = ("pass --model.pretrained_repo DIR, a folder holding <source>.json + <source>.pth per source (Open-Unmix's "
          "training output), or --model.pretrained null to train from scratch")


def _check_download(name: str, sources) -> None:
    """Fail at once, before Open-Unmix's download, when weights of ``name`` are missing from torch's hub cache
    (a ``<source>-<hash>.pth`` per source) and the download host does not answer."""
    from booster import hub
    from booster.errors import DownloadError

    cached = all(any(hub.hub_checkpoints().glob(f"{s}-*.pth")) for s in sources)
    if not cached and not hub.reachable(DOWNLOAD_HOST):
        raise DownloadError(f"Open-Unmix model {name!r} is not downloaded and cannot be ({DOWNLOAD_HOST} is "
                            f"unreachable: offline?): put its <source>-<hash>.pth files into {hub.hub_checkpoints()}, or "
                            + REMEDY)


def _pretrained(name, repo, sources, sample_rate, channels, overrides) -> nn.Module:
    folder = Path(repo or name).expanduser()
    if not folder.is_dir():
        import openunmix
        spec = getattr(openunmix, f"{name}_spec", None) if name and name.isidentifier() else None
        if spec is None:
            raise CheckpointError(f"Open-Unmix model {str(repo or name)!r} is neither a folder nor a published name "
                                  f"(umxhq, umxl, umx, umxse): {REMEDY}")
        _check_download(name, sources)
        try:
            targets = spec(targets=list(sources), device="cpu", pretrained=True)
        except Exception as e:
            raise CheckpointError(f"cannot load Open-Unmix model {name!r}: {type(e).__name__}: {e}. {REMEDY}") from None
        first = next(iter(targets.values()))
        n_fft, n_hop, hidden, layers = 4096, 1024, first.hidden_size, first.lstm.num_layers
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
    sep = TrainableSeparator(sources=list(sources), nb_channels=channels, sample_rate=sample_rate, **kw)
    for s in sources:
        missing, unexpected = sep.target_models[s].load_state_dict(states[s], strict=False)
        if missing or [k for k in unexpected if k != "sample_rate"]:
            raise CheckpointError(f"Open-Unmix weights for {s!r} do not match: missing {missing}, "
                                  f"unexpected {unexpected}")
    return sep


def onnx_form(model: nn.Module, chunk: int, *, boosted: bool = False) -> dict:
    """How ``booster export`` makes this separator an ONNX graph (STFT, phase and iSTFT in the runner):
    :mod:`booster.adapters._onnx_openunmix`."""
    from ._onnx_openunmix import onnx_form as form
    return form(model, chunk, boosted=boosted)
