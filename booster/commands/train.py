"""booster fit | validate | test --config <task>/<name> [overrides]: any recipe via LightningCLI.

All arguments after the sub-command go to LightningCLI (--config <task>/<name> --help lists them),
e.g. booster fit --config separation/demo --trainer.max_steps 100. --config takes a packaged
config (<task>/<name>, or a bare <name> when only one task has it) or a YAML path. Resume a
killed run with --ckpt_path last (or a path). Metrics: <default_root_dir>/logs/version_<n>/metrics.csv.
"""
from __future__ import annotations

import argparse

HELP = {"fit": "train a recipe (LightningCLI; `booster fit --config <task>/<name> --help`)",
        "validate": "validate a recipe checkpoint (LightningCLI)",
        "test": "evaluate a recipe checkpoint on its test set and write results.json (LightningCLI)"}


def add_parser(sub) -> None:
    for name, text in HELP.items():
        p = sub.add_parser(name, help=text, add_help=False, description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=_runner(name), accepts_extra=True, backbone_option="--model.backbone DIR")


def _runner(name: str):
    def run(args: argparse.Namespace) -> int:
        from ..training.cli import main
        return main(name, list(getattr(args, "extra", [])))
    return run
