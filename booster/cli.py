"""The ``booster`` command.

Each sub-command lives in its own module under ``booster/commands/`` and exposes
``add_parser(subparsers)``; the parser it adds sets ``func(args) -> int``. Errors raised as
:class:`booster.errors.BoosterError` are printed without a traceback and exit with status 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import BoosterError

# Module names under booster.commands, in the order they appear in ``booster --help``.
COMMANDS = ["demo", "features", "synth", "separate", "transcribe", "mix", "train", "pretrain", "compare",
            "study", "plot"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="booster",
        description="Boost music models with the intermediate layers of a frozen MuQ.")
    parser.add_argument("--version", action="version", version=f"muq-booster {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"booster.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"booster.commands.{name}":
                continue  # command not available in this build
            raise
        module.add_parser(sub)
    return parser


def _version() -> str:
    from . import __version__
    return __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "command", None) is None:
        parser.print_help()
        return 2
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "accepts_extra", False):
        args.extra = extra
    from .muq.loading import BACKBONE_OPTION
    option = BACKBONE_OPTION.set(getattr(args, "backbone_option", None))  # what an offline hub id error suggests
    try:
        return int(args.func(args) or 0)
    except BoosterError as e:
        print(f"booster {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"booster {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        BACKBONE_OPTION.reset(option)


if __name__ == "__main__":
    sys.exit(main())
