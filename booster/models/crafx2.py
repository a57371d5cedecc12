"""CRAFx2-style stem processor, applied to every stem with shared weights; the outputs are summed.

After the convolutional-recurrent audio-effects models of Martínez-Ramírez et al. (CAFx / CRAFx,
"Modeling nonlinear audio effects with end-to-end deep neural networks", and the CRAFx2 variant with
squeeze-excitation used per stem by FxNorm-automix, Martínez-Ramírez et al. 2022). Three parts:

* **adaptive front end**: a learned filter bank on the waveform (``R = conv(x)``, kernel ``kernel``,
  ``filters`` channels) and its rectified envelope: ``|R|`` max-pooled by ``hop``, then a depth-wise
  convolution over 5 frames and a softplus, giving a latent sequence ``Z`` ``[B*N, filters, T]`` with
  ``T = ceil(S / hop)`` (the papers smooth ``|R|`` with a long depth-wise kernel at the sample rate before
  pooling; smoothing after pooling is ~50x cheaper on CPU and keeps the idea);
* **latent block**: a residual stack of dilated temporal convolutions then a bidirectional LSTM over T;
* **synthesis back end**: the latent is upsampled back to the sample rate (repeat by ``hop``) and
  multiplies ``R`` (an adaptive, time-varying filter-bank gain), a bias-free point-wise tanh network adds
  a waveshaping term, a squeeze-excitation block weights the channels, and a transposed filter bank
  (kernel ``kernel``) returns to ``out_channels`` channels.

Every layer on the signal path is bias-free, so a silent stem contributes exactly nothing to the mix
(missing stems can be fed as silence). Injection site for :func:`booster.inject`: ``latent_in``
(output, layout ``"B C T"``, ``C = N * filters``: stem ``j``'s latent occupies channels
``j*filters .. (j+1)*filters-1``, so an adapter can condition each stem slot differently).

Shapes: stems ``[B, N, C, S]`` → mix ``[B, out_channels, S]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .mix_wave_unet import StemMixer

SIZES = {
    "debug": {"filters": 8, "kernel": 17, "hop": 32, "tcn_blocks": 2, "se_ratio": 2},
    "full": {"filters": 64, "kernel": 129, "hop": 64, "tcn_blocks": 6, "se_ratio": 8},
}


class SqueezeExcitation(nn.Module):
    """Channel weights from the time-averaged magnitude: ``x [B, F, S]`` → ``x * sigmoid(MLP(mean|x|))``."""

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        hidden = max(1, channels // ratio)
        self.fc1, self.fc2 = nn.Linear(channels, hidden), nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(x.abs().mean(-1)))))  # [B, F]
        return x * w[..., None]


class TemporalBlock(nn.Module):
    """Residual dilated convolution over latent frames: ``z [B, F, T]`` → same shape."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation, padding=dilation)
        self.act = nn.PReLU(channels)
        self.norm = nn.GroupNorm(1, channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.norm(self.act(self.conv(z)))


class CRAFx2(StemMixer):
    """Per-stem CRAFx2 processor summed into a mix. ``forward(stems [B, N, C, S]) -> mix [B, out_channels, S]``.

    Args:
        stems: names of the N input slots, in input order. in_channels: channels per stem (C).
        out_channels: channels of the mix. filters: filter-bank size (latent channels).
        kernel: odd kernel of the front-end / back-end filter banks. hop: pooling factor (latent frame rate
            ``sample_rate / hop``). tcn_blocks: dilated blocks (dilations 1, 2, 4, ...). se_ratio: SE reduction.
        sample_rate: rate of the audio the model is trained on (metadata for callers).
    """

    def __init__(self, stems: list[str] | tuple[str, ...] = ("drums", "bass", "other", "vocals"),
                 in_channels: int = 2, out_channels: int = 2, filters: int = 64, kernel: int = 129,
                 hop: int = 64, tcn_blocks: int = 6, se_ratio: int = 8, sample_rate: int = 44100):
        super().__init__()
        self._setup(dict(stems=list(stems), in_channels=in_channels, out_channels=out_channels, filters=filters,
                         kernel=kernel, hop=hop, tcn_blocks=tcn_blocks, se_ratio=se_ratio, sample_rate=sample_rate))
        if kernel % 2 == 0 or filters < 2 or hop < 1 or tcn_blocks < 0:
            raise ConfigError(f"CRAFx2 needs an odd kernel, filters >= 2, hop >= 1, tcn_blocks >= 0; got "
                              f"kernel={kernel}, filters={filters}, hop={hop}, tcn_blocks={tcn_blocks}")
        self.filters, self.hop = int(filters), int(hop)
        # adaptive front end
        self.filterbank = nn.Conv1d(in_channels, filters, kernel, padding=kernel // 2, bias=False)
        self.local = nn.Conv1d(filters, filters, 5, padding=2, groups=filters)
        # latent block (its input is the injection site)
        self.latent_in = nn.Identity()
        self.temporal = nn.Sequential(*[TemporalBlock(filters, 2 ** i) for i in range(tcn_blocks)])
        self.lstm = nn.LSTM(filters, filters // 2, batch_first=True, bidirectional=True)
        self.latent_out = nn.Linear(2 * (filters // 2), filters)
        # synthesis back end
        self.shaper = nn.Sequential(nn.Conv1d(filters, filters, 1, bias=False), nn.Tanh(),
                                    nn.Conv1d(filters, filters, 1, bias=False))
        self.se = SqueezeExcitation(filters, se_ratio)
        self.synthesis = nn.ConvTranspose1d(filters, out_channels, kernel, padding=kernel // 2, bias=False)

    @classmethod
    def build(cls, size: str = "debug", **kwargs) -> "CRAFx2":
        """A model of a named size (``"debug"`` or ``"full"``); ``kwargs`` override its settings."""
        if size not in SIZES:
            raise ConfigError(f"unknown CRAFx2 size {size!r}; choose one of {sorted(SIZES)}")
        return cls(**{**SIZES[size], **kwargs})

    def site_channels(self, path: str) -> int:
        """Channel count at site ``path`` (``"latent_in"``: ``N * filters``)."""
        if path == "latent_in":
            return self.num_stems * self.filters
        raise ConfigError(f"CRAFx2 has no site {path!r}; its site is 'latent_in'")

    def padded_length(self, samples: int) -> int:
        """Samples the latent frames tile for an input of ``samples`` (a multiple of ``hop``)."""
        return -(-int(samples) // self.hop) * self.hop

    def forward(self, stems: torch.Tensor) -> torch.Tensor:
        """``stems [B, N, C, S]`` → ``mix [B, out_channels, S]`` (sum of the processed stems)."""
        self.check_stems(stems)
        b, n, c, s = stems.shape
        padded = self.padded_length(s)
        x = F.pad(stems.reshape(b * n, c, s), (0, padded - s))
        r = self.filterbank(x)                                           # [B*N, F, S']
        z = F.softplus(self.local(F.max_pool1d(r.abs(), self.hop)))     # [B*N, F, T]
        t = z.shape[-1]
        z = self.latent_in(z.reshape(b, n * self.filters, t)).reshape(b * n, self.filters, t)
        z = self.temporal(z)
        z, _ = self.lstm(z.transpose(1, 2))                              # [B*N, T, 2 * (F // 2)]
        z = self.latent_out(z).transpose(1, 2)                           # [B*N, F, T]
        y = r * z.repeat_interleave(self.hop, dim=-1)                    # adaptive gain per band
        y = y + self.shaper(y)
        y = self.se(y)
        out = self.synthesis(y)[..., :s]                                 # [B*N, out_channels, S]
        return out.reshape(b, n, self.out_channels, s).sum(1)
