"""Known-answer tests of the metrics, the reports and `booster compare`."""
import json
import math

import pytest
import torch

from booster.cli import main
from booster.errors import ConfigError
from booster.recipes.separation.evaluation import (compare_reports, evaluate_track, global_sdr, load_report,
                                                    summarize, write_report)


def test_global_sdr_known_answer():
    ref = torch.randn(2, 2, 1000)
    est = torch.stack([ref[0] * 0.5, ref[1] + ref[1]])  # error = ref/2 -> 20 log10(2); error = ref -> 0 dB
    g = global_sdr(ref, est)
    assert g[0].item() == pytest.approx(20 * math.log10(2), abs=1e-3)
    assert g[1].item() == pytest.approx(0.0, abs=1e-3)


def test_museval_orders_estimates():
    torch.manual_seed(0)
    ref = torch.randn(2, 2, 44100)
    good = evaluate_track(ref, ref + 0.05 * torch.randn_like(ref), ["a", "b"], 44100)
    bad = evaluate_track(ref, ref + 0.5 * torch.randn_like(ref), ["a", "b"], 44100)
    for s in ("a", "b"):
        assert good[s]["SDR"] > bad[s]["SDR"] + 10
        assert good[s]["SDR"] == pytest.approx(26, abs=2)  # 1/0.05^2 -> 26 dB
        assert set(good[s]) == {"SDR", "SIR", "ISR", "SAR", "gSDR"}


def test_summary_median_over_tracks_and_compare(tmp_path, capsys):
    rows = {f"t{i}": {"x": {"SDR": v, "gSDR": v}} for i, v in enumerate([1.0, 2.0, 10.0])}
    s = summarize(rows, ["x"])
    assert s["x"]["SDR"] == 2.0                          # median over tracks
    assert s["x"]["gSDR"] == pytest.approx(13 / 3)       # mean over tracks
    write_report(tmp_path / "a", rows, ["x"], meta={"name": "base"})
    rows_b = {k: {"x": {"SDR": v["x"]["SDR"] + 1.5, "gSDR": v["x"]["gSDR"] + 1.5}} for k, v in rows.items()}
    write_report(tmp_path / "b", rows_b, ["x"], meta={"name": "boost"})
    assert (tmp_path / "a" / "results.md").read_text().count("| x |") == 1
    _, diff = compare_reports(load_report(tmp_path / "a"), load_report(tmp_path / "b"))
    assert diff["x"]["SDR"] == pytest.approx(1.5)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["x"]["gSDR"] == pytest.approx(1.5) and out["mean"]["SDR"] == pytest.approx(1.5)


def test_compare_errors(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing"), str(tmp_path)]) == 1
    assert "no evaluation results" in capsys.readouterr().err
    (tmp_path / "results.json").write_text(json.dumps({"version": 99, "summary": {}}))
    with pytest.raises(ConfigError, match="version 99"):
        load_report(tmp_path)
