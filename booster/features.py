"""Backbone features and the modules that carry them into task models.

Shape glossary: B batch, L layers, T frames, D feature dim.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Features:
    """Hidden states of a backbone for a batch of audio.

    ``hidden``: ``[B, L, T, D]``, one slice per entry of ``layers`` (hidden-state indices: 0 = conv
    front-end output, 1..depth-1 = conformer layer outputs, depth = final LayerNorm of the last layer).
    ``frame_rate``: frames per second of the T axis (25.0 for MuQ). ``start``: time in seconds of frame 0
    relative to the start of the audio the features describe (non-zero after :meth:`slice_time`). Frame
    ``t`` is centred at ``start + t / frame_rate`` seconds (MuQ frame t is centred on mel frame 4t,
    i.e. sample 960 t at 24 kHz).
    """

    hidden: torch.Tensor
    layers: tuple[int, ...]
    frame_rate: float = 25.0
    start: float = 0.0

    def __post_init__(self):
        self.layers = tuple(int(i) for i in self.layers)
        if self.hidden.dim() != 4:
            raise ValueError(f"Features.hidden must be [B, L, T, D], got shape {tuple(self.hidden.shape)}")
        if self.hidden.shape[1] != len(self.layers):
            raise ValueError(f"Features.hidden has {self.hidden.shape[1]} layers but layers={self.layers}")

    @property
    def num_frames(self) -> int:
        return self.hidden.shape[2]

    @property
    def dim(self) -> int:
        return self.hidden.shape[3]

    def layer(self, index: int) -> torch.Tensor:
        """``[B, T, D]`` for hidden-state index ``index`` (must be one of ``layers``)."""
        if index not in self.layers:
            raise KeyError(f"layer {index} was not extracted; available: {self.layers}")
        return self.hidden[:, self.layers.index(index)]

    def frame_times(self) -> torch.Tensor:
        """``[T]`` centre time (seconds) of every frame."""
        return self.start + torch.arange(self.num_frames, dtype=torch.float64) / self.frame_rate

    def select(self, layers) -> "Features":
        """A view holding only ``layers`` (a subset of ``self.layers``), in that order."""
        idx = [self.layers.index(i) if i in self.layers else None for i in layers]
        if None in idx:
            missing = [i for i, j in zip(layers, idx) if j is None]
            raise KeyError(f"layers {missing} were not extracted; available: {self.layers}")
        return Features(self.hidden[:, idx], tuple(layers), self.frame_rate, self.start)

    def slice_time(self, start: float, end: float, margin: int = 0) -> "Features":
        """Frames whose centres fall in ``[start, end)`` seconds (times relative to the same origin as
        ``self.start``), plus ``margin`` extra frames on each side where available (useful so that
        interpolation onto a chunk has neighbours at its edges)."""
        rel0 = (start - self.start) * self.frame_rate
        rel1 = (end - self.start) * self.frame_rate
        t0 = max(0, math.ceil(rel0 - 1e-9) - margin)
        t1 = min(self.num_frames, max(t0, math.ceil(rel1 - 1e-9) + margin))
        return Features(self.hidden[:, :, t0:t1], self.layers, self.frame_rate,
                        self.start + t0 / self.frame_rate)

    def to(self, *args, **kwargs) -> "Features":
        return Features(self.hidden.to(*args, **kwargs), self.layers, self.frame_rate, self.start)
