"""Onsets-and-Frames-style piano transcriber (Hawthorne et al. 2018) with the offset and velocity heads
of the MAESTRO paper (Hawthorne et al. 2019), and the shallow back end of the probing setting.

Shape glossary: B batch, C channels, S samples, F frequency bins, T frames, P pitches.

Both models take a waveform ``[B, S]`` or ``[B, C, S]`` (channels are averaged) at ``sample_rate`` and
return a dict of ``[B, T, P]`` tensors, ``T = S // hop_length + 1`` (frame ``t`` centred at
``t * hop_length / sample_rate`` s; see :mod:`booster.models.frontends`):

* ``"onset"``, ``"offset"``, ``"frame"``: logits (apply a sigmoid for probabilities);
* ``"velocity"``: velocity / 127 regressed at onsets (unbounded; clamp to [0, 1] to use it).

:class:`OnsetsAndFrames`: one acoustic model per head (conv stack, ``[B, T, F]`` → ``[B, T, model_size]``);
onset and offset heads add a BiLSTM; the frame head's activation is combined with the (detached) onset and
offset probabilities by a BiLSTM (onset → frame conditioning); velocity is a linear read-out of its own
acoustic model. :class:`ShallowTranscriber`: one linear projection of the spectrogram frames + ReLU and
linear heads (same onset → frame conditioning); the probe variant feeds MuQ features into that projection
(``booster.adapters.onsets_frames``): a linear layer on ``[spectrogram; features]`` is the sum of one
projection of each, which is what a gated add at the projection's output computes.

The biases of the onset, offset and frame read-outs start at the log-odds of a prior probability
(:data:`HEAD_PRIORS`; the "prior probability" initialisation of Lin et al. 2017 for rare positives), not
at 0 (probability 0.5). Onset and offset cells are about 1 % positive in piano music (a few notes per second
over 88 keys at 31 frames/s), frame cells a few per cent. Starting at 0.5, the first hundred steps of BCE
only push every logit down, and the tiny debug model stalled on that plateau (onset probability at the
base rate after 300 steps); started at the prior, it learns onsets within the first hundred steps.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..errors import AudioError, ConfigError
from .frontends import build_frontend

PIANO_RANGE = (21, 108)
BACKENDS = ("onsets_frames", "shallow")
HEADS = ("onset", "offset", "frame", "velocity")
HEAD_PRIORS = {"onset_out": 0.01, "offset_out": 0.01, "frame_out": 0.05}  # initial probability of each head

# Architecture per size; every key can be overridden. Front-end settings per front-end kind.
SIZES = {
    "full": {"model_size": 768, "lstm_size": 384, "hidden_size": 512,
             "frontends": {"mel": {"n_bins": 229, "n_fft": 2048, "fmin": 30.0, "fmax": 8000.0},
                           "cqt": {"n_bins": 264, "bins_per_octave": 36, "fmin": 27.5}}},
    "debug": {"model_size": 32, "lstm_size": 16, "hidden_size": 32,
              "frontends": {"mel": {"n_bins": 48, "n_fft": 1024, "fmin": 30.0, "fmax": 8000.0},
                            "cqt": {"n_bins": 48, "bins_per_octave": 12, "fmin": 65.4}}},
}


class ConvStack(nn.Module):
    """The acoustic model: ``[B, T, F]`` → ``[B, T, model_size]`` (three 3x3 conv layers with batch norm,
    two frequency max-pools, a linear layer; dropout as in the paper)."""

    def __init__(self, n_bins: int, model_size: int):
        super().__init__()
        c1, c2 = max(4, model_size // 16), max(4, model_size // 8)
        if n_bins < 4:
            raise ConfigError(f"the conv stack needs at least 4 frequency bins, got {n_bins}")
        self.cnn = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.MaxPool2d((1, 2)), nn.Dropout(0.25),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.MaxPool2d((1, 2)), nn.Dropout(0.25))
        self.fc = nn.Linear(c2 * (n_bins // 4), model_size)
        self.dropout = nn.Dropout(0.5)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.cnn(spec.unsqueeze(1))                      # [B, c2, T, F/4]
        return self.dropout(self.fc(x.transpose(1, 2).flatten(2)))


class BiLSTM(nn.Module):
    """``[B, T, n_in]`` → ``[B, T, 2 * size]``."""

    def __init__(self, n_in: int, size: int):
        super().__init__()
        self.rnn = nn.LSTM(n_in, size, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def init_head_priors(model: nn.Module) -> None:
    """Set the bias of each read-out in :data:`HEAD_PRIORS` to the log-odds of its prior probability."""
    for name, prior in HEAD_PRIORS.items():
        nn.init.constant_(getattr(model, name).bias, math.log(prior / (1 - prior)))


class _Transcriber(nn.Module):
    """Shared front end, input checks and architecture record."""

    def __init__(self, backend: str, *, sample_rate: int, hop_length: int, pitch_range, frontend: str,
                 frontend_kwargs: dict | None):
        super().__init__()
        low, high = (int(p) for p in pitch_range)
        if not 0 <= low <= high <= 127:
            raise ConfigError(f"pitch_range must satisfy 0 <= low <= high <= 127, got {list(pitch_range)}")
        if sample_rate < 4000 or hop_length < 1:
            raise ConfigError(f"sample_rate must be >= 4000 and hop_length >= 1, got {sample_rate}, {hop_length}")
        self.sample_rate, self.hop_length, self.pitch_range = int(sample_rate), int(hop_length), (low, high)
        self.frontend = build_frontend(frontend, sample_rate=sample_rate, hop_length=hop_length,
                                       **dict(frontend_kwargs or {}))
        self.config = {"backend": backend, "sample_rate": self.sample_rate, "hop_length": self.hop_length,
                       "pitch_range": [low, high], "frontend": frontend,
                       "frontend_kwargs": dict(frontend_kwargs or {})}

    @property
    def num_pitches(self) -> int:
        return self.pitch_range[1] - self.pitch_range[0] + 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def n_bins(self) -> int:
        return self.frontend.n_bins

    def num_frames(self, samples: int) -> int:
        """T for an input of ``samples`` samples."""
        return samples // self.hop_length + 1

    def architecture(self) -> dict:
        """JSON-safe keyword arguments of :func:`from_architecture` rebuilding this architecture."""
        return copy.deepcopy(self.config)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, S]`` or ``[B, C, S]`` → ``[B, T, F]``."""
        if wav.dim() == 3:
            wav = wav.mean(1)
        if wav.dim() != 2:
            raise AudioError(f"the transcriber takes audio [B, S] or [B, C, S], got shape {tuple(wav.shape)}")
        if wav.shape[-1] < self.hop_length:
            raise AudioError(f"audio of {wav.shape[-1]} samples is too short for the transcriber "
                             f"(at least {self.hop_length} samples at {self.sample_rate} Hz)")
        return self.frontend(wav)


