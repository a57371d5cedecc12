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
"""
from __future__ import annotations

from torch import nn

from booster.errors import ConfigError
from booster.inject import Boosted, Site

PRESET = "openunmix"


def _classes():
    from openunmix.model import OpenUnmix, Separator
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

    def sep_input(audio=None, *args, **kwargs):
        return kwargs.get("audio", audio), int(round(float(model.sample_rate)))

    def sep_span(audio=None, *args, **kwargs):  # torch.stft(center=True): 1 + S // hop frames
        sr, hop = float(model.sample_rate), model.stft.n_hop
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
