"""What ``booster fit | validate | test`` checks about ``trainer.default_root_dir`` before anything runs.

A run folder that holds an earlier fit (``checkpoints/*.ckpt`` or ``logs/version_<n>/metrics.csv``) is never
trained over silently: ``booster fit`` there needs ``--ckpt_path last`` (resume), another
``--trainer.default_root_dir``, or ``--overwrite`` (start again: the earlier run's ``checkpoints/`` is removed
when the new training starts, so no checkpoint of the old run is left next to the new ones, and so are the files
the recipe derives from the run there (its module's ``run_files``: pretraining's tokenizer and export); its logs stay, the
new run logs as the next ``version_<n>``). A folder that is a file or read-only is a one-line error.
Only the first process checks (DDP workers re-run the same command line while the first one trains).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

from booster.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
LOG_NAME = "logs"
ROOT_OPTION = "--trainer.default_root_dir"


def first_process() -> bool:
    """False in a worker process of a multi-process run (its rank variables are set and not 0)."""
    return all(os.environ.get(k, "0") in ("0", "") for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def earlier_run(root: Path) -> list[str]:
    """The files of an earlier fit in ``root`` (relative paths, checkpoints first); empty when there is none."""
    ckpts = sorted((root / CHECKPOINT_DIR).glob("*.ckpt")) if (root / CHECKPOINT_DIR).is_dir() else []
    logs = sorted((root / LOG_NAME).glob("*/metrics.csv")) if (root / LOG_NAME).is_dir() else []
    return [str(p.relative_to(root)) for p in ckpts + logs]


_CREATED: list[Path] = []   # folders check_root made in this process (deepest first)


def check_root(root: Path) -> None:
    """``root`` can hold the run's files (made when missing): else one line naming the option. The folders
    it makes are remembered: :func:`remove_created_if_empty` takes them back when the command fails."""
    from booster.fsutil import check_output_dir, missing_folders
    root = Path(root)
    _CREATED[:] = missing_folders(root)
    check_output_dir(root, ROOT_OPTION)


def remove_created_if_empty(forget_only: bool = False) -> None:
    """A command that failed before writing anything leaves no empty run folder behind (folders that existed
    before are never touched; one that holds anything is kept). ``forget_only``: the command succeeded."""
    from booster.fsutil import remove_if_empty
    if not forget_only:
        remove_if_empty(_CREATED)
    _CREATED.clear()


def check_fit_folder(root: Path, ckpt_path: str | None, overwrite: bool) -> Path | None:
    """Refuse to train over an earlier run in ``root`` without ``--ckpt_path`` or ``--overwrite``; return the
    checkpoint folder to clear when the new training starts (``--overwrite`` over an earlier run), else None."""
    if ckpt_path is not None and overwrite:
        raise ConfigError("--overwrite starts a run again and --ckpt_path resumes one: give one of them")
    check_root(root)
    found = earlier_run(root)
    if ckpt_path is not None:
        return None
    if not found:   # --overwrite still clears what a recipe derived from an earlier, interrupted start
        return root / CHECKPOINT_DIR if overwrite else None
    if not overwrite:
        last = root / CHECKPOINT_DIR / "last.ckpt"
        resume = "--ckpt_path last" if last.is_file() else "--ckpt_path <one of its checkpoints>"
        shown = ", ".join(found[:2]) + (f" and {len(found) - 2} more" if len(found) > 2 else "")
        raise ConfigError(f"{ROOT_OPTION} {str(root)!r} holds an earlier run ({shown}); resume it with {resume}, "
                          f"train into another folder with {ROOT_OPTION} DIR, or start again there with --overwrite "
                          f"(its checkpoints are replaced)")
    return root / CHECKPOINT_DIR


def _callback_base():
    from lightning.pytorch.callbacks import Callback
    return Callback


class ClearEarlierRun(_callback_base()):
    """``--overwrite``: remove the earlier run's checkpoint folder when the new training starts (after setup
    succeeded, before the first checkpoint of the new run). Only the first process has this callback (the
    others skip the folder check), so it takes no barrier; checkpoints are written by that process only."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def setup(self, trainer, pl_module, stage=None) -> None:
        """Before the module's own setup: the files a recipe derives from the run in the run folder (its
        ``run_files``, e.g. pretraining's stage-1 tokenizer and its export) go too, so a new start does not
        reuse them."""
        if not trainer.is_global_zero:
            return
        for name in getattr(pl_module, "run_files", ()):
            path = self.folder.parent / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.folder.is_dir():
            shutil.rmtree(self.folder)


def argument_error_line(error: argparse.ArgumentError | str) -> str:
    """One line for a jsonargparse error (they span many lines: every subclass a union could take, ...)."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "invalid arguments"
    head = lines[0]
    m = re.search(r'[Kk]ey "([^"]+)"', text)
    detail = next((line for line in lines[1:] if not line.startswith(("-", "Given value type", "Subclass"))), "")
    line = head if not detail else f"{head.rstrip(':')}: {detail}"
    if m and f"--{m.group(1)}" not in line and m.group(1) not in line:
        line = f"--{m.group(1)}: {line}"
    return line if len(line) <= 300 else line[:297] + "..."