class OnsetsAndFrames(_Transcriber):
    """Onsets and Frames with offset and velocity heads. ``forward(wav)`` → dict of ``[B, T, P]``
    (module docstring). Injection sites: ``<head>_acoustic`` outputs, ``[B, T, model_size]``."""

    def __init__(self, *, sample_rate: int = 16000, hop_length: int = 512, pitch_range=PIANO_RANGE,
                 frontend: str = "mel", frontend_kwargs: dict | None = None, model_size: int = 768,
                 lstm_size: int = 384):
        super().__init__("onsets_frames", sample_rate=sample_rate, hop_length=hop_length,
                         pitch_range=pitch_range, frontend=frontend, frontend_kwargs=frontend_kwargs)
        self.config.update(model_size=int(model_size), lstm_size=int(lstm_size))
        f, m, h, p = self.n_bins, int(model_size), int(lstm_size), self.num_pitches
        self.model_size = m
        self.onset_acoustic, self.onset_rnn, self.onset_out = ConvStack(f, m), BiLSTM(m, h), nn.Linear(2 * h, p)
        self.offset_acoustic, self.offset_rnn, self.offset_out = ConvStack(f, m), BiLSTM(m, h), nn.Linear(2 * h, p)
        self.frame_acoustic, self.frame_act = ConvStack(f, m), nn.Linear(m, p)
        self.combined_rnn, self.frame_out = BiLSTM(3 * p, h), nn.Linear(2 * h, p)
        self.velocity_acoustic, self.velocity_out = ConvStack(f, m), nn.Linear(m, p)
        init_head_priors(self)

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        spec = self.spectrogram(wav)                                          # [B, T, F]
        onset = self.onset_out(self.onset_rnn(self.onset_acoustic(spec)))     # [B, T, P]
        offset = self.offset_out(self.offset_rnn(self.offset_acoustic(spec)))
        activation = torch.sigmoid(self.frame_act(self.frame_acoustic(spec)))
        combined = torch.cat([torch.sigmoid(onset).detach(), torch.sigmoid(offset).detach(), activation], -1)
        frame = self.frame_out(self.combined_rnn(combined))
        velocity = self.velocity_out(self.velocity_acoustic(spec))
        return {"onset": onset, "offset": offset, "frame": frame, "velocity": velocity}


