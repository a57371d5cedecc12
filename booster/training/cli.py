"""``booster fit | validate | test --config <task>/<name>`` for every recipe (LightningCLI).

A recipe is a package registered under the entry-point group ``booster.recipes`` (muq-booster registers its
own in pyproject.toml; another package registers a task the same way, the kit names none)::

    [project.entry-points."booster.recipes"]
    separation = "booster.recipes.separation"

Its ``__init__.py`` declares::

    MODULE = "booster.recipes.<task>.module:TaskModule"      # a booster.training.module.BoosterModule
    DATA = "booster.recipes.<task>.data:TaskDataModule"      # a LightningDataModule
    LINKS = ("sample_rate",)   # optional: data.<key> is linked into model.<key> (set once, under data:)

and ships its YAML configs next to it. ``--config`` accepts ``<task>/<name>`` (a packaged config), a bare
``<name>`` when exactly one task has it, or a YAML path; a YAML names its task with ``task: <task>`` at top
level, else by living in a recipe's folder, else by a packaged config given with it (there is no default task).
A recipe that fails to import is a one-line :class:`ConfigError` naming it and the import error.
Every run logs through Lightning's CSVLogger unless the config sets a logger: metrics land in
``<default_root_dir>/logs/version_<n>/metrics.csv``.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Optional

from booster.errors import CheckpointError, ConfigError

from .run_folder import CHECKPOINT_DIR, LOG_NAME  # noqa: F401  (re-exported names of the run layout)

SUBCOMMANDS = ("fit", "validate", "test")
ENTRY_POINTS = "booster.recipes"   # the registry of recipes (tasks)
LAST_EVERY = 50                # fit: last.ckpt every N training steps (--last_every; --last_minutes M too)


def _registered() -> dict:
    """``{task: entry point}`` of every recipe registered under ``booster.recipes``."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)}


def tasks() -> list[str]:
    """The registered recipes (tasks), without importing them."""
    return sorted(_registered())


def _entry(task: str):
    eps = _registered()
    if task not in eps:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(sorted(eps)) or 'none registered'} "
                          f"(a recipe registers itself under the entry points {ENTRY_POINTS!r})")
    return eps[task]


def recipe_dir(task: str) -> Path:
    """The folder of recipe ``task`` (its configs live there), found without importing the recipe."""
    ep = _entry(task)
    try:
        spec = importlib.util.find_spec(ep.value)
    except ImportError as e:
        spec, why = None, f": {e}"
    else:
        why = ""
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"recipe {task!r} is registered as {ep.value!r}, which is not an importable package{why}")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def packaged_configs(task: str | None = None) -> list[str]:
    """``["<task>/<name>", ...]`` of every packaged YAML (of ``task`` only when given)."""
    names = tasks() if task is None else [task]
    return sorted(f"{t}/{p.stem}" for t in names for p in recipe_dir(t).glob("*.yaml"))


def resolve_config(value: str) -> tuple[str, str | None]:
    """``(YAML path, task or None)`` for a ``--config`` value."""
    path = Path(value).expanduser()
    if path.is_file():
        return str(path), _task_of(path)
    parts = value.replace("\\", "/").removesuffix(".yaml").split("/")
    if len(parts) >= 2 and parts[-2] in tasks():   # task/name (also .../task/name)
        file = recipe_dir(parts[-2]) / f"{parts[-1]}.yaml"
        if file.is_file():
            return str(file), parts[-2]
    if len(parts) == 1:
        hits = [n for n in packaged_configs() if n.split("/")[1] == parts[0]]
        if len(hits) == 1:
            task = hits[0].split("/")[0]
            return str(recipe_dir(task) / f"{parts[0]}.yaml"), task
        if len(hits) > 1:
            raise ConfigError(f"config {value!r} exists for several tasks; name one of them: {', '.join(hits)}")
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
    folder = path.resolve().parent
    return next((t for t in tasks() if recipe_dir(t) == folder), None)


def no_task(configs: list[str]) -> ConfigError:
    """The error for configs that name no task."""
    given = ", ".join(configs) if configs else "no --config"
    return ConfigError(f"{given}: which task? Add `task: <task>` to the YAML or pass --config <task>/<name> "
                       f"(tasks: {', '.join(tasks())})")


def resolve_args(args: list[str]) -> tuple[list[str], str]:
    """Arguments with every ``--config`` resolved to a path, and the task they select."""
    out, found, given, i = [], [], [], 0
    while i < len(args):
        a = args[i]
        if a in ("--config", "-c") and i + 1 < len(args):
            path, task = resolve_config(args[i + 1])
            out += [a, path]
            found.append(task)
            given.append(args[i + 1])
            i += 2
            continue
        if a.startswith("--config="):
            given.append(a.split("=", 1)[1])
            path, task = resolve_config(given[-1])
            a = "--config=" + path
            found.append(task)
        out.append(a)
        i += 1
    named = [t for t in found if t]
    if len(set(named)) > 1:
        raise ConfigError(f"the configs given belong to different tasks: {sorted(set(named))}")
    if not named:
        raise no_task(given)
    return out, named[0]


def recipe(task: str):
    """``(module class, data module class, links)`` a recipe declares."""
    ep = _entry(task)
    pkg = _import(task, ep.value)
    if not getattr(pkg, "MODULE", None) or not getattr(pkg, "DATA", None):
        raise ConfigError(f"recipe {task!r} ({ep.value}) declares no MODULE / DATA (not a runnable recipe yet)")
    return _load(task, pkg.MODULE), _load(task, pkg.DATA), tuple(getattr(pkg, "LINKS", ()))


