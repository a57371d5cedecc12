"""Random songs as MIDI: tempo, key, chord progression, drums, bass, chords/pads and a lead melody.

A :class:`Song` holds one ``pretty_midi.Instrument`` list per MUSDB stem name:
``drums`` (GM kit), ``bass``, ``other`` (chords, optionally a pad) and ``vocals`` (a monophonic lead
on a voice-like GM program). Every note time lies on the MIDI tick grid of the song's tempo, so the
notes written to a ``.mid`` file read back unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pretty_midi

from ..errors import ConfigError

STEMS = ("drums", "bass", "other", "vocals")
RESOLUTION = 960  # MIDI ticks per beat
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = {  # scale degrees (0 = tonic), one chord per bar
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4), (0, 3, 0, 4), (1, 4, 0, 0)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4)),
}
BASS_PROGRAMS = (33, 34, 35, 38, 39)  # finger, pick, fretless, synth bass 1/2
CHORD_PROGRAMS = (0, 4, 5, 16, 24, 25, 27, 48, 49, 89, 90)  # piano, e-piano, organ, guitars, strings, pads
PAD_PROGRAMS = (48, 49, 50, 88, 89, 91, 94)
VOICE_PROGRAMS = (52, 53, 54, 85)  # choir aahs, voice oohs, synth voice, lead 6 (voice)
KICK, SNARE, CLAP, HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 39, 42, 46, 49, 51
TOMS = (45, 47, 48, 50)
DRUM_STYLES = {  # steps of a 16-step bar
    "rock": {KICK: (0, 8), SNARE: (4, 12), HAT: tuple(range(0, 16, 2))},
    "four": {KICK: (0, 4, 8, 12), CLAP: (4, 12), HAT: (0, 4, 8, 12), OPEN_HAT: (2, 6, 10, 14)},
    "halftime": {KICK: (0, 10), SNARE: (8,), HAT: tuple(range(16))},
    "break": {KICK: (0, 6, 10), SNARE: (4, 12), HAT: tuple(range(0, 16, 2)), RIDE: (14,)},
}


@dataclass
class Song:
    """A generated song: musical parameters and one instrument list per stem."""

    name: str
    tempo: float  # beats per minute (exactly 60e6 / an integer number of microseconds)
    key: int  # tonic pitch class, 0 = C
    mode: str  # "major" | "minor"
    progression: tuple[int, ...]  # scale degrees, one per bar
    drum_style: str
    seconds: float
    parts: dict[str, list[pretty_midi.Instrument]] = field(default_factory=dict)

    @property
    def key_name(self) -> str:
        return f"{NOTE_NAMES[self.key]} {self.mode}"

    def midi(self, stem: str) -> pretty_midi.PrettyMIDI:
        """The notes of one stem as a ``PrettyMIDI`` at the song's tempo."""
        pm = pretty_midi.PrettyMIDI(resolution=RESOLUTION, initial_tempo=self.tempo)
        pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
        pm.key_signature_changes.append(pretty_midi.KeySignature(self.key + (12 if self.mode == "minor" else 0), 0.0))
        pm.instruments.extend(self.parts[stem])
        return pm

    def describe(self) -> dict:
        """JSON-friendly summary (written to ``meta.json``)."""
        return {
            "name": self.name, "tempo": self.tempo, "key": self.key_name, "seconds": self.seconds,
            "progression": [int(d) + 1 for d in self.progression], "drum_style": self.drum_style,
            "parts": {stem: [{"program": int(i.program), "is_drum": bool(i.is_drum), "name": i.name,
                              "notes": len(i.notes)} for i in insts] for stem, insts in self.parts.items()},
        }


class _Grid:
    """Converts 16th-note steps to seconds on the MIDI tick grid."""

    def __init__(self, tempo: float):
        self.beat = 60.0 / tempo
        self.tick = self.beat / RESOLUTION
        self.step = self.beat / 4

    def time(self, step: float) -> float:
        return round(step * RESOLUTION / 4) * self.tick

    def snap(self, t: float) -> float:
        return round(t / self.tick) * self.tick


