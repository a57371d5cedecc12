"""Data made on first use (``data.generate`` of the recipe configs): reused only when made with the same
settings; a set made with other settings is a one-line error, an interrupted one is made again, a folder of
your own data (no synth_report.json) is used as it is."""
import json

import pytest

from booster.data.synth import generate_from_spec
from booster.errors import ConfigError

SPEC = {"splits": {"train": 1}, "seconds": 1.0, "seed": 0, "renderer": "numpy"}


def test_same_settings_reuse_other_settings_refuse(tmp_path):
    root = tmp_path / "d"
    report = generate_from_spec(root, SPEC, sample_rate=8000, mix=False)
    assert report["complete"] is True and json.loads((root / "synth_report.json").read_text())["complete"] is True
    stamp = (root / "train" / "song_0000" / "bass.wav").stat().st_mtime_ns
    assert generate_from_spec(root, SPEC, present=True, sample_rate=8000, mix=False) is None   # reused
    assert (root / "train" / "song_0000" / "bass.wav").stat().st_mtime_ns == stamp
    for change, words in [({"seed": 1}, "seed: 0 there, 1 asked"), ({"seconds": 2.0}, "seconds: 1.0 there, 2.0 asked"),
                          ({"splits": {"train": 2}}, "splits: {'train': 1} there, {'train': 2} asked")]:
        with pytest.raises(ConfigError) as e:
            generate_from_spec(root, {**SPEC, **change}, present=True, sample_rate=8000, mix=False)
        assert words in str(e.value) and "another --data.root" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="sample_rate: 8000 there, 16000 asked"):
        generate_from_spec(root, SPEC, present=True, sample_rate=16000, mix=False)


def test_interrupted_set_is_made_again_own_data_is_kept(tmp_path):
    root = tmp_path / "d"
    generate_from_spec(root, SPEC, sample_rate=8000, mix=False)
    report = json.loads((root / "synth_report.json").read_text())
    (root / "synth_report.json").write_text(json.dumps({**report, "complete": False}))   # killed half-way
    (root / "train" / "song_0000" / "bass.wav").unlink()
    assert generate_from_spec(root, SPEC, present=True, sample_rate=8000, mix=False)["complete"] is True
    assert (root / "train" / "song_0000" / "bass.wav").is_file()
    own = tmp_path / "mine"
    (own / "train").mkdir(parents=True)
    assert generate_from_spec(own, SPEC, present=True, sample_rate=8000) is None
    assert not (own / "synth_report.json").exists()


def test_numpy_set_of_an_older_synthesiser_is_refused(tmp_path):
    """The numpy renderer's output changed (version 2: pitched tones): a set it made before is not reused."""
    root = tmp_path / "d"
    report = generate_from_spec(root, SPEC, sample_rate=8000, mix=False)
    assert report["renderer"] == "numpy" and report["numpy_synth_version"] == 2
    old = {k: v for k, v in report.items() if k != "numpy_synth_version"}   # as written before the version
    (root / "synth_report.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="numpy_synth_version: 1 there, 2 asked"):
        generate_from_spec(root, SPEC, present=True, sample_rate=8000, mix=False)
