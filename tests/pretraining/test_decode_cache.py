"""Pretraining's decode cache (issue 19, items 1 and 5): entries are keyed by the file's content, not its path,
and non-finite audio is refused when read, naming the file, with nothing cached or written for it.

Shapes: S samples (24 kHz mono)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from booster.errors import AudioError
from booster.recipes.pretraining.data import CropDataset, build_cache

SR = 24_000
TRAIN = [sys.executable, "-m", "booster.recipes.pretraining.train"]
TINY = ["--seconds", "1", "--batch-size", "2", "--steps", "2", "--levels", "2", "--codebook-size", "8"]


def ramp_tone(seconds: float = 2.0, gain: float = 0.5) -> np.ndarray:
    """``[S]`` float32: a tone whose envelope rises over the clip (so time reversal changes every crop)."""
    t = np.arange(int(seconds * SR)) / SR
    return (gain * np.sin(2 * np.pi * 220 * t) * np.linspace(0.0, 1.0, t.size)).astype(np.float32)


def replace_keeping_times(path, audio: np.ndarray, subtype: str = "FLOAT") -> None:
    """Rewrite ``path`` with ``audio`` (same length and format: the same size) and put its old mtime back."""
    st = os.stat(path)
    sf.write(path, audio, SR, subtype=subtype)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def decoded(entries, cache) -> np.ndarray:
    """The decoded audio of the one file in ``entries`` (the crop of the whole file)."""
    (entry,) = entries
    return np.asarray(CropDataset(entries, cache, seconds=entry["seconds"], length=1, holdout=1)[0])


@pytest.mark.parametrize("change", ["time-reversed", "sign-flipped"])
def test_audio_replaced_at_the_same_path_is_decoded_again(tmp_path, change):
    (tmp_path / "music").mkdir()
    wav, cache = tmp_path / "music" / "a.wav", tmp_path / "cache"
    x = ramp_tone()
    sf.write(wav, x, SR, subtype="FLOAT")
    first = decoded(build_cache([tmp_path / "music"], cache, log=None), cache)
    np.testing.assert_allclose(first, x, atol=1e-3)
    y = x[::-1].copy() if change == "time-reversed" else -x
    replace_keeping_times(wav, y)               # same path, same size, same mtime: only the bytes differ
    second = decoded(build_cache([tmp_path / "music"], cache, log=None), cache)
    np.testing.assert_allclose(second, y, atol=1e-3)       # the old cache returned `first` again
    sf.write(wav, x, SR, subtype="FLOAT")                  # back to the first audio: its entry is reused
    names = {p.name for p in cache.glob("*.npy")}
    np.testing.assert_array_equal(decoded(build_cache([tmp_path / "music"], cache, log=None), cache), first)
    assert {p.name for p in cache.glob("*.npy")} == names


def test_hashes_are_reused_while_the_stat_matches(tmp_path, monkeypatch):
    from booster.recipes.pretraining import data
    monkeypatch.setattr(data, "_RACY_NS", 0)           # trust a hash taken right after the write (test speed)
    (tmp_path / "music").mkdir()
    wav, cache = tmp_path / "music" / "a.wav", tmp_path / "cache"
    sf.write(wav, ramp_tone(), SR, subtype="FLOAT")
    build_cache([tmp_path / "music"], cache, log=None)
    index = json.loads((cache / "hashes.json").read_text())
    (rec,) = index.values()
    rec[4] = "0" * 64                                  # a recorded hash is trusted while size/mtime/ctime match
    (cache / "hashes.json").write_text(json.dumps(index))
    build_cache([tmp_path / "music"], cache, log=None)
    assert json.loads((cache / "hashes.json").read_text()) == index
    sf.write(wav, -ramp_tone(), SR, subtype="FLOAT")     # rewritten: its ctime moves, it is hashed again
    build_cache([tmp_path / "music"], cache, log=None)
    (rec2,) = json.loads((cache / "hashes.json").read_text()).values()
    assert rec2[4] not in (rec[4], "0" * 64) and rec2[2] > rec[2]


def test_nan_file_is_refused_naming_it_and_nothing_is_cached(tmp_path):
    (tmp_path / "music").mkdir()
    bad = tmp_path / "music" / "bad.wav"
    x = ramp_tone()
    x[100] = np.nan
    sf.write(bad, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="bad.wav.*NaN/Inf"):
        build_cache([tmp_path / "music"], tmp_path / "cache", log=None)
    assert not list((tmp_path / "cache").glob("*.npy")) and not list((tmp_path / "cache").glob("files-*"))
    sf.write(bad, 1e6 * ramp_tone(), SR, subtype="FLOAT")           # finite, but not storable as float16
    with pytest.raises(AudioError, match="bad.wav.*float16"):
        build_cache([tmp_path / "music"], tmp_path / "cache", log=None)


def _stage1(data, run, cwd):
    return subprocess.run([*TRAIN, "tokenizer", "--data", str(data), "--run", str(run), *TINY],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_train_cli_nan_file_then_fixed_file(tmp_path):
    """Through ``python -m booster.recipes.pretraining.train tokenizer``: a NaN file stops stage 1 with one line
    naming it and writes no statistics; once the file is fixed (same path, same size) the fixed audio is used."""
    (tmp_path / "music").mkdir()
    wav = tmp_path / "music" / "a.wav"
    x = ramp_tone(3.0)
    x[1000:1010] = np.nan
    sf.write(wav, x, SR, subtype="FLOAT")
    proc = _stage1(tmp_path / "music", tmp_path / "r1", tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "a.wav" in proc.stderr and "NaN/Inf" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r1" / "stat.json").exists() and not list((tmp_path / "audio_cache").glob("*.npy"))
    replace_keeping_times(wav, np.nan_to_num(x, nan=0.0))
    proc = _stage1(tmp_path / "music", tmp_path / "r2", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loud = json.loads((tmp_path / "r2" / "stat.json").read_text())["melspec_2048_mean"]
    assert np.isfinite(loud)
    replace_keeping_times(wav, np.nan_to_num(x, nan=0.0) * 0.01)   # 40 dB quieter, same size and mtime
    proc = _stage1(tmp_path / "music", tmp_path / "r3", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    quiet = json.loads((tmp_path / "r3" / "stat.json").read_text())["melspec_2048_mean"]
    assert loud - quiet > 20                                        # the old cache gave the loud mean again


def test_booster_fit_nan_file_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "music").mkdir()
    x = ramp_tone(3.0)
    sf.write(tmp_path / "music" / "good.wav", x, SR, subtype="FLOAT")
    x[7] = np.inf
    sf.write(tmp_path / "music" / "bad.wav", x, SR, subtype="FLOAT")
    root = tmp_path / "run"
    cmd = [sys.executable, "-m", "booster.cli", "fit", "--config", "pretraining/debug",
           "--trainer.default_root_dir", str(root), "--data.folders", f"[{tmp_path / 'music'}]",
           "--data.synth", "null", "--data.cache_dir", str(tmp_path / "cache"), "--data.seconds", "1.0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert "bad.wav" in line and "NaN/Inf" in line
    assert not list(root.glob("tokenizer*")) and not list((tmp_path / "cache").glob("files-*"))
    assert len(list((tmp_path / "cache").glob("*.npy"))) <= 1      # at most good.wav's entry, never bad.wav's