def compose_song(rng: np.random.Generator, *, seconds: float, name: str = "song",
                 other_parts: int = 1) -> Song:
    """Compose a random song of ``seconds`` seconds from ``rng`` (deterministic for a given state).

    ``other_parts`` is 1 (chords) or 2 (chords + a sustained pad), both in the ``other`` stem.
    """
    if not seconds >= 1.0:
        raise ConfigError(f"song length must be at least 1 second, got {seconds}")
    if other_parts not in (1, 2):
        raise ConfigError(f"other_parts must be 1 or 2, got {other_parts}")
    us_per_beat = int(round(60e6 / rng.uniform(80, 140)))
    tempo = 60e6 / us_per_beat
    mode = "major" if rng.random() < 0.6 else "minor"
    key = int(rng.integers(12))
    progression = PROGRESSIONS[mode][rng.integers(len(PROGRESSIONS[mode]))]
    style = list(DRUM_STYLES)[rng.integers(len(DRUM_STYLES))]
    grid = _Grid(tempo)
    bars = math.ceil(seconds / (16 * grid.step))
    chords = [_chord(key, mode, progression[b % len(progression)]) for b in range(bars)]
    song = Song(name=name, tempo=tempo, key=key, mode=mode, progression=tuple(progression),
                drum_style=style, seconds=float(seconds))
    song.parts["drums"] = [_drums(rng, grid, bars, style)]
    song.parts["bass"] = [_bass(rng, grid, chords)]
    song.parts["other"] = [_chords(rng, grid, chords)]
    if other_parts == 2:
        song.parts["other"].append(_pad(rng, grid, chords))
    song.parts["vocals"] = [_lead(rng, grid, chords, key, mode)]
    for insts in song.parts.values():
        for inst in insts:
            _trim(inst, seconds, grid)
    return song


def _chord(key: int, mode: str, degree: int, seventh: bool = False) -> tuple[int, ...]:
    """Pitch classes (root first) of the diatonic triad or seventh on ``degree``."""
    scale = SCALES[mode]
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    return tuple((key + scale[(degree + s) % 7]) % 12 for s in steps)


def _note(inst: pretty_midi.Instrument, grid: _Grid, step: float, length: float, pitch: int,
          velocity: float) -> None:
    start, end = grid.time(step), grid.time(step + length)
    inst.notes.append(pretty_midi.Note(int(np.clip(round(velocity), 1, 127)), int(pitch), start, end))


def _drums(rng: np.random.Generator, grid: _Grid, bars: int, style: str) -> pretty_midi.Instrument:
    inst = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    pattern = DRUM_STYLES[style]
    for bar in range(bars):
        base = bar * 16
        hits: dict[int, set[int]] = {}
        for pitch, steps in pattern.items():
            for s in steps:
                hits.setdefault(s, set()).add(pitch)
        if rng.random() < 0.35:
            hits.setdefault(int(rng.choice((3, 7, 11, 14))), set()).add(KICK)
        if bar % 4 == 3 and rng.random() < 0.7:  # fill on the last beat of a phrase
            for s in range(12, 16):
                hits[s] = {SNARE if rng.random() < 0.5 else int(rng.choice(TOMS))}
        if bar % 4 == 0:
            hits.setdefault(0, set()).add(CRASH)
        for s in sorted(hits):
            for pitch in sorted(hits[s]):
                accent = 1.0 if s % 4 == 0 else 0.8 if s % 2 == 0 else 0.65
                vel = (115 if pitch in (KICK, SNARE, CLAP, CRASH) else 90) * accent + rng.normal(0, 6)
                _note(inst, grid, base + s, 1, pitch, vel)
    return inst


def _fit(pc: int, low: int, high: int) -> int:
    """The pitch of pitch class ``pc`` in ``[low, low + 12)`` or below ``high``."""
    p = low + (pc - low) % 12
    return p if p <= high else p - 12


def _bass(rng: np.random.Generator, grid: _Grid, chords: list[tuple[int, ...]]) -> pretty_midi.Instrument:
    inst = pretty_midi.Instrument(program=int(rng.choice(BASS_PROGRAMS)), name="bass")
    style = rng.choice(("eighths", "quarters", "synco", "walking"))
    rhythm = {"eighths": (0, 2, 4, 6, 8, 10, 12, 14), "quarters": (0, 4, 8, 12),
              "synco": (0, 3, 6, 8, 11, 14), "walking": (0, 4, 8, 12)}[style]
    for bar, chord in enumerate(chords):
        root = _fit(chord[0], 31, 45)
        for k, s in enumerate(rhythm):
            nxt = rhythm[k + 1] if k + 1 < len(rhythm) else 16
            pitch = root
            if style == "walking":
                pitch = _fit(chord[k % 3] if k < 3 else chord[1], 31, 48)
            elif style == "synco" and k in (2, 4):
                pitch = root + 12 if rng.random() < 0.5 else _fit(chord[2], 31, 48)
            elif style == "quarters" and k == 2 and rng.random() < 0.5:
                pitch = _fit(chord[2], 31, 48)
            _note(inst, grid, bar * 16 + s, (nxt - s) * 0.85, pitch, 95 + rng.normal(0, 8))
    return inst


