"""Backbone features and the modules that carry them into task models.

Shape glossary: B batch, L layers, T frames, D feature dim.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Features:
    """Hidden states of a backbone for a batch of audio.

    ``hidden``: ``[B, L, T, D]``, one slice per entry of ``layers`` (hidden-state indices: 0 = conv
    front-end output, 1..depth-1 = conformer layer outputs, depth = final LayerNorm of the last layer).
    ``frame_rate``: frames per second of the T axis (25.0 for MuQ). Frame ``t`` is centred at
    ``t / frame_rate`` seconds from the start of the audio (see :func:`booster.muq.frame_times`).
    """

    hidden: torch.Tensor
    layers: tuple[int, ...]
    frame_rate: float = 25.0

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

    def select(self, layers) -> "Features":
        """A view holding only ``layers`` (a subset of ``self.layers``), in that order."""
        idx = [self.layers.index(i) if i in self.layers else None for i in layers]
        if None in idx:
            missing = [i for i, j in zip(layers, idx) if j is None]
            raise KeyError(f"layers {missing} were not extracted; available: {self.layers}")
        return Features(self.hidden[:, idx], tuple(layers), self.frame_rate)

    def slice_time(self, start: float, end: float) -> "Features":
        """Frames whose centres fall in ``[start, end)`` seconds."""
        t0 = max(0, int(torch.ceil(torch.tensor(start * self.frame_rate)).item()))
        t1 = min(self.num_frames, int(torch.ceil(torch.tensor(end * self.frame_rate)).item()))
        return Features(self.hidden[:, :, t0:t1], self.layers, self.frame_rate)

    def to(self, *args, **kwargs) -> "Features":
        return Features(self.hidden.to(*args, **kwargs), self.layers, self.frame_rate)
