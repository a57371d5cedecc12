import json

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from booster.cli import main as cli_main
from booster.data.render import resolve_renderer
from booster.data.songs import STEMS, compose_song
from booster.data.synth import PEAK, generate_dataset
from booster.errors import ConfigError

from synth_helpers import HAS_FLUIDSYNTH, tree_hashes


def test_layout_and_report(synth_set):
    root, report = synth_set
    assert report["renderer"] == ("fluidsynth" if HAS_FLUIDSYNTH else "numpy")
    assert report["splits"] == {"train": 3, "valid": 1}
    assert json.loads((root / "synth_report.json").read_text()) == report
    names = {(t["split"], t["name"]) for t in report["tracks"]}
    assert names == {("train", "song_0000"), ("train", "song_0001"), ("train", "song_0002"), ("valid", "song_0000")}
    for t in report["tracks"]:
        d = root / t["path"]
        for f in ["mixture", *STEMS]:
            info = sf.info(str(d / f"{f}.wav"))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, 3 * 44100, "FLOAT")
            if f != "mixture":
                assert (d / "midi" / f"{f}.mid").is_file()
                assert (d / "mix" / f"{f}.wav").is_file()
        assert (d / "mix" / "mixture.wav").is_file()
        params = json.loads((d / "mix" / "params.json").read_text())
        assert set(params["stems"]) == set(STEMS) and params["output_gain"] == t["mix_gain"]
        meta = json.loads((d / "meta.json").read_text())
        assert meta["mixture_gain"] == t["mixture_gain"] and meta["renderer"] == report["renderer"]
        assert meta["parts"]["vocals"][0]["program"] in (52, 53, 54, 85)  # voice-like GM program


def test_stems_sum_to_mixture_and_never_clip(synth_set):
    root, report = synth_set
    for t in report["tracks"]:
        d = root / t["path"]
        stems = [sf.read(str(d / f"{s}.wav"), dtype="float32")[0] for s in STEMS]
        mix = sf.read(str(d / "mixture.wav"), dtype="float32")[0]
        assert np.abs(sum(s.astype(np.float64) for s in stems) - mix).max() < 1e-6
        assert np.abs(mix).max() == pytest.approx(PEAK, abs=1e-4)  # normalised, below full scale
        assert all(np.sqrt(np.mean(s ** 2)) > 1e-3 for s in stems)  # every stem sounds
        m_stems = [sf.read(str(d / "mix" / f"{s}.wav"), dtype="float32")[0] for s in STEMS]
        m_mix = sf.read(str(d / "mix" / "mixture.wav"), dtype="float32")[0]
        assert np.abs(sum(s.astype(np.float64) for s in m_stems) - m_mix).max() < 1e-6
        assert np.abs(m_mix).max() <= PEAK + 1e-4
        assert np.abs(m_mix - mix).max() > 0.01  # the engineered mix is not the plain sum


def test_same_seed_same_files_and_other_seed_differs(synth_set, tmp_path):
    root, _ = synth_set
    generate_dataset(tmp_path / "a", split={"train": 3, "valid": 1}, seconds=3.0, seed=0)
    assert tree_hashes(tmp_path / "a") == tree_hashes(root)
    generate_dataset(tmp_path / "b", tracks=1, seconds=3.0, seed=1)
    a = sf.read(str(root / "train/song_0000/mixture.wav"))[0]
    b = sf.read(str(tmp_path / "b/train/song_0000/mixture.wav"))[0]
    assert not np.allclose(a, b)
    # a track does not depend on how many tracks are generated
    assert (tree_hashes(tmp_path / "a" / "train" / "song_0000")
            == tree_hashes(root / "train" / "song_0000"))


def test_numpy_renderer_deterministic_and_reported(tmp_path):
    r1 = generate_dataset(tmp_path / "n1", tracks=1, seconds=2.0, seed=5, renderer="numpy", mix=False)
    r2 = generate_dataset(tmp_path / "n2", tracks=1, seconds=2.0, seed=5, renderer="numpy", mix=False)
    assert r1["renderer"] == "numpy" and "numpy" in r1["renderer_reason"]
    assert tree_hashes(tmp_path / "n1") == tree_hashes(tmp_path / "n2")
    assert not (tmp_path / "n1/train/song_0000/mix").exists()
    mix = sf.read(str(tmp_path / "n1/train/song_0000/mixture.wav"))[0]
    assert np.abs(mix).max() == pytest.approx(PEAK, abs=1e-4)


