"""``booster fit | validate | test --config <task>/<name>`` for every recipe (LightningCLI).

A recipe is a folder ``recipes/<task>/`` (package ``booster.recipes.<task>``) whose ``__init__.py``
declares::

    MODULE = "booster.recipes.<task>.module:TaskModule"      # a booster.training.BoosterModule
    DATA = "booster.recipes.<task>.data:TaskDataModule"      # a LightningDataModule
    LINKS = ("sample_rate",)   # optional: data.<key> is linked into model.<key> (set once, under data:)

and ships its YAML configs next to it. ``--config`` accepts ``<task>/<name>`` (a packaged config), a
bare ``<name>`` when exactly one task has it (or a separation config: the spelling from before there were
other tasks), or a YAML path; a YAML may say ``task: <task>`` at top
level (else the task comes from the packaged config or the folder it lives in; default separation).
Every run logs through Lightning's CSVLogger unless the config sets a logger: metrics land in
``<default_root_dir>/logs/version_<n>/metrics.csv``.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Optional

from booster.errors import CheckpointError, ConfigError

SUBCOMMANDS = ("fit", "validate", "test")
DEFAULT_TASK = "separation"   # YAML paths that say nothing else (the first recipe; old spellings)
LOG_NAME = "logs"
LAST_EVERY = 50                # fit: last.ckpt every N training steps (--last_every; --last_minutes M too)
CHECKPOINT_DIR = "checkpoints"  # under trainer.default_root_dir


def recipes_root() -> Path:
    import booster.recipes as pkg
    return Path(pkg.__file__).resolve().parent


def tasks() -> list[str]:
    """Recipe folders that declare MODULE and DATA (their ``__init__`` is imported)."""
    out = []
    for d in sorted(p for p in recipes_root().iterdir() if (p / "__init__.py").is_file()):
        try:
            pkg = importlib.import_module(f"booster.recipes.{d.name}")
        except ImportError:
            continue
        if getattr(pkg, "MODULE", None) and getattr(pkg, "DATA", None):
            out.append(d.name)
    return out


def packaged_configs(task: str | None = None) -> list[str]:
    """``["<task>/<name>", ...]`` of every packaged YAML (of ``task`` only when given)."""
    root = recipes_root()
    names = sorted(f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.yaml"))
    return [n for n in names if task is None or n.startswith(task + "/")]


def resolve_config(value: str) -> tuple[str, str | None]:
    """``(YAML path, task or None)`` for a ``--config`` value."""
    root = recipes_root()
    path = Path(value).expanduser()
    if path.is_file():
        return str(path), _task_of(path)
    parts = value.replace("\\", "/").removesuffix(".yaml").split("/")
    if len(parts) >= 2 and (root / parts[-2] / f"{parts[-1]}.yaml").is_file():   # task/name, recipes/task/name
        return str(root / parts[-2] / f"{parts[-1]}.yaml"), parts[-2]
    if len(parts) == 1:
        hits = [n for n in packaged_configs() if n.split("/")[1] == parts[0]]
        if len(hits) == 1:
            return str(root / f"{hits[0]}.yaml"), hits[0].split("/")[0]
        legacy = [h for h in hits if h.startswith(DEFAULT_TASK + "/")]
        if len(hits) > 1 and legacy:   # old spelling from before there were several tasks: keep it working
            others = ", ".join(h for h in hits if h not in legacy)
            print(f"note: --config {value} is {legacy[0]} (other tasks have {others}; name <task>/{value})",
                  file=sys.stderr)
            return str(root / f"{legacy[0]}.yaml"), DEFAULT_TASK
        if len(hits) > 1:
            raise ConfigError(f"config {value!r} exists for several tasks ({', '.join(hits)}); name one of them")
    raise ConfigError(f"config {value!r} does not exist; pass a YAML path or one of: "
                      f"{', '.join(packaged_configs())}")


def _task_of(path: Path) -> str | None:
    """The task a YAML file belongs to: its ``task:`` key, else the recipe folder it lives in."""
    import yaml
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {str(path)!r}: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("task"), str):
        return data["task"]
    resolved = path.resolve()
    if resolved.parent.parent == recipes_root():
        return resolved.parent.name
    return None


def resolve_args(args: list[str]) -> tuple[list[str], str]:
    """Arguments with every ``--config`` resolved to a path, and the task they select."""
    out, found, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a in ("--config", "-c") and i + 1 < len(args):
            path, task = resolve_config(args[i + 1])
            out += [a, path]
            found.append(task)
            i += 2
            continue
        if a.startswith("--config="):
            path, task = resolve_config(a.split("=", 1)[1])
            a = "--config=" + path
            found.append(task)
        out.append(a)
        i += 1
    named = [t for t in found if t]
    if len(set(named)) > 1:
        raise ConfigError(f"the configs given belong to different tasks: {sorted(set(named))}")
    return out, (named[0] if named else DEFAULT_TASK)


def recipe(task: str):
    """``(module class, data module class, links)`` a recipe declares."""
    try:
        pkg = importlib.import_module(f"booster.recipes.{task}")
    except ModuleNotFoundError as e:
        if e.name == f"booster.recipes.{task}":
            raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(tasks())}") from None
        raise
    if not getattr(pkg, "MODULE", None) or not getattr(pkg, "DATA", None):
        raise ConfigError(f"booster.recipes.{task} declares no MODULE / DATA (not a runnable recipe yet)")
    return _load(pkg.MODULE), _load(pkg.DATA), tuple(getattr(pkg, "LINKS", ()))


def _load(ref: str):
    mod, _, name = ref.partition(":")
    return getattr(importlib.import_module(mod), name)


def make_cli_class(links: tuple[str, ...]):
    from lightning.pytorch.cli import LightningCLI

    class BoosterCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.add_argument("--task", default=None, help="the recipe (task) this config belongs to")
            parser.add_argument("--last_every", type=int, default=LAST_EVERY,
                                help="fit: write <default_root_dir>/checkpoints/last.ckpt every N training steps "
                                     "and when training ends (whatever the monitored metric does); 0: only on the "
                                     "--last_minutes schedule")
            parser.add_argument("--last_minutes", type=Optional[float], default=None,
                                help="fit: also write last.ckpt every M minutes of training (wall clock), "
                                     "whichever of the two schedules comes first")
            for key in links:
                parser.link_arguments(f"data.{key}", f"model.{key}")

        def _parse_ckpt_path(self) -> None:
            """Lightning re-applies the checkpoint's hyper-parameters over the command line; keep the model
            options typed explicitly (those that contradict the checkpoint were refused before)."""
            if not self.config.get("subcommand"):
                return
            ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
            if not ckpt_path or not Path(ckpt_path).is_file():
                return
            from booster.training.checkpoint import read_checkpoint
            hparams = dict(read_checkpoint(ckpt_path).get("hyper_parameters") or {})
            hparams.pop("_instantiator", None)
            for key in explicit_options(sys.argv[2:], "model"):
                hparams.pop(key, None)
            if hparams:
                self.config = self.parser.parse_object({self.config.subcommand: {"model": hparams}}, self.config)

        def instantiate_trainer(self, **kwargs):
            cfg = self.config_init[self.subcommand] if self.subcommand else self.config_init
            trainer = cfg["trainer"]
            if trainer.get("logger") in (None, True):   # default: CSV, no server needed
                from lightning.pytorch.loggers import CSVLogger
                trainer["logger"] = CSVLogger(save_dir=trainer.get("default_root_dir") or ".", name=LOG_NAME)
            if self.subcommand == "fit":
                trainer["callbacks"] = fit_callbacks(trainer, cfg.get("last_every", LAST_EVERY),
                                                     cfg.get("last_minutes"))
                from booster.training.data import BoosterDataModule
                if isinstance(cfg.get("data"), BoosterDataModule):   # its ResumableLoader shards by rank itself
                    trainer["use_distributed_sampler"] = False
            return super().instantiate_trainer(**kwargs)

    return BoosterCLI


def fit_callbacks(trainer: dict, last_every: int, last_minutes: float | None = None) -> list:
    """The trainer's callbacks for a fit: checkpoint callbacks without a folder write under
    ``<default_root_dir>/checkpoints`` (and leave ``last.ckpt`` to :class:`LastCheckpoint`), plus
    ``LastCheckpoint`` (every ``last_every`` steps, every ``last_minutes`` when given, and at the end) and
    ``RngStateCallback`` (exact resume)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from booster.data.resumable import LastCheckpoint, RngStateCallback
    from booster.fsutil import check_finite_option

    if last_minutes is not None:
        check_finite_option(last_minutes, "--last_minutes", positive=True)
    if last_every < 0 or (last_every == 0 and last_minutes is None):
        raise ConfigError(f"--last_every must be a positive number of steps (0 only with --last_minutes), "
                          f"got {last_every}")
    root = Path(trainer.get("default_root_dir") or ".") / CHECKPOINT_DIR
    cbs = trainer.get("callbacks") or []
    cbs = list(cbs) if isinstance(cbs, (list, tuple)) else [cbs]
    for cb in cbs:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
            cb.dirpath = str(root)
            cb.save_last = False   # LastCheckpoint owns root/last.ckpt
    return cbs + [LastCheckpoint(root, every_n_train_steps=last_every, minutes=last_minutes),
                  RngStateCallback()]


