"""The transcription recipe through `booster fit | validate | test | compare | transcribe`: every packaged
config fits a few steps (full-size configs at debug size), whole-file test writes mir_eval results."""
from __future__ import annotations

import json

import pretty_midi
import pytest
import torch

from booster.cli import main
from booster.training.cli import packaged_configs

CONFIGS = ["demo", "baseline", "probe", "boosted"]


def _overrides(root, tmp, name):
    args = ["--data.root", str(root), "--data.segment", "1.0", "--data.batch_size", "2",
            "--data.samples_per_epoch", "4", "--data.valid_seconds", "2.0", "--data.test_seconds", "2.0",
            "--data.num_workers", "0", "--trainer.default_root_dir", str(tmp),
            "--trainer.enable_progress_bar", "false", "--model.eval_dir", str(tmp / "eval"),
            "--model.run_name", name, "--model.eval_segment", "1.0"]
    args += ["--data.generate", "null"]  # the fixture's own data, not the set the demo config makes on first use
    if name == "demo":
        args += ["--data.stems", "[other]"]
    else:  # full-size transcribers take seconds per step on 2 CPUs: same recipe, debug size, debug MuQ
        args += ["--model.size", "debug", "--model.backbone", "debug", "--model.feature_cache", "null"]
    return args


def test_packaged_configs_are_listed():
    assert {f"transcription/{c}" for c in CONFIGS} <= set(packaged_configs())


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_fits_a_few_steps(name, synth_root, pairs_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs write runs/... relative to the working directory
    root = synth_root if name == "demo" else pairs_root
    assert main(["fit", "--config", f"transcription/{name}", *_overrides(root, tmp_path, name),
                 "--trainer.fast_dev_run", "2"]) == 0


def test_demo_generates_its_data_on_first_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "made"
    assert main(["fit", "--config", "transcription/demo", *_overrides(root, tmp_path, "demo"),
                 "--data.generate", "{splits: {train: 1, valid: 1, test: 1}, seconds: 2, seed: 3}",
                 "--trainer.fast_dev_run", "1"]) == 0
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["test", "train", "valid"]
    assert (root / "train" / "song_0000" / "midi" / "other.mid").is_file()


def test_fit_test_compare_transcribe(synth_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = {}
    for boost in ("false", "true"):
        tmp = tmp_path / f"boost_{boost}"
        ckpt_dir = tmp / "ckpt"
        common = _overrides(synth_root, tmp, f"boost_{boost}") + ["--model.boost", boost]
        if boost == "true":  # validation / test features through the on-disk cache
            common += ["--model.feature_cache", str(tmp / "cache")]
        assert main(["fit", "--config", "transcription/demo", *common, "--trainer.max_steps", "2",
                     "--trainer.limit_val_batches", "1", "--trainer.val_check_interval", "2",
                     "--trainer.logger", "false", "--trainer.callbacks+=ModelCheckpoint",
                     f"--trainer.callbacks.dirpath={ckpt_dir}", "--trainer.callbacks.save_last=true"]) == 0
        last = ckpt_dir / "last.ckpt"
        ckpt = torch.load(last, map_location="cpu", weights_only=True)   # no pickled classes
        assert ckpt["booster"]["task"] == "transcription" and ckpt["booster"]["boost"] is (boost == "true")
        assert not any(k.startswith("model.backbone") for k in ckpt["state_dict"])
        assert main(["test", "--config", "transcription/demo", *common, "--ckpt_path", str(last),
                     "--trainer.logger", "false"]) == 0
        report = json.loads((tmp / "eval" / "results.json").read_text())
        assert report["task"] == "transcription" and report["evaluated"]["seconds"] == 2.0
        assert list(report["summary"]) == ["note", "note_offset", "note_offset_velocity", "frame"]
        assert all(0.0 <= v <= 1.0 for row in report["summary"].values() for v in row.values())
        runs[boost] = (tmp / "eval", last)
        assert (boost == "true") == any((tmp / "cache").rglob("*.safetensors"))
    capsys.readouterr()
    assert main(["compare", str(runs["false"][0]), str(runs["true"][0])]) == 0
    assert "note_offset_velocity" in capsys.readouterr().out
    wav = synth_root / "test" / "song_0000" / "other.wav"
    out = tmp_path / "midi"
    assert main(["transcribe", str(wav), "-o", str(out), "--model", str(runs["true"][1]), "--save-notes",
                 "--plot", "--no-progress", "--export", str(tmp_path / "t.safetensors")]) == 0
    pm = pretty_midi.PrettyMIDI(str(out / "other.mid"))  # readable; notes (if any) lie inside the clip
    assert all(0 <= n.start < n.end <= 3.1 for i in pm.instruments for n in i.notes)
    assert (out / "other.csv").read_text().startswith("onset_s,offset_s,pitch,velocity")
    assert (out / "other.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["transcribe", str(wav), "-o", str(tmp_path / "again"), "--model", str(tmp_path / "t.safetensors"),
                 "--no-progress"]) == 0
    again = pretty_midi.PrettyMIDI(str(tmp_path / "again" / "other.mid"))
    assert [(n.pitch, n.start) for i in again.instruments for n in i.notes] == \
        [(n.pitch, n.start) for i in pm.instruments for n in i.notes]


def test_cli_errors_are_one_line(synth_root, tmp_path, capsys):
    wav = synth_root / "test" / "song_0000" / "other.wav"
    assert main(["transcribe", str(wav), "-o", str(tmp_path), "--model", str(tmp_path / "none.ckpt")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path / "none.wav"), "-o", str(tmp_path), "--model", "x.ckpt"]) == 1
    assert "none.wav" in capsys.readouterr().err
    assert main(["transcribe", str(wav), "-o", str(tmp_path), "--model", "x.ckpt", "--device", "cuda:9"]) == 1
    assert "cuda:9" in capsys.readouterr().err
    assert main(["transcribe", str(wav), "-o", str(tmp_path), "--model", "x.ckpt", "--onset-threshold", "2"]) == 1
    assert "between 0 and 1" in capsys.readouterr().err
