"""``booster plot RUN... -o PNG``: training and validation curves of one or several runs.

A RUN is a run folder (searched for the ``metrics.csv`` files Lightning's CSVLogger writes; the versions
of a resumed run are joined; a folder holding several runs, e.g. a study, gives one curve per run) or a
``metrics.csv`` file. Each logged metric gets its own panel with every run drawn in it. ``-o`` names the
image; a name without an extension gets ``.png`` (``-o in`` writes ``in.png``), and the path printed is
the path written.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="draw loss and validation curves of runs into a PNG", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder or metrics.csv file")
    p.add_argument("-o", "--output", default="curves.png",
                   help="image to write (default: curves.png); a name without an extension gets .png, and "
                        "the path written is the one printed")
    p.add_argument("--metrics", nargs="+", metavar="PATTERN",
                   help="only these metrics (names or glob patterns such as 'valid/*')")
    p.set_defaults(func=run)


def output_path(output: str) -> Path:
    """The file ``-o`` names: a name without an extension gets ``.png`` (matplotlib's default format), so
    ``-o in`` writes ``in.png``; an extension matplotlib cannot write, an existing folder or a place that is
    not writable is a one-line error before anything is drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..errors import ConfigError
    from ..fsutil import check_output_file

    path = Path(output).expanduser()
    if path.is_dir():
        raise ConfigError(f"-o {output!r} is an existing folder; give the image to write, e.g. "
                          f"{str(path / 'curves.png')!r}")
    formats = FigureCanvasAgg.get_supported_filetypes()
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    elif path.suffix[1:].lower() not in formats:
        raise ConfigError(f"-o {output!r}: cannot write .{path.suffix[1:]} images; use one of "
                          f"{', '.join('.' + f for f in sorted(formats))}")
    return check_output_file(path, "-o")


def run(args: argparse.Namespace) -> int:
    from ..training.plots import plot_runs

    path, names = plot_runs(args.runs, output_path(args.output), metrics=args.metrics)
    print(f"wrote {path} ({len(names)} metric{'s' if len(names) != 1 else ''}: {', '.join(names)})")
    return 0
