"""What a study writes from its finished runs: ``study.json``, ``study.md`` and ``study.png``.

Two layouts. Without ``--backbones``: per fraction, baseline vs boosted (mean ± sd over seeds) and the paired
difference boosted − baseline. With ``--backbones``: per fraction and backbone, that backbone's boosted runs vs
the one baseline of the same fraction and seed (the same pairing), one table row each; the plot draws each
backbone's gain vs fraction with its interval band (:func:`booster.training.plots.backbones_plot`).
"""
from __future__ import annotations

import json

from booster.errors import ConfigError
from booster.fsutil import write_text

from . import stats
from .plots import backbones_plot, study_plot

STUDY_VERSION = 1
RUN_KEYS = ("fraction", "seed", "variant", "folder", "steps", "train_seconds", "test_seconds", "device", "metrics")


def flat_metrics(report: dict) -> dict[str, float | None]:
    """A report's summary as ``{name: value}``: the headline row ("mean", or the only row) under the bare
    metric names, every other row as ``<row>/<metric>``."""
    summary = report.get("summary") or {}
    rows = list(summary)
    head = "mean" if "mean" in summary else (rows[0] if len(rows) == 1 else None)
    out = {}
    if head is not None:
        out.update({m: stats.finite(v) for m, v in summary[head].items()})
    for row in rows:
        if row != head:
            out.update({f"{row}/{m}": stats.finite(v) for m, v in summary[row].items()})
    return out


def headline_metric(report: dict, metrics: dict) -> str | None:
    """The metric a study leads with: the report's ``headline`` when it names one; else the first declared
    metric of the headline row ("mean" or the only row); else ``<first row>/f1`` (or its first metric)."""
    if report.get("headline") in metrics:
        return report["headline"]
    declared = [m["name"] for m in report.get("metrics", []) if isinstance(m, dict) and "name" in m]
    bare = [m for m in declared if m in metrics]
    if bare:
        return bare[0]
    rows = [g for g in (report.get("groups") or list(report.get("summary") or {}))]
    if rows and declared:
        name = "f1" if "f1" in declared else declared[0]
        if f"{rows[0]}/{name}" in metrics:
            return f"{rows[0]}/{name}"
    return next(iter(metrics), None)


def backbones_table(runs: list[dict], labels: list[str], metric: str, confidence: float = 0.95) -> list[dict]:
    """Per fraction (ascending), then per backbone (in ``labels`` order): :func:`stats.study_table`'s row of
    that backbone's boosted runs against the baseline runs, with ``"backbone"`` (its label) added."""
    rows = []
    for label in labels:
        mine = [r for r in runs if r["variant"] == "baseline" or r.get("backbone") == label]
        rows += [{**row, "backbone": label} for row in stats.study_table(mine, metric, confidence)]
    order = {label: i for i, label in enumerate(labels)}
    return sorted(rows, key=lambda r: (r["fraction"], order[r["backbone"]]))


def write_outputs(settings, task: str, records: list[dict], complete: bool) -> dict:
    """Aggregate the finished runs into ``study.json``, ``study.md`` and ``study.png``."""
    records = [r for r in records if r and r.get("status") == "done"]
    names = []
    for r in records:
        names += [m for m in r["metrics"] if m not in names]
    lower = {m for r in records for m in r.get("lower_is_better", [])}
    headline = settings.metric or (records[0].get("headline") if records else None)
    if settings.metric and records and settings.metric not in names:
        raise ConfigError(f"--metric {settings.metric!r} is not among the metrics of this task: {', '.join(names)}")
    better = {m: stats.higher_is_better(m.rsplit("/", 1)[-1], lower) for m in names}
    backbones = settings.backbone_specs
    labels = [b.label for b in backbones or ()]
    if backbones:
        table = {m: backbones_table(records, labels, m, settings.confidence) for m in names}
    else:
        table = {m: stats.study_table(records, m, settings.confidence) for m in names}
    study = {"version": STUDY_VERSION, "task": task, "config": settings.config, "complete": complete,
             "settings": {"fractions": settings.fractions, "seeds": settings.seeds,
                          "budget_steps": settings.budget_steps, "budget_minutes": settings.budget_minutes,
                          "device": settings.device, "overrides": settings.overrides,
                          "confidence": settings.confidence},
             "headline": headline, "higher_is_better": better,
             "runs": [{**{k: r[k] for k in RUN_KEYS}, **({"backbone": r.get("backbone")} if backbones else {})}
                      for r in records],
             "table": table}
    if backbones:
        study["settings"]["backbones"] = [b.record() for b in backbones]
    out = settings.out
    write_text(out / "study.json", json.dumps(study, indent=2, allow_nan=False) + "\n")
    write_text(out / "study.md", study_markdown(study))
    if headline is not None:
        seeds = f"{len(settings.seeds)} seed(s)"
        if backbones:
            c = f"{settings.confidence:.0%}"
            backbones_plot(table[headline], labels, headline, out / "study.png", better_high=better[headline],
                           title=f"{settings.config}: gain in {headline} over the plain host ({seeds}, {c} interval)")
        else:
            study_plot(table[headline], study["runs"], headline, out / "study.png", better_high=better[headline],
                       title=f"{settings.config}: {headline} vs training fraction ({seeds})")
    return study


def study_markdown(study: dict) -> str:
    """``study.md``: settings, the headline table, then the other summary metrics (per-row ones: study.json)."""
    s = study["settings"]
    budget = (f"{s['budget_steps']} steps" if s["budget_steps"] else
              f"{s['budget_minutes']:g} min" if s["budget_minutes"] else "the config's own")
    runs = study["runs"]
    train = sum(r["train_seconds"] for r in runs)
    test = sum(r["test_seconds"] for r in runs)
    backbones = s.get("backbones")
    what = f"baseline vs boosted by {len(backbones)} backbone(s)" if backbones else "baseline vs boosted"
    lines = [f"### Study: {study['config']} ({study['task']}), {what}", "",
             f"Fractions {', '.join(f'{f:g}' for f in s['fractions'])}; seeds {', '.join(map(str, s['seeds']))}; "
             f"budget per run: {budget}; {len(runs)} runs ({'complete' if study['complete'] else 'in progress'}), "
             f"training {train / 60:.1f} min + testing {test / 60:.1f} min on {', '.join(sorted({r['device'] for r in runs})) or '-'}."]
    if backbones:
        named = [f"`{b['label']}` = {b['backbone']}" + (f" (seed {b['backbone_seed']})" if b["backbone_seed"] else "")
                 for b in backbones]
        lines += ["Backbones: " + "; ".join(named) + ".",
                  "Difference = boosted by the backbone − baseline of the same fraction and seed (one baseline per "
                  "fraction and seed, shared by the backbones); interval: Student t over seeds.", ""]
    else:
        lines += ["Difference = boosted − baseline of the same fraction and seed; interval: Student t over seeds.", ""]
    head = study["headline"]
    if head is None:
        return "\n".join(lines + ["No finished run yet."]) + "\n"
    others = [m for m in study["table"] if m != head and "/" not in m]
    if not others and "/" in head:  # no summary row (e.g. transcription): the headline metric of every row
        others = [m for m in study["table"] if m != head and m.rsplit("/", 1)[-1] == head.rsplit("/", 1)[-1]]
    order = [head] + others
    for m in order:
        lines += [stats.markdown_table(study["table"][m], m, study["higher_is_better"][m]), ""]
    return "\n".join(lines)
