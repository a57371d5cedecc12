"""Plots: a study's headline metric (or each backbone's gain) vs training fraction, and training curves of runs
(matplotlib, Agg).

Training curves come from Lightning's ``CSVLogger`` files (``metrics.csv``): one column per logged
name plus ``step`` / ``epoch``; a row holds the values logged at one step and leaves the other columns
empty (or NaN), so every metric is read as its own ``(step, value)`` series with the gaps dropped.
"""
from __future__ import annotations

import csv
import fnmatch
import math
import re
from pathlib import Path

import numpy as np

from booster.errors import ConfigError

VARIANT_STYLE = {"baseline": {"color": "tab:blue", "marker": "o"},
                 "boosted": {"color": "tab:orange", "marker": "s"}}
INDEX_COLUMNS = ("step", "epoch")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def study_plot(rows: list[dict], runs: list[dict], metric: str, path: str | Path, *, title: str | None = None,
               better_high: bool = True) -> Path:
    """Draw ``metric`` vs training fraction for both variants into ``path`` (PNG).

    ``rows``: :func:`booster.training.stats.study_table` for ``metric`` (mean ± sd per fraction and variant);
    ``runs``: the study's runs (each seed drawn as a small point, so the spread is visible even for 2 seeds).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    try:
        fractions = [r["fraction"] for r in rows]
        offsets = {"baseline": 0.985, "boosted": 1.015}  # side by side, so the seed points do not overlap
        for variant, style in VARIANT_STYLE.items():
            xs, means, sds = [], [], []
            for r in rows:
                d = r[variant]
                if d["mean"] is not None:
                    xs.append(r["fraction"])
                    means.append(d["mean"])
                    sds.append(d["sd"] if d["sd"] is not None else 0.0)
            if not xs:
                continue
            xs, means, sds = np.array(xs), np.array(means), np.array(sds)
            ax.plot(xs, means, color=style["color"], marker=style["marker"], label=f"{variant} (mean)")
            if np.any(sds > 0):
                ax.fill_between(xs, means - sds, means + sds, color=style["color"], alpha=0.18,
                                label=f"{variant} ± sd over seeds")
            px = [float(r["fraction"]) * offsets[variant] for r in runs if r["variant"] == variant
                  and _num(r.get("metrics", {}).get(metric)) is not None]
            py = [_num(r["metrics"][metric]) for r in runs if r["variant"] == variant
                  and _num(r.get("metrics", {}).get(metric)) is not None]
            ax.scatter(px, py, s=14, color=style["color"], alpha=0.55, edgecolors="none")
        if fractions and min(fractions) > 0 and max(fractions) / min(fractions) >= 4:
            ax.set_xscale("log")
        if len(fractions) == 1:  # a single fraction: leave room around it
            ax.set_xlim(fractions[0] * 0.5, fractions[0] * 1.5)
        ax.set_xticks(fractions)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xticklabels([f"{f:g}" for f in fractions])
        ax.minorticks_off()
        ax.set_xlabel("training fraction")
        ax.set_ylabel(f"{metric} ({'higher' if better_high else 'lower'} is better)")
        ax.set_title(title or f"{metric} vs training fraction")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        path = _save(fig, path)
    finally:
        plt.close(fig)
    return path


def backbones_plot(rows: list[dict], labels: list[str], metric: str, path: str | Path, *, title: str | None = None,
                   better_high: bool = True) -> Path:
    """Draw each backbone's gain (boosted − baseline, paired over seeds) in ``metric`` vs training fraction
    into ``path`` (PNG): one line per backbone, its confidence interval as a band (none with one seed), and
    zero (no gain) as a dashed line. ``rows``: :func:`booster.training.study_report.backbones_table`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    try:
        fractions = sorted({r["fraction"] for r in rows})
        ax.axhline(0.0, color="0.4", lw=1, ls="--", label="no gain (plain host)")
        colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
        for k, label in enumerate(labels):
            mine = [r for r in rows if r["backbone"] == label and r["difference"]["mean"] is not None]
            if not mine:
                continue
            color = colors[k % len(colors)]
            xs = np.array([r["fraction"] for r in mine])
            ax.plot(xs, [r["difference"]["mean"] for r in mine], color=color, marker="os^vDP*X"[k % 8], label=label)
            band = [r for r in mine if r["difference"]["ci"] is not None]
            if band:
                ax.fill_between([r["fraction"] for r in band], [r["difference"]["ci"][0] for r in band],
                                [r["difference"]["ci"][1] for r in band], color=color, alpha=0.18)
        if fractions and min(fractions) > 0 and max(fractions) / min(fractions) >= 4:
            ax.set_xscale("log")
        if len(fractions) == 1:
            ax.set_xlim(fractions[0] * 0.5, fractions[0] * 1.5)
        ax.set_xticks(fractions)
        ax.set_xticklabels([f"{f:g}" for f in fractions])
        ax.minorticks_off()
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("training fraction")
        ax.set_ylabel(f"gain in {metric}, boosted − baseline ({'higher' if better_high else 'lower'} is better)")
        ax.set_title(title or f"gain in {metric} vs training fraction", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        path = _save(fig, path)
    finally:
        plt.close(fig)
    return path


def _save(fig, path: str | Path) -> Path:
    """Lay out ``fig`` and write it to ``path`` (its folder made when missing)."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# --------------------------------------------------------------------------- training curves


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]


def find_metric_logs(run: str | Path) -> dict[str, list[Path]]:
    """The ``metrics.csv`` files of a run: ``{label: [files]}``.

    ``run`` is a ``metrics.csv`` file or a folder searched recursively. Files in ``version_N`` folders of
    one logger directory are one run (a resumed run continues in a new version) and are read in order;
    each other directory is its own run (a study folder gives one curve per run; the runs a study rerun moved
    aside as ``<run>.old-<time>`` are left out).
    """
    run = Path(run)
    if run.is_file():
        if run.suffix != ".csv":
            raise ConfigError(f"{str(run)!r} is not a metrics.csv file or a run folder")
        return {run.parent.name or str(run): [run]}
    if not run.is_dir():
        raise ConfigError(f"run {str(run)!r} does not exist")
    files = sorted((f for f in run.rglob("metrics.csv")   # not the runs a study moved aside (<run>.old-<time>)
                    if not any(".old-" in part for part in f.relative_to(run).parts)), key=_natural_key)
    if not files:
        raise ConfigError(f"no metrics.csv under {str(run)!r}; train with a CSV logger "
                          "(`booster fit` writes one per run) or pass the run's folder")
    owners: dict[Path, list[Path]] = {}
    for f in files:  # a logger folder <run>/<name>/version_N is labelled by its run folder
        versioned = f.parent != run and re.fullmatch(r"version_\d+", f.parent.name) is not None
        owners.setdefault(f.parent.parent if versioned else f.parent, []).append(f)
    short = {o: (o.parent if o != run and o != fs[0].parent else o) for o, fs in owners.items()}
    unique = len(set(short.values())) == len(short)
    groups: dict[str, list[Path]] = {}
    for owner, fs in owners.items():
        rel = (short[owner] if unique else owner).relative_to(run)
        groups[run.name if str(rel) == "." else f"{run.name}/{rel.as_posix()}"] = fs
    return groups


def read_metrics_csv(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{column: (x, values)}`` of one CSVLogger file, empty / NaN cells dropped; x is ``step`` (else the row)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"cannot read {str(path)!r} as a metrics CSV ({e})") from None
    series: dict[str, tuple[list, list]] = {}
    for i, row in enumerate(rows):
        step = _num(row.get("step")) if "step" in row else None
        x = step if step is not None else float(i)
        for key, cell in row.items():
            if key is None or key in INDEX_COLUMNS:
                continue
            v = _num(cell)
            if v is not None:
                xs, vs = series.setdefault(key, ([], []))
                xs.append(x)
                vs.append(v)
    return {k: (np.asarray(x, dtype=np.float64), np.asarray(v, dtype=np.float64)) for k, (x, v) in series.items()}


def load_run_curves(files: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Series of several ``metrics.csv`` files of one run (versions in order, concatenated)."""
    merged: dict[str, tuple[list, list]] = {}
    for f in files:
        for k, (x, v) in read_metrics_csv(f).items():
            xs, vs = merged.setdefault(k, ([], []))
            xs.extend(x.tolist())
            vs.extend(v.tolist())
    return {k: (np.asarray(x), np.asarray(v)) for k, (x, v) in merged.items()}


def plot_runs(runs: list[str | Path], path: str | Path, metrics: list[str] | None = None) -> tuple[Path, list[str]]:
    """Draw every logged metric (or those matching the ``metrics`` glob patterns) of ``runs``, one panel per metric.

    Returns the PNG path and the metric names drawn. A run without any logged value is an error.
    """
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for run in runs:
        for label, files in find_metric_logs(run).items():
            data = load_run_curves(files)
            if not data:
                raise ConfigError(f"{', '.join(map(str, files))}: no logged values (only a header?)")
            name, k = label, 2
            while name in curves:
                name, k = f"{label} ({k})", k + 1
            curves[name] = data
    names = sorted({m for c in curves.values() for m in c}, key=_metric_order)
    if metrics:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) or p == n for p in metrics)]
        if not names:
            raise ConfigError(f"no logged metric matches {metrics}; logged: "
                              f"{', '.join(sorted({m for c in curves.values() for m in c}))}")
    plt = _pyplot()
    cols = min(3, len(names))
    rows_n = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.6 * cols, 3.3 * rows_n), dpi=100, squeeze=False)
    try:
        for ax, metric in zip(axes.flat, names):
            for label, data in curves.items():
                if metric in data:
                    x, v = data[metric]
                    ax.plot(x, v, marker="o" if len(x) <= 20 else None, ms=3, label=label)
            ax.set_title(metric, fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            if len(curves) > 1:
                ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        path = _save(fig, path)
    finally:
        plt.close(fig)
    return path, names


def _metric_order(name: str) -> tuple:
    """Losses first, then training metrics, then validation, then the rest; alphabetical within."""
    low = name.lower()
    rank = 0 if "loss" in low and ("train" in low or "/" not in low) else 1 if "loss" in low else \
        2 if low.startswith("train") else 3 if low.startswith(("val", "valid")) else 4
    return rank, low
