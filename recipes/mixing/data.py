"""Datasets of the mixing recipe: (stems, reference mix) segments of :mod:`.layout` multitracks.

Items are ``(stems [N, C, S], mix [C, S])`` at the model's sample rate / channel count.
:class:`RandomSegments` (training) draws a track (probability proportional to its length) and an offset
per item, as a pure function of ``(seed, epoch, index)``; ``fraction`` < 1 trains on a deterministic,
nested subset of the tracks (:func:`booster.data.stems.select_fraction`). :class:`FixedSegments`
(validation) cuts every track into fixed segments. The stems and the reference mix are never remixed
(the reference is one engineer's mix of exactly these stems).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from booster.data.stems import select_fraction
from booster.errors import ConfigError, DatasetError

from .layout import Multitrack, MultitrackReader


class _Readers:
    """Lazily opened :class:`MultitrackReader` per track (file headers read once per process)."""

    def __init__(self, tracks: list[Multitrack], sample_rate: int, channels: int):
        if not tracks:
            raise DatasetError("the mixing dataset got no tracks; check the data set path and split")
        self.tracks, self.sample_rate, self.channels = list(tracks), int(sample_rate), int(channels)
        self._open: dict[int, MultitrackReader] = {}

    def reader(self, t: int) -> MultitrackReader:
        if t not in self._open:
            self._open[t] = self.tracks[t].reader(self.sample_rate, self.channels)
        return self._open[t]

    def __getstate__(self):  # DataLoader workers reopen the files themselves
        return {**self.__dict__, "_open": {}}


class RandomSegments(torch.utils.data.Dataset):
    """``samples_per_epoch`` random ``segment``-second items; call :meth:`set_epoch` each epoch."""

    def __init__(self, tracks: list[Multitrack], segment: float, samples_per_epoch: int, sample_rate: int = 44100,
                 channels: int = 2, fraction: float = 1.0, seed: int = 0):
        if not segment > 0 or samples_per_epoch < 1:
            raise ConfigError(f"segment must be > 0 s and samples_per_epoch >= 1, got {segment}, {samples_per_epoch}")
        tracks = select_fraction(list(tracks), fraction, seed) if tracks else []
        self.readers = _Readers(tracks, sample_rate, channels)
        self.tracks = self.readers.tracks
        self.segment, self.samples_per_epoch, self.seed, self.epoch = float(segment), int(samples_per_epoch), int(seed), 0
        self.length = int(round(self.segment * sample_rate))
        lengths = np.array([t.duration for t in self.tracks], dtype=np.float64)
        self._weights = lengths / lengths.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def draw(self, i: int) -> tuple[int, int]:
        """``(track index, first sample)`` of item ``i`` in the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, int(i), 0x313])
        t = int(rng.choice(len(self.tracks), p=self._weights))
        room = max(0, self.readers.reader(t).length - self.length)
        return t, int(rng.integers(0, room + 1))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        t, first = self.draw(i)
        r = self.readers.reader(t)
        return r.stems(first, self.length), r.mix(first, self.length)


class FixedSegments(torch.utils.data.Dataset):
    """Deterministic segments: every ``stride`` s (default ``segment``) of every track, the last one
    zero-padded; ``segment`` None gives whole tracks (one item each)."""

    def __init__(self, tracks: list[Multitrack], segment: float | None, sample_rate: int = 44100,
                 channels: int = 2, stride: float | None = None, max_seconds: float | None = None):
        if segment is not None and not segment > 0:
            raise ConfigError(f"segment must be positive seconds or None, got {segment}")
        self.readers = _Readers(tracks, sample_rate, channels)
        self.tracks = self.readers.tracks
        self.segment, self.sample_rate = segment, int(sample_rate)
        stride = segment if stride is None else stride
        self._index: list[tuple[int, int, int]] = []  # (track, first, count)
        for t, track in enumerate(self.tracks):
            total = track.duration if max_seconds is None else min(track.duration, max_seconds)
            if segment is None or total <= segment:  # count -1: the whole (possibly capped) track
                cap = -1 if max_seconds is None else int(round(total * sample_rate))
                self._index.append((t, 0, cap if segment is None else int(round(segment * sample_rate))))
                continue
            n = math.ceil((total - segment) / stride - 1e-9) + 1
            self._index.extend((t, int(round(k * stride * sample_rate)), int(round(segment * sample_rate)))
                               for k in range(n))

    def __len__(self) -> int:
        return len(self._index)

    def item(self, i: int) -> tuple[str, float]:
        """``(track name, start seconds)`` of item ``i``."""
        t, first, _ = self._index[i]
        return self.tracks[t].name, first / self.sample_rate

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        t, first, count = self._index[i]
        r = self.readers.reader(t)
        count = r.length if count < 0 else count
        return r.stems(first, count), r.mix(first, count)
