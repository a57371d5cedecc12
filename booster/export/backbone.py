"""A traceable form of the backbone's live extraction, for ONNX graphs.

Shape glossary: B batch, C channels, F frequency bins, T frames, S samples, L layers, D feature dim.

:class:`MuQFeatures` computes what ``MuQ.extract(wav, host_rate, layers)`` computes for one chunk (no longer
than MuQ's 30-s window: a single pass): channels averaged, torchaudio's sinc resampling to 24 kHz (the
same kernel, :func:`booster.audio.resample`), the mel front end with its STFT written as a real
convolution (an ONNX graph holds no complex numbers), the convolutional front end and the conformer up to
the deepest layer used. Only the layers asked are returned. Other backbones: one-line ConfigError.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from booster.errors import ConfigError


class RealMel(nn.Module):
    """MuQ's ``MelFrontend`` with ``torch.stft`` as a convolution by the windowed DFT basis:
    ``wav`` ``[B, S]`` 24 kHz -> ``[B, n_mels, S // hop]``, equal to float32 rounding."""

    def __init__(self, frontend: nn.Module):
        super().__init__()
        spec, mel = frontend.mel.spectrogram, frontend.mel.mel_scale
        if spec.power != 2.0 or spec.normalized or not spec.center or spec.onesided is False:
            raise ConfigError("this MuQ front end is not the official one (power 2, centred, onesided)")
        n_fft, win = spec.n_fft, spec.window.float()
        w = torch.zeros(n_fft)
        left = (n_fft - win.numel()) // 2
        w[left:left + win.numel()] = win
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        ang = 2 * math.pi * k * n / n_fft
        basis = torch.cat([torch.cos(ang), -torch.sin(ang)]) * w.double()        # [2F, n_fft]
        self.register_buffer("basis", basis.float()[:, None, :], persistent=False)
        self.register_buffer("fb", mel.fb.float().t().contiguous(), persistent=False)  # [n_mels, F]
        self.n_fft, self.hop, self.pad_mode = n_fft, spec.hop_length, spec.pad_mode
        self.mean, self.std = float(frontend.mean), float(frontend.std)
        to_db = frontend.to_db
        self.amin, self.db_ref = float(to_db.amin), float(to_db.db_multiplier)
        self.multiplier = float(to_db.multiplier)
        if to_db.top_db is not None:
            raise ConfigError("this MuQ front end clips with top_db, which the export does not reproduce")

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = F.pad(wav[:, None], (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)   # [B, 1, S + n_fft]
        z = F.conv1d(x, self.basis, stride=self.hop)                                     # [B, 2F, T]
        half = z.shape[1] // 2
        power = z[:, :half] ** 2 + z[:, half:] ** 2                                      # [B, F, T]
        mel = torch.matmul(self.fb, power)                                               # [B, n_mels, T]
        db = self.multiplier * torch.log10(torch.clamp(mel, min=self.amin)) - self.multiplier * self.db_ref
        return (db[..., :-1] - self.mean) / self.std


class MuQFeatures(nn.Module):
    """``forward(wav [B, C, S] or [B, S] at rate, rate) -> [B, L, T, D]`` (the layers asked, in order)."""

    def __init__(self, muq: nn.Module, layers):
        super().__init__()
        self.mel = RealMel(muq.frontend)
        self.conv, self.conformer = muq.conv, muq.conformer
        self.layers = tuple(int(i) for i in layers)
        self.frame_rate = float(muq.frame_rate)
        self.window = 30 * muq.sample_rate   # one pass of extract (its default 30-s window)
        self.sample_rate = int(muq.sample_rate)

    def forward(self, wav: torch.Tensor, rate: int) -> torch.Tensor:
        x = wav.float().mean(1) if wav.dim() == 3 else wav.float()                       # [B, S]
        if int(rate) != self.sample_rate:
            import torchaudio.functional as AF
            g = math.gcd(int(rate), self.sample_rate)
            x = AF.resample(x, int(rate) // g, self.sample_rate // g)
        if x.shape[-1] > self.window:
            raise ConfigError(f"a chunk of {x.shape[-1] / self.sample_rate:.1f} s is longer than MuQ's 30-s "
                              "window; export with --chunk-seconds 30 or less")
        # the eager convolutions (the CPU path's frozen TorchScript graph does not trace; same arithmetic)
        h = self.conv._forward_eager(self.mel(x)[:, None])                                # [B, T, D]
        hs = self.conformer(h, upto=max(self.layers), keep=set(self.layers))
        return torch.stack([hs[i] for i in self.layers], dim=1)


def traceable_backbone(backbone, layers) -> nn.Module:
    """The traceable feature module of ``backbone`` (MuQ only); another backbone: one-line ConfigError."""
    from booster.muq import MuQ
    if not isinstance(backbone, MuQ):
        raise ConfigError(f"boosted models can be exported with a MuQ backbone only, not {type(backbone).__name__}"
                          " (its extract is not known to trace)")
    return MuQFeatures(backbone, layers)
