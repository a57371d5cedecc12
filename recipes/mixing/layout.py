"""Multitrack folders for mixing: any number of named stems per track, mapped to a model's fixed slots.

Layout (the synthetic generator writes exactly this; users' multitracks follow it)::

    <root>/<split>/<track>/
        <stem>.wav ...          dry stems, any names, rates, channel counts and lengths (also .flac ...)
        mix/mixture.wav         the reference mix (training / evaluation only; ``mix=`` changes the path)
        mixture.wav             ignored (the generator's plain sum; ``ignore=`` lists such names)

Slot mapping: a model has fixed slots (e.g. ``drums, bass, other, vocals``). A stem file belongs to the
slot of the same name (case-insensitive), or to a slot whose ``aliases`` glob patterns match its name
(``{"drums": ["kick*", "snare*", "overhead*"]}``). Several files in one slot are summed; a slot with no
file is silence; a file that matches no slot is an error that lists the slots (``unknown="ignore"``
skips such files instead). Every file is resampled to the model's rate and converted to its channel
count on read; a track's length is that of its longest file (shorter files are zero-padded).
Subfolders other than the mix's are not read. Shapes: stems ``[N, C, S]``, mix ``[C, S]``.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from booster.audio import AUDIO_EXTENSIONS, FileReader
from booster.data.stems import SKIP_HINT
from booster.errors import AudioError, ConfigError, DatasetError

MAX_LISTED = 20


def pattern_problem(pattern) -> str | None:
    """Why ``pattern`` is not a valid alias (a glob of a stem file's name without its folder: ``kick*``,
    ``snare[12]``, ``oh_?``), or None. Refused: an empty pattern, one with a path separator, an unclosed
    ``[`` (fnmatch would silently take it as a literal character)."""
    if not isinstance(pattern, str) or not pattern.strip():
        return "is empty: give a file name or a glob such as kick*"
    if "/" in pattern or "\\" in pattern:
        return "has a path separator: a pattern matches a file name in the track folder, e.g. kick*"
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            end = pattern.find("]", j)
            if end < 0:
                return ("is not a valid glob: '[' opens a character set that is never closed "
                        "(write [[] for a literal '[')")
            i = end
        i += 1
    return None


@dataclass(frozen=True)
class SlotMap:
    """Maps stem file names to a model's slots. ``aliases``: ``{slot: [glob patterns]}``."""

    slots: tuple[str, ...]
    aliases: dict = field(default_factory=dict, compare=False)
    unknown: str = "error"

    def __post_init__(self):
        slots = tuple(str(s) for s in self.slots)
        object.__setattr__(self, "slots", slots)
        if not slots or len({s.lower() for s in slots}) != len(slots):
            raise ConfigError(f"mixing slots must be distinct, non-empty names, got {list(slots)}")
        bad = sorted(set(self.aliases) - set(slots))
        if bad:
            raise ConfigError(f"aliases name unknown slots {bad}; slots: {list(slots)}")
        for slot, pats in self.aliases.items():
            for p in [pats] if isinstance(pats, str) else pats:
                why = pattern_problem(p)
                if why:
                    raise ConfigError(f"alias pattern {p!r} of slot {slot!r} {why}")
        if self.unknown not in ("error", "ignore"):
            raise ConfigError(f"unknown must be 'error' or 'ignore', got {self.unknown!r}")

    def slot_of(self, name: str) -> str | None:
        low = name.lower()
        for s in self.slots:
            if low == s.lower():
                return s
        for s in self.slots:
            if any(fnmatch.fnmatch(low, str(p).lower()) for p in self.aliases.get(s, ())):
                return s
        return None

    def expected(self) -> str:
        parts = []
        for s in self.slots:
            pats = self.aliases.get(s)
            parts.append(f"{s}" + (f" (or {', '.join(pats)})" if pats else ""))
        return ", ".join(parts)


@dataclass(frozen=True)
class Multitrack:
    """One track: ``files[j]`` are the stem files of slot ``j`` (possibly none); ``mix_path`` the reference."""

    name: str
    path: Path
    slots: tuple[str, ...]
    files: tuple[tuple[Path, ...], ...]
    mix_path: Path | None
    native_seconds: float  # duration of the longest file

    @property
    def duration(self) -> float:
        return self.native_seconds

    @property
    def present(self) -> list[str]:
        return [s for s, f in zip(self.slots, self.files) if f]

    def reader(self, sample_rate: int, channels: int) -> "MultitrackReader":
        return MultitrackReader(self, sample_rate, channels)


class MultitrackReader:
    """Random access to a :class:`Multitrack` at ``sample_rate`` / ``channels`` (nothing loaded whole).

    ``length``: samples at ``sample_rate`` of the longest file. ``stems(first, count)`` → ``[N, C, count]``
    (silent slots zero), ``mix(first, count)`` → ``[C, count]``; zero-padded past the end.
    """

    def __init__(self, track: Multitrack, sample_rate: int, channels: int):
        self.track, self.sample_rate, self.channels = track, int(sample_rate), int(channels)
        self._stems = [[FileReader(p, sample_rate, channels) for p in files] for files in track.files]
        self._mix = FileReader(track.mix_path, sample_rate, channels) if track.mix_path else None
        lengths = [r.length for rs in self._stems for r in rs] + ([self._mix.length] if self._mix else [])
        self.length = max(lengths)

    def stems(self, first: int = 0, count: int | None = None) -> torch.Tensor:
        count = self.length - first if count is None else count
        out = torch.zeros(len(self._stems), self.channels, max(count, 0))
        for j, readers in enumerate(self._stems):
            for r in readers:
                out[j] += r(first, count)
        return out

    def mix(self, first: int = 0, count: int | None = None) -> torch.Tensor:
        if self._mix is None:
            raise DatasetError(f"track {self.track.name!r} has no reference mix")
        count = self.length - first if count is None else count
        return self._mix(first, count)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not p.name.startswith("."))


