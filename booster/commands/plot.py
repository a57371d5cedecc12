"""``booster plot RUN... -o PNG``: training and validation curves of one or several runs.

A RUN is a run folder (searched for the ``metrics.csv`` files Lightning's CSVLogger writes; the versions
of a resumed run are joined; a folder holding several runs, e.g. a study, gives one curve per run) or a
``metrics.csv`` file. Each logged metric gets its own panel with every run drawn in it.
"""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="draw loss and validation curves of runs into a PNG", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder or metrics.csv file")
    p.add_argument("-o", "--output", default="curves.png", help="PNG to write (default: curves.png)")
    p.add_argument("--metrics", nargs="+", metavar="PATTERN",
                   help="only these metrics (names or glob patterns such as 'valid/*')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.plots import plot_runs

    path, names = plot_runs(args.runs, args.output, metrics=args.metrics)
    print(f"wrote {path} ({len(names)} metric{'s' if len(names) != 1 else ''}: {', '.join(names)})")
    return 0
