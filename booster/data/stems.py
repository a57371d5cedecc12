"""Readers for stems folders (MUSDB18-HQ layout, any source names).

A track is a folder holding one audio file per source (``drums.wav``, ``bass.wav``...) and optionally
``mixture.wav``; a data set root holds track folders directly or in split folders
(``<root>/train/<track>/``). :func:`list_tracks` validates every track up front and reports all
problems at once. :class:`SegmentDataset` gives fixed, deterministic segments (validation);
:class:`RemixDataset` gives random segments with demucs-style remixing (training).

Shapes: mixture ``[C, S]``, sources ``[N, C, S]`` float32 tensors (C channels, S samples, N sources).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import AUDIO_EXTENSIONS, convert_channels, resample, wav_declared_frames
from ..errors import ConfigError, DatasetError

MUSDB_SOURCES = ("drums", "bass", "other", "vocals")
SKIP_HINT = ", or skip them with --data.skip_invalid true (skip_invalid=True in Python)"  # the recipes' option
MAX_LISTED = 20  # problems listed in one error message


@dataclass(frozen=True)
class Track:
    """One validated track folder. ``source_paths[j]`` is the file of ``sources[j]``."""

    name: str
    path: Path
    sources: tuple[str, ...]
    sample_rate: int
    frames: int
    channels: int
    source_paths: tuple[Path, ...] = ()
    mixture_path: Path | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def read(self, first: int = 0, count: int | None = None, *, sources: list[int] | None = None,
             mixture: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Native-rate frames ``[first, first + count)`` (zero-padded past the end).

        Returns ``(mixture [C, S] or None, sources [len(sources), C, S])``; ``sources`` indexes
        ``self.sources`` (all by default); the mixture is mixture.wav, else the sum of all stems.
        """
        count = self.frames - first if count is None else count
        idx = list(range(len(self.sources))) if sources is None else list(sources)
        srcs = torch.stack([_read(self, self.source_paths[j], first, count) for j in idx]) if idx else \
            torch.zeros(0, self.channels, count)
        mix = None
        if mixture:
            if self.mixture_path is not None:
                mix = _read(self, self.mixture_path, first, count)
            elif sources is None:
                mix = srcs.sum(0)
            else:
                mix = torch.stack([_read(self, p, first, count) for p in self.source_paths]).sum(0)
        return mix, srcs

    def load(self, start: float = 0.0, duration: float | None = None, *, sample_rate: int | None = None,
             channels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mixture [C, S], sources [N, C, S])`` from ``start`` seconds for ``duration`` seconds
        (None: to the end), resampled to ``sample_rate`` and converted to ``channels`` if given.
        With ``duration`` set, ``S == round(duration * rate)`` exactly (zero-padded past the end)."""
        mix, srcs = segment(self, start, duration, sample_rate=sample_rate or self.sample_rate,
                            channels=channels or self.channels)
        return mix, srcs


def _read(track: Track, path: Path, first: int, count: int) -> torch.Tensor:
    import soundfile as sf

    if count <= 0:
        return torch.zeros(track.channels, 0)
    try:
        data, _ = sf.read(str(path), start=max(0, first), frames=count, dtype="float32", always_2d=True)
    except Exception as e:
        raise DatasetError(f"track {track.name!r}: cannot read {path.name} ({e}); re-export the file") from None
    if not np.isfinite(data).all():
        raise DatasetError(f"track {track.name!r}: {path.name} contains NaN/Inf samples; re-export the file")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if wav.shape[-1] < count:
        wav = torch.nn.functional.pad(wav, (0, count - wav.shape[-1]))
    return wav


def segment(track: Track, start: float, duration: float | None, *, sample_rate: int, channels: int,
            sources: list[int] | None = None, mixture: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Read a segment and bring it to ``sample_rate`` / ``channels``; see :meth:`Track.load`."""
    sr = track.sample_rate
    first = int(round(start * sr))
    if duration is None:
        count = max(0, track.frames - first)
        out_len = int(round(count * sample_rate / sr))
    else:
        out_len = int(round(duration * sample_rate))
        count = int(math.ceil(duration * sr)) + (16 if sr != sample_rate else 0)
    mix, srcs = track.read(first, count, sources=sources, mixture=mixture)
    if sr != sample_rate:
        mix = None if mix is None else resample(mix, sr, sample_rate)
        srcs = resample(srcs, sr, sample_rate)
    mix = None if mix is None else _fit(convert_channels(mix, channels), out_len)
    return mix, _fit(convert_channels(srcs, channels), out_len)


