"""Feature extraction for arbitrary audio: any shape, sample rate and length.

Long inputs are processed in overlapping windows so that memory stays bounded:

* ``window`` seconds (default 30 s, MuQ's training clip length) and ``overlap`` seconds (default 5 s)
  are rounded to whole output frames (40 ms = 960 samples at 24 kHz), so every window starts on the
  global frame grid and its frame ``t`` *is* global frame ``start / 960 + t``.
* Inputs no longer than one window run in a single pass (bit-identical to ``muq(wav)``).
* Otherwise windows start every ``window - overlap`` seconds; the last window is moved back to end at
  the last sample, so the frame count is exactly the single-pass count
  ``ceil(ceil((S // 240) / 2) / 2)``.
* Where two windows overlap, their features are cross-faded linearly (weights sum to 1). The
  :data:`GUARD_FRAMES` frames at a window edge that has a neighbour get weight 0: their receptive field
  reaches the STFT's reflect padding or the convolutions' zero padding. So the conv front end (hidden
  state 0), whose context is local, is reproduced exactly, and deeper layers, whose attention sees the
  whole window, fade from one window's context to the next with no seam.
"""
from __future__ import annotations

import math

import torch

from ..audio import resampled_length, resampled_span
from ..errors import AudioError, ConfigError
from ..extraction import PRECISIONS, as_batch_mono, output_placement
from ..extraction import autocast_for as _autocast
from ..features import Features, resolve_layers
from .config import SAMPLE_RATE

GUARD_FRAMES = 5  # frames (200 ms) at each inner window edge whose receptive field touches padding


def window_plan(num_samples: int, window: int, overlap: int, unit: int) -> list[tuple[int, int]]:
    """Sample ranges ``[(start, end)]`` of the windows covering ``num_samples``; starts are multiples
    of ``unit``; the last window ends at ``num_samples``."""
    if num_samples <= window:
        return [(0, num_samples)]
    hop = window - overlap
    plan, start = [], 0
    while start + window < num_samples:
        plan.append((start, start + window))
        start += hop
    last = max(0, math.ceil((num_samples - window) / unit) * unit)
    plan.append((last, num_samples))
    return plan


