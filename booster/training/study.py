"""A data-scarcity study: baseline vs boosted over training fractions and seeds (``booster study``).

For every fraction and seed, the recipe config is trained twice, plain (``model.boost: false``) and
boosted (``model.boost: true``), with the same budget, the same nested data subset (``data.fraction``;
subsets are nested across fractions for one seed) and the same seed (``seed_everything``, ``data.seed``),
then both are tested on the same test split with the task's metrics. Layout of ``out``::

    out/<fraction>/<seed>/<variant>/   config.yaml (the exact run), run.json (settings, status, metrics),
                                       results.json/.md (the task's report), logs/ (CSV), checkpoints/
    out/study.json  out/study.md  out/study.png   (every run and metric; table; headline metric plot)
    out/feature_cache/                 backbone features of fixed inputs, shared by the boosted runs

With ``backbones`` (``--backbones debug,muq-mini,PATH``) each fraction and seed has the one baseline and one
boosted run per backbone, ``out/<fraction>/<seed>/boosted-<label>/`` (label: :func:`study_runs.backbone_label`;
the full value in ``run.json``), and the table and plot give each backbone's gain over the plain host with a
paired interval over seeds (:mod:`booster.training.study_report`). Adding a backbone to a finished study reuses
its finished runs (the baselines and the other backbones') and runs only the new ones.

Resumable: a run whose ``run.json`` says ``done`` with the same settings, and whose results and weights verify,
is kept; a killed run is redone. Finished runs are never deleted: other settings stop the study with a line
naming them (``force``: redo them), and a run that fails verification is redone; the old folder is kept as
``<run>.old-<time>`` (:mod:`booster.training.study_runs`). Each run keeps ``checkpoints/last.ckpt``, the
weights it was tested with. ``jobs`` > 1 trains that many runs at a time in worker processes (CPU threads
shared out; one GPU each when there are several).
"""
from __future__ import annotations

import copy
import functools
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from booster.errors import ConfigError
from booster.fsutil import write_text

from . import stats
from .device import parallel_devices
from .study_report import STUDY_VERSION, flat_metrics, headline_metric, write_outputs  # noqa: F401  (public here)
from .study_runs import (RUN_FILE, BackboneSpec, quiet_cli, check_usable, describe, move_aside, parse_backbones,
                         resolve_backbones, verdict)

VARIANTS = ("baseline", "boosted")
ACCELERATORS = {"auto": "auto", "cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "mps": "mps"}


@dataclass
class StudySettings:
    """What a study runs. ``seeds``: the seeds themselves; ``overrides``: LightningCLI arguments for every run;
    ``backbones``: None (baseline vs the config's boosted host) or ``"debug,debug@1,PATH"`` / a list of values
    (parsed into ``backbone_specs``; loaded and fingerprinted by :func:`run_study`)."""

    config: str
    fractions: list[float]
    seeds: list[int]
    out: Path = Path("runs/study")
    budget_steps: int | None = None
    budget_minutes: float | None = None
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)
    metric: str | None = None
    confidence: float = 0.95
    jobs: int = 1
    force: bool = False
    backbones: str | list[str] | None = None
    backbone_specs: list[BackboneSpec] | None = field(default=None, init=False)

    def __post_init__(self):
        self.out = Path(self.out)
        if self.backbones is not None:
            self.backbone_specs = parse_backbones(self.backbones)
        self.fractions = sorted({float(f) for f in self.fractions})
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"--fractions must be numbers in (0, 1], got {self.fractions}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds must give distinct seeds, got {self.seeds}")
        if any(not 0 <= s < 2 ** 32 for s in self.seeds):
            raise ConfigError(f"--seeds must be whole numbers from 0 to {2 ** 32 - 1}, got {self.seeds}")
        if self.budget_steps is not None and self.budget_minutes is not None:
            raise ConfigError("give --budget-steps or --budget-minutes, not both")
        if self.budget_steps is not None and self.budget_steps < 1:
            raise ConfigError(f"--budget-steps must be at least 1, got {self.budget_steps}")
        if self.budget_minutes is not None and not (self.budget_minutes > 0 and math.isfinite(self.budget_minutes)):
            raise ConfigError(f"--budget-minutes must be a positive number, got {self.budget_minutes}")
        name, _, index = str(self.device).partition(":")
        if name not in ACCELERATORS or (index and not index.isdigit()):
            raise ConfigError(f"--device {self.device!r}: use auto, cpu, cuda or cuda:N")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"--confidence must be in (0, 1), got {self.confidence}")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise ConfigError(f"--jobs must be a whole number of at least 1, got {self.jobs}")


