"""``booster features`` reruns, output names, output folders and bad options, through the CLI."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from booster.cache import load_features
from booster.cli import main
from booster.fsutil import TEMP_SUFFIX
from audio_helpers import music_like


def write(path, seconds=1.2, seed=0, sr=24000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), music_like(seconds, sr=sr, seed=seed).numpy().T, sr, subtype="FLOAT")
    return path


def cli(capsys, *args):
    code = main(["features", "--device", "cpu", *map(str, args), "--no-progress"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def one_line_error(err):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("booster features: error:"), err
    return lines[0]


def test_same_stem_inputs_get_unique_names(tmp_path, capsys):
    a, b = write(tmp_path / "a/song.wav", seed=1), write(tmp_path / "b/song.wav", seed=2)
    c = write(tmp_path / "c/song.wav", seed=3)
    sf.write(str(tmp_path / "c/song.flac"), music_like(1.2, seed=4).numpy().T, 24000, subtype="PCM_24")
    code, out, err = cli(capsys, a, b, c, tmp_path / "c/song.flac", "-o", tmp_path / "out")
    assert code == 0 and "wrote 4" in out, err
    made = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.safetensors"))
    assert made == ["a/song.wav.safetensors", "b/song.wav.safetensors", "c/song.wav.safetensors",
                    "song.flac.safetensors"]
    code, out, err = cli(capsys, a, b, "-o", tmp_path / "out2")
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["a", "b"]
    assert load_features(tmp_path / "out/song.flac.safetensors")[1]["source"].endswith("song.flac")


def test_rerun_reuses_only_verified_matching_files(tmp_path, capsys):
    a, b = write(tmp_path / "in/a.wav", seed=1), write(tmp_path / "in/b.wav", seed=2)
    out = tmp_path / "out"
    assert cli(capsys, tmp_path / "in", "-o", out, "--layers", "4,8")[0] == 0
    fa, fb = out / "a.safetensors", out / "b.safetensors"
    code, stdout, _ = cli(capsys, tmp_path / "in", "-o", out, "--layers", "4,8")
    assert code == 0 and "wrote 0" in stdout and "reused 2 verified" in stdout
    # a truncated output file is detected and recomputed
    fa.write_bytes(fa.read_bytes()[:-100])
    code, stdout, err = cli(capsys, tmp_path / "in", "-o", out, "--layers", "4,8")
    assert code == 0 and "wrote 1" in stdout and "reused 1" in stdout and "damaged" in err
    load_features(fa)
    # changed source audio is recomputed
    write(b, seed=7)
    code, stdout, err = cli(capsys, tmp_path / "in", "-o", out, "--layers", "4,8")
    assert "wrote 1" in stdout and "source audio changed" in err


@pytest.mark.parametrize("change, setting", [(["--layers", "0,8"], "layers"), (["--fp16"], "dtype"),
                                             (["--window", "10", "--overlap", "2"], "window"),
                                             (["--checkpoint", "debug", "--precision", "bf16"], "precision")])
def test_changed_settings_recompute_or_refuse(tmp_path, capsys, change, setting):
    write(tmp_path / "in/a.wav"), write(tmp_path / "in/b.wav", seed=2)
    out = tmp_path / "out"
    assert cli(capsys, tmp_path / "in", "-o", out, "--layers", "4,8")[0] == 0
    before = {p: p.read_bytes() for p in out.glob("*.safetensors")}
    args = [tmp_path / "in", "-o", out, "--layers", "4,8", *change]
    if setting == "layers":
        args = [tmp_path / "in", "-o", out, *change]
    code, _, err = cli(capsys, *args, "--no-overwrite")
    line = one_line_error(err)
    assert code == 1 and "--no-overwrite" in line and setting in line
    assert {p: p.read_bytes() for p in out.glob("*.safetensors")} == before  # nothing touched
    code, stdout, err = cli(capsys, *args)
    assert code == 0 and "wrote 2" in stdout and f"recomputed 2" in err and setting in err
    metas = [load_features(p)[1] for p in out.glob("*.safetensors")]
    assert len({str(sorted((k, str(v)) for k, v in m.items() if k not in ("checksum", "source", "source_sha256")))
                for m in metas}) == 1  # one setting in the folder


def test_partial_rerun_with_other_settings_warns_about_the_mix(tmp_path, capsys):
    write(tmp_path / "a.wav"), write(tmp_path / "b.wav", seed=2)
    out = tmp_path / "out"
    assert cli(capsys, tmp_path / "a.wav", tmp_path / "b.wav", "-o", out)[0] == 0
    code, _, err = cli(capsys, tmp_path / "a.wav", "-o", out, "--fp16")
    assert code == 0 and "1 other feature file(s)" in err and "b.safetensors" in err and "dtype" in err
    code, _, err = cli(capsys, tmp_path / "a.wav", "-o", out, "--fp16", "--no-overwrite")  # a matches, b not
    assert code == 1 and "b.safetensors" in one_line_error(err) and "1 file(s)" in err


def test_output_folder_is_a_file(tmp_path, capsys):
    a = write(tmp_path / "a.wav")
    (tmp_path / "taken").write_text("x")
    code, _, err = cli(capsys, a, "-o", tmp_path / "taken")
    assert code == 1 and "existing file" in one_line_error(err)


def test_write_failure_goes_to_the_failure_summary(tmp_path, capsys):
    a, b = write(tmp_path / "a.wav"), write(tmp_path / "b.wav", seed=2)
    out = tmp_path / "out"
    (out / "a.safetensors").mkdir(parents=True)  # a folder where the file must go: rename fails
    code, stdout, err = cli(capsys, a, b, "-o", out)
    assert code == 1 and "wrote 1" in stdout and "1 input(s) failed" in err and "cannot write" in err
    assert (out / "b.safetensors").is_file() and not [p for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]


@pytest.mark.parametrize("args, message", [
    (["--window", "nan"], "--window must be a finite number"), (["--window", "inf"], "finite"),
    (["--window", "0"], "--window must be > 0"), (["--overlap", "-1"], "--overlap must be >= 0"),
    (["--window", "5", "--overlap", "5"], "shorter than --window"),
    (["--device", "foo"], "not a device name"), (["--device", "cuda:99"], "cuda:99"),
    *([(["--device", "cuda"], "no CUDA device is available")] if not __import__("torch").cuda.is_available() else []),
])
def test_bad_options_one_line(tmp_path, capsys, args, message):
    a = write(tmp_path / "a.wav")
    code, _, err = cli(capsys, a, "-o", tmp_path / "out", *args)
    assert code == 1 and message in one_line_error(err)


def test_killed_extraction_leaves_no_temp_file_and_next_run_recovers(tmp_path):
    """SIGKILL while the feature file is being written: no partial output; the next run sweeps the
    temp file and writes the output."""
    a = write(tmp_path / "a.wav", seconds=3.0)
    out = tmp_path / "out"
    script = ("import time, safetensors.torch as st; real = st.save_file\n"
              "def slow(*a, **k):\n    real(*a, **k); print('written', flush=True); time.sleep(60)\n"
              "st.save_file = slow\n"
              f"from booster.cli import main; main(['features', {str(a)!r}, '-o', {str(out)!r}, '--no-progress'])")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    temps = [p for p in out.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    assert len(temps) == 1 and not (out / "a.safetensors").exists()
    proc.kill()
    proc.wait()
    r = subprocess.run([sys.executable, "-m", "booster.cli", "features", str(a), "-o", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.safetensors"]


def test_read_only_output_folder(read_only_dir, tmp_path, capsys):
    a = write(tmp_path / "a.wav")
    code, _, err = cli(capsys, a, "-o", read_only_dir)
    assert code == 1 and "not writable" in one_line_error(err)


def test_default_layers_follow_the_depth():
    from booster.commands.features import default_layers
    assert default_layers(12) == [4, 8, 12] and default_layers(4) == [1, 3, 4] and default_layers(1) == [1]


def test_muq_mini_checkpoint(tmp_path, capsys):
    """``booster features --checkpoint muq-mini`` with the default layers (muq-mini has 4 layers)."""
    a = write(tmp_path / "a.wav")
    code, out, err = cli(capsys, a, "-o", tmp_path / "out", "--checkpoint", "muq-mini")
    assert code == 0, err
    f, meta = load_features(tmp_path / "out" / "a.safetensors")
    assert meta["layers"] == [1, 3, 4] and meta["backbone"]["name"].startswith("muq-mini")
