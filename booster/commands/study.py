"""``booster study --config <task>/<name> --fractions 0.1,0.25,1.0 --seeds 3``: does the booster boost?

For every training fraction and seed, trains the config's host plain (baseline) and boosted with the
same budget, the same nested data subset and the same seed, tests both on the same test split with the
task's metrics, and writes ``study.json`` (every run, every metric), ``study.md`` (mean ± sd over seeds,
boosted − baseline with a t interval and whether it excludes zero) and ``study.png`` into ``-o``.
A killed study continues where it stopped when run again with the same arguments; finished runs are
reused only when their settings match and their results and weights (``checkpoints/last.ckpt``) verify, and
are never deleted (other settings: an error naming them; ``--force`` redoes them, keeping the old folders).

``--backbones debug,muq-mini,PATH`` compares several backbones in one study: per fraction and seed, the plain
host once and the host boosted by each backbone (``NAME@SEED``: ``debug@1`` is the debug MuQ with
``model.backbone_seed`` 1); the table and plot give each backbone's gain over the plain host with a paired
interval over seeds. Adding a backbone to a finished study runs only the new backbone's runs.

Arguments after the options go to every run as LightningCLI overrides, e.g.
``--model.backbone muq-mini --data.root my_stems --trainer.val_check_interval 50``.
"""
from __future__ import annotations

import argparse

from ..errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("study", help="baseline vs boosted over training fractions and seeds (table + plot)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="recipe config: <task>/<name> or a YAML path")
    p.add_argument("--fractions", default="0.1,0.25,1.0", help="training fractions, comma separated "
                   "(default: 0.1,0.25,1.0)")
    p.add_argument("--seeds", default="3", help="number of seeds (N: seeds 0..N-1) or a list such as 0,5,7 "
                   "(default: 3)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-steps", type=int, help="training steps per run (default: the config's)")
    budget.add_argument("--budget-minutes", type=float, help="training wall time per run in minutes")
    p.add_argument("-o", "--output", default="runs/study", help="study folder (default: runs/study)")
    p.add_argument("--backbones", help="compare backbones: names, NAME@SEED or paths, comma separated, e.g. "
                   "debug,muq-mini,runs/teacher (default: baseline vs the config's own backbone)")
    p.add_argument("--force", action="store_true", help="redo the finished runs made with other settings (without "
                   "it they stop the study); their folders are kept as <run>.old-<time>, never deleted")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda (default: auto)")
    p.add_argument("--metric", help="headline metric of the table and plot (default: the task's first)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of the intervals (default: 0.95)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="runs trained at the same time, in separate processes "
                   "sharing the CPU threads, or one GPU each when there are several (default: 1)")
    p.set_defaults(func=run, accepts_extra=True,
                   backbone_option="--model.backbone DIR after the options, or DIR in --backbones")


def parse_fractions(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--fractions {text!r}: expected numbers separated by commas, e.g. 0.1,0.25,1.0") from None


def parse_seeds(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected a count (3) or seeds separated by commas (0,1,2)") from None
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise ConfigError(f"--seeds {text!r}: at least one seed")
        return list(range(values[0]))
    return values


def run(args: argparse.Namespace) -> int:
    from ..training.study import StudySettings, run_study

    device = str(args.device)
    if device.startswith("cuda"):
        from ..training.device import resolve_device
        resolve_device(device)  # one-line error when there is no such GPU
    settings = StudySettings(config=args.config, fractions=parse_fractions(args.fractions),
                             seeds=parse_seeds(args.seeds), out=args.output, budget_steps=args.budget_steps,
                             budget_minutes=args.budget_minutes, device=device,
                             overrides=list(getattr(args, "extra", [])), metric=args.metric,
                             confidence=args.confidence, jobs=args.jobs, force=args.force,
                             backbones=args.backbones)
    run_study(settings)
    return 0