def _voicing(chord: tuple[int, ...], low: int = 53, high: int = 72) -> list[int]:
    return sorted(_fit(pc, low, high) for pc in chord)


def _chords(rng: np.random.Generator, grid: _Grid, chords: list[tuple[int, ...]]) -> pretty_midi.Instrument:
    program = int(rng.choice(CHORD_PROGRAMS))
    inst = pretty_midi.Instrument(program=program, name="chords")
    style = "sustain" if program in PAD_PROGRAMS else str(rng.choice(("sustain", "stabs", "arp", "pulse")))
    for bar, chord in enumerate(chords):
        notes = _voicing(chord)
        base = bar * 16
        if style == "sustain":
            for p in notes:
                _note(inst, grid, base, 15.5, p, 70 + rng.normal(0, 5))
        elif style == "stabs":
            for s in (0, 6, 8, 14):
                for p in notes:
                    _note(inst, grid, base + s, 1.5, p, 85 + rng.normal(0, 6))
        elif style == "pulse":
            for s in (0, 4, 8, 12):
                for p in notes:
                    _note(inst, grid, base + s, 3.2, p, 78 + rng.normal(0, 6))
        else:  # arpeggio in 8ths, up and down
            order = notes + [notes[0] + 12] + notes[1:][::-1]
            for k, s in enumerate(range(0, 16, 2)):
                _note(inst, grid, base + s, 1.8, order[k % len(order)], 80 + rng.normal(0, 6))
    return inst


def _pad(rng: np.random.Generator, grid: _Grid, chords: list[tuple[int, ...]]) -> pretty_midi.Instrument:
    inst = pretty_midi.Instrument(program=int(rng.choice(PAD_PROGRAMS)), name="pad")
    for bar, chord in enumerate(chords):
        for p in _voicing(chord, 60, 79):
            _note(inst, grid, bar * 16, 15.8, p, 55 + rng.normal(0, 4))
    return inst


RHYTHMS = (  # (step, length in steps) within a bar
    ((0, 4), (4, 2), (6, 2), (8, 6)),
    ((0, 2), (2, 2), (4, 4), (10, 2), (12, 4)),
    ((0, 6), (6, 2), (8, 4), (12, 4)),
    ((2, 2), (4, 2), (6, 2), (8, 3), (11, 5)),
    ((0, 3), (3, 3), (6, 2), (8, 8)),
)


def _lead(rng: np.random.Generator, grid: _Grid, chords: list[tuple[int, ...]], key: int,
          mode: str) -> pretty_midi.Instrument:
    inst = pretty_midi.Instrument(program=int(rng.choice(VOICE_PROGRAMS)), name="lead")
    scale = sorted({(key + s) % 12 for s in SCALES[mode]})
    pitches = [p for p in range(60, 80) if p % 12 in scale]
    idx = int(rng.integers(2, len(pitches) - 4))
    for bar, chord in enumerate(chords):
        rhythm = RHYTHMS[rng.integers(len(RHYTHMS))]
        rest_tail = bar % 2 == 1 and rng.random() < 0.5  # breathe at the end of a phrase
        for k, (s, length) in enumerate(rhythm):
            if rest_tail and s >= 8:
                break
            if s % 8 == 0:  # strong beat: nearest chord tone
                tones = [i for i, p in enumerate(pitches) if p % 12 in chord]
                idx = min(tones, key=lambda i: (abs(i - idx), i))
            else:
                idx = int(np.clip(idx + rng.choice((-2, -1, -1, 1, 1, 2)), 0, len(pitches) - 1))
            _note(inst, grid, bar * 16 + s, length - 0.25, pitches[idx], 92 + rng.normal(0, 6))
    return inst


def _trim(inst: pretty_midi.Instrument, seconds: float, grid: _Grid) -> None:
    """Drop notes starting in the last 100 ms and end the others by ``seconds``."""
    end = grid.snap(seconds - grid.tick) if grid.snap(seconds) > seconds else grid.snap(seconds)
    kept = []
    for n in inst.notes:
        if n.start < seconds - 0.1:
            n.end = min(n.end, end)
            kept.append(n)
    inst.notes = sorted(kept, key=lambda n: (n.start, n.pitch))