def _fit(x: torch.Tensor, n: int) -> torch.Tensor:
    if x.shape[-1] >= n:
        return x[..., :n].contiguous()
    return torch.nn.functional.pad(x, (0, n - x.shape[-1]))


def _find(folder: Path, stem: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def inspect_track(folder: Path, sources: tuple[str, ...], mixture: str = "mixture") -> tuple[Track | None, list[str]]:
    """Validate one track folder; returns ``(track, [])`` or ``(None, problems)``."""
    import soundfile as sf

    problems, infos, paths = [], {}, {}
    for name in (*sources, mixture):
        p = _find(folder, name)
        if p is None:
            if name != mixture:
                problems.append(f"missing stem {name!r} (expected {name}.wav)")
            continue
        try:
            i = sf.info(str(p))
        except Exception as e:
            problems.append(f"unreadable file {p.name} ({str(e).strip()[:120]})")
            continue
        if i.frames == 0:
            problems.append(f"empty file {p.name} (0 samples)")
            continue
        declared = wav_declared_frames(str(p))
        if declared is not None and declared > i.frames:
            problems.append(f"truncated file {p.name} (header declares {declared} samples, {i.frames} present)")
            continue
        infos[name], paths[name] = (int(i.samplerate), int(i.frames), int(i.channels)), p
    if infos:
        for k, label in ((0, "sample-rate mismatch"), (1, "length mismatch"), (2, "channel-count mismatch")):
            values = {name: v[k] for name, v in infos.items()}
            if len(set(values.values())) > 1:
                unit = (" Hz", " samples", " channels")[k]
                listed = ", ".join(f"{n}={v}{unit}" for n, v in values.items())
                problems.append(f"{label} between files: {listed}")
    if problems:
        return None, problems
    sr, frames, ch = infos[sources[0]]
    return Track(name=folder.name, path=folder, sources=tuple(sources), sample_rate=sr, frames=frames,
                 channels=ch, source_paths=tuple(paths[s] for s in sources),
                 mixture_path=paths.get(mixture)), []


def list_tracks(root: str | os.PathLike, split: str | None = None,
                sources: tuple[str, ...] | list[str] = MUSDB_SOURCES, *, mixture: str = "mixture",
                skip_invalid: bool = False) -> list[Track]:
    """Validated tracks of ``<root>/<split>/`` (or ``root`` itself when ``split`` is None), sorted by name.

    Every sub-folder (except hidden ones) is a track. Problems (missing stem, unreadable or empty file,
    sample-rate / length / channel mismatch between a track's files) are collected for all tracks and
    raised together as :class:`DatasetError`; with ``skip_invalid=True`` the bad tracks are skipped
    with a warning that lists them instead.
    """
    sources = tuple(sources)
    if not sources:
        raise ConfigError("list_tracks needs at least one source name")
    if len(set(sources)) != len(sources) or mixture in sources:
        raise ConfigError(f"source names must be distinct and differ from {mixture!r}, got {sources}")
    root = Path(root)
    folder = root / split if split else root
    if not folder.is_dir():
        hint = ""
        if split and root.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            hint = f"; splits found in {str(root)!r}: {', '.join(found) or 'none'}"
        raise DatasetError(f"data set folder {str(folder)!r} does not exist{hint}")
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not dirs:
        raise DatasetError(f"no track folders in {str(folder)!r}: expected <track>/{{{','.join(sources)}}}.wav"
                           + (" (pass split='train' or similar?)" if split is None else ""))
    tracks, bad = [], []
    for d in dirs:
        track, problems = inspect_track(d, sources, mixture)
        if track is None:
            bad.append(f"{d.name}: " + "; ".join(problems))
        else:
            tracks.append(track)
    if bad:
        listed = "\n  ".join(bad[:MAX_LISTED]) + (f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")
        msg = f"{len(bad)} of {len(dirs)} track(s) in {str(folder)!r} are invalid:\n  {listed}"
        if not skip_invalid or not tracks:
            raise DatasetError(msg + "\nFix these folders (or move them out of the split)"
                               + ("" if skip_invalid else SKIP_HINT) + ".")
        warnings.warn(msg + "\nThese tracks are skipped.", stacklevel=2)
    return tracks


def _check_tracks(tracks: list[Track], who: str) -> list[Track]:
    tracks = list(tracks)
    if not tracks:
        raise DatasetError(f"{who} got no tracks; check the data set path and split")
    names = {t.sources for t in tracks}
    if len(names) > 1:
        raise DatasetError(f"{who}: tracks have different source lists {sorted(names)}")
    return tracks


class SegmentDataset(torch.utils.data.Dataset):
    """Fixed, deterministic segments of ``tracks`` (validation / evaluation).

    ``segment`` seconds per item (None: whole tracks, one item each, lengths differ), starting every
    ``stride`` seconds (default: ``segment``); the last segment of a track is zero-padded.
    ``__getitem__(i) -> (mixture [C, S], sources [N, C, S])`` at ``sample_rate`` with ``channels``.
    """

    def __init__(self, tracks: list[Track], segment: float | None, sample_rate: int = 44100,
                 channels: int = 2, stride: float | None = None):
        self.tracks = _check_tracks(tracks, "SegmentDataset")
        if segment is not None and not segment > 0:
            raise ConfigError(f"segment must be positive seconds or None, got {segment}")
        stride = segment if stride is None else stride
        if segment is not None and not stride > 0:
            raise ConfigError(f"stride must be positive seconds, got {stride}")
        self.segment, self.stride, self.sample_rate, self.channels = segment, stride, sample_rate, channels
        self._index: list[tuple[int, float]] = []
        for t_idx, t in enumerate(self.tracks):
            if segment is None or t.duration <= segment:
                self._index.append((t_idx, 0.0))
                continue
            n = math.ceil((t.duration - segment) / stride - 1e-9) + 1
            self._index.extend((t_idx, k * stride) for k in range(n))

    @property
    def items(self) -> list[tuple[str, float]]:
        """``(track name, start seconds)`` of every item."""
        return [(self.tracks[t].name, s) for t, s in self._index]

    def item(self, i: int) -> tuple[str, float]:
        t, s = self._index[i]
        return self.tracks[t].name, s

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        t, start = self._index[i]
        mix, srcs = segment(self.tracks[t], start, self.segment, sample_rate=self.sample_rate,
                            channels=self.channels)
        return mix, srcs


def select_fraction(tracks: list[Track], fraction: float, seed: int) -> list[Track]:
    """A deterministic subset of ``round(fraction * len(tracks))`` tracks (at least one), in name order.

    Subsets are nested: for one seed, a smaller fraction selects a subset of a larger one.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    ordered = sorted(tracks, key=lambda t: t.name)
    k = max(1, int(round(fraction * len(ordered))))
    order = np.random.default_rng([int(seed), 0x5EB]).permutation(len(ordered))
    chosen = sorted(order[:k].tolist())
    return [ordered[j] for j in chosen]


class RemixDataset(torch.utils.data.Dataset):
    """Random training segments with demucs-style augmentation.

    Item ``i`` is a pure function of ``(seed, epoch, i)`` (call :meth:`set_epoch` before each epoch; the
    default DataLoader re-copies the dataset into its workers every epoch). With ``remix`` each source
    comes from an independently drawn track (tracks drawn with probability proportional to their length)
    and offset; otherwise all sources share one track and offset. Each source is scaled by a gain drawn
    uniformly from ``gain``, has its channels swapped (``channel_swap``, p=0.5, stereo only) and its sign
    flipped (``sign_flip``, p=0.5). ``fraction`` < 1 trains on a deterministic subset of the tracks (see
    :func:`select_fraction`, seeded by ``subset_seed``, default ``seed``).

    ``__getitem__(i) -> (mixture [C, S], sources [N, C, S])`` with ``mixture == sources.sum(0)``.
    """

    def __init__(self, tracks: list[Track], segment: float, samples_per_epoch: int, sample_rate: int = 44100,
                 channels: int = 2, remix: bool = True, gain: tuple[float, float] | None = (0.25, 1.25),
                 channel_swap: bool = True, sign_flip: bool = True, fraction: float = 1.0, seed: int = 0,
                 subset_seed: int | None = None):
        tracks = _check_tracks(tracks, "RemixDataset")
        if not segment > 0:
            raise ConfigError(f"segment must be positive seconds, got {segment}")
        if samples_per_epoch < 1:
            raise ConfigError(f"samples_per_epoch must be positive, got {samples_per_epoch}")
        if gain is not None and not (len(gain) == 2 and 0 <= gain[0] <= gain[1]):
            raise ConfigError(f"gain must be (low, high) with 0 <= low <= high, got {gain}")
        self.tracks = select_fraction(tracks, fraction, seed if subset_seed is None else subset_seed)
        self.sources = self.tracks[0].sources
        self.segment, self.samples_per_epoch = float(segment), int(samples_per_epoch)
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.remix, self.gain, self.channel_swap, self.sign_flip = remix, gain, channel_swap, sign_flip
        self.fraction, self.seed, self.epoch = fraction, int(seed), 0
        lengths = np.array([t.duration for t in self.tracks], dtype=np.float64)
        self._weights = lengths / lengths.sum()
        self.last_draw: dict | None = None  # the random choices of the latest item (for inspection)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def draw(self, i: int) -> dict:
        """The random choices of item ``i`` in the current epoch (tracks, starts, gains, swaps, flips)."""
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        n = len(self.sources)
        n_tracks = n if self.remix else 1
        picks = rng.choice(len(self.tracks), size=n_tracks, p=self._weights).tolist()
        starts = [float(rng.uniform(0, max(0.0, self.tracks[t].duration - self.segment))) for t in picks]
        if not self.remix:
            picks, starts = picks * n, starts * n
        gains = rng.uniform(*self.gain, size=n).tolist() if self.gain is not None else [1.0] * n
        swaps = (rng.random(n) < 0.5).tolist() if self.channel_swap and self.channels == 2 else [False] * n
        flips = (rng.random(n) < 0.5).tolist() if self.sign_flip else [False] * n
        return {"tracks": [self.tracks[t].name for t in picks], "track_index": picks, "starts": starts,
                "gains": gains, "swaps": swaps, "flips": flips}

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        d = self.draw(i)
        n = len(self.sources)
        if self.remix:
            srcs = torch.stack([segment(self.tracks[d["track_index"][j]], d["starts"][j], self.segment,
                                        sample_rate=self.sample_rate, channels=self.channels,
                                        sources=[j], mixture=False)[1][0] for j in range(n)])
        else:
            srcs = segment(self.tracks[d["track_index"][0]], d["starts"][0], self.segment,
                           sample_rate=self.sample_rate, channels=self.channels, mixture=False)[1]
        scale = torch.tensor([g * (-1.0 if f else 1.0) for g, f in zip(d["gains"], d["flips"])],
                             dtype=srcs.dtype)
        srcs = srcs * scale[:, None, None]
        swap = torch.tensor(d["swaps"])
        if swap.any():
            srcs[swap] = srcs[swap].flip(1)
        self.last_draw = d
        return srcs.sum(0), srcs
