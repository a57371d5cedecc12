"""Shared helpers of the transcription tests (a uniquely named module: conftest modules collide)."""
from __future__ import annotations

import pretty_midi


def known_notes() -> list[pretty_midi.Note]:
    """Notes on the 31.25 Hz grid (16 kHz, hop 512): a chord, repeated same-pitch notes back to back,
    a held note across others, velocities that survive the /127 round trip."""
    fr = 16000 / 512
    spec = [(0, 12, 60, 80), (0, 12, 64, 70), (0, 12, 67, 60), (12, 20, 60, 100), (20, 30, 60, 30),
            (5, 60, 48, 90), (31, 40, 72, 127), (45, 50, 21, 1), (45, 55, 108, 64)]
    return [pretty_midi.Note(velocity=v, pitch=p, start=a / fr, end=b / fr) for a, b, p, v in spec]
