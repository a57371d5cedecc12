"""Transcription metrics with mir_eval (the MAESTRO paper's set).

* ``note``: note onsets within ±50 ms and the same pitch (``mir_eval.transcription``, offsets ignored);
* ``note_offset``: also offsets within 20 % of the note's duration or 50 ms, whichever is larger;
* ``note_offset_velocity``: also velocities within 0.1 after mir_eval's velocity rescaling
  (``mir_eval.transcription_velocity``);
* ``frame``: frame-wise multi-pitch precision / recall (``mir_eval.multipitch``) on rolls of the notes
  at the model's frame rate, F1 from them.

Every metric gives ``precision``, ``recall`` and ``f1``; :func:`flat_metrics` names them
``"<metric>_<precision|recall|f1>"`` (the names in results.json and the report table). Reference notes
outside the model's pitch range are left out (the model cannot output them).
"""
from __future__ import annotations

import warnings

import mir_eval
import numpy as np
import pretty_midi

from booster.data.pairs import frame_targets

METRICS = ("note", "note_offset", "note_offset_velocity", "frame")
ONSET_TOLERANCE = 0.05


def note_arrays(notes: list[pretty_midi.Note]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(intervals [N, 2] s, pitches [N] Hz, velocities [N])``; zero-length notes get 1 ms (mir_eval
    needs positive durations)."""
    if not notes:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0)
    iv = np.array([[n.start, max(n.end, n.start + 1e-3)] for n in notes], dtype=np.float64)
    hz = np.array([pretty_midi.note_number_to_hz(n.pitch) for n in notes], dtype=np.float64)
    return iv, hz, np.array([n.velocity for n in notes], dtype=np.float64)


def _prf(p: float, r: float) -> dict[str, float]:
    return {"precision": float(p), "recall": float(r), "f1": float(0.0 if p + r == 0 else 2 * p * r / (p + r))}


def frame_scores(ref_roll: np.ndarray, est_roll: np.ndarray, *, frame_rate: float, pitch_low: int) -> dict:
    """Multi-pitch precision / recall / F1 of binary rolls ``[T, P]`` through ``mir_eval.multipitch``."""
    t = max(ref_roll.shape[0], est_roll.shape[0])
    times = np.arange(t) / frame_rate

    def freqs(roll):
        roll = np.pad(roll, ((0, t - roll.shape[0]), (0, 0)))
        return [pretty_midi.note_number_to_hz(pitch_low + np.nonzero(row)[0]).astype(np.float64) for row in roll]
    if not ref_roll.any() and not est_roll.any():
        return _prf(1.0, 1.0)
    scores = mir_eval.multipitch.evaluate(times, freqs(ref_roll > 0), times, freqs(est_roll > 0))
    return _prf(scores["Precision"], scores["Recall"])


def evaluate_notes(ref: list[pretty_midi.Note], est: list[pretty_midi.Note], *, frame_rate: float,
                   pitch_range: tuple[int, int], duration: float | None = None) -> dict[str, dict[str, float]]:
    """``{metric: {"precision", "recall", "f1"}}`` for :data:`METRICS`; a file where reference and
    estimate are both empty scores 1.0."""
    low, high = pitch_range
    ref = [n for n in ref if low <= n.pitch <= high]
    ri, rp, rv = note_arrays(ref)
    ei, ep, ev = note_arrays(est)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns about empty note lists
        if not ref and not est:
            out.update({k: _prf(1.0, 1.0) for k in METRICS[:3]})
        else:
            p, r, _, _ = mir_eval.transcription.precision_recall_f1_overlap(
                ri, rp, ei, ep, onset_tolerance=ONSET_TOLERANCE, offset_ratio=None)
            out["note"] = _prf(p, r)
            p, r, _, _ = mir_eval.transcription.precision_recall_f1_overlap(
                ri, rp, ei, ep, onset_tolerance=ONSET_TOLERANCE, offset_ratio=0.2, offset_min_tolerance=0.05)
            out["note_offset"] = _prf(p, r)
            p, r, _, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
                ri, rp, rv, ei, ep, ev, onset_tolerance=ONSET_TOLERANCE, offset_ratio=0.2,
                offset_min_tolerance=0.05, velocity_tolerance=0.1)
            out["note_offset_velocity"] = _prf(p, r)
        end = max([duration or 0.0] + [n.end for n in ref] + [n.end for n in est])
        n_frames = int(round(end * frame_rate)) + 1
        rolls = [frame_targets(x, frame_rate=frame_rate, n_frames=n_frames, pitch_range=pitch_range)["frame"].numpy()
                 for x in (ref, est)]
        out["frame"] = frame_scores(*rolls, frame_rate=frame_rate, pitch_low=low)
    return out


def flat_metrics(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"note_f1": ..., "note_precision": ..., ...}``."""
    return {f"{m}_{k}": v for m, d in scores.items() for k, v in d.items()}


def metric_names() -> list[str]:
    return [f"{m}_{k}" for m in METRICS for k in ("precision", "recall", "f1")]
