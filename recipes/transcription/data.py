"""LightningDataModule of the transcription recipe over audio/MIDI pairs.

Layouts (``layout``): ``"pairs"`` — ``x.wav`` next to ``x.mid`` in ``<root>/<split>/`` folders, or the
MAESTRO layout (``maestro-v*.csv`` in ``root`` names the split of each file; splits ``train``,
``validation``, ``test``); ``"stems"`` — a stems data set whose tracks hold ``midi/<stem>.mid`` (the
synthetic generator's layout; one pair per track and stem, or the mixture with all ``stems``' notes).
Readers: :mod:`booster.data.pairs`.

Training: random segments (:class:`RandomSegments`; item ``i`` of an epoch is a pure function of
``(seed, epoch, i)``), on a deterministic nested ``fraction`` of the training files. Validation and test:
whole files (one per step, loaded by the module through :meth:`TranscriptionDataModule.load_item`),
optionally cut to ``valid_seconds`` / ``test_seconds``.
Batches: ``{"audio": [B, 1, S], "onset"|"offset"|"frame"|"velocity": [B, T, P]}``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from booster.data.pairs import Pair, frame_targets, list_pairs, list_stem_pairs
from booster.errors import ConfigError
from booster.training.data import BoosterDataModule, IndexDataset, nested_subset

LAYOUTS = ("pairs", "stems")


class RandomSegments(torch.utils.data.Dataset):
    """``samples_per_epoch`` random segments of ``pairs`` (files drawn in proportion to their duration,
    start uniform in ``[0, duration - segment]``) with their target rolls ``[T, P]``,
    ``T = round(segment * sample_rate / hop_length)``."""

    def __init__(self, pairs: list[Pair], *, segment: float, samples_per_epoch: int, sample_rate: int,
                 hop_length: int, pitch_range: tuple[int, int], seed: int = 0):
        if not pairs:
            raise ConfigError("no training pairs")
        if not segment > 0 or samples_per_epoch < 1:
            raise ConfigError(f"segment must be positive and samples_per_epoch >= 1, got {segment}, {samples_per_epoch}")
        self.pairs, self.segment, self.samples_per_epoch = list(pairs), float(segment), int(samples_per_epoch)
        self.sample_rate, self.hop_length, self.pitch_range = int(sample_rate), int(hop_length), tuple(pitch_range)
        self.seed, self.epoch = int(seed), 0
        lengths = np.array([p.duration for p in self.pairs], dtype=np.float64)
        self._weights = lengths / lengths.sum()
        self._notes: dict[int, list] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def draw(self, i: int) -> tuple[int, float]:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        k = int(rng.choice(len(self.pairs), p=self._weights))
        return k, float(rng.uniform(0, max(0.0, self.pairs[k].duration - self.segment)))

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k, start = self.draw(i)
        pair = self.pairs[k]
        if k not in self._notes:
            self._notes[k] = pair.notes()
        out = {"audio": pair.load(start, self.segment, sample_rate=self.sample_rate, channels=1)}
        n_frames = int(round(self.segment * self.sample_rate / self.hop_length))
        out.update(frame_targets(self._notes[k], frame_rate=self.sample_rate / self.hop_length, start=start,
                                 n_frames=n_frames, pitch_range=self.pitch_range))
        return out


class TranscriptionDataModule(BoosterDataModule):
    """Audio/MIDI pairs for the transcription recipe.

    Args:
        root: data set folder. layout: "pairs" (folders or MAESTRO CSV) or "stems" (synthetic layout).
        stems / stem_audio: for layout "stems": the stems whose MIDI is transcribed, and whether each stem's
            audio ("stem") or the mixture of them ("mixture") is the input.
        sample_rate / hop_length / pitch_range: the transcriber's input rate, frame hop and pitches (linked
            into the model). segment: training segment in seconds. samples_per_epoch: segments per epoch.
        fraction: train on this deterministic nested fraction of the training files.
        train_split / valid_split / test_split: split names (MAESTRO: train / validation / test).
        valid_holdout: training files held out for validation when the validation split does not exist.
        valid_seconds / test_seconds: evaluate only the first seconds of each file (None: whole files).
        skip_invalid: skip broken pairs with a warning instead of stopping.
        generate: if set and ``root`` has no training split, write a synthetic set there first with
            ``booster.data.synth.generate_dataset`` (keys ``splits``, ``seconds``, ``seed``, ``renderer``).
    """

    def __init__(self, root: str, layout: str = "pairs", stems: list[str] = ("bass", "other"),
                 stem_audio: str = "stem", sample_rate: int = 16000, hop_length: int = 512,
                 pitch_range: tuple[int, int] = (21, 108), segment: float = 5.0, samples_per_epoch: int = 1000,
                 batch_size: int = 8, num_workers: int = 0, fraction: float = 1.0, seed: int = 0,
                 train_split: str = "train", valid_split: str = "validation", test_split: str = "test",
                 valid_holdout: int = 1, valid_seconds: float | None = None, test_seconds: float | None = None,
                 skip_invalid: bool = False, generate: dict | None = None):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, fraction=fraction)
        self.save_hyperparameters()
        if layout not in LAYOUTS:
            raise ConfigError(f"data.layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.root = Path(root).expanduser()
        self.train_pairs: list[Pair] = []
        self.valid_pairs: list[Pair] = []
        self.test_pairs: list[Pair] = []
        self._train = None

    # ---- data preparation ---------------------------------------------------------------------
    def generate(self) -> None:
        g = self.hparams.generate
        if g:
            from booster.data.synth import generate_from_spec
            generate_from_spec(self.root, g, present=self._has_split(self.hparams.train_split),
                               sample_rate=int(self.hparams.sample_rate), mix=False)

    def _has_split(self, split: str) -> bool:
        return (self.root / split).is_dir() or (self.hparams.layout == "pairs" and any(self.root.glob("maestro-v*.csv")))

    def list_split(self, split: str) -> list[Pair]:
        h = self.hparams
        if h.layout == "stems":
            return list_stem_pairs(self.root, split, tuple(h.stems), audio=h.stem_audio, skip_invalid=h.skip_invalid)
        return list_pairs(self.root, split, skip_invalid=h.skip_invalid)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if stage in (None, "fit", "validate"):
            train = self.list_split(h.train_split)
            if (self.root / h.valid_split).is_dir() or (h.layout == "pairs" and any(self.root.glob("maestro-v*.csv"))):
                self.train_pairs, self.valid_pairs = train, self.list_split(h.valid_split)
            else:
                k = int(h.valid_holdout)
                if not 0 < k < len(train):
                    raise ConfigError(f"{str(self.root / h.valid_split)!r} does not exist and valid_holdout={k} "
                                      f"cannot be taken from {len(train)} training file(s); add a "
                                      f"'{h.valid_split}' split or set data.valid_holdout")
                self.train_pairs, self.valid_pairs = train[:-k], train[-k:]
            self._train = RandomSegments(nested_subset(self.train_pairs, h.fraction, h.seed), segment=h.segment,
                                         samples_per_epoch=h.samples_per_epoch, sample_rate=h.sample_rate,
                                         hop_length=h.hop_length, pitch_range=tuple(h.pitch_range), seed=h.seed)
        if stage in (None, "test"):
            self.test_pairs = self.list_split(h.test_split)

    # ---- loaders ------------------------------------------------------------------------------
    def train_dataloader(self):
        if self.trainer is not None:
            self._train.set_epoch(self.trainer.current_epoch)
        return self.loader(self._train, shuffle=False, drop_last=True)

    def val_dataloader(self):
        return self.loader(IndexDataset(len(self.valid_pairs)), batch_size=None)

    def test_dataloader(self):
        return self.loader(IndexDataset(len(self.test_pairs)), batch_size=None)

    def load_item(self, split: str, index: int) -> tuple[str, torch.Tensor, list, float]:
        """``(name, audio [1, S] at sample_rate, reference notes, duration s)`` of a validation (``"valid"``)
        or test (``"test"``) file, cut to ``valid_seconds`` / ``test_seconds``; notes are clipped to it."""
        h = self.hparams
        pair = (self.valid_pairs if split == "valid" else self.test_pairs)[int(index)]
        limit = h.valid_seconds if split == "valid" else h.test_seconds
        duration = pair.duration if limit is None else min(float(limit), pair.duration)
        audio = pair.load(0.0, duration, sample_rate=h.sample_rate, channels=1)
        notes = [n for n in pair.notes() if n.start < duration]
        for n in notes:
            n.end = min(n.end, duration)
        return pair.name, audio, notes, duration
