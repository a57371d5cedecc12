"""Chunked inference over time for any output with a time axis (samples or frames).

Shape glossary: B batch, C channels, S samples, T frames, L layers, D feature dim; K chunks in a batch.

:func:`chunked_apply` reads an input ``[C, S]`` chunk by chunk through a callback, runs the model on
**batches of chunks** (``run(chunks [K, C, segment], starts) -> [K, ..., T_chunk]``, time on the last
axis), cross-fades overlapping outputs with triangular weights (as demucs' ``apply_model``) and emits
finished output blocks as soon as no later chunk can touch them, so memory is bounded by one batch of
chunks whatever the input length. The output's time axis is in units of ``hop`` input samples: ``hop=1``
for waveform outputs, e.g. ``hop=512`` for a model that emits one frame per 512 samples. Chunk starts
are multiples of ``hop``, so output frame ``j`` of a chunk starting at sample ``s`` is global frame
``s // hop + j``. Tensors stay on the device of the model's output.

:func:`chunk_features` slices a whole track's backbone features for a batch of chunks (the backbone runs
once per track): features ``[K, L, n, D]`` and one start per chunk, for
``boosted.use_features(features, input_start=starts)``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from booster.errors import ConfigError
from booster.features import Features

FEATURE_MARGIN = 2  # extra backbone frames each side of a chunk, so interpolation has neighbours


def chunk_starts(length: int, segment: int, overlap: float, hop: int = 1) -> tuple[list[int], int]:
    """Start samples of the chunks covering ``[0, length)`` and the stride (a multiple of ``hop``): ``0,
    stride, 2 stride, ...`` up to the first chunk that reaches ``length`` (an input no longer than
    ``segment`` is one chunk)."""
    if not 0 <= overlap < 1 or not math.isfinite(overlap):
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}")
    if segment < 1:
        raise ConfigError(f"chunk length must be positive, got {segment} samples")
    if hop < 1 or segment % hop:
        raise ConfigError(f"the chunk length ({segment} samples) must be a multiple of the output hop ({hop})")
    stride = max(hop, int((1 - overlap) * segment) // hop * hop)
    count = 1 + max(0, -(-(length - segment) // stride))   # no chunk starts once one reaches the end
    return [k * stride for k in range(count)], stride


def triangle(n: int, power: float = 1.0, device=None) -> torch.Tensor:
    """``[n]`` triangular weights peaking at the centre, all strictly positive."""
    w = torch.cat([torch.arange(1, n // 2 + 1, device=device),
                   torch.arange(n - n // 2, 0, -1, device=device)]).float()
    return (w / w.max()) ** power


def chunked_apply(read: Callable[[int, int], torch.Tensor], length: int, segment: int,
                  run: Callable[[torch.Tensor, list[int]], torch.Tensor], *, overlap: float = 0.25,
                  hop: int = 1, out_frames: int | None = None, batch_size: int = 1,
                  emit: Callable[[torch.Tensor], None] | None = None, progress: bool = False,
                  sample_rate: int | None = None, desc: str = "processing") -> torch.Tensor | None:
    """Run ``run`` over a ``length``-sample input in overlapping chunks of ``segment`` samples.

    ``read(first, count) -> [C, count]`` (zero-padded past the end). ``run(chunks [K, C, segment], starts)``
    → ``[K, ..., T_chunk]`` with ``K <= batch_size``. ``out_frames``: output length (default
    ``ceil(length / hop)``). Finished blocks ``[..., k]`` go to ``emit`` in order (then None is returned);
    without ``emit`` the result ``[..., out_frames]`` is returned.
    """
    starts, stride = chunk_starts(length, segment, overlap, hop)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    total = int(out_frames) if out_frames is not None else -(-length // hop)
    stride_f = stride // hop
    acc = wsum = weight = None
    done, blocks, bar = 0, [], None
    if progress:
        bar = _bar(length, sample_rate, desc)
    try:
        for b in range(0, len(starts), batch_size):
            group = starts[b:b + batch_size]
            parts = [read(first, segment) for first in group]
            for p in parts:
                if p.shape[-1] != segment:
                    raise AssertionError(f"reader returned {p.shape[-1]} samples, asked {segment}")
            outs = run(torch.stack(parts), group)
            if outs.shape[0] != len(group):
                raise AssertionError(f"model returned {outs.shape[0]} outputs for {len(group)} chunks")
            for k, first in enumerate(group):
                out = outs[k].float()
                t_chunk = out.shape[-1]
                if acc is None:
                    if t_chunk < stride_f:
                        raise AssertionError(f"model returned {t_chunk} frames for a chunk whose stride is "
                                             f"{stride_f} frames (hop {hop}); raise the overlap or check hop")
                    weight = triangle(t_chunk, device=out.device)
                    acc = torch.zeros(*out.shape[:-1], t_chunk + stride_f, device=out.device)
                    wsum = torch.zeros(t_chunk + stride_f, device=out.device)
                elif t_chunk != weight.numel():
                    raise AssertionError(f"model returned {t_chunk} frames, earlier chunks {weight.numel()}")
                acc[..., :t_chunk] += out * weight
                wsum[:t_chunk] += weight
                f0 = first // hop
                last = b + k == len(starts) - 1
                end = min(total, f0 + (t_chunk if last else stride_f))
                if last and end < total:
                    raise AssertionError(f"the chunks cover {f0 + t_chunk} output frames but {total} were "
                                         "asked; pass out_frames= (the frames the model gives for the input)")
                ready = end - done
                if ready > 0:
                    block = acc[..., :ready] / wsum[:ready]
                    if emit is None:
                        blocks.append(block.clone())
                    else:
                        emit(block)
                    done += ready
                if not last:  # shift the accumulator by one stride
                    acc = torch.cat([acc[..., stride_f:], torch.zeros_like(acc[..., :stride_f])], -1)
                    wsum = torch.cat([wsum[stride_f:], torch.zeros_like(wsum[:stride_f])])
                if bar is not None:
                    step = round(max(ready, 0) * hop / (sample_rate or 1), 2)   # frames S//hop+1: one hop over
                    bar.update(max(0.0, min(step, bar.total - bar.n)))
    finally:
        if bar is not None:
            bar.close()
    return torch.cat(blocks, -1) if emit is None else None


# ---- MSST's chunking ---------------------------------------------------------------------------------
CHUNKING_MODES = ("kit", "msst")


def msst_step(segment: int, *, num_overlap: int | None = None, overlap: float | None = None) -> int:
    """Samples between chunk starts in MSST's chunking: ``segment // num_overlap`` (MSST's
    ``inference.num_overlap``); an ``overlap`` X given instead means ``num_overlap`` ``1 / (1 - X)`` when
    that is a whole number (0.5 -> 2, 0.75 -> 4), else a step of ``floor(segment * (1 - X))``."""
    if overlap is not None:
        if not 0 <= overlap < 1 or not math.isfinite(overlap):
            raise ConfigError(f"overlap must be in [0, 1), got {overlap}")
        n = 1 / (1 - overlap)
        if abs(n - round(n)) > 1e-6:
            return max(1, int(segment * (1 - overlap)))
        num_overlap = round(n)
    if isinstance(num_overlap, bool) or not isinstance(num_overlap, int) or num_overlap < 1:
        raise ConfigError(f"num_overlap must be a positive whole number, got {num_overlap!r}")
    return max(1, segment // num_overlap)


def msst_window(segment: int, first: bool, last: bool) -> torch.Tensor:
    """``[segment]`` weights of MSST's ``demix``: ones with a linear fade from 0 over ``segment // 10``
    samples at the start and to 0 at the end; no fade-in on the first chunk, else no fade-out on the last."""
    fade = segment // 10
    w = torch.ones(segment)
    if fade:
        if not first:
            w[:fade] = torch.linspace(0, 1, fade)
        if first or not last:
            w[-fade:] = torch.linspace(1, 0, fade)
    return w


def _reflect_index(idx: torch.Tensor, length: int) -> torch.Tensor:
    """Indices on a signal reflect-padded at both ends (no edge repeat) -> indices into ``[0, length)``."""
    if length == 1:
        return torch.zeros_like(idx)
    period = 2 * (length - 1)
    idx = idx.abs() % period
    return torch.where(idx >= length, period - idx, idx)


def msst_apply(read: Callable[[int, int], torch.Tensor], length: int, segment: int,
               run: Callable[[torch.Tensor, list[int]], torch.Tensor], *, step: int, batch_size: int = 1,
               emit: Callable[[torch.Tensor], None] | None = None, progress: bool = False,
               sample_rate: int | None = None, desc: str = "processing") -> torch.Tensor | None:
    """MSST's chunked inference (``utils/model_utils.demix``, generic mode) over a waveform, streamed.

    As :func:`chunked_apply` (``read``, ``run`` → ``[K, ..., segment]``, ``emit``), with MSST's rules: the
    input is reflect-padded by ``border = segment - step`` at both ends when longer than two borders;
    chunks start every ``step`` samples while below the padded length; a chunk running past the end is
    padded by reflection when more than half of it is audio, else with zeros; each output is weighted by
    :func:`msst_window` over its audio part and the weighted sum is divided by the weight sum (0/0 -> 0);
    the border is cut off. Equal to MSST's ``demix`` with ``inference.batch_size`` 1 (larger MSST batches
    drop the fades of every chunk in the first / last batch; here the weights never depend on
    ``batch_size``). One exception: an input no longer than ``segment`` is one chunk, weight 1 (MSST
    would run several partly padded chunks over it). ``starts`` given to ``run`` are on the input's time
    line (negative in the leading border).
    """
    if step < 1 or step > segment:
        raise ConfigError(f"the chunk step must be in [1, {segment}] samples, got {step}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    length = max(int(length), 1)
    border = segment - step
    off = border if (length > 2 * border and border > 0 and length > segment) else 0
    total = length + 2 * off
    starts = [0] if length <= segment else list(range(0, total, step))   # on the padded time line
    acc = wsum = None
    done, blocks = 0, []    # done: input samples emitted so far
    bar = _bar(length, sample_rate, desc) if progress else None

    def chunk(i: int) -> torch.Tensor:           # [C, segment] of the padded input from i
        n = min(segment, total - i)
        idx = _reflect_index(torch.arange(i - off, i - off + n), length)
        lo, hi = int(idx.min()), int(idx.max())
        part = read(lo, hi - lo + 1)[..., idx - lo]
        if n < segment:
            if n > segment // 2:
                part = torch.nn.functional.pad(part[None], (0, segment - n), mode="reflect")[0]
            else:
                part = torch.nn.functional.pad(part, (0, segment - n))
        return part

    try:
        for b in range(0, len(starts), batch_size):
            group = starts[b:b + batch_size]
            outs = run(torch.stack([chunk(i) for i in group]), [i - off for i in group])
            if outs.shape[0] != len(group) or outs.shape[-1] != segment:
                raise AssertionError(f"model returned {tuple(outs.shape)} for {len(group)} chunks of {segment} "
                                     "samples; MSST chunking needs a waveform out for each chunk")
            for k, i in enumerate(group):
                out = outs[k].float()
                if acc is None:
                    acc = torch.zeros(*out.shape[:-1], segment + step, device=out.device)
                    wsum = torch.zeros(segment + step, device=out.device)
                n = min(segment, total - i)
                last = b + k == len(starts) - 1
                w = torch.ones(segment) if len(starts) == 1 else msst_window(segment, i == 0, last)
                w = w[:n].to(out.device)
                acc[..., :n] += out[..., :n] * w
                wsum[:n] += w
                ready = (total if last else min(i + step, total)) - i    # finished from this chunk's start
                block = torch.where(wsum[:ready] > 0, acc[..., :ready] / wsum[:ready].clamp_min(1e-30),
                                    torch.zeros_like(acc[..., :ready]))
                a, z = max(off - i, 0), min(off + length - i, ready)   # the input's part of it
                if z > a:
                    if emit is None:
                        blocks.append(block[..., a:z].clone())
                    else:
                        emit(block[..., a:z])
                    done += z - a
                    if bar is not None:
                        bar.update(max(0.0, min(round((z - a) / (sample_rate or 1), 2), bar.total - bar.n)))
                if not last:
                    acc = torch.cat([acc[..., step:], torch.zeros_like(acc[..., :step])], -1)
                    wsum = torch.cat([wsum[step:], torch.zeros_like(wsum[:step])])
    finally:
        if bar is not None:
            bar.close()
    if done != length:
        raise AssertionError(f"MSST chunking emitted {done} samples for an input of {length}")
    return torch.cat(blocks, -1) if emit is None else None


def _bar(length: int, sample_rate: int | None, desc: str):
    from tqdm import tqdm
    return tqdm(total=round(length / (sample_rate or 1), 2), unit="s" if sample_rate else "samples", desc=desc,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} {unit} [{elapsed}<{remaining}]")


def tensor_reader(x: torch.Tensor) -> Callable[[int, int], torch.Tensor]:
    """``read(first, count)`` over an in-memory input ``[C, S]`` (zero-padded past the end)."""
    def read(first: int, count: int) -> torch.Tensor:
        part = x[..., first:first + count]
        if part.shape[-1] < count:
            part = torch.nn.functional.pad(part, (0, count - part.shape[-1]))
        return part
    return read


def chunk_features(track: Features, starts: list[float], duration: float,
                   margin: int = FEATURE_MARGIN) -> tuple[Features, torch.Tensor]:
    """Features of a batch of chunks of one track.

    ``track``: the whole track's features (batch 1, ``hidden`` ``[1, L, T, D]``). ``starts``: chunk start
    times in seconds on the track's time line; ``duration``: chunk length in seconds. Returns
    ``(features [K, L, n, D], input_start [K])``: item ``k`` holds the frames around chunk ``k`` (the
    track's edge frames repeated past its ends, which is what time alignment does at the edges anyway),
    on a time line where ``input_start[k]`` is the chunk's first sample. Pass both to
    ``boosted.use_features(features, input_start=input_start)``: the result equals
    ``use_features(track.slice_time(t0, t0 + duration, margin), input_start=t0)`` chunk by chunk.
    """
    if track.hidden.shape[0] != 1:
        raise ConfigError(f"chunk_features needs the features of one track (batch 1), got batch "
                          f"{track.hidden.shape[0]}")
    fr, t_total = track.frame_rate, track.num_frames
    n = math.ceil(duration * fr) + 2 * margin + 1
    first = [math.floor((t0 - track.start) * fr + 1e-9) - margin for t0 in starts]
    idx = torch.stack([torch.arange(f, f + n) for f in first]).clamp(0, t_total - 1)  # [K, n]
    hidden = track.hidden[0][:, idx.to(track.hidden.device)].permute(1, 0, 2, 3)      # [K, L, n, D]
    input_start = torch.tensor([t0 - (track.start + f / fr) for t0, f in zip(starts, first)],
                               dtype=torch.float64)
    return Features(hidden, track.layers, fr, 0.0), input_start
