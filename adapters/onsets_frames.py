"""Host plug-in for the Onsets-and-Frames transcriber (:mod:`booster.models.transcriber`).

Shape glossary: B batch, C channels, S samples, T frames, P pitches.

Two back ends of the same host family: ``backend="onsets_frames"`` (the full model; the ``baseline`` and
``boosted`` variants) and ``backend="shallow"`` (the ``probe`` variant's shallow back end).

Default sites: the outputs of the four acoustic models (``onset_acoustic``, ``offset_acoustic``,
``frame_acoustic``, ``velocity_acoustic``; ``[B, T, model_size]``) of the full model — the boosted variant;
the shallow back end's ``input_proj`` output — the probe (MuQ features concatenated with the spectrogram
frames, computed as the sum of their projections). Time alignment: spectrogram frame ``t`` is centred at
``t * hop / sr`` s, so the ``T = S // hop + 1`` site frames tile ``[-hop / 2 sr, (T - 1/2) hop / sr)``
(``span_fn``); MuQ runs on the transcriber's own input at its sample rate.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from booster.errors import ConfigError
from booster.injection import Boosted, Site
from booster.models.transcriber import OnsetsAndFrames, ShallowTranscriber, _Transcriber
from booster.models.transcriber import build_transcriber
from booster.models.transcriber import from_architecture as _from_architecture

NAME = "onsets_frames"
PRESET = NAME
ACOUSTIC = ("onset", "offset", "frame", "velocity")


def build(*, size: str = "full", pretrained: str | None = None, pretrained_repo: str | None = None,
          overrides: dict | None = None, **task) -> _Transcriber:
    """The transcriber of ``size``; ``overrides`` / task keywords: ``backend``, ``frontend``,
    ``frontend_kwargs``, ``model_size``, ``lstm_size``, ``hidden_size``, ``sample_rate``, ``hop_length``,
    ``pitch_range``. There are no published weights for this architecture: ``pretrained`` must be None
    (start from a checkpoint of this recipe instead)."""
    if pretrained or pretrained_repo:
        raise ConfigError("the onsets_frames transcriber has no published weights; leave pretrained unset "
                          "(train it with `booster fit --config transcription/baseline`)")
    kwargs = {k: v for k, v in {**task, **dict(overrides or {})}.items() if v is not None}
    return build_transcriber(size, **kwargs)


def architecture(model: nn.Module) -> dict:
    return _host(model).architecture()


def from_architecture(**kwargs) -> _Transcriber:
    return _from_architecture(**kwargs)


def _host(model: nn.Module) -> _Transcriber:
    host = model.host if isinstance(model, Boosted) else model
    if not isinstance(host, _Transcriber):
        raise ConfigError(f"booster.adapters.onsets_frames handles the transcribers of booster.models.transcriber, "
                          f"got {type(host).__name__}")
    return host


def default_sites(model: nn.Module, *, heads=ACOUSTIC, fusion: str = "add") -> list[Site]:
    """Acoustic-model outputs of ``heads`` (full model) or the input projection (shallow back end)."""
    host = _host(model)
    if isinstance(host, ShallowTranscriber):
        return [Site(path="input_proj", layout="B T C", channels=host.model_size, fusion=fusion)]
    bad = [h for h in heads if h not in ACOUSTIC]
    if bad or not heads:
        raise ConfigError(f"heads {list(heads)}: choose one or more of {', '.join(ACOUSTIC)}")
    return [Site(path=f"{h}_acoustic", layout="B T C", channels=host.model_size, fusion=fusion) for h in heads]


def site_channels(model: nn.Module, site: Site) -> int | None:
    host = _host(model)
    if site.path in {f"{h}_acoustic" for h in ACOUSTIC} | {"input_proj"}:
        return host.model_size
    return None


def io_functions(model: nn.Module) -> dict:
    """``input_fn``: (the waveform, the transcriber's sample rate); ``span_fn``: the interval the frames tile."""
    host = _host(model)

    def input_fn(wav=None, *args, **kwargs):
        return kwargs.get("wav", wav), host.sample_rate

    def span_fn(wav=None, *args, **kwargs):
        samples = kwargs.get("wav", wav).shape[-1]
        hop = host.hop_length / host.sample_rate
        return -hop / 2, host.num_frames(samples) * hop
    return {"input_fn": input_fn, "span_fn": span_fn}


def prepare(model: nn.Module, **options) -> tuple[nn.Module, dict]:
    if isinstance(model, Boosted):
        raise ConfigError("this transcriber is already boosted; boost its .host or load adapters onto a fresh model")
    return _host(model), io_functions(model)


def boost(model: nn.Module, backbone, *, layers=None, sites: list[Site] | None = None, fusion: str = "add",
          train_host: bool = True, heads=ACOUSTIC) -> Boosted:
    """Boost a transcriber with ``backbone`` features at :func:`default_sites` (or explicit ``sites``).
    The result is called like the transcriber and, at initialisation, returns exactly its output."""
    host, kw = prepare(model)
    sites = sites if sites is not None else default_sites(host, heads=heads, fusion=fusion)
    return Boosted(host, backbone, sites, layers=layers, train_host=train_host, preset=PRESET, **kw)


def chunk_seconds(model: nn.Module) -> float:
    """Chunk length for full-file inference (the BiLSTMs see 20 s of context)."""
    return 20.0


def loss(model: nn.Module, inputs: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """Onsets-and-Frames loss of ``model(inputs)`` against ``targets`` (``[B, T, P]`` rolls)."""
    return transcription_loss(model(inputs), targets)[0]


def transcription_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]):
    """``(total, parts)``: BCE on onset / offset / frame logits, and the velocity loss of the MAESTRO paper,
    squared error at the onset frames only (``sum(onset * (v - v_hat)^2) / sum(onset)``). Outputs with one
    frame more than the targets (``S // hop + 1`` vs ``S / hop``) are cropped to the targets' T."""
    t = targets["onset"].shape[1]
    if outputs["onset"].shape[1] < t or outputs["onset"].shape[-1] != targets["onset"].shape[-1]:
        raise ConfigError(f"transcriber output {tuple(outputs['onset'].shape)} does not cover targets "
                          f"{tuple(targets['onset'].shape)} [B, T, P]; check pitch_range and the frame rate")
    out = {k: v[:, :t].float() for k, v in outputs.items()}
    parts = {k: F.binary_cross_entropy_with_logits(out[k], targets[k].to(out[k])) for k in ("onset", "offset", "frame")}
    onset = targets["onset"].to(out["velocity"])
    parts["velocity"] = (onset * (targets["velocity"].to(onset) - out["velocity"]) ** 2).sum() / onset.sum().clamp(min=1)
    return sum(parts.values()), parts
