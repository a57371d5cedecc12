"""The inference commands, plot and synth as a demanding user runs them (issue 19, items 8, 9, 11, 12, 13): every
error a user can cause is one line from the toolkit, exit status 1, and leaves nothing behind (no empty output
folder, no half-written file); what a command prints is what it wrote."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from booster.cli import main

SR = 16000
NOT_UNPICKLING = ("weights_only", "can still be loaded", "trust the source")   # torch's advice, never ours


def cli(capsys, *args):
    """``booster ARGS`` in-process: (exit status, stdout, stderr); an escaping exception fails the test."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:       # argparse's exit: what the old code did for a missing --model
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(result, *words):
    """Status 1, no traceback, exactly one error line holding ``words``; returns the line."""
    code, out, err = result
    assert code == 1, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.strip().splitlines() if "error: " in line]
    assert len(lines) == 1 and "usage:" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    for w in NOT_UNPICKLING:
        assert w not in lines[0], lines[0]
    return lines[0]


def wav(path, samples=SR, channels=1, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(0).standard_normal((samples, channels)).astype(np.float32)
    if value is not None:
        x[:] = value
    sf.write(path, x, SR, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Debug-size plain models as the commands take them: transcriber and mixer .safetensors, and the
    transcriber as a recipe .ckpt (torch.save's zip, as Lightning writes it) plus a truncated copy."""
    from booster.adapters import onsets_frames as plugin
    from booster.recipes.mixing.module import MixingModule
    from booster.recipes.transcription.inference import Transcriber
    from booster.training.checkpoint import describe, read_model_file
    from booster.training.hosts import HostSpec

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    host = plugin.build(size="debug", pitch_range=[36, 84])
    meta = describe("transcription", HostSpec("onsets_frames", plugin.architecture(host)), host,
                    sample_rate=SR, hop_length=512, pitch_range=[36, 84])
    tr = Transcriber(host.eval(), meta).save(root / "tr.safetensors")
    mix = MixingModule(host="mix_wave_unet", size="debug", sample_rate=SR, segment=1.0).mixer().save(
        root / "mix.safetensors")
    meta, state = read_model_file(tr)
    ckpt = root / "tr.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "booster": meta, "global_step": 1}, ckpt)
    data = ckpt.read_bytes()
    (root / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (root / "random.ckpt").write_bytes(np.random.default_rng(1).bytes(3000))
    return {"tr": tr, "mix": mix, "ckpt": ckpt, "truncated": root / "truncated.ckpt", "random": root / "random.ckpt"}


@pytest.fixture()
def stems(tmp_path):
    folder = tmp_path / "stems" / "song"
    for name in ("drums", "bass"):
        wav(folder / f"{name}.wav", channels=2)
    return folder


# ---- item 8: --export to a folder or a read-only place -------------------------------------------------
def test_export_to_a_folder_or_read_only_place_is_one_line(models, stems, tmp_path, capsys, read_only_dir):
    song = wav(tmp_path / "song.wav")
    (tmp_path / "taken.safetensors").mkdir()
    runs = {"transcribe": [song, "--model", models["tr"]], "mix": [stems, "--model", models["mix"]]}
    for cmd, args in runs.items():
        out = tmp_path / f"out_{cmd}"
        one_line(cli(capsys, cmd, *args, "-o", out, "--no-progress", "--export", tmp_path / "taken.safetensors"),
                 "--export", "existing folder")
        one_line(cli(capsys, cmd, *args, "-o", out, "--no-progress", "--export", read_only_dir / "m.safetensors"),
                 "--export", "not writable")
        assert not out.exists() and os.listdir(read_only_dir) == []     # checked before any work
        code, said, _ = cli(capsys, cmd, *args, "-o", out, "--no-progress", "--export", tmp_path / f"{cmd}.safetensors")
        assert code == 0 and f"{tmp_path / cmd}.safetensors" in said
    assert os.listdir(tmp_path / "taken.safetensors") == []


# ---- item 9 (plot) and 12: plot -o ------------------------------------------------------------------------
def test_plot_writes_the_path_it_prints_and_refuses_read_only(tmp_path, capsys, read_only_dir, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("step,epoch,train/loss\n0,0,1.0\n1,0,0.5\n")
    monkeypatch.chdir(tmp_path)
    code, said, _ = cli(capsys, "plot", run, "-o", "in")
    assert code == 0 and said.startswith("wrote in.png ") and (tmp_path / "in.png").is_file()
    assert not (tmp_path / "in").exists()
    code, said, _ = cli(capsys, "plot", run, "-o", "curves.svg")
    assert code == 0 and said.startswith("wrote curves.svg ") and (tmp_path / "curves.svg").read_text().strip()
    one_line(cli(capsys, "plot", run, "-o", read_only_dir / "c.png"), "-o", "not writable")
    one_line(cli(capsys, "plot", run, "-o", read_only_dir / "sub" / "c.png"), "-o", "not writable")
    one_line(cli(capsys, "plot", run, "-o", run), "-o", "existing folder")
    one_line(cli(capsys, "plot", run, "-o", "c.txt"), "-o", ".txt", ".png")
    assert not (tmp_path / "c.txt").exists() and os.listdir(read_only_dir) == []


# ---- item 11: a file that is not a checkpoint -------------------------------------------------------------
class Opaque:
    """A pickled class: torch.load(weights_only=True) refuses it and tells the user to load it with
    weights_only=False."""


def test_not_a_checkpoint_never_points_at_unpickling(models, stems, tmp_path, capsys):
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "thing": Opaque()}, pickled)
    song = wav(tmp_path / "song.wav")
    cases = {models["random"]: "not a PyTorch checkpoint", models["truncated"]: "truncated",
             pickled: "pickled Python object"}
    for bad, why in cases.items():
        for cmd in (["separate", song, "--model"], ["transcribe", song, "--model"], ["mix", stems, "--model"]):
            one_line(cli(capsys, *cmd, bad, "-o", tmp_path / "out", "--no-progress"), bad.name, why)
        one_line(cli(capsys, "test", "--config", "transcription/demo", "--ckpt_path", bad), bad.name, why)
    assert not (tmp_path / "out").exists()
    code, said, _ = cli(capsys, "transcribe", song, "--model", models["ckpt"], "-o", tmp_path / "out", "--no-progress")
    assert code == 0 and (tmp_path / "out" / "song.mid").is_file()          # the intact .ckpt loads


def test_muq_weights_that_are_not_a_checkpoint(tmp_path, capsys):
    muq = tmp_path / "muq"
    muq.mkdir()
    (muq / "config.json").write_text("{}")
    (muq / "pytorch_model.bin").write_bytes(np.random.default_rng(2).bytes(5000))
    one_line(cli(capsys, "features", wav(tmp_path / "a.wav"), "-o", tmp_path / "f", "--checkpoint", muq,
                 "--no-progress"), "pytorch_model.bin")
    assert not (tmp_path / "f").exists()


# ---- item 12: aliases, empty output folders, missing --model, too-short clips ------------------------------
def test_alias_pattern_must_be_a_valid_glob(models, stems, tmp_path, capsys):
    from booster.errors import ConfigError
    from booster.recipes.mixing.layout import SlotMap

    for alias, words in (("drums=[", ["'['", "never closed"]), ("drums=kick*,sub/snare", ["sub/snare", "separator"])):
        one_line(cli(capsys, "mix", stems, "-o", tmp_path / "out", "--model", models["mix"], "--alias", alias),
                 "--alias", *words)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="never closed"):      # data.aliases in a config: the same check
        SlotMap(("drums", "bass"), {"drums": ["kick*", "snare["]})
    code, said, _ = cli(capsys, "mix", stems, "-o", tmp_path / "out", "--model", models["mix"], "--alias",
                        "drums=[[]kick,k?ck*,[!x]*", "--no-progress")
    assert code == 0 and (tmp_path / "out" / "song.wav").is_file()


def test_failed_commands_leave_no_output_folder(models, stems, tmp_path, capsys):
    nan = wav(tmp_path / "nan.wav", value=np.nan)
    cases = [["transcribe", nan, "--model", models["tr"]], ["transcribe", nan, "--model", models["random"]],
             ["separate", nan, "--model", models["random"]], ["mix", stems, "--model", models["random"]],
             ["features", nan, "--checkpoint", "debug"]]
    for i, args in enumerate(cases):
        out = tmp_path / f"new{i}" / "out"
        code, _, err = cli(capsys, *args, "-o", out, "--no-progress")
        assert code == 1 and "Traceback" not in err, (args, err)
        assert not (tmp_path / f"new{i}").exists(), args         # neither OUT nor the parent it made
    one_line(cli(capsys, "synth", tmp_path / "s", "--seconds", "0.5", "--no-progress"), "--seconds")
    assert not (tmp_path / "s").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    code, _, _ = cli(capsys, "transcribe", nan, "--model", models["tr"], "-o", kept, "--no-progress")
    assert code == 1 and kept.is_dir()                             # a folder that was there stays


def test_missing_required_options_are_one_line_and_status_1(tmp_path, capsys):
    song = wav(tmp_path / "song.wav")
    for cmd in ("transcribe", "separate", "mix"):
        one_line(cli(capsys, cmd, tmp_path, "-o", tmp_path / "out"), "--model")
    one_line(cli(capsys, "features", song), "-o/--output")
    one_line(cli(capsys, "plot"), "RUN")
    one_line(cli(capsys, "transcribe", song, "-o", tmp_path / "out", "--model", "m.safetensors", "--bogus"), "--bogus")
    assert not (tmp_path / "out").exists()
    booster = Path(sys.executable).with_name("booster")
    done = subprocess.run([str(booster), "transcribe", str(song), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0 and "--model" in done.stderr


@pytest.mark.parametrize("samples", [320, 1])      # 20 ms and one sample at 16 kHz: less than a 32-ms frame
def test_clip_shorter_than_one_frame_is_refused(models, tmp_path, capsys, samples):
    clip = wav(tmp_path / "clip.wav", samples=samples)
    line = one_line(cli(capsys, "transcribe", clip, "-o", tmp_path / "out", "--model", models["tr"], "--no-progress"),
                    "clip.wav", "shorter than one frame", f"{1000 * samples / SR:.1f} ms")
    assert "512 samples" in line and not (tmp_path / "out").exists()
    code, _, _ = cli(capsys, "transcribe", wav(tmp_path / "ok.wav", samples=512), "-o", tmp_path / "out",
                     "--model", models["tr"], "--no-progress")
    assert code == 0 and (tmp_path / "out" / "ok.mid").is_file()      # one whole frame is enough
