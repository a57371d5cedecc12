"""booster compare RUN_A RUN_B: metric differences (B minus A) of two evaluated runs of any task.

A run is a folder holding results.json (written by booster test, the demo or a study) or that
file. Runs of different tasks, or evaluated on different items / lengths / settings, are refused unless
--force is given.
"""
from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare two evaluated runs (any task)", description=__doc__)
    p.add_argument("run_a", help="reference run (folder or results.json)")
    p.add_argument("run_b", help="run compared against it")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    p.add_argument("--force", action="store_true", help="compare runs that were evaluated differently")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.report import compare_reports, load_report

    a, b = load_report(args.run_a), load_report(args.run_b)
    name_a = a.get("meta", {}).get("name") or "A"
    name_b = b.get("meta", {}).get("name") or "B"
    if name_a == name_b:
        name_a, name_b = f"A:{name_a}", f"B:{name_b}"
    table, diff = compare_reports(a, b, name_a, name_b, force=args.force)
    from ..fsutil import pipe_safe
    with pipe_safe():   # `booster compare A B --json | head`: no BrokenPipeError traceback
        print(json.dumps(diff, indent=2) if args.json else table)
    return 0
