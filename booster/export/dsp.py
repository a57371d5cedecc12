"""What an exported graph leaves to the host program, in numpy: the steps of a manifest's ``pre`` / ``post``.

Shape glossary: B batch (chunks), C channels, F frequency bins, T frames, S samples, N sources; a trailing
axis of 2 holds (real, imaginary) of a complex value.

ONNX graphs hold no complex numbers, and ONNX Runtime's STFT op is missing from most other runtimes, so a
host's STFT and inverse STFT run outside the graph, exactly as ``torch.stft`` / ``torch.istft`` compute them
(:func:`stft` / :func:`istft` reproduce them to float rounding). Each step is a JSON object with ``op``,
``in`` (a tensor name or a list of names) and ``out``; the runner keeps a table of named arrays: ``mix``
(the chunk batch ``[B, C, S]``) first, then the graph's outputs, then what the steps write. Ops:

``stft``     ``in`` ``[..., S]`` -> ``[..., F, T, 2]``. ``pads``: ``[[left, right, mode], ...]`` applied first,
             in order (mode "reflect", edge excluded, or "constant": zeros); then torch.stft with ``n_fft``, ``hop``, ``win_length``,
             ``window`` ("hann": periodic, ``0.5 - 0.5 cos(2 pi n / win_length)``, zero-padded to ``n_fft``
             in the centre), ``center`` (pad ``n_fft // 2`` each side with ``center_pad_mode``),
             ``normalized`` (times ``n_fft ** -0.5``), onesided; then ``bins`` ``[lo, hi]`` and ``frames``
             ``[lo, hi]`` are kept.
``istft``    ``in`` ``[..., F, T, 2]`` -> ``[..., S]``: ``pad_bins`` / ``pad_frames`` ``[before, after]`` zeros
             first; then torch.istft (same settings as ``stft``, ``length`` samples, window-square
             normalisation), then ``crop`` ``[lo, hi]`` and ``fit`` (zero-pad or cut to that many samples).
``complex_mul``  ``in`` ``[a, b]`` (broadcast, ``[..., 2]``) -> ``a * b``; ``expand``: axis inserted in ``a``.
``phase``    ``in`` ``[mag [B, N, C, F, T], spec [B, C, F, T, 2]]`` -> ``mag * (cos, sin)(atan2(im, re))``
             ``[B, N, C, F, T, 2]`` (Open-Unmix's estimate with the mixture's phase).
``residual`` ``in`` ``[y [B, N, ..., 2], spec [B, ..., 2]]`` -> ``y`` with ``spec - sum_n y`` appended on N.
``add``      ``in`` ``[a, b, ...]`` -> their sum.
"""
from __future__ import annotations

import numpy as np

from booster.errors import CheckpointError


def window(kind: str, n: int) -> np.ndarray:
    if kind != "hann":
        raise CheckpointError(f"unknown window {kind!r} in the manifest (this runner knows 'hann')")
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float64)


def _frame_window(n_fft: int, win_length: int, kind: str) -> np.ndarray:
    w = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    w[left:left + win_length] = window(kind, win_length)
    return w


def _pad(x: np.ndarray, left: int, right: int, mode: str) -> np.ndarray:
    if left == right == 0:
        return x
    spec = [(0, 0)] * (x.ndim - 1) + [(int(left), int(right))]
    return np.pad(x, spec, mode="reflect" if mode == "reflect" else "constant")


