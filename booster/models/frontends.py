"""Spectrogram front ends of the transcriber: log-mel (torchaudio) and CQT (nnAudio).

Shape glossary: B batch, S samples, F frequency bins, T frames.

Both map a mono waveform ``[B, S]`` to a log-magnitude spectrogram ``[B, T, F]`` with
``T = S // hop_length + 1`` frames; frame ``t`` is centred on sample ``t * hop_length`` (``center=True``),
i.e. at ``t / frame_rate`` seconds, the grid of :func:`booster.data.pairs.frame_targets`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

FRONTENDS = ("mel", "cqt")
LOG_FLOOR = 1e-5


class LogMel(nn.Module):
    """``log(max(mel power, 1e-5))`` with torchaudio's mel filterbank. ``[B, S]`` → ``[B, T, n_bins]``."""

    def __init__(self, *, sample_rate: int = 16000, hop_length: int = 512, n_bins: int = 229, n_fft: int = 2048,
                 fmin: float = 30.0, fmax: float | None = 8000.0):
        super().__init__()
        import torchaudio

        if n_fft // 2 + 1 < n_bins:
            raise ConfigError(f"mel front end: n_fft={n_fft} gives {n_fft // 2 + 1} STFT bins, fewer than "
                              f"n_bins={n_bins} mel bands; raise n_fft")
        self.hop_length, self.n_bins = int(hop_length), int(n_bins)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_bins, f_min=fmin,
            f_max=fmax, center=True, pad_mode="constant", power=2.0, norm="slaney", mel_scale="slaney")

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wav.device.type, enabled=False):
            spec = self.mel(wav.float())                     # [B, F, T]
        return torch.log(spec.clamp(min=LOG_FLOOR)).transpose(1, 2)


class LogCQT(nn.Module):
    """``log(max(|CQT|, 1e-5))`` through nnAudio's ``CQT1992v2`` (convolution kernels; ``trainable=True``
    makes them learnable). ``[B, S]`` → ``[B, T, n_bins]``."""

    def __init__(self, *, sample_rate: int = 16000, hop_length: int = 512, n_bins: int = 264,
                 bins_per_octave: int = 36, fmin: float = 27.5, trainable: bool = False):
        super().__init__()
        try:
            from nnAudio.features import CQT1992v2
        except ImportError:
            raise ConfigError("the CQT front end needs nnAudio: pip install nnAudio (or use frontend: mel)") from None
        fmax = fmin * 2 ** ((n_bins - 1) / bins_per_octave)
        if fmax >= sample_rate / 2:
            raise ConfigError(f"CQT front end: the top bin ({fmax:.0f} Hz) is above the Nyquist frequency "
                              f"{sample_rate / 2:.0f} Hz; use fewer n_bins, a lower fmin or a higher sample rate")
        self.hop_length, self.n_bins = int(hop_length), int(n_bins)
        self.cqt = CQT1992v2(sr=sample_rate, hop_length=hop_length, fmin=fmin, n_bins=n_bins,
                             bins_per_octave=bins_per_octave, center=True, pad_mode="constant",
                             trainable=trainable, output_format="Magnitude", verbose=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wav.device.type, enabled=False):
            spec = self.cqt(wav.float())                     # [B, F, T]
        return torch.log(spec.clamp(min=LOG_FLOOR)).transpose(1, 2)


def build_frontend(kind: str = "mel", **kwargs) -> nn.Module:
    """A front end by name: ``"mel"`` (:class:`LogMel`) or ``"cqt"`` (:class:`LogCQT`)."""
    if kind == "mel":
        kwargs.pop("bins_per_octave", None)
        kwargs.pop("trainable", None)
        return LogMel(**kwargs)
    if kind == "cqt":
        kwargs.pop("n_fft", None)
        kwargs.pop("fmax", None)
        return LogCQT(**kwargs)
    raise ConfigError(f"unknown front end {kind!r}; choose one of {', '.join(FRONTENDS)}")