class ShallowTranscriber(_Transcriber):
    """The probing back end: spectrogram frames → ``input_proj`` (linear, ``[B, T, hidden_size]``, the
    injection site) → ReLU → linear heads; the frame head also reads the detached onset and offset
    probabilities. ``forward(wav)`` → dict of ``[B, T, P]``."""

    def __init__(self, *, sample_rate: int = 16000, hop_length: int = 512, pitch_range=PIANO_RANGE,
                 frontend: str = "mel", frontend_kwargs: dict | None = None, hidden_size: int = 512):
        super().__init__("shallow", sample_rate=sample_rate, hop_length=hop_length, pitch_range=pitch_range,
                         frontend=frontend, frontend_kwargs=frontend_kwargs)
        self.config.update(hidden_size=int(hidden_size))
        f, h, p = self.n_bins, int(hidden_size), self.num_pitches
        self.model_size = h
        self.norm = nn.LayerNorm(f)
        self.input_proj = nn.Linear(f, h)
        self.act = nn.Sequential(nn.ReLU(), nn.Dropout(0.25))
        self.onset_out, self.offset_out, self.velocity_out = nn.Linear(h, p), nn.Linear(h, p), nn.Linear(h, p)
        self.frame_out = nn.Linear(h + 2 * p, p)
        init_head_priors(self)

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.act(self.input_proj(self.norm(self.spectrogram(wav))))       # [B, T, hidden]
        onset, offset = self.onset_out(x), self.offset_out(x)
        cond = torch.cat([x, torch.sigmoid(onset).detach(), torch.sigmoid(offset).detach()], -1)
        return {"onset": onset, "offset": offset, "frame": self.frame_out(cond), "velocity": self.velocity_out(x)}


def from_architecture(backend: str = "onsets_frames", **kwargs) -> _Transcriber:
    """Rebuild a transcriber (random weights) from :meth:`_Transcriber.architecture`."""
    if backend == "onsets_frames":
        return OnsetsAndFrames(**kwargs)
    if backend == "shallow":
        return ShallowTranscriber(**kwargs)
    raise ConfigError(f"unknown transcriber back end {backend!r}; choose one of {', '.join(BACKENDS)}")


def build_transcriber(size: str = "full", *, backend: str = "onsets_frames", frontend: str = "mel",
                      frontend_kwargs: dict | None = None, **overrides) -> _Transcriber:
    """A transcriber of ``size`` ("full" or "debug") with ``backend`` ("onsets_frames" or "shallow") and
    front end ``frontend`` ("mel" or "cqt"); ``frontend_kwargs`` and ``overrides`` (``model_size``,
    ``lstm_size``, ``hidden_size``, ``sample_rate``, ``hop_length``, ``pitch_range``) replace the size's values."""
    if size not in SIZES:
        raise ConfigError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown transcriber back end {backend!r}; choose one of {', '.join(BACKENDS)}")
    preset = SIZES[size]
    if frontend not in preset["frontends"]:
        raise ConfigError(f"unknown front end {frontend!r}; choose one of {', '.join(preset['frontends'])}")
    fk = {**preset["frontends"][frontend], **dict(frontend_kwargs or {})}
    keys = ("model_size", "lstm_size") if backend == "onsets_frames" else ("hidden_size",)
    kwargs = {k: preset[k] for k in keys}
    allowed = set(keys) | {"sample_rate", "hop_length", "pitch_range"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ConfigError(f"unknown transcriber option(s) {unknown} for back end {backend!r}; "
                          f"allowed: {sorted(allowed)}")
    kwargs.update(overrides)
    return from_architecture(backend, frontend=frontend, frontend_kwargs=fk, **kwargs)