def extract_features(muq, wav, sample_rate: int = SAMPLE_RATE, layers=None, *, window: float = 30.0,
                     overlap: float = 5.0, precision: str = "fp32", window_batch: int = 1,
                     progress: bool = False, out_device=None, out_dtype=None) -> Features:
    """Hidden states of ``muq`` for ``wav``. Returns :class:`Features` with ``hidden`` ``[B, L, T, D]``
    on ``out_device`` (default: the model's device) as ``out_dtype`` (default float32, or float16): the
    windows run on the model's device and each is moved there as it is done, so the features of a long
    track need not fit on the GPU. ``precision="bf16"`` runs the encoder under bfloat16 autocast (the mel
    front end stays float32); ``"fp32"`` disables autocast, also inside an outer ``torch.autocast``.
    Clips shorter than ``muq.min_samples`` at 24 kHz (≈43 ms) raise :class:`AudioError`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    layers = resolve_layers(muq, layers)
    out_device, out_dtype = output_placement(muq, out_device, out_dtype)
    device = next(muq.parameters()).device
    x = as_batch_mono(wav, sample_rate).to(device)
    b, s = x.shape
    if s < muq.min_samples:
        raise AudioError(f"audio too short: {s} samples at 24 kHz ({s / SAMPLE_RATE * 1000:.1f} ms); MuQ needs "
                         f"at least {muq.min_samples} samples (~{muq.min_samples / SAMPLE_RATE * 1000:.0f} ms, "
                         "one 25 Hz frame plus the STFT padding). Pad the clip if it is intentionally short.")
    win, ov = window_sizes(muq, window, overlap)
    upto = max(layers)
    plan = window_plan(s, win, ov, muq.samples_per_frame)

    with torch.inference_mode(), _autocast(precision, device):
        if len(plan) == 1:
            hs = muq.encode(x, upto=upto, keep=set(layers))
            hidden = torch.stack([hs[i].float() for i in layers], dim=1)
            return Features(hidden.to(out_device, out_dtype), layers, muq.frame_rate)
    hidden = run_windows(muq, plan, lambda st, en: x[:, st:en], b, layers, precision=precision,
                         window_batch=window_batch, progress=progress, out_device=out_device,
                         out_dtype=out_dtype)
    return Features(hidden, layers, muq.frame_rate)


def window_sizes(muq, window: float, overlap: float) -> tuple[int, int]:
    """Window and overlap in 24 kHz samples, rounded to whole output frames."""
    unit = muq.samples_per_frame
    win = max(unit, round(window * SAMPLE_RATE / unit) * unit)
    ov = round(overlap * SAMPLE_RATE / unit) * unit
    if not 0 <= ov < win:
        raise ConfigError(f"overlap ({overlap} s) must be >= 0 and shorter than window ({window} s)")
    return win, ov


def run_windows(muq, plan, read, batch: int, layers, *, precision: str = "fp32", window_batch: int = 1,
                progress: bool = False, out_device=None, out_dtype=None) -> torch.Tensor:
    """Encode every window of ``plan`` (``read(start, end) -> [B, n]`` 24 kHz audio) and cross-fade the
    results into ``[B, L, T, D]``, where T is the single-pass frame count of the whole input.

    Windows run on the model's device; the output lives on ``out_device`` as ``out_dtype``
    (:func:`output_placement`). Cross-fading is done in float32 on ``out_device`` over the frames still
    open (those of the current window: window starts increase, so earlier frames are final); final frames
    are divided by their weight sum and cast once. Float32 output equals accumulating the whole track."""
    device = next(muq.parameters()).device
    out_device, out_dtype = output_placement(muq, out_device, out_dtype)
    unit, upto, keep = muq.samples_per_frame, max(layers), set(layers)
    total = muq.num_frames(plan[-1][1])
    spans = [(st // unit, st // unit + muq.num_frames(en - st)) for st, en in plan]
    weights, wsum = [], torch.zeros(total, dtype=torch.float32, device=out_device)
    for k, (a, z) in enumerate(spans):
        left = spans[k - 1][1] - a if k > 0 else 0       # frames shared with the previous window
        right = z - spans[k + 1][0] if k + 1 < len(plan) else 0
        weights.append(_crossfade(z - a, left, right, device))
        wsum[a:z] += weights[-1].to(out_device)
    assert torch.all(wsum > 0), "window plan left frames uncovered"
    out = torch.empty(batch, len(layers), total, muq.hidden_size, dtype=out_dtype, device=out_device)
    acc = torch.zeros(batch, len(layers), 0, muq.hidden_size, dtype=torch.float32, device=out_device)
    acc_start = 0                                          # acc holds frames acc_start .. acc_start + len

    def flush(upto_frame: int):
        nonlocal acc, acc_start
        n = max(0, min(upto_frame, acc_start + acc.shape[2]) - acc_start)
        if n:
            out[:, :, acc_start:acc_start + n] = (acc[:, :, :n] / wsum[acc_start:acc_start + n, None]).to(out_dtype)
            acc, acc_start = acc[:, :, n:], acc_start + n

    bars = _progress(len(plan) * batch, progress)
    with torch.inference_mode(), _autocast(precision, device):
        for (st, en), (a, z), w in zip(plan, spans, weights):
            flush(a)
            grow = z - (acc_start + acc.shape[2])
            if grow > 0:
                acc = torch.cat([acc, acc.new_zeros(batch, len(layers), grow, muq.hidden_size)], dim=2)
            chunk = read(st, en).to(device)
            for i0 in range(0, batch, window_batch):
                hs = muq.encode(chunk[i0:i0 + window_batch], upto=upto, keep=keep)
                h = torch.stack([hs[i].float() for i in layers], dim=1)  # [b', L, t, D]
                acc[i0:i0 + window_batch, :, a - acc_start:z - acc_start] += (h * w[:, None]).to(out_device)
                bars.update(h.shape[0])
        flush(total)
    bars.close()
    return out


def extract_file(muq, path, layers=None, *, read_rate: int | None = None, window: float = 30.0,
                 overlap: float = 5.0, precision: str = "fp32", progress: bool = False, out_device=None,
                 out_dtype=None) -> Features:
    """Features of an audio file read window by window: memory is bounded by one window of audio plus
    the output features (on ``out_device`` as ``out_dtype``, see :func:`extract_features`), whatever the
    file's length.

    ``read_rate``: the file is read (mono) at this rate, the rate the host model hears (e.g. 16000 for
    the transcriber), and each window resampled from there to 24 kHz with :func:`booster.audio.resample`,
    as ``extract(wav, read_rate)`` does: MuQ sees the same band-limited audio as in training. None reads
    at 24 kHz (full band). A file no longer than one window gives exactly
    ``extract_features(muq, FileReader(path, read_rate, 1)(0, n), read_rate)``; longer files equal it up
    to float rounding of the resampler at window edges."""
    from ..audio import FileReader

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    layers = resolve_layers(muq, layers)
    rate = SAMPLE_RATE if read_rate is None else int(read_rate)
    if rate <= 0:
        raise ConfigError(f"read_rate must be a positive sample rate in Hz, got {read_rate!r}")
    reader = FileReader(path, rate, 1)  # mono at the read rate, read window by window
    total = resampled_length(reader.length, rate, SAMPLE_RATE)   # 24 kHz samples
    if total < muq.min_samples:
        meta = reader.meta
        raise AudioError(f"{str(path)!r} is too short: {meta.frames} samples at {meta.sample_rate} Hz "
                         f"({meta.duration * 1000:.1f} ms); MuQ needs at least "
                         f"~{muq.min_samples / SAMPLE_RATE * 1000:.0f} ms")
    opts = dict(precision=precision, out_device=out_device, out_dtype=out_dtype)
    win, ov = window_sizes(muq, window, overlap)
    plan = window_plan(total, win, ov, muq.samples_per_frame)
    if len(plan) == 1:
        return extract_features(muq, reader(0, reader.length), rate, layers, window=window, overlap=overlap,
                                **opts)

    def read(st: int, en: int) -> torch.Tensor:
        """24 kHz samples ``st .. en`` as ``[1, en - st]`` (the batch of one), resampled from the read rate
        piece by piece as the whole signal would be (:func:`booster.audio.resampled_span`)."""
        seg = resampled_span(lambda lo, hi: reader(lo, hi - lo), reader.length, rate, SAMPLE_RATE, st, en - st)
        return torch.zeros(1, en - st) if seg is None else seg

    hidden = run_windows(muq, plan, read, 1, layers, progress=progress, **opts)
    return Features(hidden, layers, muq.frame_rate)


def _crossfade(n: int, left: int, right: int, device) -> torch.Tensor:
    """Per-frame weight of a window: 0 on the guard frames of an edge shared with a neighbour, then a
    linear ramp across the rest of the shared frames (complementary to the neighbour's ramp)."""
    t = torch.arange(n, dtype=torch.float64, device=device) + 0.5
    w = torch.ones(n, dtype=torch.float64, device=device)
    for shared, pos in ((left, t), (right, n - t)):
        if shared > 0:
            guard = GUARD_FRAMES if shared > 2 * GUARD_FRAMES else 0
            w = torch.minimum(w, ((pos - guard) / (shared - 2 * guard)).clamp(0.0, 1.0))
    return w.float()


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="MuQ windows", unit="win", leave=False)
