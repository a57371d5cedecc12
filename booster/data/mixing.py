"""An "engineered" mix of stems: per-stem EQ, compression, gain and pan, with JSON parameters.

Processing order per stem: EQ (low shelf, peaking, high shelf; RBJ-cookbook biquads) → feed-forward
compressor (peak detector with attack/release, hard knee, make-up gain) → gain → constant-power
balance. The mix is the sum of processed stems. Used as the target of mixing recipes; the parameters
that produced it are saved next to it. Shapes: stems ``[C=2, S]`` float arrays.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

COMP_BLOCK = 32  # samples per gain-computer step


def random_mix_params(rng: np.random.Generator, stems: list[str]) -> dict[str, dict]:
    """Random, plausible mixing parameters for each stem (JSON-serialisable)."""
    params = {}
    for stem in stems:
        central = stem in ("bass", "vocals", "drums")
        params[stem] = {
            "gain_db": round(float(rng.uniform(-6.0, 3.0)), 3),
            "pan": round(float(rng.uniform(-0.15, 0.15) if central else rng.uniform(-0.6, 0.6)), 3),
            "eq": [
                {"type": "low_shelf", "freq": round(float(rng.uniform(80, 250)), 1),
                 "gain_db": round(float(rng.uniform(-6, 6)), 2), "q": 0.707},
                {"type": "peak", "freq": round(float(math.exp(rng.uniform(math.log(300), math.log(4000)))), 1),
                 "gain_db": round(float(rng.uniform(-6, 6)), 2), "q": round(float(rng.uniform(0.7, 2.0)), 3)},
                {"type": "high_shelf", "freq": round(float(rng.uniform(4000, 10000)), 1),
                 "gain_db": round(float(rng.uniform(-6, 6)), 2), "q": 0.707},
            ],
            "compressor": {
                "threshold_db": round(float(rng.uniform(-30, -10)), 2),
                "ratio": round(float(rng.uniform(1.5, 6.0)), 3),
                "attack_ms": round(float(rng.uniform(2, 30)), 2),
                "release_ms": round(float(rng.uniform(40, 300)), 1),
                "makeup_db": round(float(rng.uniform(0, 6)), 2),
            },
        }
    return params


def biquad(kind: str, freq: float, gain_db: float, q: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ Audio-EQ-Cookbook coefficients ``(b, a)`` normalised so ``a[0] == 1``."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * min(freq, 0.45 * sample_rate) / sample_rate
    cos, alpha = math.cos(w0), math.sin(w0) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * A, -2 * cos, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cos, 1 - alpha / A]
    elif kind in ("low_shelf", "high_shelf"):
        s = 2 * math.sqrt(A) * alpha
        sign = 1 if kind == "low_shelf" else -1
        b = [A * ((A + 1) - sign * (A - 1) * cos + s), sign * 2 * A * ((A - 1) - sign * (A + 1) * cos),
             A * ((A + 1) - sign * (A - 1) * cos - s)]
        a = [(A + 1) + sign * (A - 1) * cos + s, -sign * 2 * ((A - 1) + sign * (A + 1) * cos),
             (A + 1) + sign * (A - 1) * cos - s]
    else:
        raise ValueError(f"unknown EQ band type {kind!r}")
    b, a = np.asarray(b), np.asarray(a)
    return b / a[0], a / a[0]


def equalize(x: np.ndarray, bands: list[dict], sample_rate: int) -> np.ndarray:
    """Apply EQ ``bands`` along the last axis of ``x`` ``[C, S]``."""
    for band in bands:
        b, a = biquad(band["type"], band["freq"], band["gain_db"], band["q"], sample_rate)
        x = lfilter(b, a, x, axis=-1)
    return x


def compress(x: np.ndarray, *, threshold_db: float, ratio: float, attack_ms: float, release_ms: float,
             makeup_db: float, sample_rate: int) -> np.ndarray:
    """Stereo-linked feed-forward compressor on ``x`` ``[C, S]`` (gain computed per 32-sample block)."""
    n = x.shape[-1]
    blocks = math.ceil(n / COMP_BLOCK)
    padded = np.pad(np.abs(x).max(0), (0, blocks * COMP_BLOCK - n))
    peaks = padded.reshape(blocks, COMP_BLOCK).max(1)
    level_db = 20 * np.log10(np.maximum(peaks, 1e-9))
    over = np.maximum(level_db - threshold_db, 0.0)
    target = -over * (1 - 1 / ratio)  # gain reduction in dB, <= 0
    dt = COMP_BLOCK / sample_rate
    att, rel = math.exp(-dt / (attack_ms / 1000)), math.exp(-dt / (release_ms / 1000))
    gain = np.empty(blocks)
    g = 0.0
    for i, t in enumerate(target.tolist()):
        coef = att if t < g else rel
        g = coef * g + (1 - coef) * t
        gain[i] = g
    centers = (np.arange(blocks) + 0.5) * COMP_BLOCK
    curve = np.interp(np.arange(n), centers, gain)
    return x * 10 ** ((curve + makeup_db) / 20)


def balance(x: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power balance of a stereo ``[2, S]`` signal; ``pan`` in [-1, 1], unity at 0."""
    angle = (pan + 1) * math.pi / 4
    return np.stack([x[0] * math.cos(angle) * math.sqrt(2), x[1] * math.sin(angle) * math.sqrt(2)])


def engineered_mix(stems: dict[str, np.ndarray], params: dict[str, dict],
                   sample_rate: int) -> dict[str, np.ndarray]:
    """Processed stems ``{name: [2, S]}`` (float64); their sum is the engineered mix."""
    out = {}
    for name, x in stems.items():
        p = params[name]
        y = equalize(np.asarray(x, dtype=np.float64), p["eq"], sample_rate)
        y = compress(y, sample_rate=sample_rate, **p["compressor"])
        y = y * 10 ** (p["gain_db"] / 20)
        out[name] = balance(y, p["pan"])
    return out
