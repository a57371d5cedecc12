"""Full-track inference in overlapping chunks with triangular cross-fade weights (as demucs' apply_model).

:func:`overlap_add` reads the mixture chunk by chunk through a callback and emits finished output
blocks as soon as no later chunk can touch them, so memory is bounded by one chunk whatever the track
length. :class:`FileReader` serves model-rate chunks of an audio file at any native rate / channel count.

Shapes: mixture ``[C, S]``, chunk output ``[N, C, S]`` (C channels, S samples, N sources).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from booster.audio import FileReader  # noqa: F401  (re-exported: chunked readers live together)
from booster.errors import ConfigError


def chunk_offsets(length: int, segment: int, overlap: float) -> tuple[list[int], int]:
    """Start samples of the chunks covering ``[0, length)`` and the stride between them."""
    if not 0 <= overlap < 1:
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}")
    if segment < 1:
        raise ConfigError(f"chunk length must be positive, got {segment} samples")
    stride = max(1, int((1 - overlap) * segment))
    return list(range(0, max(length, 1), stride)), stride


def triangle(segment: int, power: float = 1.0) -> torch.Tensor:
    """``[S]`` triangular weights peaking at the chunk centre, all strictly positive."""
    w = torch.cat([torch.arange(1, segment // 2 + 1), torch.arange(segment - segment // 2, 0, -1)]).float()
    return (w / w.max()) ** power


def overlap_add(read: Callable[[int, int], torch.Tensor], length: int, segment: int,
                run: Callable[[torch.Tensor, int], torch.Tensor], *, overlap: float = 0.25,
                emit: Callable[[torch.Tensor], None] | None = None, progress: bool = False,
                sample_rate: int | None = None, desc: str = "separating") -> torch.Tensor | None:
    """Separate a ``length``-sample mixture chunk by chunk.

    ``read(first, count) -> [C, count]`` gives the mixture (zero-padded past the end); ``run(chunk
    [1, C, segment], first) -> [1, N, C, segment]`` separates one chunk starting at sample ``first``.
    Finished blocks ``[N, C, k]`` go to ``emit`` in order (then None is returned); without ``emit`` the
    blocks are concatenated and returned as ``[N, C, length]``.
    """
    offsets, stride = chunk_offsets(length, segment, overlap)
    weight = triangle(segment)
    acc = wsum = None
    done, blocks = 0, []
    bar = None
    if progress:
        from tqdm import tqdm
        rate = sample_rate or 1
        bar = tqdm(total=round(length / rate, 2), unit="s" if sample_rate else "samples", desc=desc,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} {unit} [{elapsed}<{remaining}]")
    try:
        for k, first in enumerate(offsets):
            chunk = read(first, segment)
            if chunk.shape[-1] != segment:
                raise AssertionError(f"reader returned {chunk.shape[-1]} samples, asked {segment}")
            out = run(chunk[None], first)
            if out.dim() != 4 or out.shape[0] != 1 or out.shape[-1] != segment:
                raise AssertionError(f"separator returned {tuple(out.shape)} for a chunk of {segment} samples")
            out = out[0].float()
            if acc is None:
                acc = torch.zeros(*out.shape[:2], segment + stride, dtype=out.dtype)
                wsum = torch.zeros(segment + stride)
            acc[..., :segment] += out * weight
            wsum[:segment] += weight
            last = k == len(offsets) - 1
            ready = min(length, first + (segment if last else stride)) - done
            if ready > 0:
                block = acc[..., :ready] / wsum[:ready]
                if emit is None:
                    blocks.append(block.clone())
                else:
                    emit(block)
                done += ready
            if not last:  # shift the accumulator by one stride
                acc = torch.cat([acc[..., stride:], torch.zeros_like(acc[..., :stride])], -1)
                wsum = torch.cat([wsum[stride:], torch.zeros(stride)])
            if bar is not None:
                bar.update(round(ready / (sample_rate or 1), 2) if ready > 0 else 0)
    finally:
        if bar is not None:
            bar.close()
    if emit is None:
        return torch.cat(blocks, -1)
    return None


def tensor_reader(mix: torch.Tensor) -> Callable[[int, int], torch.Tensor]:
    """``read(first, count)`` over an in-memory mixture ``[C, S]`` (zero-padded past the end)."""
    def read(first: int, count: int) -> torch.Tensor:
        part = mix[..., first:first + count]
        if part.shape[-1] < count:
            part = torch.nn.functional.pad(part, (0, count - part.shape[-1]))
        return part
    return read
