"""Known MuQ checkpoints (``checkpoints/registry.json`` → ``booster.checkpoints``)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import CheckpointError


@dataclass(frozen=True)
class CheckpointEntry:
    id: str
    files: tuple[str, ...]
    sha256: dict
    architecture: dict
    licence: str
    description: str = ""
    local: str | None = None  # folder shipped inside booster.checkpoints (resolved offline)

    def check_architecture(self, config, where: str) -> None:
        actual = config.architecture()
        diff = {k: (v, actual.get(k)) for k, v in self.architecture.items() if actual.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: expected {a!r}, found {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(f"{where} does not describe {self.id}: {detail}")


def _load() -> dict[str, CheckpointEntry]:
    text = resources.files("booster.checkpoints").joinpath("registry.json").read_text(encoding="utf-8")
    out = {}
    for d in json.loads(text)["checkpoints"]:
        out[d["id"]] = CheckpointEntry(d["id"], tuple(d["files"]), d.get("sha256") or {},
                                       d["architecture"], d["licence"], d.get("description", ""),
                                       d.get("local"))
    return out


def entries() -> dict[str, CheckpointEntry]:
    return _load()


def lookup(src: str) -> CheckpointEntry | None:
    return _load().get(src)


def shipped_directory(entry: CheckpointEntry) -> Path | None:
    """The packaged folder of a checkpoint shipped with the toolkit (e.g. ``muq-mini``), else None."""
    if not entry.local:
        return None
    path = Path(str(resources.files("booster.checkpoints").joinpath(entry.local)))
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{entry.id} is registered as shipped in {str(path)!r}, but that folder has no "
                              "config.json: the installation is incomplete (reinstall muq-booster)")
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_files(entry: CheckpointEntry, directory: Path) -> None:
    """Compare every file with a recorded sha256; files without one are not checked."""
    for name, expected in entry.sha256.items():
        path = directory / name
        if not path.is_file():
            continue
        actual = sha256_file(path)
        if actual != expected:
            raise CheckpointError(f"{str(path)!r} has sha256 {actual}, but {entry.id} is registered with "
                                  f"{expected}: the file is corrupt, truncated or a different checkpoint")
