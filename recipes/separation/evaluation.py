"""Separation metrics, run reports and run comparison.

BSSEval v4 (museval): SDR / SIR / ISR / SAR per source on 1 s windows, median over windows (silent
windows give NaN and are skipped), then median over tracks. Global SDR (the "utterance" SDR of the
MDX challenges): ``10 log10(sum ref^2 / sum (ref - est)^2)`` over a whole track, mean over tracks.

Reports and comparison are the kit's (``booster.training.report``): ``results.json`` + ``results.md`` with
one row per source. Shapes: references / estimates ``[N, C, S]`` (N sources, C channels, S samples).
"""
from __future__ import annotations


import numpy as np
import torch

from booster.training import report as kit
from booster.training.report import Metric, compare_reports, load_report  # noqa: F401  (re-exported)

BSS_METRICS = ("SDR", "SIR", "ISR", "SAR")
METRICS = tuple(Metric(m, "median", "dB") for m in BSS_METRICS) + (Metric("gSDR", "mean", "dB"),)
TASK = "separation"
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


def metrics_of(per_track: dict) -> list[Metric]:
    """The separation metrics present in ``per_track`` (gSDR only when BSSEval was skipped)."""
    row = next(iter(next(iter(per_track.values())).values()))
    return [m for m in METRICS if m.name in row]


def summarize(per_track: dict, sources: list[str]) -> dict:
    """Median over tracks of each BSSEval metric, mean over tracks of gSDR, per source and averaged."""
    return kit.summarize(per_track, list(sources), metrics_of(per_track) if per_track else list(METRICS), True)


def format_table(summary: dict, title: str | None = None) -> str:
    """Markdown table: one row per source (+ mean), one column per metric (dB)."""
    names = list(next(iter(summary.values())).keys())
    return kit.format_table(summary, [m for m in METRICS if m.name in names], title, "source")


def write_report(run_dir, per_track: dict, sources: list[str], meta: dict | None = None,
                 evaluated: dict | None = None) -> dict:
    """Write ``results.json`` and ``results.md`` into ``run_dir``; return the report."""
    return kit.write_report(run_dir, per_track, list(sources), metrics_of(per_track), task=TASK,
                            evaluated=evaluated, meta=meta, label="source", mean_row=True)
