"""The runs of a study on disk: which earlier runs are reused, and what is checked before anything is written.

A finished run (``run.json`` says ``done``) is reused only when its settings equal this call's and what it
keeps verifies: ``results.json`` parses into a report whose summary gives the metrics ``run.json`` recorded,
and ``checkpoints/last.ckpt`` (the weights it was tested with) is a checkpoint file. A finished run is never
deleted: one made with other settings stops the study with a line naming them unless ``--force``, and one
that fails verification is redone; both are first moved aside as ``<run>.old-<time>``. An unfinished run
(killed half-way, no results) is removed and redone.

``--backbones`` values (:func:`parse_backbones`): ``NAME``, ``NAME@SEED`` (``debug@1``: the debug MuQ with
``model.backbone_seed`` 1) or a path; each gets a folder-safe label, and the full value, seed and weight
fingerprint are settings of its runs (so a backbone whose weights changed is "other settings").
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import re
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from booster.errors import BoosterError, ConfigError

RUN_FILE = "run.json"
# how a setting of run.json is called on the command line
SETTING_NAMES = {"budget_steps": "--budget-steps", "budget_minutes": "--budget-minutes", "overrides": "overrides",
                 "config": "--config", "config_text": "the config file's text", "task": "task",
                 "study_version": "study format", "backbone": "--backbones", "backbone_seed": "the backbone's seed",
                 "backbone_fingerprint": "the backbone's weights (fingerprint)"}


def read_state(folder: Path) -> dict | None:
    try:
        state = json.loads((folder / RUN_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


def differences(old: dict, new: dict) -> dict[str, tuple]:
    """``{setting: (old, new)}`` for each setting that differs."""
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def describe(diffs: dict[str, tuple]) -> str:
    """``"--budget-steps: 1 → 2; overrides: [] → ['--data.root', 'x']"``."""
    def show(v):
        return "none" if v is None else str(v)
    parts = []
    for key, (old, new) in diffs.items():
        name = SETTING_NAMES.get(key, key)
        parts.append(f"{name} changed" if key == "config_text" else f"{name}: {show(old)} → {show(new)}")
    return "; ".join(parts)


def _verify(folder: Path, state: dict) -> str | None:
    """Why the finished run in ``folder`` cannot be reused as it is (None: it can)."""
    from booster.fsutil import check_checkpoint_file

    from .study_report import flat_metrics
    try:
        report = json.loads((folder / "results.json").read_text())
    except FileNotFoundError:
        return "no results.json"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"results.json is not readable ({type(e).__name__})"
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        return "results.json is not a test report"
    try:
        metrics = flat_metrics(report)
    except (AttributeError, TypeError, ValueError):
        return "results.json is not a test report"
    if not isinstance(state.get("metrics"), dict) or metrics != state["metrics"] or not metrics:
        return "results.json does not give the metrics run.json recorded"
    if not all(isinstance(state.get(k), (int, float)) for k in ("steps", "train_seconds", "test_seconds")):
        return "run.json misses the run's steps or timings"
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return "no checkpoints/last.ckpt (the weights it was tested with)"
    try:
        check_checkpoint_file(last, "checkpoint")
    except BoosterError:
        return "checkpoints/last.ckpt is not a readable checkpoint"
    return None


def verdict(folder: Path, expected: dict) -> tuple[str, object]:
    """What to do with ``folder``: ``("new", None)``, ``("kept", state)``, ``("unfinished", None)``,
    ``("other", diffs)`` (finished with other settings), ``("corrupt", why)``; a folder that is not a study
    run (files, no run.json) is an error."""
    if not folder.exists():
        return "new", None
    if not (folder / RUN_FILE).exists():
        if folder.is_dir() and not any(folder.iterdir()):
            return "unfinished", None
        raise ConfigError(f"{str(folder)!r} exists and is not a study run; pass another -o")
    state = read_state(folder)
    if state is None:
        return "corrupt", "run.json is not readable"
    if state.get("status") != "done":
        return "unfinished", None
    diffs = differences(state.get("settings") if isinstance(state.get("settings"), dict) else {}, expected)
    if diffs:
        return "other", diffs
    why = _verify(folder, state)
    return ("corrupt", why) if why else ("kept", state)


def move_aside(folder: Path) -> Path:
    """Rename ``folder`` to ``<folder>.old-<time>`` (a free name) and return it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = folder.with_name(f"{folder.name}.old-{stamp}"), 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}.old-{stamp}-{n}")
    folder.rename(target)
    return target


class _Parsed(Exception):
    """Raised once the arguments are parsed: nothing is built."""