def stft(x: np.ndarray, *, n_fft: int, hop: int, win_length: int | None = None, window: str = "hann",
         center: bool = True, center_pad_mode: str = "reflect", normalized: bool = False, pads=(), bins=None,
         frames=None, **_) -> np.ndarray:
    """``[..., S]`` -> ``[..., F, T, 2]`` float32 (see the module docstring)."""
    win_length = win_length or n_fft
    x = np.asarray(x, np.float64)
    for left, right, mode in pads:
        x = _pad(x, left, right, mode)
    if center:
        x = _pad(x, n_fft // 2, n_fft // 2, center_pad_mode)
    count = 1 + (x.shape[-1] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]          # [T, n_fft]
    z = np.fft.rfft(x[..., idx] * _frame_window(n_fft, win_length, window), axis=-1)   # [..., T, F]
    if normalized:
        z = z / np.sqrt(n_fft)
    z = np.swapaxes(z, -1, -2)                                                   # [..., F, T]
    if bins is not None:
        z = z[..., bins[0]:bins[1], :]
    if frames is not None:
        z = z[..., frames[0]:frames[1]]
    return np.stack([z.real, z.imag], -1).astype(np.float32)


def istft(z: np.ndarray, *, n_fft: int, hop: int, win_length: int | None = None, window: str = "hann",
          center: bool = True, normalized: bool = False, length: int | None = None, pad_bins=(0, 0),
          pad_frames=(0, 0), crop=None, fit: int | None = None, **_) -> np.ndarray:
    """``[..., F, T, 2]`` -> ``[..., S]`` float32, as ``torch.istft`` (see the module docstring)."""
    win_length = win_length or n_fft
    z = np.asarray(z, np.float64)
    z = z[..., 0] + 1j * z[..., 1]
    lead = z.ndim - 2
    z = np.pad(z, [(0, 0)] * lead + [tuple(pad_bins), tuple(pad_frames)])
    if normalized:
        z = z * np.sqrt(n_fft)
    w = _frame_window(n_fft, win_length, window)
    frames = np.fft.irfft(np.swapaxes(z, -1, -2), n=n_fft, axis=-1) * w           # [..., T, n_fft]
    count = frames.shape[-2]
    total = n_fft + hop * (count - 1)
    y = np.zeros(frames.shape[:-2] + (total,))
    env = np.zeros(total)
    for t in range(count):
        y[..., t * hop:t * hop + n_fft] += frames[..., t, :]
        env[t * hop:t * hop + n_fft] += w * w
    start = n_fft // 2 if center else 0
    end = total - (n_fft // 2 if center else 0) if length is None else min(total, start + int(length))
    y = y[..., start:end] / np.where(env[start:end] > 1e-11, env[start:end], 1.0)
    if length is not None and y.shape[-1] < length:
        y = _pad(y, 0, int(length) - y.shape[-1], "constant")
    if crop is not None:
        y = y[..., crop[0]:crop[1]]
    if fit is not None:
        y = y[..., :fit] if y.shape[-1] >= fit else _pad(y, 0, fit - y.shape[-1], "constant")
    return y.astype(np.float32)


def complex_mul(a: np.ndarray, b: np.ndarray, expand: int | None = None) -> np.ndarray:
    if expand is not None:
        a = np.expand_dims(a, expand)
    re = a[..., 0] * b[..., 0] - a[..., 1] * b[..., 1]
    im = a[..., 0] * b[..., 1] + a[..., 1] * b[..., 0]
    return np.stack([re, im], -1)


def phase(mag: np.ndarray, spec: np.ndarray) -> np.ndarray:
    angle = np.arctan2(spec[..., 1], spec[..., 0])[:, None]
    return np.stack([mag * np.cos(angle), mag * np.sin(angle)], -1).astype(np.float32)


def residual(y: np.ndarray, spec: np.ndarray) -> np.ndarray:
    return np.concatenate([y, (spec - y.sum(1))[:, None]], 1)


def run_steps(steps: list, table: dict) -> dict:
    """Apply a manifest's ``pre`` or ``post`` steps to the named arrays in ``table`` (updated, returned)."""
    for step in steps:
        op, names = step.get("op"), step.get("in")
        args = [table[n] for n in ([names] if isinstance(names, str) else names)]
        opts = {k: v for k, v in step.items() if k not in ("op", "in", "out", "meaning")}
        if op == "stft":
            out = stft(args[0], **opts)
        elif op == "istft":
            out = istft(args[0], **opts)
        elif op == "complex_mul":
            out = complex_mul(args[0], args[1], opts.get("expand"))
        elif op == "phase":
            out = phase(args[0], args[1])
        elif op == "residual":
            out = residual(args[0], args[1])
        elif op == "add":
            out = sum(args[1:], args[0])
        else:
            raise CheckpointError(f"unknown step {op!r} in the manifest; this runner knows stft, istft, "
                                  "complex_mul, phase, residual, add")
        table[step["out"]] = np.ascontiguousarray(out, dtype=np.float32)
    return table
