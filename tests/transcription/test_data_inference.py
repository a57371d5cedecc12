"""Transcription data module (layouts, random segments, fraction, whole files) and whole-file inference
(stacked heads, file == tensor, MuQ once per file, boosted chunks use the file's features)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from booster.adapters import onsets_frames as plugin
from booster.audio import load
from booster.errors import ConfigError, DatasetError
from booster.recipes.transcription.data import RandomSegments, TranscriptionDataModule
from booster.recipes.transcription.inference import Transcriber
from booster.training.checkpoint import describe
from booster.training.hosts import HostSpec


def _dm(root, **kw):
    args = dict(layout="stems", stems=["bass", "other"], valid_split="valid", segment=1.0, samples_per_epoch=6,
                batch_size=2)
    args.update(kw)
    dm = TranscriptionDataModule(str(root), **args)
    dm.setup("fit")
    dm.setup("test")
    return dm


def test_stems_layout_random_segments_and_targets(synth_root):
    dm = _dm(synth_root)
    assert len(dm.train_pairs) == 4 and len(dm.valid_pairs) == 2 and len(dm.test_pairs) == 2
    ds = dm._train
    a, b = ds[3], ds[3]
    assert torch.equal(a["audio"], b["audio"]) and a["audio"].shape == (1, 16000)
    assert a["onset"].shape == (31, 88) and a["frame"].shape == (31, 88)
    k, start = ds.draw(3)
    pair = ds.pairs[k]
    for n in pair.notes():  # every onset inside the segment is marked at its frame
        f = round((n.start - start) * 31.25)
        if 0 <= f < 31:
            assert a["onset"][f, n.pitch - 21] == 1 and a["velocity"][f, n.pitch - 21] > 0
    ds.set_epoch(1)
    assert ds.draw(3) != (k, start) or ds.draw(4) != ds.draw(3)
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (2, 1, 16000) and batch["offset"].shape == (2, 31, 88)


def test_fraction_is_nested_and_whole_files_are_cut(synth_root):
    small = _dm(synth_root, fraction=0.25)._train.pairs
    half = _dm(synth_root, fraction=0.5)._train.pairs
    assert len(small) == 1 and len(half) == 2 and small[0] in half
    dm = _dm(synth_root, valid_seconds=1.5)
    name, audio, notes, duration = dm.load_item("valid", 0)
    assert duration == 1.5 and audio.shape == (1, 24000) and name == dm.valid_pairs[0].name
    assert notes and all(n.start < 1.5 and n.end <= 1.5 for n in notes)
    assert dm.load_item("test", 1)[3] == pytest.approx(3.0)


def test_pairs_layout_with_maestro_csv(pairs_root, tmp_path):
    import shutil
    root = tmp_path / "maestro"
    shutil.copytree(pairs_root, root / "2018")
    rows = [(s, f"2018/{d}/{p.stem}") for s, d in (("train", "train"), ("validation", "validation"), ("test", "test"))
            for p in sorted((pairs_root / d).glob("*.wav"))]
    with open(root / "maestro-v3.0.0.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "midi_filename", "audio_filename"])
        for split, stem in rows:
            w.writerow([split, f"{stem}.mid", f"{stem}.wav"])
    dm = TranscriptionDataModule(str(root), segment=1.0, samples_per_epoch=2)
    dm.setup(None)
    assert [len(dm.train_pairs), len(dm.valid_pairs), len(dm.test_pairs)] == [2, 1, 1]
    assert dm._train[0]["audio"].shape == (1, 16000)


def test_data_errors(tmp_path, synth_root):
    with pytest.raises(ConfigError, match="layout"):
        TranscriptionDataModule(str(tmp_path), layout="folders")
    with pytest.raises(DatasetError, match="does not exist"):
        TranscriptionDataModule(str(tmp_path / "none")).setup("fit")
    with pytest.raises(ConfigError, match="valid_holdout"):
        _dm(synth_root, valid_split="nothing", stems=["bass"], fraction=1.0, valid_holdout=2)
    with pytest.raises(ConfigError, match="samples_per_epoch"):
        RandomSegments(_dm(synth_root).train_pairs, segment=1.0, samples_per_epoch=0, sample_rate=16000,
                       hop_length=512, pitch_range=(21, 108))


def _transcriber(model, **kw):
    meta = describe("transcription", HostSpec("onsets_frames", plugin.architecture(model)), model,
                    backbone="debug", sample_rate=16000, hop_length=512, pitch_range=[21, 108])
    return Transcriber(model, meta, **kw)


def test_single_chunk_prediction_is_the_model_output(synth_root, device):
    torch.manual_seed(0)
    model = plugin.build(size="debug").to(device).eval()
    wav = synth_root / "test" / "song_0000" / "other.wav"
    audio, _ = load(wav, sample_rate=16000, mono=True)
    audio = audio.reshape(1, -1)
    tr = _transcriber(model, segment=4.0, overlap=0.0)  # one chunk covers the 3-s file
    pred = tr.predict(audio)        # audio on the CPU, model on `device`: the output comes back on the CPU
    assert all(v.device.type == "cpu" for v in pred.values())
    with torch.no_grad():
        direct = model(torch.nn.functional.pad(audio, (0, tr.segment - audio.shape[-1]))[None].to(device))
        direct = {k: v.cpu() for k, v in direct.items()}
    t = audio.shape[-1] // 512 + 1
    for k in pred:
        assert pred[k].shape == (t, 88)
        assert torch.allclose(pred[k], direct[k][0, :t], atol=1e-5)
    rolls, duration = tr.file_rolls(wav)  # the file, read chunk by chunk at the model's rate
    assert duration == pytest.approx(3.0) and rolls["onset"].dtype == np.float16
    assert np.allclose(rolls["onset"], torch.sigmoid(pred["onset"]).numpy(), atol=2e-3)
    assert np.allclose(rolls["velocity"], pred["velocity"].clamp(0, 1).numpy(), atol=2e-3)


def test_boosted_file_inference_runs_muq_once_and_uses_its_features(synth_root, debug_muq, monkeypatch):
    torch.manual_seed(0)
    host = plugin.build(size="debug", backend="shallow").eval()
    boosted = plugin.boost(host, debug_muq, layers=[2, 4]).eval()
    with torch.no_grad():
        boosted.adapters[0].fusion.gate.fill_(1.0)   # features now change the output
    calls = []
    real = debug_muq.extract
    monkeypatch.setattr(debug_muq, "extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    real_file = debug_muq.extract_file
    monkeypatch.setattr(debug_muq, "extract_file", lambda *a, **k: calls.append(1) or real_file(*a, **k))
    wav = synth_root / "test" / "song_0000" / "other.wav"
    tr = _transcriber(boosted, segment=1.0, overlap=0.25, batch_size=2, context="track")   # 4 chunks
    rolls, _ = tr.file_rolls(wav)
    assert len(calls) == 1
    audio, _ = load(wav, sample_rate=16000, mono=True)
    live = tr.predict(audio.reshape(1, -1))      # tensor path: features of the tensor, once
    assert len(calls) == 2
    assert np.allclose(rolls["frame"], torch.sigmoid(live["frame"]).numpy(), atol=5e-3)
    plain = _transcriber(host, segment=1.0, overlap=0.25).predict(audio.reshape(1, -1))
    assert not torch.allclose(torch.sigmoid(plain["frame"]), torch.sigmoid(live["frame"]), atol=1e-3)
