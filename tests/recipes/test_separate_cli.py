"""`booster separate` as a user runs it: unique output names, output folder checks, bad --model files,
nothing written for a failed input, and the demucs options (--two-stems, --shifts, --flac, --int24,
--int16, --segment, --overlap, --jobs). Every error is one line without a traceback."""
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from booster.cli import main
from booster.recipes.separation.module import SeparationModule

from recipe_helpers import SOURCES

SR = 44100


def _reliability_fixtures():
    """The `read_only_dir` fixture of tests/reliability (chmod 555, or a read-only bind mount as root)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "reliability" / "conftest.py"
    spec = importlib.util.spec_from_file_location("reliability_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


read_only_dir = _reliability_fixtures().read_only_dir


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    m = SeparationModule(host="htdemucs", sources=SOURCES, segment=1.0, size="debug", boost=False)
    return m.separator().save(tmp_path_factory.mktemp("model") / "sep.safetensors")


def _wav(path, seconds=0.6, value=None, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(0).standard_normal((int(seconds * SR), 2)).astype(np.float32)
    if value is not None:
        x[100:200] = value
    sf.write(path, x, SR, subtype="FLOAT" if fmt is None else fmt)
    return path


def _sep(*args):
    return main(["separate", *map(str, args), "--no-progress"])


def _one_line(capsys, *words):
    c = capsys.readouterr()
    assert "Traceback" not in c.err + c.out
    err = [l for l in c.err.strip().splitlines() if "error: " in l]
    assert len(err) == 1, c.err
    for w in words:
        assert w in err[0], err[0]


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_inputs_sharing_a_name_get_unique_folders(model_file, tmp_path):
    a, b = _wav(tmp_path / "in" / "a" / "song.wav"), _wav(tmp_path / "in" / "b" / "song.wav")
    flac = _wav(tmp_path / "in2" / "song.flac", fmt="PCM_24")
    wav = _wav(tmp_path / "in2" / "song.wav")
    out = tmp_path / "out"
    assert _sep(a, b, "-o", out, "--model", model_file) == 0
    assert _tree(out) == [f"{d}/song/{s}.wav" for d in "ab" for s in SOURCES]
    out2 = tmp_path / "out2"
    assert _sep(tmp_path / "in2", "-o", out2, "--model", model_file) == 0
    assert _tree(out2) == [f"song.{e}/{s}.wav" for e in ("flac", "wav") for s in SOURCES]


def test_output_folder_problems_are_one_line(model_file, tmp_path, capsys, read_only_dir):
    song = _wav(tmp_path / "song.wav")
    (tmp_path / "file").write_text("x")
    assert _sep(song, "-o", tmp_path / "file", "--model", model_file) == 1
    _one_line(capsys, "-o", "file")
    assert _sep(song, "-o", read_only_dir / "out", "--model", model_file) == 1
    _one_line(capsys, "-o", "out")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04" + b"\0" * 50, os.urandom(300)])
def test_bad_model_file_is_one_line(content, tmp_path, capsys):
    song = _wav(tmp_path / "song.wav")
    for suffix in (".ckpt", ".safetensors"):
        bad = tmp_path / f"bad{suffix}"
        bad.write_bytes(content)
        assert _sep(song, "-o", tmp_path / "out", "--model", bad) == 1
        _one_line(capsys, "bad" + suffix)
    assert not (tmp_path / "out" / "song").exists()


def test_failed_input_writes_nothing(model_file, tmp_path, capsys):
    good, bad = _wav(tmp_path / "in" / "good.wav"), _wav(tmp_path / "in" / "nan.wav", value=np.nan)
    out = tmp_path / "out"
    assert _sep(bad, "-o", out, "--model", model_file) == 1
    _one_line(capsys, "nan.wav")
    assert _tree(out) == []
    assert _sep(bad, good, "-o", out, "--model", model_file, "--keep-going") == 1
    assert _tree(out) == [f"good/{s}.wav" for s in SOURCES]


def test_demucs_options(model_file, tmp_path, capsys):
    song = _wav(tmp_path / "song.wav", seconds=1.3)
    out = tmp_path / "out"
    assert _sep(song, "-o", out / "two", "--model", model_file, "--two-stems", "vocals", "--jobs", "1") == 0
    assert _tree(out / "two") == ["song/no_vocals.wav", "song/vocals.wav"]
    assert _sep(song, "-o", out / "all", "--model", model_file) == 0
    full = {s: sf.read(out / "all" / "song" / f"{s}.wav")[0] for s in SOURCES}
    two = {s: sf.read(out / "two" / "song" / f"{s}.wav")[0] for s in ("vocals", "no_vocals")}
    assert np.array_equal(two["vocals"], full["vocals"]) and np.allclose(two["no_vocals"], full["drums"])
    assert _sep(song, "-o", out / "flac", "--model", model_file, "--flac") == 0
    info = sf.info(out / "flac" / "song" / "drums.flac")
    assert info.format == "FLAC" and info.subtype == "PCM_24"
    for opt, subtype in (("--int24", "PCM_24"), ("--int16", "PCM_16"), ("--pcm16", "PCM_16")):
        assert _sep(song, "-o", out / opt, "--model", model_file, opt) == 0
        assert sf.info(out / opt / "song" / "drums.wav").subtype == subtype
    assert _sep(song, "-o", out / "shift", "--model", model_file, "--shifts", "2") == 0
    shifted = sf.read(out / "shift" / "song" / "drums.wav")[0]
    assert shifted.shape == full["drums"].shape and not np.array_equal(shifted, full["drums"])
    assert np.corrcoef(shifted.ravel(), full["drums"].ravel())[0, 1] > 0.5   # same separation, other offsets
    assert _sep(song, "-o", out / "seg", "--model", model_file, "--segment", "0.5", "--overlap", "0.5") == 0
    assert sf.info(out / "seg" / "song" / "drums.wav").frames == full["drums"].shape[0]
    for bad in (["--segment", "nan"], ["--segment", "0"], ["--overlap", "1"], ["--overlap", "nan"],
                ["--two-stems", "piano"], ["--shifts", "-1"], ["--int24", "--int16"]):
        capsys.readouterr()
        try:
            code = _sep(song, "-o", out / "bad", "--model", model_file, *bad)
        except SystemExit as e:   # argparse: mutually exclusive options
            code = e.code
        assert code in (1, 2), bad
        if code == 1:
            _one_line(capsys, bad[0])
    assert not (out / "bad" / "song").exists()
