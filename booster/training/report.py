"""Results reports and run comparison for any task (metric names come from the task).

A run's evaluation folder holds ``results.json`` and ``results.md``. ``results.json``::

    {"version": 2, "task": "separation", "metrics": [{"name", "agg", "unit", "higher_is_better"}...],
     "groups": ["drums", ...], "summary": {group: {metric: value}, "mean": {...}},
     "items": {item: {group: {metric: value}}}, "evaluated": {...}, "meta": {...}}

``items`` are what was evaluated one by one (tracks, files), ``groups`` the rows of the table (sources of
a separator, ``"all"`` for a task with one row). ``evaluated`` records how (item names, lengths, chunk
overlap, ...): :func:`compare_reports` refuses runs whose ``task`` or ``evaluated`` differ.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from booster.errors import ConfigError

REPORT_VERSION = 2


@dataclass(frozen=True)
class Metric:
    """A metric of a task: ``agg`` over items ("mean" or "median"), ``unit`` for tables."""

    name: str
    agg: str = "mean"
    unit: str = ""
    higher_is_better: bool = True

    def __post_init__(self):
        if self.agg not in ("mean", "median"):
            raise ConfigError(f"metric {self.name}: agg must be 'mean' or 'median', got {self.agg!r}")


def _finite(values) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def aggregate(values, agg: str) -> float | None:
    """Mean or median of the finite values (None when there are none)."""
    arr = _finite(values)
    if not arr.size:
        return None
    return float(np.median(arr) if agg == "median" else np.mean(arr))


def summarize(items: dict, groups: list[str], metrics: list[Metric], mean_row: bool | None = None) -> dict:
    """``{group: {metric: aggregate over items}, "mean": {metric: mean over groups}}`` (the mean row when
    ``mean_row``; default: when there are several groups)."""
    if not items:
        raise ConfigError("no items were evaluated")
    summary = {}
    for g in groups:
        summary[g] = {m.name: aggregate([it.get(g, {}).get(m.name) for it in items.values()], m.agg)
                      for m in metrics}
    if mean_row or (mean_row is None and len(groups) > 1):
        summary["mean"] = {m.name: aggregate([summary[g][m.name] for g in groups], "mean") for m in metrics}
    return summary


def format_table(summary: dict, metrics: list[Metric] | None = None, title: str | None = None,
                 label: str = "group") -> str:
    """Markdown table: one row per group (+ mean), one column per metric."""
    names = [m.name for m in metrics] if metrics else list(next(iter(summary.values())).keys())
    units = {m.name: m.unit for m in metrics or []}
    lines = [f"### {title}", ""] if title else []
    lines.append(f"| {label} | " + " | ".join(f"{n} ({units[n]})" if units.get(n) else n for n in names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for group, row in summary.items():
        lines.append(f"| {group} | " + " | ".join(_fmt(row.get(n)) for n in names) + " |")
    return "\n".join(lines)


def write_report(out_dir: str | Path, items: dict, groups: list[str], metrics: list[Metric], *, task: str,
                 evaluated: dict | None = None, meta: dict | None = None, label: str = "group",
                 mean_row: bool | None = None) -> dict:
    """Write ``results.json`` + ``results.md`` into ``out_dir``; returns the report. The item names are
    added to ``evaluated`` (``evaluated["items"]``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(items, groups, metrics, mean_row)
    report = {"version": REPORT_VERSION, "task": task, "metrics": [asdict(m) for m in metrics],
              "groups": list(groups), "label": label, "summary": summary, "items": items,
              "evaluated": {**(evaluated or {}), "items": sorted(items)}, "meta": meta or {}}
    text = json.dumps(report, indent=2, allow_nan=False, default=str) + "\n"
    from booster.fsutil import write_text
    write_text(out / "results.json", text)
    write_text(out / "results.md", format_table(summary, metrics, (meta or {}).get("name"), label) + "\n")
    return report


def load_report(run: str | Path) -> dict:
    """Read a run folder's (or a file's) ``results.json``; clear errors for anything else."""
    path = Path(run)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise ConfigError(f"no evaluation results at {str(path)!r}; run `booster test` (or the demo) first, "
                          "or pass the folder that holds results.json")
    try:
        report = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{str(path)!r} is not valid JSON ({e})") from None
    if not isinstance(report, dict) or "summary" not in report:
        raise ConfigError(f"{str(path)!r} is not a muq-booster results file")
    if report.get("version") != REPORT_VERSION:
        raise ConfigError(f"{str(path)!r} has results version {report.get('version')}; this muq-booster reads "
                          f"version {REPORT_VERSION}")
    return report


def differences(a: dict, b: dict) -> list[str]:
    """Why two reports are not comparable (empty when they are)."""
    why = []
    if a.get("task") != b.get("task"):
        why.append(f"task {a.get('task')!r} vs {b.get('task')!r}")
    ea, eb = a.get("evaluated") or {}, b.get("evaluated") or {}
    for key in sorted(set(ea) | set(eb)):
        if ea.get(key) != eb.get(key):
            va, vb = ea.get(key), eb.get(key)
            if key == "items" and isinstance(va, list) and isinstance(vb, list):
                why.append(f"evaluated items differ ({len(set(va) ^ set(vb))} not in both)")
            else:
                why.append(f"evaluated {key}: {va!r} vs {vb!r}")
    return why


def compare_reports(a: dict, b: dict, name_a: str = "A", name_b: str = "B", *,
                    force: bool = False) -> tuple[str, dict]:
    """Per-group difference ``b - a`` of every metric both runs have; returns (table, differences).

    Refuses (:class:`ConfigError`) runs of different tasks or evaluated differently (other items,
    lengths, overlap...) unless ``force`` (then the table carries a warning)."""
    why = differences(a, b)
    if why and not force:
        raise ConfigError(f"runs {name_a} and {name_b} are not comparable: {'; '.join(why)} "
                          "(pass --force to compare anyway)")
    sa, sb = a["summary"], b["summary"]
    rows = [g for g in sa if g in sb]
    if not rows:
        raise ConfigError(f"runs {name_a} and {name_b} share no rows ({list(sa)} vs {list(sb)})")
    names = [m for m in sa[rows[0]] if m in sb[rows[0]]]
    better = {m["name"]: m.get("higher_is_better", True) for m in a.get("metrics", [])}
    units = {m["name"]: m.get("unit", "") for m in a.get("metrics", [])}
    unit = {u for n, u in units.items() if n in names and u}
    diff, label = {}, a.get("label", "group")
    lines = [f"{name_b} minus {name_a}" + (f" ({unit.pop()})" if len(unit) == 1 else "")
             + f"; positive = {name_b} higher" + ("" if all(better.get(n, True) for n in names)
                                                 else " (lower is better for: " + ", ".join(
                                                     n for n in names if not better.get(n, True)) + ")"), "",
             f"| {label} | " + " | ".join(f"{m} {name_a} | {m} {name_b} | Δ{m}" for m in names) + " |",
             "|---" * (3 * len(names) + 1) + "|"]
    for g in rows:
        diff[g], cells = {}, []
        for m in names:
            va, vb = sa[g].get(m), sb[g].get(m)
            ok = va is not None and vb is not None and math.isfinite(va) and math.isfinite(vb)
            diff[g][m] = vb - va if ok else None
            cells += [_fmt(va), _fmt(vb), f"{vb - va:+.2f}" if ok else "n/a"]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    if why:
        lines.append(f"\nwarning: not comparable ({'; '.join(why)}); compared because --force was given")
    return "\n".join(lines), diff


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"
