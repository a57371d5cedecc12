"""``booster fit | validate | test --config CONFIG.yaml [overrides]``: the separation recipe via LightningCLI.

All arguments after the sub-command go to LightningCLI (``--help`` lists them), e.g.
``booster fit --config recipes/separation/demo.yaml --trainer.max_steps 100``;
``--config demo`` names a packaged config. Resume a killed run with ``--ckpt_path last`` (or a path).
"""
from __future__ import annotations

import argparse

HELP = {"fit": "train a separator (LightningCLI; see `booster fit --help`)",
        "validate": "validate a separator checkpoint (LightningCLI)",
        "test": "evaluate a separator on full test tracks with museval (LightningCLI)"}


def add_parser(sub) -> None:
    for name, text in HELP.items():
        p = sub.add_parser(name, help=text, add_help=False, description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=_runner(name), accepts_extra=True)


def _runner(name: str):
    def run(args: argparse.Namespace) -> int:
        from ..recipes.separation.cli import main
        return main(name, list(getattr(args, "extra", [])))
    return run
