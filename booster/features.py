"""Backbone features and the modules that carry them into task models.

Shape glossary: B batch, L layers, T frames, D feature dim.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import ConfigError


def resolve_layers(backbone, layers) -> tuple[int, ...]:
    """Hidden-state indices named by ``layers`` for ``backbone`` (anything with ``num_layers``, or a depth
    given as int). Also importable as ``booster.backbone.resolve_layers``.

    ``layers``: None (all, ``0..num_layers``), an int, a comma-separated string ``"4,8,12"`` or a sequence.
    Raises :class:`ConfigError` for an empty selection or an index outside ``0..num_layers``.
    """
    n = int(backbone if isinstance(backbone, int) else backbone.num_layers)
    if layers is None:
        return tuple(range(n + 1))
    if isinstance(layers, int):
        layers = (layers,)
    if isinstance(layers, str):
        try:
            layers = [int(x) for x in layers.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(f"layers {layers!r}: expected comma-separated integers such as '4,8,12'") from None
    layers = tuple(int(i) for i in layers)
    if not layers:
        raise ConfigError("layers must name at least one hidden-state index")
    bad = [i for i in layers if not 0 <= i <= n]
    if bad:
        raise ConfigError(f"layers {bad} out of range: this backbone has hidden states 0..{n} "
                          f"(0 = front end, {n} = final layer)")
    return layers


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


class LayerMix(torch.nn.Module):
    """Learned convex combination of backbone layers.

    ``forward(hidden)``: ``[B, L, T, D]`` → ``[B, T, D]``. Weights are ``softmax(logits)`` over the L
    layers; logits start at zero, so at initialisation the mix is the plain mean of the layers.
    """

    def __init__(self, num_layers: int):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"LayerMix needs at least one layer, got {num_layers}")
        self.logits = torch.nn.Parameter(torch.zeros(num_layers))

    def weights(self) -> torch.Tensor:
        """``[L]`` mixing weights (sum to 1)."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.dim() != 4 or hidden.shape[1] != self.logits.numel():
            raise ValueError(f"LayerMix over {self.logits.numel()} layers expects [B, L, T, D] with "
                             f"L={self.logits.numel()}, got {tuple(hidden.shape)}")
        w = self.weights().to(hidden.dtype)
        return torch.einsum("l,bltd->btd", w, hidden)


def align_frames(x: torch.Tensor, *, num_frames: int, frame_rate: float, start: float = 0.0,
                 span_start: float | torch.Tensor = 0.0, span: float) -> torch.Tensor:
    """Resample a frame sequence onto another time grid by linear interpolation.

    ``x``: ``[B, T_in, C]``, frame ``k`` centred at ``start + k / frame_rate`` seconds (the
    :class:`Features` convention). Returns ``[B, num_frames, C]`` where output frame ``j`` is centred at
    ``span_start + (j + 0.5) * span / num_frames``: the ``num_frames`` frames tile the interval
    ``[span_start, span_start + span)`` evenly (e.g. a host layer with T frames over a chunk of ``span``
    seconds that begins at ``span_start`` seconds of the features' time line). Positions before the first
    or after the last input frame take the edge frame's value. All times share one origin, so a slice of
    features (``Features.slice_time``) aligns to the same values as the whole sequence would.
    ``span_start`` may be a tensor ``[B]``: one interval start per batch item (batched chunks of a track).
    """
    if x.dim() != 3:
        raise ValueError(f"align_frames expects [B, T_in, C], got {tuple(x.shape)}")
    if num_frames < 1 or span <= 0:
        raise ValueError(f"align_frames needs num_frames >= 1 and span > 0, got {num_frames}, {span}")
    t_in = x.shape[1]
    if t_in == 0:
        raise ValueError("align_frames got an empty frame sequence (T_in = 0)")
    grid = (torch.arange(num_frames, dtype=torch.float64) + 0.5) * (span / num_frames)   # [N]
    per_item = isinstance(span_start, torch.Tensor)
    if per_item:  # one start per batch item: [B] -> centres [B, N]
        if span_start.shape != (x.shape[0],):
            raise ValueError(f"align_frames: span_start as a tensor must be [B={x.shape[0]}], got "
                             f"{tuple(span_start.shape)}")
        centres = span_start.detach().to("cpu", torch.float64)[:, None] + grid[None]
    else:
        centres = span_start + grid
    pos = ((centres - start) * frame_rate).clamp(0, t_in - 1)
    i0 = pos.floor().long().clamp(max=t_in - 1)
    i1 = (i0 + 1).clamp(max=t_in - 1)
    w = (pos - i0.double()).to(device=x.device, dtype=x.dtype)[..., None]
    i0, i1 = i0.to(x.device), i1.to(x.device)
    if per_item:
        c = x.shape[-1]
        return (x.gather(1, i0[..., None].expand(-1, -1, c)) * (1 - w)
                + x.gather(1, i1[..., None].expand(-1, -1, c)) * w)
    return x.index_select(1, i0) * (1 - w[None]) + x.index_select(1, i1) * w[None]
