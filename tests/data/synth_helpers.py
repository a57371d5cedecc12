"""Helpers shared by the data tests (imported by name: pytest puts this folder on sys.path)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from booster.data.render import resolve_renderer

HAS_FLUIDSYNTH = resolve_renderer("auto").name == "fluidsynth"
needs_fluidsynth = pytest.mark.skipif(not HAS_FLUIDSYNTH, reason="fluidsynth program or GM soundfont missing")


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
