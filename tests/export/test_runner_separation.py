"""The torch-free runner (issue 23, items 3-4): its stems on a whole file equal `booster separate`'s (error
below -60 dB), torch is never imported (a subprocess's sys.modules), user errors are one line."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from booster.cli import main

from conftest import SOURCES, SR, noise


def _wav(path, seconds=2.3, rate=SR):
    sf.write(path, noise((int(seconds * rate), 2), seed=3), rate, subtype="FLOAT")
    return path


def _runner(*args):
    return subprocess.run([sys.executable, "-c", "import sys; from booster.export.runner import main; "
                           "rc = main(sys.argv[1:]); print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); "
                           "sys.exit(rc)", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("host,boosted", [("htdemucs", True), ("openunmix", True), ("bs_roformer", False)])
def test_runner_stems_equal_booster_separate(exported, tmp_path, host, boosted):
    src, folder = exported(host, boosted)
    song = _wav(tmp_path / "song.wav")
    r = _runner(folder, song, "-o", tmp_path / "onnx", "--batch", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("NO-TORCH")            # numpy, soundfile and onnxruntime only
    assert main(["separate", str(song), "-o", str(tmp_path / "torch"), "--model", str(src), "--no-progress"]) == 0
    for s in SOURCES:
        a, ra = sf.read(tmp_path / "onnx" / "song" / f"{s}.wav")
        b, rb = sf.read(tmp_path / "torch" / "song" / f"{s}.wav")
        assert ra == rb == SR and a.shape == b.shape == (int(2.3 * SR), 2)
        assert 20 * np.log10(np.linalg.norm(a - b) / np.linalg.norm(b)) < -60


def test_unknown_manifest_version_is_refused(exported, tmp_path):
    import shutil
    _, folder = exported("htdemucs", False)
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    m = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(dict(m, format_version=99)))
    r = _runner(copy, _wav(tmp_path / "a.wav", 0.3), "-o", tmp_path / "out")
    err = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(err) == 1 and "Traceback" not in r.stderr
    assert "format version 99" in err[0] and "version 1" in err[0]
    assert not (tmp_path / "out").exists()


def test_runner_user_errors_are_one_line(exported, tmp_path):
    _, folder = exported("htdemucs", False)
    (tmp_path / "file").write_text("x")
    cases = [([folder, _wav(tmp_path / "a.wav", 0.3), "-o", tmp_path / "file"], "existing file"),
             ([tmp_path / "nowhere", tmp_path / "a.wav", "-o", tmp_path / "o"], "not an exported model folder"),
             ([folder, _wav(tmp_path / "b.wav", 0.3, rate=22050), "-o", tmp_path / "o"], "22050 Hz")]
    for args, words in cases:
        r = _runner(*args)
        err = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(err) == 1 and words in err[0], r.stderr


def test_export_command_errors_are_one_line(exported, tmp_path, capsys):
    src, _ = exported("htdemucs", False)
    (tmp_path / "file").write_text("x")
    for args, words in [(["--model", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "o")], "does not exist"),
                        (["--model", str(src), "-o", str(tmp_path / "file")], "existing file"),
                        (["--model", str(src), "-o", str(tmp_path / "o"), "--chunk-seconds", "nan"], "finite")]:
        assert main(["export", *args]) == 1
        err = [line for line in capsys.readouterr().err.strip().splitlines() if line]
        assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "o").exists()


def test_export_command_writes_the_folder(exported, tmp_path, capsys):
    src, _ = exported("bs_roformer", False)
    assert main(["export", "--model", str(src), "-o", str(tmp_path / "o"), "--chunk-seconds", "0.5"]) == 0
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["chunk"] == SR // 2 and (tmp_path / "o" / "model.onnx").is_file()
    assert "exported bs_roformer (separation)" in capsys.readouterr().out
