"""The transcriber's ONNX graph equals PyTorch (plain and boosted); the runner's numpy decoding equals the
recipe's; its MIDI writer's files read back in pretty_midi with the same notes."""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import torch

from booster.adapters import onsets_frames as plugin
from booster.export import transcription as tx
from booster.export.runner_transcription import decode_notes, midi_bytes, rolls, write_midi
from booster.recipes.transcription import decoding
from booster.training.checkpoint import describe
from booster.training.hosts import HostSpec

PITCHES = [36, 84]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread (tests/conftest.py)."""


def debug_transcriber(backbone=None, *, frontend="mel", sharp=False):
    """``(model, meta)``: the debug transcriber (boosted with ``backbone`` at layer 1, adapters moved off their
    zero start so the features change the output). ``sharp``: read-out weights scaled so that random audio
    gives notes (probabilities spread across the thresholds)."""
    torch.manual_seed(0)
    model = plugin.build(size="debug", pitch_range=PITCHES, frontend=frontend)
    if backbone is not None:
        model = plugin.boost(model, backbone, layers=[1])
        with torch.no_grad():
            for p in model.adapters.parameters():
                p.add_(0.2 * torch.randn_like(p))
    host = model.host if backbone is not None else model
    if sharp:
        with torch.no_grad():
            for lin in (host.onset_out, host.frame_out, host.velocity_out):
                lin.weight.mul_(30)
                lin.bias.zero_()
    meta = describe("transcription", HostSpec("onsets_frames", plugin.architecture(model)), model,
                    backbone="debug", boost_kwargs={"layers": [1]}, sample_rate=16000, hop_length=512,
                    pitch_range=PITCHES, segment=2.0)
    return model.eval(), meta


def _session(path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _rel(got: np.ndarray, want: torch.Tensor) -> float:
    want = want.numpy()
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("kind", ["plain", "boosted", "cqt"])
def test_graph_equals_pytorch_on_random_chunks(kind, debug_muq, tmp_path):
    model, meta = debug_transcriber(debug_muq if kind == "boosted" else None,
                                    frontend="cqt" if kind == "cqt" else "mel")
    chunk = 31 * 512
    m = tx.export_graphs(model, meta, tmp_path, chunk=chunk)
    assert m["graphs"][0]["check"]["max_relative_error"] <= 1e-4
    sess = _session(tmp_path / "model.onnx")
    rng = np.random.default_rng(5)
    lengths = [chunk] if kind == "boosted" else [chunk, 7 * 512 + 100]   # a plain graph takes any length
    for n in lengths:
        audio = (0.2 * rng.standard_normal((3, 1, n))).astype(np.float32)
        got = dict(zip(tx.HEADS, sess.run(list(tx.HEADS), {"audio": audio})))
        with torch.no_grad():
            want = model(torch.from_numpy(audio))
        for h in tx.HEADS:
            assert got[h].shape == (3, 49, n // 512 + 1)
            assert _rel(got[h], want[h].transpose(1, 2)) <= 1e-4, (kind, n, h)
    if kind == "boosted":   # the graph holds the features: without them the output is another
        with torch.no_grad():
            plain = model.host(torch.from_numpy(audio))
        assert _rel(got["onset"], plain["onset"].transpose(1, 2)) > 1e-3
        assert m["backbone"]["source"] == "debug" and m["boosted"]
    assert m["graphs"][0]["inputs"][0]["shape"] == (["B", 1, chunk] if kind == "boosted" else ["B", 1, "S"])


def test_manifest_transcription_fields(tmp_path):
    model, meta = debug_transcriber()
    m = tx.export_graphs(model, meta, tmp_path, chunk=32000)            # 62.5 frames: rounded to 62
    assert m["chunk"] == 62 * 512 and m["hop"] % 512 == 0 and m["hop"] == 46 * 512    # the kit's stride
    assert m["frame_rate"] == 31.25 and m["frame_hop"] == 512 and m["pitch_range"] == PITCHES
    assert set(m["heads"]) == set(tx.HEADS) and m["heads"]["onset"]["shape"] == ["B", 49, "T"]
    assert m["decoding"]["onset_threshold"] == 0.5 and m["decoding"]["frame_threshold"] == 0.5
    assert m["channels"] == 1 and m["sample_rate"] == 16000 and m["backbone"] is None and m["pre"] == []


def test_a_boosted_chunk_longer_than_muqs_window_is_one_line(debug_muq, tmp_path):
    from booster.errors import ConfigError
    model, meta = debug_transcriber(debug_muq)
    with pytest.raises(ConfigError, match="30-s window"):
        tx.export_graphs(model, meta, tmp_path, chunk=31 * 16000)
    assert not list(tmp_path.iterdir())


def test_numpy_decoding_equals_the_recipes_on_random_rolls():
    rng = np.random.default_rng(0)
    total = 0
    for _ in range(60):
        t, p = int(rng.integers(1, 60)), int(rng.integers(1, 10))
        onset = (rng.random((t, p)) ** rng.uniform(1, 6)).astype(np.float16)
        frame = rng.random((t, p)).astype(np.float16)
        vel = rng.uniform(-0.2, 1.2, (t, p)).astype(np.float16)
        kw = dict(frame_rate=31.25, pitch_low=30, onset_threshold=0.6, frame_threshold=0.4)
        want = [(n.start, n.end, n.pitch, n.velocity) for n in decoding.decode_notes(onset, frame, vel, **kw)]
        assert decode_notes(onset, frame, vel, **kw) == want
        total += len(want)
    assert total > 100


def test_rolls_are_what_booster_transcribe_keeps():
    logits = {h: np.random.default_rng(1).normal(0, 3, (40, 7)).astype(np.float32) for h in tx.HEADS}
    r = rolls(logits)
    want = torch.sigmoid(torch.from_numpy(logits["onset"])).numpy().astype(np.float16)
    assert r["onset"].dtype == np.float16 and np.abs(r["onset"].astype(np.float32) - want).max() <= 1e-3
    assert r["velocity"].min() >= 0 and r["velocity"].max() <= 1


def test_midi_writer_reads_back_in_pretty_midi(tmp_path):
    fr = 31.25     # a chord, the same pitch back to back, a held note across others, the range's ends
    spec = [(0, 12, 60, 80), (0, 12, 64, 70), (12, 20, 60, 100), (20, 30, 60, 30), (5, 60, 48, 90),
            (31, 40, 72, 127), (45, 50, 0, 1), (45, 3000, 127, 64)]
    notes = [(a / fr, b / fr, p, v) for a, b, p, v in spec]
    path = write_midi(notes, tmp_path / "x.mid")
    pm = pretty_midi.PrettyMIDI(str(path))
    assert len(pm.instruments) == 1 and pm.instruments[0].program == 0
    assert pm.instruments[0].name == "transcription"
    got = sorted((n.start, n.end, n.pitch, n.velocity) for n in pm.instruments[0].notes)
    assert len(got) == len(notes)
    for (a0, a1, ap, av), (b0, b1, bp, bv) in zip(got, sorted(notes)):
        assert (ap, av) == (bp, bv) and abs(a0 - b0) < 1e-3 and abs(a1 - b1) < 1e-3
    assert pretty_midi.PrettyMIDI(str(write_midi([], tmp_path / "e.mid"))).instruments == [] or \
        not pretty_midi.PrettyMIDI(str(tmp_path / "e.mid")).instruments[0].notes
    data = midi_bytes(notes)
    assert data[:4] == b"MThd" and not list(tmp_path.glob("*.tmp*"))
    # back to back on pitch 60: at the same tick its note-off comes before the next note-on (pretty_midi reads
    # either order; stricter readers need this one)
    import mido
    tick, events = 0, []
    for msg in mido.MidiFile(str(path)).tracks[1]:
        tick += msg.time
        if msg.type in ("note_on", "note_off") and msg.note == 60:
            events.append((tick, msg.type))
    assert [e for e in events] == sorted(events, key=lambda e: (e[0], e[1] != "note_off")) and len(events) == 6


def test_fp16_export_stores_half_weights_and_stays_close(tmp_path):
    import onnx
    model, meta = debug_transcriber()
    m = tx.export_graphs(model, meta, tmp_path, chunk=31 * 512, fp16=True)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    big = [t for t in graph.initializer if np.prod(t.dims) > 1000]
    assert big and all(t.data_type == onnx.TensorProto.FLOAT16 for t in big)
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT          # float32 in and out
    assert m["graphs"][0]["fp16"] and 0 < m["graphs"][0]["check"]["max_relative_error"] <= 1e-2