def _option_values(args: list[str], name: str) -> list[str]:
    """Every value given to ``name`` (``name V`` or ``name=V``) in ``args``."""
    out = []
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(name + "="):
            out.append(a.split("=", 1)[1])
    return out


def explicit_options(args: list[str], section: str) -> set[str]:
    """Keys of ``--<section>.<key>`` options typed on the command line."""
    pre = f"--{section}."
    return {a[len(pre):].split("=", 1)[0].split(".")[0] for a in args if a.startswith(pre)}


def checkpoint_conflicts(args: list[str], meta: dict) -> list[str]:
    """``"--model.boost true vs checkpoint boost false"`` for each explicit option the checkpoint contradicts."""
    import yaml

    def given(name):
        values = _option_values(args, name)
        if not values:
            return None
        try:
            return yaml.safe_load(values[-1])
        except yaml.YAMLError:
            return values[-1]

    checks = [("--model.boost", "boost", bool(meta.get("boost"))),
              ("--model.host", "host", (meta.get("host") or {}).get("name")),
              ("--model.backbone", "backbone", meta.get("backbone")),
              ("--model.sources", "sources", meta.get("sources")),
              ("--data.sources", "sources", meta.get("sources"))]
    out = []
    for option, field, recorded in checks:
        value = given(option)
        if value is None or recorded is None:
            continue
        if isinstance(recorded, list):
            same = isinstance(value, list) and [str(v) for v in value] == [str(v) for v in recorded]
        elif isinstance(recorded, bool):
            same = value is recorded
        else:
            same = str(value) == str(recorded)
        if not same:
            show = lambda v: "[" + ", ".join(map(str, v)) + "]" if isinstance(v, list) else str(v).lower() \
                if isinstance(v, bool) else str(v)
            out.append(f"{option} {show(value)} vs checkpoint {field} {show(recorded)}")
    return out


