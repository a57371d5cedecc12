"""A WAV whose data chunk holds fewer frames than its header says: warning, or error when strict."""
import warnings

import numpy as np
import pytest
import soundfile as sf

from booster import audio
from booster.audio import FileReader, TruncatedAudioWarning, strict_audio, wav_declared_frames
from booster.cli import main
from booster.errors import AudioError
from audio_helpers import music_like


@pytest.fixture()
def truncated(tmp_path):
    full = tmp_path / "full.wav"
    sf.write(str(full), music_like(2.0, sr=44100, channels=2).numpy().T, 44100, subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + (len(data) - 44) // 2])  # half of the samples, header unchanged
    return full, cut


def test_header_frames_are_read(truncated):
    full, cut = truncated
    assert wav_declared_frames(str(full)) == sf.info(str(full)).frames == 88200
    assert wav_declared_frames(str(cut)) == 88200 and sf.info(str(cut)).frames == 44100


def test_intact_files_give_no_warning(truncated, tmp_path):
    full, _ = truncated
    sf.write(str(tmp_path / "f.flac"), np.zeros((4410, 1), np.float32), 44100)
    sf.write(str(tmp_path / "float.wav"), np.zeros((4410, 2), np.float32), 44100, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in (full, tmp_path / "f.flac", tmp_path / "float.wav"):
            audio.load(p)
            FileReader(p, 24000, 1)


def test_truncated_warns_or_fails_when_strict(truncated):
    _, cut = truncated
    with pytest.warns(TruncatedAudioWarning, match=r"declares 88200 frames \(2.00 s\) but only 44100"):
        wav, sr = audio.load(cut)
    assert wav.shape == (2, 44100)
    with pytest.raises(AudioError, match="truncated"):
        audio.load(cut, strict=True)
    with strict_audio(), pytest.raises(AudioError, match="truncated"):
        FileReader(cut, 24000, 1)
    with pytest.warns(TruncatedAudioWarning):
        FileReader(cut, 24000, 1)  # the default is back


def test_features_cli_warns_and_strict_fails(truncated, tmp_path, capsys):
    full, cut = truncated
    code = main(["features", str(cut), str(full), "-o", str(tmp_path / "o"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and "warning: audio file" in err and "truncated" in err and "Traceback" not in err
    code = main(["features", str(cut), str(full), "-o", str(tmp_path / "o2"), "--no-progress", "--device", "cpu",
                 "--strict"])
    err = capsys.readouterr().err
    assert code == 1 and "1 input(s) failed" in err and "cut.wav" in err and "truncated" in err
    assert (tmp_path / "o2" / "full.safetensors").exists() and not (tmp_path / "o2" / "cut.safetensors").exists()


@pytest.mark.parametrize("opts, ext, subtype", [({}, ".wav", "FLOAT"), ({"int24": True}, ".wav", "PCM_24"),
                                                ({"int16": True}, ".wav", "PCM_16"), ({"flac": True}, ".flac", "PCM_24"),
                                                ({"flac": True, "int16": True}, ".flac", "PCM_16")])
def test_output_formats_round_trip(tmp_path, opts, ext, subtype):
    x = music_like(0.5, sr=44100, channels=2) * 0.5
    ext_, subtype_ = audio.output_format(**opts)
    assert (ext_, subtype_) == (ext, subtype)
    p = audio.save(tmp_path / f"a{ext}", x, 44100, subtype=subtype)
    y, _ = audio.load(p)
    assert sf.info(str(p)).subtype == subtype
    tol = {"FLOAT": 0, "PCM_24": 2 ** -22, "PCM_16": 2 ** -14}[subtype]
    assert (y - x).abs().max() <= tol


def test_impossible_format_is_one_line(tmp_path):
    with pytest.raises(AudioError, match="cannot write .* as FLAC with sample format FLOAT"):
        audio.save(tmp_path / "a.flac", np.zeros((2, 100), np.float32), 44100)
    assert list(tmp_path.iterdir()) == []
