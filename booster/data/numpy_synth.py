"""A pure-numpy General-MIDI-ish synthesiser, the fallback when FluidSynth is unavailable.

Timbres are chosen by GM program family: synthesised drum kit (kick sweep, noise snare, hats,
cymbals, toms), additive piano/guitar (decaying harmonics), organ, saw-like bass, detuned pads and a
formant-shaped "voice" with vibrato for the lead. Deterministic for a given seed. Stems are
``[C=2, S]`` float32.
"""
from __future__ import annotations

import numpy as np
import pretty_midi

from .songs import CLAP, CRASH, HAT, KICK, OPEN_HAT, RIDE, SNARE, Song

VERSION = 2     # what it renders; 2: every tone has its pitch (1 rendered non-voice programs as pitchless DC)
RELEASE = 0.12  # seconds of release after note off
VOWELS = ((700, 1220, 2600), (400, 2000, 2550), (550, 900, 2450))  # a, e, o formants (Hz)


def render_numpy(song: Song, *, frames: int, sample_rate: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Render every stem of ``song`` to ``[2, frames]`` float32."""
    out = {}
    for s_idx, (stem, insts) in enumerate(song.parts.items()):
        buf = np.zeros((2, frames), dtype=np.float64)
        for i_idx, inst in enumerate(insts):
            rng = np.random.default_rng([seed, s_idx, i_idx])
            pan = 0.0 if stem in ("bass", "vocals") or inst.is_drum else float(rng.uniform(-0.5, 0.5))
            for n_idx, note in enumerate(inst.notes):
                note_rng = np.random.default_rng([seed, s_idx, i_idx, n_idx])
                if inst.is_drum:
                    wave, note_pan = _drum(note, sample_rate, note_rng)
                else:
                    wave, note_pan = _tone(inst.program, note, sample_rate, note_rng), pan
                first = int(round(note.start * sample_rate))
                wave = wave[: max(0, frames - first)]
                left, right = np.cos((note_pan + 1) * np.pi / 4), np.sin((note_pan + 1) * np.pi / 4)
                buf[0, first:first + len(wave)] += left * wave
                buf[1, first:first + len(wave)] += right * wave
        out[stem] = (0.3 * buf).astype(np.float32)
    return out


def _adsr(n: int, held: int, sr: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.where(t < attack, t / max(attack, 1e-4),
                   sustain + (1 - sustain) * np.exp(-(t - attack) / max(decay, 1e-4)))
    off = held / sr
    level_at_off = env[min(held, n - 1)] if n else 0.0
    return np.where(t < off, env, level_at_off * np.exp(-(t - off) / max(release / 4, 1e-4)))


def _tone(program: int, note: pretty_midi.Note, sr: int, rng: np.random.Generator) -> np.ndarray:
    f0 = 440.0 * 2 ** ((note.pitch - 69) / 12)
    held = max(1, int(round((note.end - note.start) * sr)))
    n = held + int(RELEASE * sr)
    t = np.arange(n) / sr
    vel = note.velocity / 127
    family = program // 8
    vibrato = 0.0
    if program in (52, 53, 54, 85):  # voice: vibrato after 150 ms, formant weighting
        vibrato = 0.006 * np.clip((t - 0.15) * 4, 0, 1) * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * f0 * np.cumsum(np.ones(n) + vibrato) / sr   # [n] (vibrato may be the scalar 0)
    harmonics = np.arange(1, max(2, min(16, int(sr / 2.2 / f0))) + 1)
    decay_h = np.full(len(harmonics), np.inf)
    if family in (4, 6, 11) or program in (52, 53, 54, 85, 88, 89, 90, 91, 94):  # strings, brass, pads, voice
        if program in (52, 53, 54, 85):
            formants = VOWELS[rng.integers(len(VOWELS))]
            amps = sum(np.exp(-0.5 * ((harmonics * f0 - f) / 120.0) ** 2) for f in formants) + 0.3 / harmonics
        else:
            amps = 1.0 / harmonics
        env = _adsr(n, held, sr, 0.08, 0.3, 0.8, 0.3)
    elif family == 2:  # organ: a few steady drawbars
        amps = np.where(np.isin(harmonics, (1, 2, 3, 4, 6, 8)), 1.0 / np.sqrt(harmonics), 0.0)
        env = _adsr(n, held, sr, 0.01, 0.1, 1.0, 0.05)
    elif family == 4 or program in range(32, 40):  # bass: saw, brighter with velocity
        amps = 1.0 / harmonics * np.exp(-harmonics / (3 + 5 * vel))
        env = _adsr(n, held, sr, 0.005, 0.4, 0.6, 0.05)
    else:  # piano, e-piano, guitar: decaying harmonics, higher ones faster
        amps = 1.0 / harmonics ** 1.2
        decay_h = 1.2 / harmonics ** 0.7 * (0.5 if family == 3 else 1.0)
        env = _adsr(n, held, sr, 0.003, 0.5, 0.3, 0.1)
    wave = np.zeros(n)
    for h, a, d in zip(harmonics, amps, decay_h):
        partial = a * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
        wave += partial if np.isinf(d) else partial * np.exp(-t / d)
    peak = np.abs(wave).max() or 1.0
    return vel * env * wave / peak


def _drum(note: pretty_midi.Note, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    vel = note.velocity / 127
    p = note.pitch
    if p == KICK:
        n = int(0.35 * sr)
        t = np.arange(n) / sr
        freq = 45 + 90 * np.exp(-t * 30)
        return vel * np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t * 9), 0.0
    if p in (SNARE, CLAP):
        n = int(0.25 * sr)
        t = np.arange(n) / sr
        noise = np.diff(rng.standard_normal(n + 1)) * 0.5
        body = np.sin(2 * np.pi * 185 * t) * np.exp(-t * 30)
        return vel * (0.7 * noise * np.exp(-t * 18) + 0.5 * body), 0.05
    if p in (HAT, OPEN_HAT, CRASH, RIDE):
        length = {HAT: 0.08, OPEN_HAT: 0.35, CRASH: 1.2, RIDE: 0.8}[p]
        n = int(length * sr)
        t = np.arange(n) / sr
        noise = np.diff(np.diff(rng.standard_normal(n + 2))) * 0.25
        level = 0.35 if p in (HAT, OPEN_HAT) else 0.45
        return vel * level * noise * np.exp(-t * 5 / length), 0.3 if p in (HAT, OPEN_HAT) else -0.3
    n = int(0.4 * sr)  # toms and anything else: pitched sweep
    t = np.arange(n) / sr
    base = 70 + (p - 41) * 12
    freq = base * (1 + 0.5 * np.exp(-t * 25))
    return vel * 0.8 * np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t * 8), float(np.clip((p - 47) / 8, -0.6, 0.6))
