"""Statistics of a baseline-vs-boosted study: spread over seeds and paired differences.

A study trains, for each training fraction and seed, a baseline and a boosted variant that share data
subset, seed and budget. Over the seeds of one fraction this module gives

- :func:`describe`: mean and spread (sample standard deviation, ``ddof=1``) of one variant's metric;
- :func:`paired_difference`: the per-seed difference ``boosted - baseline``, its mean, and a two-sided
  Student-t confidence interval ``mean ± t_{(1+c)/2, n-1} * sd / sqrt(n)`` with whether it excludes zero.
  With one seed there is no interval (``ci`` is None and ``note`` says so).

Missing values (None / NaN: a metric a run could not compute) are dropped; a pair is used only when both
of its values are finite.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

ONE_SEED_NOTE = "one seed: no interval (run the study with --seeds 2 or more)"
LOWER_IS_BETTER_WORDS = ("loss", "distance", "error", "mrstft", "mr_stft", "stft", "dist", "mse", "mae")


def finite(value) -> float | None:
    """``value`` as a float, or None when it is missing, not a number or not finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def describe(values: Iterable) -> dict:
    """``{"n", "mean", "sd", "min", "max"}`` of the finite values (sd None below two values; all None if empty)."""
    vals = [v for v in (finite(x) for x in values) if v is not None]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    mean = math.fsum(vals) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "sd": sd, "min": min(vals), "max": max(vals)}


def paired_difference(baseline: Sequence, boosted: Sequence, confidence: float = 0.95) -> dict:
    """Statistics of ``boosted[i] - baseline[i]`` over the pairs where both are finite.

    Returns ``{"n", "mean", "sd", "confidence", "ci": [low, high] | None, "excludes_zero": bool | None,
    "note": str | None}``. ``ci`` needs two pairs or more; with zero spread the interval is the point itself.
    """
    if len(baseline) != len(boosted):
        raise ValueError(f"paired values differ in length: {len(baseline)} baseline vs {len(boosted)} boosted")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    diffs = []
    for a, b in zip(baseline, boosted):
        fa, fb = finite(a), finite(b)
        if fa is not None and fb is not None:
            diffs.append(fb - fa)
    d = describe(diffs)
    out = {"n": d["n"], "mean": d["mean"], "sd": d["sd"], "confidence": confidence, "ci": None,
           "excludes_zero": None, "note": None}
    if d["n"] == 0:
        out["note"] = "no pair with both values"
    elif d["n"] == 1:
        out["note"] = ONE_SEED_NOTE
    else:
        from scipy import stats

        half = stats.t.ppf((1 + confidence) / 2, d["n"] - 1) * d["sd"] / math.sqrt(d["n"])
        low, high = d["mean"] - half, d["mean"] + half
        out["ci"] = [low, high]
        out["excludes_zero"] = bool(low > 0 or high < 0)
    return out


def higher_is_better(metric: str, lower: Iterable[str] = ()) -> bool:
    """Direction of a metric: False for names listed in ``lower`` or that name a loss / distance / error."""
    lower = set(lower)
    if metric in lower:
        return False
    name = metric.lower().replace("-", "_")
    return not any(word in name for word in LOWER_IS_BETTER_WORDS)


def verdict(diff: dict, better_high: bool = True) -> str:
    """One short word for a paired difference: "gain", "loss", "no clear difference" or "n/a"."""
    if diff["excludes_zero"] is None:
        return "n/a" if diff["n"] == 0 else "one seed"
    if not diff["excludes_zero"]:
        return "no clear difference"
    return "gain" if (diff["mean"] > 0) == better_high else "loss"


def study_table(runs: list[dict], metric: str, confidence: float = 0.95) -> list[dict]:
    """Per fraction (ascending): baseline and boosted :func:`describe`, :func:`paired_difference`.

    ``runs``: dicts with ``fraction``, ``seed``, ``variant`` ("baseline" | "boosted") and ``metrics``
    (flat ``{name: value}``). Pairs are matched by seed; a seed with only one variant is left out of the
    difference (but counted in its variant's spread).
    """
    rows = []
    for fraction in sorted({float(r["fraction"]) for r in runs}):
        by = {"baseline": {}, "boosted": {}}
        for r in runs:
            if float(r["fraction"]) == fraction and r["variant"] in by:
                by[r["variant"]][int(r["seed"])] = (r.get("metrics") or {}).get(metric)
        seeds = sorted(set(by["baseline"]) & set(by["boosted"]))
        rows.append({
            "fraction": fraction,
            "baseline": describe(by["baseline"].values()),
            "boosted": describe(by["boosted"].values()),
            "difference": paired_difference([by["baseline"][s] for s in seeds],
                                            [by["boosted"][s] for s in seeds], confidence),
            "seeds": seeds,
        })
    return rows


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def _signed(v: float) -> str:
    """``+1.234``; tiny non-zero values in scientific notation, so they do not read as exactly zero."""
    return f"{v:+.1e}" if 0 < abs(v) < 5e-4 else f"{v:+.3f}"


def _mean_sd(d: dict) -> str:
    if d["mean"] is None:
        return "n/a"
    return _fmt(d["mean"]) if d["sd"] is None else f"{_fmt(d['mean'])} ± {_fmt(d['sd'])}"


def markdown_table(rows: list[dict], metric: str, better_high: bool = True) -> str:
    """One metric's study table (a :func:`study_table` result) in markdown."""
    c = rows[0]["difference"]["confidence"] if rows else 0.95
    arrow = "higher is better" if better_high else "lower is better"
    by = any("backbone" in r for r in rows)  # a study of several backbones: one row per fraction and backbone
    lines = [f"#### {metric} ({arrow})", "",
             f"| fraction | {'backbone | ' if by else ''}seeds | baseline (mean ± sd) | boosted (mean ± sd) | "
             f"boosted − baseline | {c:.0%} interval | excludes 0 | verdict |",
             f"|---:|{'---|' if by else ''}---:|---:|---:|---:|---|---|---|"]
    for r in rows:
        d = r["difference"]
        ci = "—" if d["ci"] is None else f"[{_fmt(d['ci'][0])}, {_fmt(d['ci'][1])}]"
        ex = "—" if d["excludes_zero"] is None else ("yes" if d["excludes_zero"] else "no")
        mean_d = "n/a" if d["mean"] is None else _signed(d["mean"])
        label = f"{r['backbone']} | " if by else ""
        lines.append(f"| {r['fraction']:g} | {label}{d['n']} | {_mean_sd(r['baseline'])} | {_mean_sd(r['boosted'])} | "
                     f"{mean_d} | {ci} | {ex} | {verdict(d, better_high)} |")
    notes = sorted({r["difference"]["note"] for r in rows if r["difference"]["note"]})
    if notes:
        lines += [""] + [f"Note: {n}." for n in notes]
    return "\n".join(lines)
