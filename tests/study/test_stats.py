"""Known-number tests of the study statistics (booster.training.stats)."""
import math

import pytest

from booster.training import stats


def test_describe_known_numbers():
    d = stats.describe([2, 4, 4, 4, 5, 5, 7, 9])
    assert d["n"] == 8 and d["mean"] == 5.0
    assert d["sd"] == pytest.approx(math.sqrt(32 / 7))  # sample sd (ddof=1)
    assert (d["min"], d["max"]) == (2.0, 9.0)


def test_describe_drops_missing_and_single_value_has_no_spread():
    d = stats.describe([3.5, None, float("nan"), float("inf")])
    assert d == {"n": 1, "mean": 3.5, "sd": None, "min": 3.5, "max": 3.5}
    assert stats.describe([])["mean"] is None


def test_paired_difference_t_interval_known_numbers():
    # differences 1, 2, 1: mean 4/3, sd sqrt(1/3); t(0.975, 2) = 4.302652729911275
    d = stats.paired_difference([1, 2, 3], [2, 4, 4])
    assert d["n"] == 3 and d["mean"] == pytest.approx(4 / 3)
    assert d["sd"] == pytest.approx(math.sqrt(1 / 3))
    half = 4.302652729911275 * math.sqrt(1 / 3) / math.sqrt(3)
    assert d["ci"] == pytest.approx([4 / 3 - half, 4 / 3 + half])
    assert d["excludes_zero"] is False  # [-0.101, 2.768]
    assert d["note"] is None


def test_paired_difference_excludes_zero_and_other_confidence():
    base = [10.0, 11.0, 12.0, 13.0]
    boost = [11.0, 12.1, 12.9, 14.0]  # differences 1.0, 1.1, 0.9, 1.0
    d = stats.paired_difference(base, boost)
    assert d["mean"] == pytest.approx(1.0)
    assert d["excludes_zero"] is True and d["ci"][0] > 0
    # 90 %: t(0.95, 3) = 2.353363434801823, a narrower interval
    d90 = stats.paired_difference(base, boost, confidence=0.90)
    half = 2.353363434801823 * d["sd"] / 2
    assert d90["ci"] == pytest.approx([1.0 - half, 1.0 + half])
    # a negative difference that excludes zero
    neg = stats.paired_difference(boost, base)
    assert neg["excludes_zero"] is True and neg["ci"][1] < 0
    assert stats.verdict(neg) == "loss" and stats.verdict(neg, better_high=False) == "gain"


def test_paired_difference_one_seed_has_no_interval():
    d = stats.paired_difference([1.0], [1.5])
    assert d["n"] == 1 and d["mean"] == pytest.approx(0.5)
    assert d["ci"] is None and d["excludes_zero"] is None
    assert "one seed" in d["note"]
    assert stats.verdict(d) == "one seed"


def test_paired_difference_zero_spread_and_missing_pairs():
    d = stats.paired_difference([1.0, 2.0, None], [1.5, 2.5, 3.0])  # the third pair is incomplete
    assert d["n"] == 2 and d["sd"] == 0.0
    assert d["ci"] == pytest.approx([0.5, 0.5]) and d["excludes_zero"] is True
    with pytest.raises(ValueError):
        stats.paired_difference([1.0], [1.0, 2.0])


def test_metric_direction():
    assert stats.higher_is_better("mean/SDR") and stats.higher_is_better("note_f1")
    assert not stats.higher_is_better("mrstft") and not stats.higher_is_better("loudness_distance")
    assert not stats.higher_is_better("custom", lower=["custom"])


def _runs():
    runs = []
    values = {  # (fraction, seed) -> (baseline, boosted)
        (0.5, 0): (1.0, 2.0), (0.5, 1): (2.0, 4.0), (0.5, 2): (3.0, 4.0),
        (1.0, 0): (5.0, 6.0), (1.0, 1): (6.0, 7.1), (1.0, 2): (7.0, 7.9),
    }
    for (f, s), (a, b) in values.items():
        runs.append({"fraction": f, "seed": s, "variant": "baseline", "metrics": {"m": a}})
        runs.append({"fraction": f, "seed": s, "variant": "boosted", "metrics": {"m": b}})
    return runs


def test_study_table_pairs_by_seed_and_markdown():
    runs = _runs()
    runs.append({"fraction": 1.0, "seed": 3, "variant": "baseline", "metrics": {"m": 100.0}})  # unpaired
    rows = stats.study_table(runs, "m")
    assert [r["fraction"] for r in rows] == [0.5, 1.0]
    assert rows[0]["baseline"]["mean"] == pytest.approx(2.0) and rows[0]["boosted"]["mean"] == pytest.approx(10 / 3)
    assert rows[0]["difference"]["mean"] == pytest.approx(4 / 3) and rows[0]["difference"]["excludes_zero"] is False
    assert rows[1]["baseline"]["n"] == 4  # the unpaired seed counts in the spread ...
    assert rows[1]["difference"]["n"] == 3 and rows[1]["seeds"] == [0, 1, 2]  # ... not in the difference
    assert rows[1]["difference"]["excludes_zero"] is True
    md = stats.markdown_table(rows, "m")
    lines = md.splitlines()
    assert lines[0] == "#### m (higher is better)"
    assert lines[4].startswith("| 0.5 | 3 | 2.000 ± 1.000 | 3.333 ± 1.155 | +1.333 | [-0.101, 2.768] | no |")
    assert lines[5].endswith("| yes | gain |")


def test_markdown_one_seed_says_so():
    runs = [r for r in _runs() if r["seed"] == 0]
    md = stats.markdown_table(stats.study_table(runs, "m"), "m")
    assert "| 0.5 | 1 | 1.000 | 2.000 | +1.000 | — | — | one seed |" in md
    assert "Note: one seed: no interval" in md


def test_tiny_difference_is_not_printed_as_zero():
    runs = [{"fraction": 1.0, "seed": 0, "variant": "baseline", "metrics": {"m": 1.0}},
            {"fraction": 1.0, "seed": 0, "variant": "boosted", "metrics": {"m": 1.00003}}]
    assert "| +3.0e-05 |" in stats.markdown_table(stats.study_table(runs, "m"), "m")
