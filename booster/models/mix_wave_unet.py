"""Mix-Wave-U-Net: a Wave-U-Net that mixes N dry stems into a stereo mix.

After Martínez-Ramírez, Stoller and Moffat, "A deep learning approach to intelligent drum mixing with
the Wave-U-Net" (JAES 2021): the stems are stacked as input channels of a 1-D U-Net on the waveform;
every encoder level is a strided-free convolution (kernel 15) followed by decimation by two, the
decoder upsamples by linear interpolation, concatenates the encoder level of the same resolution and
convolves (kernel 5); a final 1x1 convolution over the decoder output and the input stems gives the
stereo mix. Our convolutions pad ("same") instead of the paper's "valid" context cropping; the input is
zero-padded to a multiple of ``2 ** levels`` samples and the output cropped back, so any length works.

Injection sites for :func:`booster.inject` (all ``"B C T"``): ``bottleneck`` (output, ``filters *
(levels + 1)`` channels, at ``1 / 2 ** levels`` of the sample rate) and the decoder levels ``up.<i>``
(output, see :meth:`MixWaveUNet.site_channels`). Time alignment: decimation keeps every other frame, so
frame ``j`` of level ``m`` lies at input sample ``j * 2 ** m`` (not at the middle of its ``2 ** m``
samples); :meth:`StemMixer.span_fn` tells :func:`booster.inject` so, per site (:meth:`MixWaveUNet.site_grid`).

Shapes: stems ``[B, N, C, S]`` (N stems, C channels each) → mix ``[B, out_channels, S]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AudioError, ConfigError

SIZES = {
    "debug": {"levels": 3, "filters": 8},
    "full": {"levels": 10, "filters": 24},  # the paper's 10 levels, 24 extra filters per level
}


class StemMixer(nn.Module):
    """What every stems → mix model here shares: named input slots, rates, its architecture as data and
    the functions :func:`booster.inject` needs (features from the stems' sum; the span site frames tile).

    Subclasses call :meth:`_setup` in ``__init__`` and implement ``padded_length`` and ``site_channels``.
    """

    stems: list[str]

    def _setup(self, arch: dict) -> None:
        stems = [str(s) for s in arch["stems"]]
        if not stems or len(set(stems)) != len(stems):
            raise ConfigError(f"{type(self).__name__} needs distinct stem names, got {stems}")
        self.stems, self.sample_rate = stems, int(arch["sample_rate"])
        self.in_channels, self.out_channels = int(arch["in_channels"]), int(arch["out_channels"])
        self._arch = {**arch, "stems": stems}

    @property
    def num_stems(self) -> int:
        return len(self.stems)

    def architecture(self) -> dict:
        """JSON-safe keyword arguments that rebuild this architecture (``type(self)(**kw)``)."""
        return dict(self._arch)

    def check_stems(self, stems: torch.Tensor) -> None:
        if not isinstance(stems, torch.Tensor) or stems.dim() != 4 or stems.shape[1] != self.num_stems \
                or stems.shape[2] != self.in_channels:
            shape = tuple(stems.shape) if isinstance(stems, torch.Tensor) else type(stems).__name__
            raise AudioError(f"{type(self).__name__} expects stems [B, {self.num_stems}, {self.in_channels}, S] "
                             f"(slots {self.stems}), got {shape}")

    def input_fn(self, stems: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, int]:
        """Backbone input of a call: the sum of the stems ``[B, C, S]`` at the model's rate."""
        return stems.sum(1), self.sample_rate

    def span_fn(self, stems: torch.Tensor, *args, **kwargs):
        """A function ``site -> (offset, seconds)``: the interval a site's frames tile, relative to the first
        input sample. A site on the grid ``first + j * step`` samples (:meth:`site_grid`) tiles ``T * step``
        samples from ``first - step / 2``, so tile centres fall on its frames (``T``: the input zero-padded
        to :meth:`padded_length`, in steps); any other site tiles the padded input evenly."""
        padded, sr = self.padded_length(stems.shape[-1]), float(self.sample_rate)

        def site_span(site) -> tuple[float, float]:
            grid = self.site_grid(site.path)
            if grid is None:
                return 0.0, padded / sr
            step, first = grid
            return (first - step / 2) / sr, padded // step * step / sr
        return site_span

    def site_grid(self, path: str) -> tuple[int, float] | None:
        """``(step, first)``: frame ``j`` of the tensor at site ``path`` lies at input sample ``first + j * step``
        (None: unknown, taken to tile the padded input evenly)."""
        return None

    def padded_length(self, samples: int) -> int:
        raise NotImplementedError

    def site_channels(self, path: str) -> int:
        raise NotImplementedError


def _conv(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.LeakyReLU(0.2))


class MixWaveUNet(StemMixer):
    """Wave-U-Net mixer. ``forward(stems [B, N, C, S]) -> mix [B, out_channels, S]``.

    Args:
        stems: names of the N input slots, in input order (the model's contract with data and ``booster mix``).
        in_channels: channels per stem (C). out_channels: channels of the mix (2: stereo).
        levels: encoder/decoder levels (each halves the time resolution). filters: filters added per level
            (level ``i`` has ``filters * i``, the bottleneck ``filters * (levels + 1)``).
        down_kernel / up_kernel: odd kernel sizes of the encoder / decoder convolutions.
        sample_rate: rate of the audio the model is trained on (metadata for callers).
    """

    def __init__(self, stems: list[str] | tuple[str, ...] = ("drums", "bass", "other", "vocals"),
                 in_channels: int = 2, out_channels: int = 2, levels: int = 6, filters: int = 24,
                 down_kernel: int = 15, up_kernel: int = 5, sample_rate: int = 44100):
        super().__init__()
        self._setup(dict(stems=list(stems), in_channels=in_channels, out_channels=out_channels, levels=levels,
                         filters=filters, down_kernel=down_kernel, up_kernel=up_kernel, sample_rate=sample_rate))
        if levels < 1 or filters < 1:
            raise ConfigError(f"MixWaveUNet needs levels >= 1 and filters >= 1, got {levels}, {filters}")
        if down_kernel % 2 == 0 or up_kernel % 2 == 0:
            raise ConfigError(f"kernel sizes must be odd, got {down_kernel}, {up_kernel}")
        self.levels = int(levels)
        c_in = self.num_stems * self.in_channels
        widths = [filters * i for i in range(1, levels + 2)]  # level 1..levels, then the bottleneck
        self.down = nn.ModuleList()
        prev = c_in
        for w in widths[:-1]:
            self.down.append(_conv(prev, w, down_kernel))
            prev = w
        self.bottleneck = _conv(prev, widths[-1], down_kernel)
        self.up = nn.ModuleList()
        prev = widths[-1]
        for w in reversed(widths[:-1]):  # decoder level i (0 = deepest) outputs the width of its skip
            self.up.append(_conv(prev + w, w, up_kernel))
            prev = w
        self.output = nn.Conv1d(prev + c_in, self.out_channels, 1)
        self.widths = widths

    @classmethod
    def build(cls, size: str = "debug", **kwargs) -> "MixWaveUNet":
        """A model of a named size (``"debug"`` or ``"full"``); ``kwargs`` override its settings."""
        if size not in SIZES:
            raise ConfigError(f"unknown MixWaveUNet size {size!r}; choose one of {sorted(SIZES)}")
        return cls(**{**SIZES[size], **kwargs})

    def site_channels(self, path: str) -> int:
        """Channel count of the tensor at site ``path`` (``"bottleneck"`` or ``"up.<i>"``)."""
        if path == "bottleneck":
            return self.widths[-1]
        if path.startswith("up.") and path[3:].isdigit() and int(path[3:]) < self.levels:
            return self.widths[self.levels - 1 - int(path[3:])]
        raise ConfigError(f"MixWaveUNet has no site {path!r}; sites: bottleneck, up.0 .. up.{self.levels - 1}")

    def site_grid(self, path: str) -> tuple[int, float] | None:
        """``(2 ** m, 0)`` for a site at level ``m`` (``m`` decimations ``x[..., ::2]`` behind it: frame ``j``
        is input sample ``j * 2 ** m``): ``down.<i>`` level ``i``, ``bottleneck`` ``levels``, ``up.<i>``
        ``levels - 1 - i`` (its skip's grid), ``output`` 0; submodules share their parent's level."""
        parts = path.split(".")
        if parts[0] == "bottleneck":
            level = self.levels
        elif parts[0] == "output":
            level = 0
        elif parts[0] in ("down", "up") and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < self.levels:
            level = int(parts[1]) if parts[0] == "down" else self.levels - 1 - int(parts[1])
        else:
            return None
        return 2 ** level, 0.0

    def padded_length(self, samples: int) -> int:
        """Samples the site tensors tile for an input of ``samples`` (a multiple of ``2 ** levels``)."""
        block = 2 ** self.levels
        return -(-int(samples) // block) * block

    def forward(self, stems: torch.Tensor) -> torch.Tensor:
        """``stems [B, N, C, S]`` → ``mix [B, out_channels, S]``."""
        self.check_stems(stems)
        b, n, c, s = stems.shape
        pad = self.padded_length(s) - s
        x = F.pad(stems.reshape(b, n * c, s), (0, pad))
        inp = x
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
            x = x[..., ::2]  # decimation
        x = self.bottleneck(x)
        for up, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-1], mode="linear", align_corners=True)
            x = up(torch.cat([x, skip], dim=1))
        out = self.output(torch.cat([x, inp], dim=1))
        return out[..., :s]
