"""Datasets of the mixing recipe: (stems, reference mix) segments of :mod:`.layout` multitracks.

Items are ``(stems [N, C, S], mix [C, S])`` at the model's sample rate / channel count.
:class:`RandomSegments` (training) draws a track (probability proportional to its length) and an offset
per item, as a pure function of ``(seed, epoch, index)``; ``fraction`` < 1 trains on a deterministic,
nested subset of the tracks (:func:`booster.training.data.nested_subset`). :class:`FixedSegments`
(validation) cuts every track into fixed segments. The stems and the reference mix are never remixed
(the reference is one engineer's mix of exactly these stems). :class:`MixingDataModule` puts them
together for ``booster fit|validate|test --config mixing/<name>``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from pathlib import Path

from booster.errors import ConfigError, DatasetError
from booster.training.data import BoosterDataModule, IndexDataset, nested_subset

from .layout import Multitrack, MultitrackReader, SlotMap, list_multitracks


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
        tracks = nested_subset(list(tracks), fraction, seed) if tracks else []
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


class MixingDataModule(BoosterDataModule):
    """Stems + reference mix folders (:mod:`.layout`) for the mixing recipe.

    Args:
        root: data set folder holding ``train`` / ``valid`` / ``test`` split folders of track folders.
        stems: the model's slots, in input order. aliases: ``{slot: [glob patterns]}`` for other file names.
        unknown: "error" (default) or "ignore" for stem files that match no slot. mix: the reference mix's
            path inside a track folder. ignore: file names (without extension) that are not stems.
        sample_rate / channels: what the model sees (files are resampled / converted on read).
        segment: training segment (s). valid_segment: validation segment (s; default 2 x segment).
        samples_per_epoch: random training items per epoch. fraction: train on this nested subset of the
            training tracks. valid_holdout: tracks taken from ``train`` when there is no ``valid`` folder.
        test_seconds: evaluate the first ``test_seconds`` of each test track (None: whole tracks).
        generate: if set and ``root`` has no training folder, write a synthetic set first with
            ``booster.data.synth.generate_dataset`` (keys ``splits`` {split: tracks}, ``seconds``, ``seed``,
            ``renderer``); the generator writes exactly this layout.
        skip_invalid: skip invalid track folders with a warning that lists them instead of stopping.
    """

    def __init__(self, root: str, stems: list[str] = ["drums", "bass", "other", "vocals"],
                 aliases: dict | None = None, unknown: str = "error", mix: str = "mix/mixture.wav",
                 ignore: list[str] = ["mixture"], sample_rate: int = 44100, channels: int = 2, segment: float = 2.0,
                 valid_segment: float | None = None, samples_per_epoch: int = 1000, batch_size: int = 4,
                 num_workers: int = 0, seed: int = 0, fraction: float = 1.0, train_split: str = "train",
                 valid_split: str = "valid", test_split: str = "test", valid_holdout: int = 1,
                 test_seconds: float | None = None, generate: dict | None = None, skip_invalid: bool = False):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, fraction=fraction)
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.slot_map = SlotMap(tuple(stems), dict(aliases or {}), unknown)
        self.train_tracks: list[Multitrack] = []
        self.valid_tracks: list[Multitrack] = []
        self.test_tracks: list[Multitrack] = []
        self._train = self._valid = None

    def generate(self) -> None:
        g = self.hparams.generate
        if g:
            from booster.data.synth import generate_from_spec
            generate_from_spec(self.root, g, present=(self.root / self.hparams.train_split).is_dir())

    def _list(self, split: str) -> list[Multitrack]:
        h = self.hparams
        return list_multitracks(self.root, split, self.slot_map, mix=h.mix, ignore=tuple(h.ignore),
                                skip_invalid=h.skip_invalid)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if stage in (None, "fit", "validate"):
            train = self._list(h.train_split)
            if (self.root / h.valid_split).is_dir():
                self.train_tracks, self.valid_tracks = train, self._list(h.valid_split)
            else:
                k = int(h.valid_holdout)
                if not 0 < k < len(train):
                    raise ConfigError(f"{str(self.root / h.valid_split)!r} does not exist and valid_holdout={k} "
                                      f"cannot be taken from {len(train)} training track(s); add a "
                                      f"'{h.valid_split}' folder or set data.valid_holdout")
                self.train_tracks, self.valid_tracks = train[:-k], train[-k:]
            self._train = RandomSegments(self.train_tracks, h.segment, h.samples_per_epoch, h.sample_rate,
                                         h.channels, fraction=h.fraction, seed=h.seed)
            vseg = h.valid_segment if h.valid_segment is not None else 2 * h.segment
            self._valid = FixedSegments(self.valid_tracks, vseg, h.sample_rate, h.channels)
        if stage in (None, "test"):
            self.test_tracks = self._list(h.test_split)

    def train_dataloader(self):
        if self.trainer is not None:
            self._train.set_epoch(self.trainer.current_epoch)
        return self.loader(self._train, drop_last=True)

    def val_dataloader(self):
        return self.loader(self._valid)

    def test_dataloader(self):
        return self.loader(IndexDataset(len(self.test_tracks)), batch_size=None)

    def load_test_track(self, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        """``(name, stems [N, C, S], mix [C, S])`` of test track ``index`` (first ``test_seconds``)."""
        h = self.hparams
        t = self.test_tracks[index]
        r = t.reader(h.sample_rate, h.channels)
        n = r.length if h.test_seconds is None else min(r.length, int(round(h.test_seconds * h.sample_rate)))
        return t.name, r.stems(0, n), r.mix(0, n)
