"""Files the toolkit writes: atomic writes, unique output names, output-folder and output-file checks,
checkpoint pre-checks (from :mod:`booster.filechecks`) and pipe-safe printing. Every writer in the toolkit
goes through here.

Atomic writes (:func:`atomic_path`, :func:`write_bytes`, :func:`write_text`): the data goes to a
temporary file in the target's folder named ``.<name>.<host>-<pid>-<random>.booster-tmp``; it is
flushed to disk (fsync) and renamed over the target, so a reader sees the old file or the new one,
never a partial one. On any failure (an exception, Ctrl-C) the temporary file is removed; after a kill
(SIGKILL, power loss) the next writer into the same folder removes temporary files of our naming whose
process is gone (:func:`sweep_temp_files`). New files get the permissions the user's umask gives
(``0o666 & ~umask``), whatever the library that wrote the temporary file chose.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import BoosterError, ConfigError

TEMP_SUFFIX = ".booster-tmp"
STALE_SECONDS = 24 * 3600  # a temporary file of another machine is stale after a day
_HOST = format(zlib.crc32(socket.gethostname().encode()), "08x")
_swept: set[str] = set()


# ---- atomic writes ---------------------------------------------------------------------------------
def temp_name(target: Path) -> Path:
    """A fresh temporary path next to ``target``, recognisable by :func:`sweep_temp_files`."""
    return target.with_name(f".{target.name}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, sweep: bool = True) -> Iterator[Path]:
    """``with atomic_path("out/a.wav") as tmp: write(tmp)``: whatever is written to ``tmp`` replaces
    ``path`` in one rename when the block ends without error; on error (KeyboardInterrupt included)
    ``tmp`` is removed and ``path`` is untouched. Creates the parent folder; sweeps stale temporary
    files of ours from it once per process (``sweep=False`` skips that)."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: it is an existing folder; give a file path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {str(parent)!r}: {e.strerror or e}") from None
    if not os.access(parent, os.W_OK | os.X_OK):   # read-only folder or file system: before any writer runs
        raise OutputError(f"cannot write {str(path)!r}: the folder {str(parent)!r} is not writable")
    if sweep and str(parent) not in _swept:
        _swept.add(str(parent))
        sweep_temp_files(parent)
    tmp = temp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary file for {str(path)!r}")
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform / file system can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sweep_temp_files(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Remove temporary files of our naming in ``folder`` left by a killed writer: those of this
    machine whose process no longer runs, and those of another machine older than a day. Files of a
    live writer are kept. Returns the paths removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefix = "**/" if recursive else ""
    removed = []
    for p in folder.glob(f"{prefix}.*{TEMP_SUFFIX}"):
        if _is_stale(p):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    for p in [*folder.glob(f"{prefix}.*.tmp[0-9]*"), *folder.glob(f"{prefix}.*.[0-9]*.tmp")]:
        if _is_stale_legacy(p):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def _is_stale_legacy(p: Path) -> bool:
    """Temp files of muq-booster <= 0.1 (``.<name>.tmp<pid>``, ``.<name>.<pid>.tmp``, no host in the
    name): stale when their process is gone and they are over an hour old."""
    import re
    m = re.fullmatch(r"\..+\.(?:tmp(\d+)|(\d+)\.tmp)", p.name)
    if m is None:
        return False
    try:
        old = time.time() - p.stat().st_mtime > 3600
    except OSError:
        return False
    return old and not _pid_alive(int(m.group(1) or m.group(2)))


def _is_stale(p: Path) -> bool:
    tag = p.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]  # <host>-<pid>-<random>
    parts = tag.split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return False  # not ours
    host, pid = parts[0], int(parts[1])
    if host == _HOST:
        return not _pid_alive(pid)
    try:
        return time.time() - p.stat().st_mtime > STALE_SECONDS
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- output folders and names ----------------------------------------------------------------------
class OutputError(BoosterError, OSError):
    """An output folder or file cannot be written."""