def _default_root(args: list[str]) -> Path:
    """``trainer.default_root_dir`` the command line or its last config that sets it gives (else ".")."""
    import yaml
    given = _option_values(args, "--trainer.default_root_dir")
    if given:
        return Path(given[-1]).expanduser()
    root = "."
    for cfg in _option_values(args, "--config") + _option_values(args, "-c"):
        try:
            data = yaml.safe_load(Path(cfg).read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        trainer = data.get("trainer") if isinstance(data, dict) else None
        if isinstance(trainer, dict) and trainer.get("default_root_dir"):
            root = trainer["default_root_dir"]
    return Path(str(root)).expanduser()


def check_ckpt_path(args: list[str], task: str) -> list[str]:
    """Arguments with ``--ckpt_path last`` made ``<default_root_dir>/checkpoints/last.ckpt``, after checking
    the file (one-line errors before Lightning reads it) and that no explicit option contradicts it."""
    values = _option_values(args, "--ckpt_path")
    if not values or values[-1] in ("null", "None", "best", "hpc", ""):
        return args
    ckpt = values[-1]
    if ckpt == "last":
        last = _default_root(args) / CHECKPOINT_DIR / "last.ckpt"
        if not last.is_file():
            raise CheckpointError(f"--ckpt_path last: no last.ckpt under {str(last.parent)!r}; nothing to resume "
                                  f"(check --trainer.default_root_dir)")
        ckpt = str(last)
        args = [a for a in args if not a.startswith("--ckpt_path=")]
        args = [ckpt if i and args[i - 1] == "--ckpt_path" else a for i, a in enumerate(args)]
    from booster.fsutil import check_checkpoint_file
    from booster.training.checkpoint import check_meta, read_checkpoint
    check_checkpoint_file(ckpt, "--ckpt_path")
    meta = check_meta(read_checkpoint(ckpt).get("booster"), what=f"--ckpt_path {ckpt!r}", task=task)
    conflicts = checkpoint_conflicts(args, meta)
    if conflicts:
        raise ConfigError(f"--ckpt_path {ckpt!r} contradicts the options given: " + "; ".join(conflicts)
                          + ". Drop the option(s) or use a checkpoint trained with them")
    return args


def main(subcommand: str, args: list[str]) -> int:
    """Run ``subcommand`` (fit / validate / test) with LightningCLI arguments ``args``."""
    if subcommand not in SUBCOMMANDS:
        raise ConfigError(f"unknown sub-command {subcommand!r}")
    if any(a in ("-h", "--help") for a in args) and not any(a.startswith(("--config", "-c")) for a in args):
        print(f"usage: booster {subcommand} --config <task>/<name> | CONFIG.yaml [--section.key value ...]\n"
              f"packaged configs: {', '.join(packaged_configs())}\n"
              f"`booster {subcommand} --config <task>/<name> --help` lists every option of that recipe.")
        return 0
    resolved, task = resolve_args(list(args))
    resolved = check_ckpt_path(resolved, task)
    module_cls, data_cls, links = recipe(task)
    cli_class = make_cli_class(links)
    # LightningCLI parses sys.argv; DDP re-launches the same command line in its worker processes.
    argv, sys.argv = sys.argv, [sys.argv[0], subcommand, *resolved]
    try:
        cli_class(module_cls, data_cls, save_config_kwargs={"overwrite": True}, seed_everything_default=0,
                  parser_kwargs={"prog": "booster", subcommand: {"prog": f"booster {subcommand}"}})
    finally:
        sys.argv = argv
    return 0
