"""The ``booster`` subcommands (one module each) and what the file commands share."""


def run_each_input(names: dict, keep_going: bool, work) -> int:
    """Process every input of a file command: ``work(path, name) -> (target, detail)`` is printed as
    ``PATH -> TARGET (DETAIL<seconds> s)``. A :class:`~booster.errors.BoosterError` stops the command, or with
    ``keep_going`` is printed as ``skipped PATH: why`` and the rest go on. Returns the exit status (1 if any
    input was skipped)."""
    import sys
    import time

    from ..errors import BoosterError

    failed = 0
    for path, name in names.items():
        t0 = time.perf_counter()
        try:
            target, detail = work(path, name)
        except BoosterError as e:
            if not keep_going:
                raise
            failed += 1
            print(f"skipped {path}: {e}", file=sys.stderr)
            continue
        print(f"{path} -> {target} ({detail}{time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0