def scan_track(folder: str | os.PathLike, slot_map: SlotMap, *, mix: str | None = "mix/mixture.wav",
               ignore: tuple[str, ...] | list[str] = ("mixture",), require_mix: bool = True) -> Multitrack:
    """Read one track folder's file list and headers; problems raise :class:`DatasetError` (all listed)."""
    from booster.audio import info

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"stems folder {str(folder)!r} does not exist or is not a folder")
    mix_path = folder / mix if mix else None
    problems, files, seconds = [], {s: [] for s in slot_map.slots}, []
    skip = {str(i).lower() for i in ignore}
    for p in _audio_files(folder):
        if mix_path is not None and p.resolve() == mix_path.resolve() or p.stem.lower() in skip:
            continue
        slot = slot_map.slot_of(p.stem)
        if slot is None:
            if slot_map.unknown == "error":
                problems.append(f"unknown stem name {p.stem!r} ({p.name}); expected one of: {slot_map.expected()}")
            continue
        try:
            i = info(p)
        except AudioError as e:
            problems.append(str(e))
            continue
        if i.frames == 0:
            problems.append(f"empty file {p.name} (0 samples)")
            continue
        files[slot].append(p)
        seconds.append(i.duration)
    if not any(files.values()) and not problems:
        problems.append(f"no stem files found (expected audio files named {slot_map.expected()})")
    if mix_path is not None:
        if mix_path.is_file():
            try:
                seconds.append(info(mix_path).duration)
            except AudioError as e:
                problems.append(str(e))
        elif require_mix:
            problems.append(f"missing reference mix {mix}")
            mix_path = None
        else:
            mix_path = None
    if problems:
        raise DatasetError(f"track {folder.name!r}: " + "; ".join(problems))
    return Multitrack(folder.name, folder, slot_map.slots, tuple(tuple(files[s]) for s in slot_map.slots),
                      mix_path, max(seconds))


def list_multitracks(root: str | os.PathLike, split: str | None, slot_map: SlotMap, *,
                     mix: str = "mix/mixture.wav", ignore: tuple[str, ...] | list[str] = ("mixture",),
                     skip_invalid: bool = False) -> list[Multitrack]:
    """Every track folder of ``<root>/<split>`` (sorted), validated together: all problems in one error."""
    import warnings

    folder = Path(root) / split if split else Path(root)
    if not folder.is_dir():
        raise DatasetError(f"data set folder {str(folder)!r} does not exist")
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not dirs:
        raise DatasetError(f"no track folders in {str(folder)!r}: expected <track>/<stem>.wav + <track>/{mix}")
    tracks, bad = [], []
    for d in dirs:
        try:
            tracks.append(scan_track(d, slot_map, mix=mix, ignore=ignore))
        except DatasetError as e:
            bad.append(str(e))
    if bad:
        msg = f"{len(bad)} of {len(dirs)} track(s) in {str(folder)!r} are invalid:\n  " + "\n  ".join(bad[:MAX_LISTED])
        if not skip_invalid or not tracks:
            raise DatasetError(msg + "\nFix these folders (or move them out of the split)"
                               + ("" if skip_invalid else SKIP_HINT) + ".")
        warnings.warn(msg + "\nThese tracks are skipped.", stacklevel=2)
    return tracks
