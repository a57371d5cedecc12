"""LightningDataModule over a stems folder (MUSDB18-HQ layout: ``<root>/<split>/<track>/<source>.wav``).

Training: random remixed segments (:class:`booster.data.stems.RemixDataset`, re-seeded every epoch).
Validation: fixed segments of the ``valid`` split (or tracks held out of ``train`` when there is no
such folder). Test: whole tracks of the ``test`` split, one per step (full-track chunked inference).
Batches: mixture ``[B, C, S]``, sources ``[B, N, C, S]``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from booster.data.stems import MUSDB_SOURCES, RemixDataset, SegmentDataset, Track, list_tracks
from booster.errors import ConfigError
from booster.training.data import BoosterDataModule, IndexDataset


class StemsDataModule(BoosterDataModule):
    """Stems-folder data for the separation recipe.

    Args:
        root: data set folder holding ``train`` / ``valid`` / ``test`` split folders.
        sources: stem names, in the order the model outputs them.
        segment: training segment in seconds (also the host's training length).
        valid_segment: validation segment in seconds (default: 2 x ``segment``).
        samples_per_epoch: remixed training items per epoch.
        fraction: train on this deterministic fraction of the training tracks (data-scarcity runs).
        valid_holdout: tracks taken out of ``train`` for validation when ``<root>/<valid_split>`` is absent.
        test_seconds: evaluate only the first ``test_seconds`` of each test track (None: whole tracks).
        generate: if set and ``root`` has no ``train`` folder, write a synthetic set there first with
            ``booster.data.synth.generate_dataset(root, split={...}, seconds=..., seed=...)``; keys
            ``splits`` (``{split: tracks}``), ``seconds``, ``seed``, ``renderer`` (on one process per node,
            so DDP runs generate once).
        skip_invalid: skip invalid track folders with a warning that lists them instead of stopping.
    """

    def __init__(self, root: str, sources: list[str] = list(MUSDB_SOURCES), sample_rate: int = 44100,
                 channels: int = 2, segment: float = 6.0, valid_segment: float | None = None,
                 samples_per_epoch: int = 1000, batch_size: int = 4, num_workers: int = 0,
                 remix: bool = True, gain: tuple[float, float] | None = (0.25, 1.25), channel_swap: bool = True,
                 sign_flip: bool = True, fraction: float = 1.0, seed: int = 0, train_split: str = "train",
                 valid_split: str = "valid", test_split: str = "test", valid_holdout: int = 1,
                 test_seconds: float | None = None, generate: dict | None = None, skip_invalid: bool = False):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed, fraction=fraction)
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.sources = list(sources)
        self.train_tracks: list[Track] = []
        self.valid_tracks: list[Track] = []
        self.test_tracks: list[Track] = []
        self._train = self._valid = None

    # ---- data preparation ---------------------------------------------------------------------
    def generate(self) -> None:
        g = self.hparams.generate
        if g:
            from booster.data.synth import generate_from_spec
            generate_from_spec(self.root, g, present=(self.root / self.hparams.train_split).is_dir(),
                               sample_rate=self.hparams.sample_rate)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if stage in (None, "fit", "validate"):
            train = list_tracks(self.root, h.train_split, self.sources, skip_invalid=h.skip_invalid)
            if (self.root / h.valid_split).is_dir():
                self.valid_tracks = list_tracks(self.root, h.valid_split, self.sources,
                                                skip_invalid=h.skip_invalid)
                self.train_tracks = train
            else:
                k = int(h.valid_holdout)
                if not 0 < k < len(train):
                    raise ConfigError(f"{str(self.root / h.valid_split)!r} does not exist and valid_holdout={k} "
                                      f"cannot be taken from {len(train)} training track(s); add a "
                                      f"'{h.valid_split}' folder or set data.valid_holdout")
                self.train_tracks, self.valid_tracks = train[:-k], train[-k:]
            self._train = RemixDataset(self.train_tracks, h.segment, h.samples_per_epoch, h.sample_rate,
                                       h.channels, remix=h.remix, gain=h.gain, channel_swap=h.channel_swap,
                                       sign_flip=h.sign_flip, fraction=h.fraction, seed=h.seed)
            vseg = h.valid_segment if h.valid_segment is not None else 2 * h.segment
            self._valid = SegmentDataset(self.valid_tracks, vseg, h.sample_rate, h.channels)
        if stage in (None, "test"):
            self.test_tracks = list_tracks(self.root, h.test_split, self.sources,
                                           skip_invalid=h.skip_invalid)

    # ---- loaders ------------------------------------------------------------------------------
    def train_dataloader(self):
        if self.trainer is not None:
            self._train.set_epoch(self.trainer.current_epoch)
        return self.loader(self._train, drop_last=True, train=True)

    def val_dataloader(self):
        return self.loader(self._valid)

    def test_dataloader(self):
        # one whole track per step: the module reads it itself (bounded by test_seconds)
        return self.loader(IndexDataset(len(self.test_tracks)), batch_size=None)

    def load_test_track(self, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        """``(name, mixture [C, S], sources [N, C, S])`` of test track ``index``."""
        h = self.hparams
        t = self.test_tracks[index]
        duration = None if h.test_seconds is None else min(h.test_seconds, t.duration)
        mix, srcs = t.load(0.0, duration, sample_rate=h.sample_rate, channels=h.channels)
        return t.name, mix, srcs
