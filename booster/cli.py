"""The ``booster`` command.

Each sub-command lives in its own module under ``booster/commands/`` and exposes
``add_parser(subparsers)``; the parser it adds sets ``func(args) -> int``. Errors raised as
:class:`booster.errors.BoosterError` are printed without a traceback and exit with status 1, and so are
usage errors (a missing required option, an unknown one): one line, status 1, as every other user error.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import BoosterError

# Module names under booster.commands, in the order they appear in ``booster --help``.
COMMANDS = ["demo", "features", "synth", "separate", "transcribe", "mix", "export", "convert", "train", "pretrain",
            "compare", "study", "plot"]


class UsageError(BoosterError):
    """A command line argparse refuses (missing required option, unknown option, bad value)."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse without its exit 2 and usage dump: a usage error is one line and status 1 (see :func:`main`).
    Sub-command parsers are made of this class too (argparse uses the parent's class)."""

    def error(self, message: str):
        raise UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "accepts_extra", False):
            prog = f"{parser.prog} {args.command}" if getattr(args, "command", None) else parser.prog
            raise UsageError(prog, f"unrecognized arguments: {' '.join(extra)}")
    except UsageError as e:
        print(f"{e.prog}: error: {e} (see {e.prog} --help)", file=sys.stderr)
        return 1
    if getattr(args, "command", None) is None:
        parser.print_help()
        return 2
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