def _import(task: str, module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:   # never dropped: the user asked for this recipe
        raise ConfigError(f"recipe {task!r} failed to import ({module}): {type(e).__name__}: {e}") from None


def _load(task: str, ref: str):
    mod, _, name = ref.partition(":")
    module = _import(task, mod)
    if not hasattr(module, name):
        raise ConfigError(f"recipe {task!r} names {ref!r}, but {mod} has no {name!r}")
    return getattr(module, name)


def make_cli_class(links: tuple[str, ...], check_folder: bool = False, fits: bool = False):
    """The LightningCLI class of a recipe. ``check_folder``: check ``trainer.default_root_dir`` before anything
    is built (``booster fit`` over an earlier run, read-only folders: see :mod:`booster.training.run_folder`);
    ``fits``: the trainer of a CLI built without a sub-command (``run=False``, e.g. a study's run) gets the fit
    callbacks too (``last.ckpt`` at the final step)."""
    from lightning.pytorch.cli import LightningCLI

    class BoosterCLI(LightningCLI):
        _clear = None   # --overwrite: the earlier run's checkpoint folder, cleared when the new training starts

        def add_arguments_to_parser(self, parser) -> None:
            parser.add_argument("--task", default=None, help="the recipe (task) this config belongs to")
            parser.add_argument("--last_every", type=int, default=LAST_EVERY,
                                help="fit: write <default_root_dir>/checkpoints/last.ckpt every N training steps "
                                     "and when training ends (whatever the monitored metric does); 0: only on the "
                                     "--last_minutes schedule")
            parser.add_argument("--last_minutes", type=Optional[float], default=None,
                                help="fit: also write last.ckpt every M minutes of training (wall clock), "
                                     "whichever of the two schedules comes first")
            parser.add_argument("--overwrite", type=bool, nargs="?", const=True, default=False,
                                help="fit: start again in a default_root_dir that holds an earlier run (its "
                                     "checkpoints/ is removed when training starts); without it such a folder "
                                     "is an error that offers --ckpt_path last. Counts only on the command line")
            for key in links:
                parser.link_arguments(f"data.{key}", f"model.{key}")

        def _check_folder(self) -> None:   # right after parsing: before the seed line and any class is built
            from .run_folder import check_fit_folder, check_root, first_process
            subcommand = self.config.get("subcommand")
            if not check_folder or not subcommand or not first_process():
                return
            cfg = self.config[subcommand]
            root = Path(str(cfg.trainer.get("default_root_dir") or ".")).expanduser()
            # --overwrite counts only when typed: a run's saved config.yaml records it and must not overwrite again
            overwrite = bool(cfg.get("overwrite")) and any(a.split("=")[0] == "--overwrite" for a in sys.argv[2:])
            if subcommand == "fit":
                self._clear = check_fit_folder(root, cfg.get("ckpt_path"), overwrite)
                return
            if overwrite:
                raise ConfigError(f"--overwrite is an option of booster fit, not of booster {subcommand}")
            if cfg.trainer.get("logger") in (None, True):   # the default CSV logs go under the folder
                check_root(root)

        def _parse_ckpt_path(self) -> None:
            """Lightning re-applies the checkpoint's hyper-parameters over the command line; keep the model
            options typed explicitly (those that contradict the checkpoint were refused before)."""
            self._check_folder()
            if not self.config.get("subcommand"):
                return
            ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
            if not ckpt_path or not Path(ckpt_path).is_file():
                return
            from booster.training.checkpoint import checkpoint_header
            hparams = dict(checkpoint_header(ckpt_path, "--ckpt_path")[1])
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
            if self.subcommand == "fit" or (fits and not self.subcommand):
                trainer["callbacks"] = fit_callbacks(trainer, cfg.get("last_every", LAST_EVERY),
                                                     cfg.get("last_minutes"))
                if self._clear is not None:
                    from .run_folder import ClearEarlierRun
                    trainer["callbacks"].insert(0, ClearEarlierRun(self._clear))
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
    from booster.training.checkpoint import check_meta, checkpoint_header
    meta = check_meta(checkpoint_header(ckpt, "--ckpt_path")[0], what=f"--ckpt_path {ckpt!r}", task=task)
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
    cli_class = make_cli_class(links, check_folder=True)
    # LightningCLI parses sys.argv; DDP re-launches the same command line in its worker processes.
    argv, sys.argv = sys.argv, [sys.argv[0], subcommand, *resolved]
    try:   # a bad option is one line (jsonargparse would print the usage and exit 2)
        cli_class(module_cls, data_cls, save_config_kwargs={"overwrite": True}, seed_everything_default=0,
                  parser_kwargs={"prog": "booster", "exit_on_error": False,
                                 subcommand: {"prog": f"booster {subcommand}", "exit_on_error": False}})
    except argparse.ArgumentError as e:
        from .run_folder import argument_error_line, remove_created_if_empty
        remove_created_if_empty()
        raise ConfigError(argument_error_line(e)) from None
    except BaseException:
        from .run_folder import remove_created_if_empty
        remove_created_if_empty()   # a failed command leaves no empty run folder of its own making
        raise
    else:
        from .run_folder import remove_created_if_empty
        remove_created_if_empty(forget_only=True)
    finally:
        sys.argv = argv
    return 0