@dataclass
class Run:
    fraction: float
    seed: int
    variant: str
    folder: Path
    backbone: BackboneSpec | None = None  # a study of several backbones: the one this boosted run uses

    @property
    def name(self) -> str:
        by = f" by {self.backbone.label}" if self.backbone else ""
        return f"fraction {self.fraction:g} seed {self.seed} {self.variant}{by}"


def plan(settings: StudySettings) -> list[Run]:
    """Every run, seed-major (a partial study has whole curves for its first seeds); with backbones, the
    baseline then one boosted run per backbone for each fraction and seed."""
    specs = settings.backbone_specs
    if not specs:
        return [Run(f, s, v, settings.out / f"{f:g}" / str(s) / v)
                for s in settings.seeds for f in settings.fractions for v in VARIANTS]
    runs = []
    for s in settings.seeds:
        for f in settings.fractions:
            folder = settings.out / f"{f:g}" / str(s)
            runs.append(Run(f, s, "baseline", folder / "baseline"))
            runs += [Run(f, s, "boosted", folder / f"boosted-{b.label}", b) for b in specs]
    return runs


def run_settings(settings: StudySettings, run: Run, task: str, config_text: str) -> dict:
    """What must match for a finished run to be reused (the device may differ); a run boosted by one of
    several backbones adds that backbone's value, seed and weight fingerprint (the baseline adds nothing, so
    it is shared by every backbone, and with a study without backbones)."""
    out = {"study_version": STUDY_VERSION, "task": task, "config": settings.config,
           "config_text": config_text, "fraction": run.fraction, "seed": run.seed,
           "variant": run.variant, "budget_steps": settings.budget_steps,
           "budget_minutes": settings.budget_minutes, "overrides": list(settings.overrides)}
    if run.backbone is not None:
        out.update(run.backbone.settings())
    return out


def run_config(base: dict, task: str, settings: StudySettings, run: Run, device: str | None = None) -> dict:
    """The recipe config of one run: the base YAML with the study's settings written into it (``device``:
    this run's device when it differs from the study's, e.g. ``cuda:1`` for parallel runs)."""
    cfg = copy.deepcopy(base)
    cfg["task"] = task
    cfg["seed_everything"] = run.seed
    trainer = cfg.setdefault("trainer", {}) or {}
    cfg["trainer"] = trainer
    trainer["default_root_dir"] = str(run.folder)
    name, _, index = (device or settings.device).partition(":")
    trainer["accelerator"] = ACCELERATORS[name]
    trainer["devices"] = [int(index)] if index else 1  # one device: the runs of a study go one after another
    trainer.pop("strategy", None)
    trainer["logger"] = None  # the kit's default: CSVLogger under <run>/logs
    trainer["enable_progress_bar"] = trainer["enable_model_summary"] = False  # one line per run is printed
    trainer["num_sanity_val_steps"] = 0  # the study tests the final weights; a sanity check per run is waste
    if settings.budget_steps is not None:
        trainer["max_steps"] = settings.budget_steps
    elif settings.budget_minutes is not None:
        seconds = int(round(settings.budget_minutes * 60))
        trainer["max_time"] = f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        trainer["max_steps"], trainer["max_epochs"] = -1, -1
    callbacks = [c for c in (trainer.get("callbacks") or []) if isinstance(c, dict)]
    ckpt = [c for c in callbacks if str(c.get("class_path", "")).endswith("ModelCheckpoint")]
    if not ckpt:
        ckpt = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {}}]
        callbacks.append(ckpt[0])
    for c in ckpt:
        c.setdefault("init_args", {})
        c["init_args"]["dirpath"] = str(run.folder / "checkpoints")
    trainer["callbacks"] = callbacks
    model = cfg.setdefault("model", {}) or {}
    cfg["model"] = model
    model_args = model.get("init_args", model) if "class_path" in model else model
    by = f" backbone={run.backbone.label}" if run.backbone else ""
    model_args.update(boost=run.variant == "boosted", eval_dir=str(run.folder), print_report=False,
                      run_name=f"{run.variant} fraction={run.fraction:g} seed={run.seed}{by}",
                      feature_cache=str(settings.out / "feature_cache"))
    if run.backbone is not None:
        model_args.update(backbone=run.backbone.source, backbone_seed=run.backbone.seed)
    data = cfg.setdefault("data", {}) or {}
    cfg["data"] = data
    data_args = data.get("init_args", data) if "class_path" in data else data
    data_args.update(fraction=run.fraction, seed=run.seed)
    return cfg


