"""Decoding and metrics: known answers (notes → rolls → notes), MIDI/CSV round trips, mir_eval scores."""
from __future__ import annotations

import csv

import numpy as np
import pretty_midi
import pytest
import torch
from transcription_helpers import known_notes

from booster.data.pairs import frame_targets
from booster.errors import ConfigError
from booster.recipes.transcription.decoding import (decode_notes, plot_piano_roll, predictions_to_notes,
                                                    write_midi, write_notes_csv)
from booster.recipes.transcription.metrics import METRICS, evaluate_notes, flat_metrics

FR = 16000 / 512


def _key(notes):
    return [(n.pitch, round(n.start * FR), round(n.end * FR), n.velocity) for n in notes]


def test_notes_to_rolls_to_notes_gives_the_notes_back():
    notes = known_notes()
    rolls = frame_targets(notes, frame_rate=FR, n_frames=70)
    decoded = decode_notes(rolls["onset"], rolls["frame"], rolls["velocity"], frame_rate=FR, pitch_low=21)
    assert sorted(_key(decoded)) == sorted(_key(notes))
    for d in decoded:  # times are exact multiples of the frame period
        assert abs(d.start * FR - round(d.start * FR)) < 1e-9


def test_decoding_from_logits_and_thresholds():
    notes = known_notes()
    rolls = frame_targets(notes, frame_rate=FR, n_frames=70)
    # logits: +4 where active, -4 elsewhere; velocity raw (clamped to [0, 1] when decoded)
    outputs = {k: (rolls[k] * 8 - 4)[None] for k in ("onset", "frame", "offset")}
    outputs["velocity"] = rolls["velocity"][None] * 1.0
    decoded = predictions_to_notes(outputs, frame_rate=FR, pitch_low=21)
    assert sorted(_key(decoded)) == sorted(_key(notes))
    # a weak onset below the threshold yields no note; a frame run without an onset yields none either
    onset = np.zeros((10, 3), np.float32)
    frame = np.zeros((10, 3), np.float32)
    onset[2, 0], frame[2:6, 0] = 0.4, 0.9
    frame[1:8, 1] = 0.9
    assert decode_notes(onset, frame, frame_rate=FR) == []
    onset[2, 0] = 0.6
    (n,) = decode_notes(onset, frame, frame_rate=FR, pitch_low=40)
    assert (n.pitch, round(n.start * FR), round(n.end * FR), n.velocity) == (40, 2, 6, 64)


def test_decode_rejects_mismatched_shapes():
    with pytest.raises(ConfigError, match=r"\[T, P\]"):
        decode_notes(np.zeros((5, 3)), np.zeros((5, 4)), frame_rate=FR)


def test_midi_csv_and_plot_round_trip(tmp_path):
    notes = known_notes()
    path = write_midi(notes, tmp_path / "out" / "x.mid")
    back = pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
    assert len(back) == len(notes)
    for a, b in zip(sorted(back, key=lambda n: (n.start, n.pitch)), sorted(notes, key=lambda n: (n.start, n.pitch))):
        assert (a.pitch, a.velocity) == (b.pitch, b.velocity)
        assert a.start == pytest.approx(b.start, abs=2e-3) and a.end == pytest.approx(b.end, abs=2e-3)
    rows = list(csv.DictReader(open(write_notes_csv(notes, tmp_path / "x.csv"))))
    assert [int(r["pitch"]) for r in rows] == [n.pitch for n in notes]
    assert float(rows[3]["onset_s"]) == pytest.approx(notes[3].start, abs=1e-4)
    png = plot_piano_roll(notes, tmp_path / "x.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_perfect_prediction_scores_one():
    notes = known_notes()
    scores = evaluate_notes(notes, notes, frame_rate=FR, pitch_range=(21, 108))
    assert set(scores) == set(METRICS)
    assert all(v == pytest.approx(1.0) for d in scores.values() for v in d.values())
    flat = flat_metrics(scores)
    assert flat["note_f1"] == 1.0 and len(flat) == 3 * len(METRICS)


def test_imperfect_predictions_score_below_one():
    ref = known_notes()
    late = [pretty_midi.Note(n.velocity, n.pitch, n.start + 0.08, n.end + 0.08) for n in ref]  # > 50 ms late
    s = evaluate_notes(ref, late, frame_rate=FR, pitch_range=(21, 108))
    assert s["note"]["f1"] == 0.0 and 0.0 < s["frame"]["f1"] < 1.0
    half = ref[: len(ref) // 2]
    s = evaluate_notes(ref, half, frame_rate=FR, pitch_range=(21, 108))
    assert s["note"]["precision"] == 1.0 and s["note"]["recall"] == pytest.approx(len(half) / len(ref))
    long = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.end + 1.0) for n in ref]  # offsets far off
    s = evaluate_notes(ref, long, frame_rate=FR, pitch_range=(21, 108))
    assert s["note"]["f1"] == 1.0 and s["note_offset"]["f1"] == 0.0
    loud = [pretty_midi.Note(127 if n.velocity < 64 else 1, n.pitch, n.start, n.end) for n in ref]
    s = evaluate_notes(ref, loud, frame_rate=FR, pitch_range=(21, 108))
    assert s["note_offset"]["f1"] == 1.0 and s["note_offset_velocity"]["f1"] < 0.5
    s = evaluate_notes(ref, [], frame_rate=FR, pitch_range=(21, 108))
    assert s["note"]["f1"] == 0.0 and s["frame"]["recall"] == 0.0


def test_out_of_range_reference_notes_are_left_out():
    ref = known_notes() + [pretty_midi.Note(90, 10, 0.1, 0.5)]  # pitch 10 is below the piano range
    s = evaluate_notes(ref, known_notes(), frame_rate=FR, pitch_range=(21, 108))
    assert s["note"]["f1"] == 1.0
    assert evaluate_notes([], [], frame_rate=FR, pitch_range=(21, 108))["note"]["f1"] == 1.0


def test_rolls_are_torch_or_numpy():
    rolls = frame_targets(known_notes(), frame_rate=FR, n_frames=70)
    a = decode_notes(rolls["onset"], rolls["frame"], rolls["velocity"], frame_rate=FR)
    b = decode_notes(*(rolls[k].numpy() for k in ("onset", "frame", "velocity")), frame_rate=FR)
    assert _key(a) == _key(b) and isinstance(rolls["onset"], torch.Tensor)