def check_output_dir(path: str | os.PathLike, option: str = "-o") -> Path:
    """Create ``path`` if needed and check that files can be created in it; raise :class:`OutputError`
    (one line naming the folder and the option) for an existing file, a read-only folder or a folder
    that cannot be created. Sweeps stale temporary files of ours from it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {str(path)!r} is an existing file, not a folder; choose a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{option} {str(path)!r}: cannot create the output folder ({e.strerror or e})") from None
    probe = temp_name(path / "write-check")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{option} {str(path)!r}: the output folder is not writable ({e.strerror or e})") from None
    _swept.add(str(path))
    sweep_temp_files(path)
    return path


def check_output_file(path: str | os.PathLike, option: str = "-o") -> Path:
    """Check, before any work, that the file ``path`` can be written; raise :class:`OutputError` (one line
    naming the option) for an existing folder, a parent that is a file, or a folder that is not writable
    (or, when it does not exist yet, cannot be created). Creates nothing."""
    path = Path(path).expanduser()
    where = f"{option} {str(path)!r}"
    if path.is_dir():
        raise OutputError(f"{where} is an existing folder; give the path of the file to write")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{where} exists and is not writable")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:   # the folder that a writer would create it in
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{where}: {str(folder)!r} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: the folder {str(folder)!r} is not writable")
    return path


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, option: str = "-o") -> Iterator[Path]:
    """``with output_dir(args.output) as out:`` :func:`check_output_dir`, and on leaving the block remove
    the folders this call created that are still empty (a command that failed before its first output,
    or wrote none, leaves no empty folder behind). Folders that existed before are never removed."""
    path = Path(path).expanduser()
    created = missing_folders(path)
    check_output_dir(path, option)
    try:
        yield path
    finally:
        remove_if_empty(created)


def missing_folders(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, deepest first (what making ``path`` creates)."""
    return [p for p in (path, *path.parents) if not p.exists()]


def remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty; one that holds anything stops it."""
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            break


def unique_output_names(files: Iterable[str | os.PathLike], roots: Iterable[str | os.PathLike] = ()) -> dict[Path, str]:
    """Map each input file to an output name (a relative path without extension) that no other input
    shares, and that says where the input came from.

    The name starts as the file's stem, or its path below the input folder it was found in (``roots``:
    the folders the user passed, walked recursively). Names that clash (case-insensitively, as on macOS
    and Windows file systems) get the file's extension (``song.wav`` / ``song.flac``), then as many
    parent folders as needed (``a/song`` / ``b/song``). The same input given twice (same resolved path)
    is listed once. ``booster features`` writes ``OUT/<name>.safetensors``; ``booster separate``
    writes ``OUT/<name>/<source>.wav``.
    """
    roots = [Path(r).resolve() for r in roots if Path(r).is_dir()]
    paths, seen = [], set()
    for f in files:
        p = Path(f)
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            paths.append(p)
    names = {}
    for p in paths:
        full = p.resolve()
        rel = next((full.relative_to(r) for r in roots if full.is_relative_to(r)), Path(full.name))
        names[p] = [len(rel.parts), False]  # (components kept, extension kept)

    def render(p: Path) -> str:
        depth, ext = names[p]
        parts = p.resolve().parts[-depth:]
        last = parts[-1] if ext else Path(parts[-1]).stem
        return "/".join([*parts[:-1], last]).lstrip("/")

    for step in range(64):
        groups: dict[str, list[Path]] = {}
        for p in paths:
            groups.setdefault(render(p).casefold(), []).append(p)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            break
        for group in clashes:
            for p in group:
                exts = {q.suffix.casefold() for q in group}
                if not names[p][1] and len(exts) > 1:
                    names[p][1] = True
                elif names[p][0] < len(p.resolve().parts) - 1:
                    names[p][0] += 1
                else:
                    names[p][1] = True
    return {p: render(p) for p in paths}


# ---- checkpoint files (booster.filechecks) ---------------------------------------------------------
from .filechecks import check_checkpoint_file, check_safetensors_file, torch_load_error  # noqa: E402,F401


# ---- printing to a pipe -----------------------------------------------------------------------------
@contextlib.contextmanager
def pipe_safe() -> Iterator[None]:
    """``with pipe_safe(): print(...)``: when the reader of stdout goes away (``booster compare --json
    | head``), stop quietly instead of a BrokenPipeError traceback; stdout is pointed at /dev/null so
    the interpreter's final flush does not fail either (the pattern the Python docs recommend)."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def check_finite_option(value: float, option: str, *, minimum: float | None = None,
                        positive: bool = False) -> float:
    """A float option must be finite (``--window nan`` / ``inf`` are refused), optionally > 0 or >= min."""
    import math
    if not math.isfinite(value):
        raise ConfigError(f"{option} must be a finite number, got {value}")
    if positive and value <= 0:
        raise ConfigError(f"{option} must be > 0, got {value:g}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{option} must be >= {minimum:g}, got {value:g}")
    return value