RESERVED = ("--model.boost", "--model.eval_dir", "--data.fraction", "--data.seed", "--seed_everything",
            "--trainer.default_root_dir", "--trainer.max_steps", "--trainer.max_time", "--config", "-c")


def check_overrides(overrides: list[str], backbones: bool = False) -> None:
    for a in overrides:
        key = a.split("=", 1)[0]
        if backbones and key in ("--model.backbone", "--model.backbone_seed"):
            raise ConfigError(f"{key} is set per run by --backbones (NAME@SEED gives a seed); drop it from the "
                              "overrides")
        if key in RESERVED:
            raise ConfigError(f"{key} is set by the study for every run; use the study's own options "
                              "(--fractions, --seeds, --budget-steps/--budget-minutes, -o)")


def run_study(settings: StudySettings, say=functools.partial(print, flush=True)) -> dict:
    """Run (or resume) the study; write ``study.json``, ``study.md`` and ``study.png``; return the study."""
    import yaml

    from booster.fsutil import check_output_dir

    from .cli import no_task, resolve_config

    check_overrides(settings.overrides, settings.backbone_specs is not None)
    config_path, task = resolve_config(settings.config)
    if task is None:
        raise no_task([settings.config])
    config_text = Path(config_path).read_text()  # read once: every run of this call uses the same config
    base = yaml.safe_load(config_text) or {}
    if not isinstance(base, dict):
        raise ConfigError(f"config {settings.config!r} is not a YAML mapping")
    check_usable(settings.config, task, run_config(base, task, settings, plan(settings)[0]), settings.overrides)
    if settings.backbone_specs:  # each must load (one line, nothing written); its fingerprint is a run setting
        settings.backbone_specs = resolve_backbones(settings.backbone_specs)
    runs = plan(settings)
    check_output_dir(settings.out, "-o")
    verdicts = [verdict(run.folder, run_settings(settings, run, task, config_text)) for run in runs]
    other = [(run, v[1]) for run, v in zip(runs, verdicts) if v[0] == "other"]
    if other and not settings.force:
        raise ConfigError(f"{str(settings.out)!r} holds {len(other)} finished run(s) made with other settings "
                          f"({describe(other[0][1])}); repeat the earlier settings to reuse them, pass --force to "
                          f"redo them (the old run folders are kept as <run>.old-<time>), or -o another folder")
    records, pending, t0 = {}, [], time.perf_counter()
    devices = parallel_devices(settings.device, settings.jobs)
    for i, (run, (kind, detail)) in enumerate(zip(runs, verdicts), 1):
        expected = run_settings(settings, run, task, config_text)
        head = f"[{i}/{len(runs)}] {run.name}"
        if kind == "kept":
            records[i] = {**detail, "folder": str(run.folder), "backbone": run.backbone and run.backbone.label}
            say(f"{head}: done before, kept")
            continue
        if kind == "unfinished":
            say(f"{head}: unfinished, run again")
            shutil.rmtree(run.folder)
        elif kind in ("other", "corrupt"):
            why = f"made with other settings ({describe(detail)})" if kind == "other" else str(detail)
            say(f"{head}: {why}; run again (the old run is kept as {move_aside(run.folder).name})")
        run.folder.mkdir(parents=True)
        state = {"settings": expected, "status": "running", "fraction": run.fraction, "seed": run.seed,
                 "variant": run.variant, "folder": str(run.folder)}
        if run.backbone is not None:
            state["backbone"] = run.backbone.label
        write_text(run.folder / RUN_FILE, json.dumps(state, indent=2) + "\n")
        cfg = run_config(base, task, settings, run, devices[len(pending) % len(devices)])
        write_text(run.folder / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        pending.append((i, run, state))

    def finish(i, run, state, result):
        state.update(result, status="done")
        write_text(run.folder / RUN_FILE, json.dumps(state, indent=2, allow_nan=False) + "\n")
        records[i] = state
        head = settings.metric or state["headline"]
        value = state["metrics"].get(head) if head else None
        say(f"[{i}/{len(runs)}] {run.name}: {state['steps']} steps in {state['train_seconds']:.1f} s, "
            f"test {state['test_seconds']:.1f} s, {head} = {stats._fmt(value)} ({state['device']})")
        write_outputs(settings, task, [records[k] for k in sorted(records)], complete=False)

    if settings.backbone_specs:
        say(reuse_line(runs, verdicts))
    if settings.jobs == 1 or len(pending) < 2:
        for i, run, state in pending:
            finish(i, run, state, fit_and_test(task, run.folder / "config.yaml", settings.overrides, run.folder))
    else:
        run_parallel(settings, task, pending, finish, say)
    study = write_outputs(settings, task, [records[k] for k in sorted(records)], complete=True)
    say(f"study of {len(runs)} runs finished in {time.perf_counter() - t0:.1f} s -> "
        f"{settings.out / 'study.md'}, study.json, study.png")
    return study


def run_parallel(settings: StudySettings, task: str, pending: list, finish, say) -> None:
    """Run ``pending`` in ``settings.jobs`` worker processes (each with its share of the CPU threads); data
    that the config makes on first use is made once, here, before the workers start."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    import torch

    with quiet_cli():
        _make_cli(task, pending[0][1].folder / "config.yaml", settings.overrides).datamodule.prepare_data()
    threads = max(1, torch.get_num_threads() // settings.jobs)
    say(f"{len(pending)} runs in {settings.jobs} parallel processes, {threads} CPU thread(s) each")
    pool = ProcessPoolExecutor(settings.jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(threads,))
    try:
        futures = {pool.submit(fit_and_test, task, run.folder / "config.yaml", settings.overrides, run.folder):
                   (i, run, state) for i, run, state in pending}
        todo = set(futures)
        while todo:
            done, todo = wait(todo, return_when=FIRST_COMPLETED)  # record each run as soon as it ends
            for f in sorted(done, key=lambda f: futures[f][0]):
                finish(*futures[f], f.result())  # a failed run raises here; the others are cancelled
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _make_cli(task: str, config_file: Path, overrides: list[str]):
    from .cli import make_cli_class, recipe
    module_cls, data_cls, links = recipe(task)
    return make_cli_class(links, fits=True)(module_cls, data_cls, run=False,
                                            args=["--config", str(config_file), *overrides],
                                 save_config_kwargs={"overwrite": True}, seed_everything_default=0,
                                 parser_kwargs={"prog": "booster study"})


def fit_and_test(task: str, config_file: Path, overrides: list[str], folder: Path) -> dict:
    """Train one run from its config, test the trained weights, return its record (metrics, timing)."""
    with quiet_cli():
        cli = _make_cli(task, config_file, overrides)
        trainer = cli.trainer
        t = time.perf_counter()
        trainer.fit(cli.model, cli.datamodule)
        train_s = time.perf_counter() - t
        if trainer.interrupted:  # never mark a cut-short run as done
            raise KeyboardInterrupt
        t = time.perf_counter()
        trainer.test(cli.model, cli.datamodule, verbose=False)
        test_s = time.perf_counter() - t
    try:
        report = json.loads((folder / "results.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"the test of {str(folder)!r} wrote no readable results.json ({e})") from None
    metrics = flat_metrics(report)
    lower = [m["name"] for m in report.get("metrics", []) if isinstance(m, dict) and not m.get("higher_is_better", True)]
    return {"steps": int(trainer.global_step), "train_seconds": train_s, "test_seconds": test_s,
            "device": str(cli.model.device), "metrics": metrics, "headline": headline_metric(report, metrics),
            "lower_is_better": lower}


def reuse_line(runs: list[Run], verdicts: list) -> str:
    """What a study of several backbones reuses and runs, per variant: ``"reused 4 finished run(s)
    (baseline 2, debug 2); running 2 new: debug@1 2"``."""
    def counts(kept: bool) -> str:
        by: dict[str, int] = {}
        for run, (kind, _) in zip(runs, verdicts):
            if (kind == "kept") == kept:
                name = run.backbone.label if run.backbone else run.variant
                by[name] = by.get(name, 0) + 1
        return ", ".join(f"{k} {n}" for k, n in by.items())
    kept = sum(1 for kind, _ in verdicts if kind == "kept")
    return (f"reused {kept} finished run(s){f' ({counts(True)})' if kept else ''}; "
            f"running {len(runs) - kept}{f': {counts(False)}' if kept < len(runs) else ''}")