def check_usable(config: str, task: str, run_cfg: dict, overrides: list[str]) -> None:
    """One-line errors, before anything is written, for a recipe a study cannot vary (its module is not a
    :class:`BoosterModule`, e.g. pretraining) and for options that do not parse (``run_cfg``: the first run's
    config, as it will be written; ``overrides`` are given to every run)."""
    import yaml

    from .cli import make_cli_class, recipe
    from .module import BoosterModule
    from .run_folder import argument_error_line

    module_cls, data_cls, links = recipe(task)
    if not (isinstance(module_cls, type) and issubclass(module_cls, BoosterModule)):
        raise ConfigError(f"--config {config}: a study trains a host plain and boosted, and the {task!r} recipe has "
                          f"no such variants ({module_cls.__name__} is not a BoosterModule); use a task recipe, "
                          f"e.g. --config separation/demo")

    class ParseOnly(make_cli_class(links)):
        def before_instantiate_classes(self) -> None:
            raise _Parsed

    with tempfile.TemporaryDirectory(prefix="booster-study-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(run_cfg, sort_keys=False))
        try:
            with quiet_cli():
                ParseOnly(module_cls, data_cls, run=False, args=["--config", str(path), *overrides],
                          seed_everything_default=0, save_config_callback=None,
                          parser_kwargs={"prog": "booster study", "exit_on_error": False})
        except _Parsed:
            return
        except argparse.ArgumentError as e:
            raise ConfigError(f"the runs' options do not parse: {argument_error_line(e)}") from None


# --------------------------------------------------------------------------- --backbones

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


@dataclass(frozen=True)
class BackboneSpec:
    """One ``--backbones`` value. ``source``: what ``model.backbone`` gets (a local path made absolute);
    ``seed``: ``model.backbone_seed``; ``label``: its run folders' name (``boosted-<label>``)."""

    value: str
    source: str
    seed: int
    label: str
    fingerprint: str | None = None

    def settings(self) -> dict:
        return {"backbone": self.source, "backbone_seed": self.seed, "backbone_fingerprint": self.fingerprint}

    def record(self) -> dict:
        return {"value": self.value, "label": self.label, **self.settings()}


def backbone_label(source: str, seed: int, is_path: bool) -> str:
    """A readable, unique, file-system-safe name: a plain name as it is (``muq-mini``), a path or hub id as
    its last part plus 6 hex digits of the full value (``teacher-1a2b3c``); ``@SEED`` for a seed other than 0;
    the random-weights control ``random:NAME`` as ``random-<NAME's label>``."""
    if source.startswith("random:") and source[7:]:
        return "random-" + backbone_label(source[7:], seed, is_path)
    if not is_path and SAFE_NAME.fullmatch(source):
        base = source
    else:
        tail = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).name).strip("._-")[:32] or "backbone"
        base = f"{tail}-{hashlib.sha1(source.encode()).hexdigest()[:6]}"
    return base if seed == 0 else f"{base}@{seed}"


def parse_backbones(text) -> list[BackboneSpec]:
    """``"debug,debug@1,/models/teacher"`` (or a list of such values) as specs (nothing loaded: see
    :func:`resolve_backbones`)."""
    specs, seen = [], {}
    items = str(text).split(",") if isinstance(text, str) else [str(x) for x in text]
    for item in (x.strip() for x in items):
        if not item:
            continue
        source, seed = item, 0
        head, at, tail = item.rpartition("@")
        if at and head and tail.isdigit():
            source, seed = head, int(tail)
            if seed >= 2 ** 32:
                raise ConfigError(f"--backbones {item!r}: the seed after @ must be from 0 to {2 ** 32 - 1}")
        prefix = "random:" if source.startswith("random:") else ""   # random weights, the architecture of the rest
        rest = source[len(prefix):]
        local = rest != "debug" and Path(rest).expanduser().exists()
        if local:
            source = prefix + str(Path(rest).expanduser().resolve())
        spec = BackboneSpec(item, source, seed, backbone_label(source, seed, local or "/" in rest))
        if (source, seed) in seen:
            raise ConfigError(f"--backbones names one backbone twice ({seen[source, seed]!r} and {item!r})")
        seen[source, seed] = item
        specs.append(spec)
    if not specs:
        raise ConfigError(f"--backbones {text!r}: give backbone names or paths separated by commas, "
                          "e.g. debug,muq-mini")
    return specs


def resolve_backbones(specs: list[BackboneSpec]) -> list[BackboneSpec]:
    """Load each backbone once (``booster.backbone.load_backbone``): a value that does not resolve is one line,
    before anything is written; returns the specs with their weights' fingerprints."""
    from booster.backbone import identity, load_backbone
    out = []
    for spec in specs:
        try:
            bb = load_backbone(spec.source, spec.seed)
        except (BoosterError, OSError, ValueError, RuntimeError) as e:
            why = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ConfigError(f"--backbones {spec.value!r} does not load as a backbone: {why}") from None
        fingerprint = identity(bb).get("fingerprint")
        out.append(BackboneSpec(spec.value, spec.source, spec.seed, spec.label,
                                None if fingerprint is None else str(fingerprint)))
        del bb
    return out


@contextlib.contextmanager
def quiet_cli():
    """LightningCLI inside a study: no device lines and tips per run, and the arguments given explicitly."""
    import lightning.pytorch  # noqa: F401  (its loggers exist from here on)
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("lightning")] + ["lightning"]:
        logging.getLogger(name).setLevel(logging.WARNING)
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(LeafSpec|smaller than the logging interval).*")
            yield
    finally:
        sys.argv = argv
