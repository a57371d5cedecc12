"""``booster synth``: a soundfont that FluidSynth cannot load is refused (FluidSynth would silently use
its default one), the soundfont used is reported, and a bad output folder is one line."""
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from booster.cli import main
from booster.data.render import SOUNDFONT_CANDIDATES, check_soundfont, resolve_renderer
from booster.errors import ConfigError

needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")


def synth(capsys, *args):
    code = main(["synth", *map(str, args), "--seconds", "1", "--tracks", "1", "--no-progress", "--no-mix"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


@pytest.fixture()
def not_a_soundfont(tmp_path):
    p = tmp_path / "random.wav"
    sf.write(str(p), np.zeros((100, 1), np.float32), 8000)
    return p


@needs_fluidsynth
@pytest.mark.parametrize("renderer", ["fluidsynth", "auto"])
def test_wav_as_soundfont_is_refused(tmp_path, capsys, not_a_soundfont, renderer):
    code, _, err = synth(capsys, tmp_path / "out", "--renderer", renderer, "--soundfont", not_a_soundfont)
    assert code == 1 and "random.wav' is not a SoundFont" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "synth_report.json").exists()


def test_soundfont_checks(tmp_path, not_a_soundfont, monkeypatch):
    with pytest.raises(ConfigError, match="not a SoundFont"):
        check_soundfont(not_a_soundfont)
    cut = tmp_path / "cut.sf2"
    cut.write_bytes(b"RIFF" + (10_000).to_bytes(4, "little") + b"sfbk" + b"\0" * 100)
    with pytest.raises(ConfigError, match="truncated"):
        check_soundfont(cut)
    monkeypatch.setenv("BOOSTER_SOUNDFONT", str(not_a_soundfont))  # auto falls back and says why
    choice = resolve_renderer("auto")
    assert choice.name == "numpy" and "no loadable General MIDI soundfont" in choice.reason
    with pytest.raises(ConfigError, match="random.wav"):
        resolve_renderer("fluidsynth")
    with pytest.raises(ConfigError, match="fluidsynth renderer only"):
        resolve_renderer("numpy", str(not_a_soundfont))


@needs_fluidsynth
def test_the_soundfont_used_is_reported(tmp_path, capsys):
    sf2 = next((c for c in SOUNDFONT_CANDIDATES if os.path.isfile(c)), None)
    if sf2 is None:
        pytest.skip("no General MIDI soundfont installed")
    code, out, err = synth(capsys, tmp_path / "out", "--renderer", "fluidsynth", "--soundfont", sf2)
    assert code == 0, err
    assert f"soundfont {sf2}" in out.splitlines()[-1]
    report = json.loads((tmp_path / "out" / "synth_report.json").read_text())
    assert report["soundfont"] == sf2 and report["renderer"] == "fluidsynth"


def test_output_folder_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    code, _, err = synth(capsys, tmp_path / "taken", "--renderer", "numpy")
    assert code == 1 and "OUT" in err and "existing file" in err and len(err.strip().splitlines()) == 1


def test_read_only_output_folder(read_only_dir, capsys):
    code, _, err = synth(capsys, read_only_dir, "--renderer", "numpy")
    assert code == 1 and "not writable" in err and len(err.strip().splitlines()) == 1
