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


def check_export(path: str) -> None:
    """``--export FILE`` must be a ``.safetensors`` path that can be written: checked before any work, so a
    folder, a read-only place or another suffix is one line and nothing is computed."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..fsutil import check_output_file

    if Path(path).expanduser().is_dir():
        raise ConfigError(f"--export {path!r} is an existing folder; give the file to write, e.g. "
                          f"{str(Path(path) / 'model.safetensors')!r}")
    if Path(path).suffix != ".safetensors":
        raise ConfigError(f"--export {path!r}: the model is saved as one .safetensors file; give a path ending "
                          f"in .safetensors, e.g. {str(Path(path).with_suffix('.safetensors'))!r}")
    check_output_file(path, "--export")
