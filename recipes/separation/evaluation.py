"""Separation metrics, run reports and run comparison.

BSSEval v4 (museval): SDR / SIR / ISR / SAR per source on 1 s windows, median over windows (silent
windows give NaN and are skipped), then median over tracks. Global SDR (the "utterance" SDR of the
MDX challenges): ``10 log10(sum ref^2 / sum (ref - est)^2)`` over a whole track, mean over tracks.

A run directory holds ``results.json`` (summary, per-track numbers, metadata) and ``results.md`` (the
table). Shapes: references / estimates ``[N, C, S]`` (N sources, C channels, S samples).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from booster.errors import ConfigError

METRICS = ("SDR", "SIR", "ISR", "SAR")
REPORT_VERSION = 1
EPS = 1e-8


def global_sdr(references: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """``[N]`` global SDR in dB of ``estimates`` vs ``references`` (both ``[N, C, S]``)."""
    if references.shape != estimates.shape:
        raise ValueError(f"shape mismatch: references {tuple(references.shape)} vs estimates {tuple(estimates.shape)}")
    r, e = references.double(), estimates.double()
    num = (r ** 2).sum(dim=(-2, -1)) + EPS
    den = ((r - e) ** 2).sum(dim=(-2, -1)) + EPS
    return (10 * torch.log10(num / den)).float()


def bss_eval(references: torch.Tensor, estimates: torch.Tensor, sample_rate: int, *, window: float = 1.0,
             hop: float = 1.0) -> dict[str, np.ndarray]:
    """museval BSSEval v4: ``{metric: [N, windows]}`` (NaN where the reference is silent)."""
    import museval

    if references.shape != estimates.shape or references.dim() != 3:
        raise ValueError(f"expected matching [N, C, S] tensors, got {tuple(references.shape)} and "
                         f"{tuple(estimates.shape)}")
    ref = references.detach().cpu().double().numpy().transpose(0, 2, 1)
    est = estimates.detach().cpu().double().numpy().transpose(0, 2, 1)
    win, hp = int(round(window * sample_rate)), int(round(hop * sample_rate))
    sdr, isr, sir, sar = museval.evaluate(ref, est, win=win, hop=hp, mode="v4", padding=True)
    return {"SDR": sdr, "SIR": sir, "ISR": isr, "SAR": sar}


def _median(values) -> float | None:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if arr.size else None


def evaluate_track(references: torch.Tensor, estimates: torch.Tensor, sources: list[str],
                   sample_rate: int, *, bsseval: bool = True) -> dict[str, dict[str, float | None]]:
    """Per source: median-over-windows BSSEval v4 metrics and the global SDR ("gSDR")."""
    if len(sources) != references.shape[0]:
        raise ValueError(f"{len(sources)} source names for {references.shape[0]} references")
    g = global_sdr(references, estimates)
    frames = bss_eval(references, estimates, sample_rate) if bsseval else {}
    out = {}
    for j, name in enumerate(sources):
        row = {m: _median(frames[m][j]) for m in frames}
        row["gSDR"] = float(g[j])
        out[name] = row
    return out


def summarize(per_track: dict[str, dict[str, dict[str, float | None]]], sources: list[str]) -> dict:
    """Median over tracks of each BSSEval metric, mean over tracks of gSDR, per source and averaged."""
    if not per_track:
        raise ConfigError("no tracks were evaluated")
    summary: dict[str, dict[str, float | None]] = {}
    metrics = [m for m in (*METRICS, "gSDR") if m in next(iter(per_track.values()))[sources[0]]]
    for s in sources:
        row = {}
        for m in metrics:
            vals = [t[s][m] for t in per_track.values() if t[s].get(m) is not None]
            if m == "gSDR":
                row[m] = float(np.mean(vals)) if vals else None
            else:
                row[m] = _median(vals)
        summary[s] = row
    summary["mean"] = {m: (float(np.mean(v)) if (v := [summary[s][m] for s in sources
                                                         if summary[s][m] is not None]) else None)
                       for m in metrics}
    return summary


def format_table(summary: dict, title: str | None = None) -> str:
    """Markdown table: one row per source (+ mean), one column per metric."""
    metrics = list(next(iter(summary.values())).keys())
    lines = [f"### {title}", ""] if title else []
    lines.append("| source | " + " | ".join(f"{m} (dB)" for m in metrics) + " |")
    lines.append("|---" * (len(metrics) + 1) + "|")
    for name, row in summary.items():
        cells = ["n/a" if row[m] is None else f"{row[m]:.2f}" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(run_dir: str | Path, per_track: dict, sources: list[str], meta: dict | None = None) -> dict:
    """Write ``results.json`` and ``results.md`` into ``run_dir``; return the report."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(per_track, sources)
    report = {"version": REPORT_VERSION, "sources": list(sources), "summary": summary,
              "tracks": per_track, "meta": meta or {}}
    (run_dir / "results.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    (run_dir / "results.md").write_text(format_table(summary, title=(meta or {}).get("name")) + "\n")
    return report


def load_report(run: str | Path) -> dict:
    """Read a run directory's (or a file's) ``results.json``; clear errors for anything else."""
    path = Path(run)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise ConfigError(f"no evaluation results at {str(path)!r}; run `booster test` (or the demo) first, "
                          "or pass the folder that holds results.json")
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{str(path)!r} is not valid JSON ({e})") from None
    if not isinstance(report, dict) or "summary" not in report:
        raise ConfigError(f"{str(path)!r} is not a separation results file")
    if report.get("version") != REPORT_VERSION:
        raise ConfigError(f"{str(path)!r} has results version {report.get('version')}; this muq-booster reads "
                          f"version {REPORT_VERSION}")
    return report


def compare_reports(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> tuple[str, dict]:
    """Per-source difference ``b - a`` of every metric both runs have; returns (table, differences)."""
    sa, sb = a["summary"], b["summary"]
    rows = [s for s in sa if s in sb]
    if not rows:
        raise ConfigError(f"runs {name_a} and {name_b} share no source names ({list(sa)} vs {list(sb)})")
    metrics = [m for m in sa[rows[0]] if m in sb[rows[0]]]
    diff = {}
    lines = [f"{name_b} minus {name_a} (dB; positive = {name_b} better)", "",
             "| source | " + " | ".join(f"{m} {name_a} | {m} {name_b} | Δ{m}" for m in metrics) + " |",
             "|---" * (3 * len(metrics) + 1) + "|"]
    for s in rows:
        diff[s], cells = {}, []
        for m in metrics:
            va, vb = sa[s][m], sb[s][m]
            d = None if va is None or vb is None or not (math.isfinite(va) and math.isfinite(vb)) else vb - va
            diff[s][m] = d
            cells += [_fmt(va), _fmt(vb), "n/a" if d is None else f"{d:+.2f}"]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    tracks = sorted(set(a.get("tracks", {})) ^ set(b.get("tracks", {})))
    if tracks:
        lines.append(f"\nwarning: the runs were evaluated on different tracks ({len(tracks)} not in both)")
    return "\n".join(lines), diff


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"
