"""The README's main job: `booster demo` on the embedded default (tiny sizes here)."""
import json
import math

import soundfile as sf

from booster.cli import main


def test_demo_features_step_default_is_muq_mini(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--seconds", "3", "--features-only"]) == 0
    out = capsys.readouterr().out
    assert "[2/2] MuQ muq-mini" in out and "random weights" not in out
    from booster.cache import load_features
    feats, meta = load_features(tmp_path / "features" / "mixture.safetensors")
    assert meta["backbone"]["name"] == "muq-mini" and feats.hidden.shape[1] == 3


def test_demo_features_step(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--seconds", "3", "--features-only", "--backbone", "debug"]) == 0
    out = capsys.readouterr().out
    assert "[2/2] MuQ muq-debug-seed0" in out and "hidden [1, 3, 75, 32]" in out
    from booster.cache import load_features
    feats, meta = load_features(tmp_path / "features" / "mixture.safetensors")
    assert feats.layers == (4, 8, 12) and meta["backbone"]["name"] == "muq-debug-seed0"


def test_separation_demo_end_to_end(tmp_path):
    from booster.recipes.separation.demo import run
    report = run(tmp_path, seconds_budget=2.0, seed=0, train_tracks=2, test_tracks=1, track_seconds=3.0,
                 eval_seconds=1.5, segment=1.0, batch_size=2, verbose=False)
    assert set(report["runs"]) == {"baseline", "boosted"}
    for name, run_ in report["runs"].items():
        assert run_["steps"] >= 1
        results = json.loads(open(run_["results"]).read())
        assert results  # museval scores were written
    assert set(report["stems"]) == {"drums", "bass", "other", "vocals"}
    for path in report["stems"].values():
        wav, sr = sf.read(path)
        assert sr == 44100 and wav.shape[1] == 2 and math.isclose(len(wav) / sr, 3.0, rel_tol=0.02)
    assert "random weights" in report["note"]
    assert json.loads((tmp_path / "demo.json").read_text())["host"] == "htdemucs"