def test_auto_falls_back_to_numpy_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("BOOSTER_SOUNDFONT", str(tmp_path / "missing.sf2"))
    choice = resolve_renderer("auto")
    assert choice.name == "numpy" and "missing.sf2" in choice.reason
    with pytest.raises(ConfigError, match="fluidsynth.*unavailable"):
        resolve_renderer("fluidsynth")
    with pytest.raises(ConfigError, match="unknown renderer"):
        resolve_renderer("timidity")


def test_midi_files_hold_the_exact_notes(synth_set):
    root, report = synth_set
    meta = json.loads((root / "train/song_0001/meta.json").read_text())
    song = compose_song(np.random.default_rng([0, __import__("zlib").crc32(b"train"), 1]), seconds=3.0)
    assert song.tempo == pytest.approx(meta["tempo"]) and song.key_name == meta["key"]
    for stem in STEMS:
        pm = pretty_midi.PrettyMIDI(str(root / "train/song_0001/midi" / f"{stem}.mid"))
        got = sorted((n.pitch, n.velocity, n.start, n.end) for i in pm.instruments for n in i.notes)
        want = sorted((n.pitch, n.velocity, n.start, n.end) for i in song.parts[stem] for n in i.notes)
        assert len(got) == len(want) > 0
        assert np.allclose([g[2:] for g in got], [w[2:] for w in want], atol=1e-6)
        assert [g[:2] for g in got] == [w[:2] for w in want]
        assert max(g[3] for g in got) <= 3.0 + 1e-6  # nothing beyond the song


def test_song_parameters_vary():
    songs = [compose_song(np.random.default_rng(k), seconds=4.0) for k in range(12)]
    assert len({round(s.tempo) for s in songs}) > 6
    assert len({s.key_name for s in songs}) > 4 and len({s.drum_style for s in songs}) > 1
    assert all(80 <= s.tempo <= 140 for s in songs)
    two = compose_song(np.random.default_rng(0), seconds=4.0, other_parts=2)
    assert len(two.parts["other"]) == 2
    with pytest.raises(ConfigError):
        compose_song(np.random.default_rng(0), seconds=0.5)


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="tracks"):
        generate_dataset(tmp_path, seconds=2.0, seed=0)
    with pytest.raises(ConfigError, match="positive"):
        generate_dataset(tmp_path, split={"train": 0}, seconds=2.0, seed=0)
    with pytest.raises(ConfigError, match="not both"):
        generate_dataset(tmp_path, tracks=2, split={"train": 2}, seconds=2.0, seed=0)


def test_cli_splits_and_errors(tmp_path, capsys):
    rc = cli_main(["synth", str(tmp_path / "out"), "--seconds", "2", "--seed", "3", "--split", "train=2",
                   "--split", "valid=1", "--renderer", "numpy", "--no-mix", "--no-progress"])
    assert rc == 0
    assert "renderer: numpy" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out/train").iterdir()) == ["song_0000", "song_0001"]
    assert sorted(p.name for p in (tmp_path / "out/valid").iterdir()) == ["song_0000"]
    assert cli_main(["synth", str(tmp_path / "x"), "--split", "train=two"]) == 1
    assert "integer" in capsys.readouterr().err
    assert cli_main(["synth", str(tmp_path / "x"), "--renderer", "fluidsynth", "--soundfont",
                     str(tmp_path / "none.sf2")]) == 1
    assert "none.sf2' does not exist" in capsys.readouterr().err


def test_generate_from_spec_rejects_unknown_keys_and_writes_splits(tmp_path):
    import pytest as _pytest

    from booster.data.synth import generate_from_spec
    from booster.errors import ConfigError
    with _pytest.raises(ConfigError, match="unknown keys \\['tracks'\\]"):
        generate_from_spec(tmp_path / "x", {"tracks": 3})
    report = generate_from_spec(tmp_path / "s", {"splits": {"train": 1, "test": 1}, "seconds": 1.0,
                                                 "renderer": "numpy"}, mix=False)
    assert (tmp_path / "s" / "train").is_dir() and (tmp_path / "s" / "test").is_dir()
    assert report["renderer"] == "numpy"
