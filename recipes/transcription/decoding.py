"""Decoding: frame-wise predictions → notes → MIDI / CSV.

Shape glossary: T frames, P pitches. Rolls are ``[T, P]`` (numpy or torch) on the grid of
:func:`booster.data.pairs.frame_targets`: frame ``t`` at ``t / frame_rate`` seconds, column ``p`` is MIDI
pitch ``pitch_low + p``. Notes are ``pretty_midi.Note`` objects (velocity, pitch, start, end), as the pair
readers return them.

:func:`decode_notes` (Onsets and Frames): a note starts where the onset probability crosses the threshold
(first frame of a run above it) and lasts while the frame (or onset) probability stays above its threshold,
until the next onset of the same pitch; its velocity is the mean predicted velocity over its onset run.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from booster.errors import ConfigError
from booster.fsutil import atomic_path

CSV_HEADER = ("onset_s", "offset_s", "pitch", "velocity")


def _np(x) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def decode_notes(onset, frame, velocity=None, *, frame_rate: float, pitch_low: int = 21,
                 onset_threshold: float = 0.5, frame_threshold: float = 0.5) -> list[pretty_midi.Note]:
    """Notes from onset / frame probabilities ``[T, P]`` (and velocity ``[T, P]`` in [0, 1], velocity/127;
    None: velocity 64), sorted by (start, pitch). Times are ``frame / frame_rate`` seconds."""
    onset, frame, vel = _np(onset), _np(frame), _np(velocity)
    if onset.ndim != 2 or onset.shape != frame.shape or (vel is not None and vel.shape != onset.shape):
        shapes = [None if a is None else a.shape for a in (onset, frame, vel)]
        raise ConfigError(f"decode_notes expects onset, frame (and velocity) rolls of one shape [T, P], got {shapes}")
    if frame_rate <= 0:
        raise ConfigError(f"frame_rate must be positive, got {frame_rate}")
    on, fr = onset >= onset_threshold, frame >= frame_threshold
    starts = on.copy()
    starts[1:] &= ~on[:-1]                                     # first frame of every onset run
    n_frames = on.shape[0]
    notes = []
    for t, p in zip(*np.nonzero(starts)):
        run = t + 1
        while run < n_frames and on[run, p] and not starts[run, p]:
            run += 1
        end = run
        while end < n_frames and fr[end, p] and not starts[end, p]:
            end += 1
        v = 64 if vel is None else int(np.clip(np.rint(float(np.clip(vel[t:run, p], 0, 1).mean()) * 127), 1, 127))
        notes.append(pretty_midi.Note(velocity=v, pitch=int(pitch_low + p), start=float(t / frame_rate),
                                      end=float(end / frame_rate)))
    notes.sort(key=lambda n: (n.start, n.pitch, n.end))
    return notes


def predictions_to_notes(outputs: dict, *, frame_rate: float, pitch_low: int, onset_threshold: float = 0.5,
                         frame_threshold: float = 0.5) -> list[pretty_midi.Note]:
    """Notes from a transcriber's outputs for one file (``[T, P]`` logits, velocity raw; a leading batch
    axis of size 1 is dropped)."""
    def roll(key, sigmoid):
        x = outputs[key]
        x = x[0] if x.dim() == 3 else x
        return torch.sigmoid(x.float()) if sigmoid else x.float().clamp(0, 1)
    return decode_notes(roll("onset", True), roll("frame", True), roll("velocity", False), frame_rate=frame_rate,
                        pitch_low=pitch_low, onset_threshold=onset_threshold, frame_threshold=frame_threshold)


def notes_to_midi(notes: list[pretty_midi.Note], *, program: int = 0, name: str = "transcription") -> pretty_midi.PrettyMIDI:
    """A one-instrument ``PrettyMIDI`` (GM ``program``, 0 = acoustic grand piano) holding ``notes``."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program, name=name)
    inst.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.end) for n in notes]
    pm.instruments.append(inst)
    return pm


def write_midi(notes: list[pretty_midi.Note], path: str | os.PathLike, **kwargs) -> Path:
    """Write ``notes`` as a MIDI file (atomically: a failed write leaves no partial file)."""
    with atomic_path(path) as tmp:
        notes_to_midi(notes, **kwargs).write(str(tmp))
    return Path(path)


def write_notes_csv(notes: list[pretty_midi.Note], path: str | os.PathLike) -> Path:
    """CSV with one row per note: onset and offset in seconds, MIDI pitch, velocity (1..127)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for n in notes:
            w.writerow((f"{n.start:.4f}", f"{n.end:.4f}", n.pitch, n.velocity))
    return Path(path)


def plot_piano_roll(notes: list[pretty_midi.Note], path: str | os.PathLike, *, title: str = "",
                    duration: float | None = None) -> Path:
    """A piano-roll PNG of ``notes`` (one bar per note, shaded by velocity)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = duration or max((n.end for n in notes), default=1.0)
    fig, ax = plt.subplots(figsize=(max(6.0, min(24.0, end / 2)), 4.5))
    for n in notes:
        ax.barh(n.pitch, n.end - n.start, left=n.start, height=0.8,
                color=plt.cm.viridis(0.2 + 0.8 * n.velocity / 127), edgecolor="none")
    pitches = [n.pitch for n in notes] or [60]
    ax.set_xlim(0, end)
    ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or f"{len(notes)} notes")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return Path(path)
