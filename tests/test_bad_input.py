"""Bad input: each case gets a clear error from our code; the CLI exits non-zero without a traceback."""
import subprocess
import sys

import numpy as np
import psutil
import pytest
import soundfile as sf
import torch

from booster import audio
from booster.cli import main
from booster.errors import AudioError
from booster.muq.extract import extract_file
from audio_helpers import music_like


def write(path, data, sr=44100, subtype="FLOAT"):
    sf.write(str(path), np.asarray(data).T, sr, subtype=subtype)
    return path


def features_cli(capsys, *args):
    code = main(["features", *map(str, args), "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_corrupt_file(tmp_path, capsys, debug_muq):
    good = write(tmp_path / "good.wav", music_like(2.0, sr=44100).numpy())
    bad = tmp_path / "bad.wav"
    bad.write_bytes(good.read_bytes()[:20])  # truncated header
    with pytest.raises(AudioError, match="cannot read audio file"):
        audio.load(bad)
    code, out, err = features_cli(capsys, good, bad, "-o", tmp_path / "out")
    assert code == 1 and "bad.wav" in err and "Traceback" not in err
    assert (tmp_path / "out" / "good.safetensors").exists()  # the good file is not lost


def test_empty_and_non_audio_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError, match="empty"):
        audio.load(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match="cannot read audio file"):
        audio.load(tmp_path / "notes.wav")
    with pytest.raises(AudioError, match="does not exist"):
        audio.load(tmp_path / "missing.wav")


def test_nan_and_inf_samples(tmp_path, debug_muq):
    x = music_like(2.0).numpy()
    x[0, 1000] = np.nan
    p = write(tmp_path / "nan.wav", x, sr=24000)
    with pytest.raises(AudioError, match="NaN/Inf"):
        audio.load(p)
    with pytest.raises(AudioError, match="NaN/Inf"):
        extract_file(debug_muq, p, [12])
    y = torch.from_numpy(x).clone()
    y[0, 1000] = float("inf")
    with pytest.raises(AudioError, match="NaN/Inf"):
        debug_muq.extract(y, 24000)


def test_silence_gives_finite_features(debug_muq):
    f = debug_muq.extract(torch.zeros(2, 48000), 48000, layers=[0, 12])
    assert torch.isfinite(f.hidden).all() and f.num_frames == 25


def test_shorter_than_one_frame(debug_muq, tmp_path, capsys):
    with pytest.raises(AudioError, match="too short"):
        debug_muq.extract(torch.randn(900), 24000)
    p = write(tmp_path / "click.wav", np.random.default_rng(0).normal(size=(1, 1500)) * 0.1)  # 34 ms @44.1k
    code, out, err = features_cli(capsys, p, "-o", tmp_path / "out")
    assert code == 1 and "too short" in err and "Traceback" not in err
    ok = debug_muq.extract(torch.randn(1025) * 0.1, 24000)  # the documented minimum works
    assert ok.num_frames == 1


def test_five_channels_and_int16(debug_muq, tmp_path):
    x = music_like(2.0, sr=44100, channels=5, seed=3).numpy() * 0.5
    p5 = write(tmp_path / "five.wav", x)
    p16 = write(tmp_path / "pcm16.wav", x, subtype="PCM_16")
    wav, sr = audio.load(p16)
    assert wav.dtype == torch.float32 and wav.shape[0] == 5 and sr == 44100 and wav.abs().max() <= 1
    a = extract_file(debug_muq, p5, [12]).hidden
    b = extract_file(debug_muq, p16, [12]).hidden
    c = debug_muq.extract(torch.from_numpy(x), 44100, [12]).hidden
    assert a.shape == b.shape == c.shape
    torch.testing.assert_close(a, c)
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.999


def test_features_cli_folder_and_metadata(tmp_path, capsys):
    from booster.cache import load_features
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write(tmp_path / "in" / "a.wav", music_like(1.5, sr=44100).numpy())
    write(tmp_path / "in" / "sub" / "a.wav", music_like(1.5, sr=22050, channels=2).numpy(), sr=22050)
    code, out, err = features_cli(capsys, tmp_path / "in", "-o", tmp_path / "out", "--layers", "0,6,12",
                                  "--fp16")
    assert code == 0, err
    f, meta = load_features(tmp_path / "out" / "sub" / "a.safetensors")
    assert f.hidden.shape == (1, 3, 38, 32) and meta["layers"] == [0, 6, 12] and meta["dtype"] == "float16"
    assert meta["backbone"]["name"].startswith("muq-debug") and len(meta["source_sha256"]) == 64
    assert (tmp_path / "out" / "a.safetensors").exists() and "wrote 2" in out


def test_cli_bad_layers_and_checkpoint(tmp_path, capsys):
    p = write(tmp_path / "a.wav", music_like(1.0).numpy())
    code, _, err = features_cli(capsys, p, "-o", tmp_path / "o", "--layers", "3,99")
    assert code == 1 and "out of range" in err
    (tmp_path / "ckpt").mkdir()
    code, _, err = features_cli(capsys, p, "-o", tmp_path / "o", "--checkpoint", tmp_path / "ckpt")
    assert code == 1 and "no config.json" in err and "Traceback" not in err


def test_cli_subprocess_exits_nonzero_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "booster.cli", "features", str(tmp_path / "nope.wav"),
                        "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_one_hour_file_bounded_memory(debug_muq, tmp_path):
    """One hour at 16 kHz mono int16 (115 MB on disk): extraction streams it window by window."""
    sr, seconds = 16000, 3600
    path = tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(seconds // 60):
            f.write((rng.normal(size=sr * 60) * 0.05).astype(np.float32))
    proc = psutil.Process()
    before = proc.memory_info().rss
    feats = extract_file(debug_muq, path, [0], window=30.0, overlap=5.0)
    grew = proc.memory_info().rss - before
    assert feats.hidden.shape == (1, 1, 90000, 32)
    assert torch.isfinite(feats.hidden).all()
    # The audio alone would need 230 MB as float32 at 16 kHz and 345 MB at 24 kHz; the features take 11.5 MB.
    assert grew < 150 * 2**20, f"RSS grew by {grew / 2**20:.0f} MiB"
