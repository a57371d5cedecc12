"""The base LightningDataModule of every recipe, and data helpers shared by tasks.

:class:`BoosterDataModule` holds what every task's data has: ``batch_size``, ``num_workers``, ``seed``,
``fraction`` (deterministic nested subsets for data-scarcity studies: the items of fraction 0.1 are among
those of 0.25) and a ``generate()`` hook for data made on first use, run by ``prepare_data`` (Lightning
calls it on one process per node, so DDP runs generate once). Subclasses implement ``setup`` and the
loaders, using :meth:`loader`.
"""
from __future__ import annotations

import functools
import math

import lightning as L
import torch

from booster.errors import ConfigError


def nested_subset(items: list, fraction: float, seed: int = 0) -> list:
    """A deterministic subset of ``ceil(fraction * len(items))`` items (at least 1), nested across fractions
    for one seed, in the original order."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1 or not items:
        return list(items)
    k = max(1, math.ceil(fraction * len(items)))
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(int(seed))).tolist()
    keep = sorted(order[:k])
    return [items[i] for i in keep]


class IndexDataset(torch.utils.data.Dataset):
    """Items ``0..n-1``: for test loops that read one whole item (track, file) per step themselves."""

    def __init__(self, n: int):
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class BoosterDataModule(L.LightningDataModule):
    """Base data module: common arguments and loaders. Subclasses call
    ``super().__init__(batch_size=..., num_workers=..., seed=..., fraction=...)`` then
    ``self.save_hyperparameters()``."""

    def __init__(self, *, batch_size: int = 4, num_workers: int = 0, seed: int = 0, fraction: float = 1.0):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        if not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
        self.batch_size, self.num_workers, self.seed, self.fraction = batch_size, num_workers, seed, fraction

    def __init_subclass__(cls, **kwargs):
        """Loaders that a subclass's ``train_dataloader`` builds with :meth:`loader` are resumable."""
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("train_dataloader")
        if fn is None or getattr(fn, "_booster_train", False):
            return

        @functools.wraps(fn)
        def train_dataloader(self, *args, **kw):
            self._building_train = True
            try:
                return fn(self, *args, **kw)
            finally:
                self._building_train = False
        train_dataloader._booster_train = True
        cls.train_dataloader = train_dataloader

    def generate(self) -> None:
        """Write data made on first use (synthetic sets); default: nothing."""

    def prepare_data(self) -> None:
        self.generate()

    def loader(self, dataset, *, batch_size: int | None = -1, shuffle: bool = False, drop_last: bool = False,
               collate_fn=None, train: bool = False) -> torch.utils.data.DataLoader:
        """A DataLoader with the module's workers; ``batch_size`` -1: the module's, None: no batching.

        ``train=True`` (the training loader; the default inside a subclass's ``train_dataloader``): a :class:`booster.data.resumable.ResumableLoader`, whose
        position in the data stream is saved in checkpoints, so a resumed run sees the same batches as an
        uninterrupted one (it shards by DDP rank itself: the CLI fits with ``use_distributed_sampler=False``).
        Other loaders (validation, test) draw from their own seeded generator, never from the global RNG; under
        DDP an unshuffled one takes this rank's items only (:class:`~booster.training.ranks.RankShard`: every
        item on one rank), so report per-item metrics through ``BoosterModule.log_valid`` (reduced once over
        the ranks) and test items through ``add_test_item`` (gathered)."""
        size = self.batch_size if batch_size == -1 else batch_size
        train = train or getattr(self, "_building_train", False)
        if train and size is not None:
            from booster.data.resumable import ResumableLoader
            return ResumableLoader(dataset, batch_size=size, shuffle=shuffle, seed=self.seed, drop_last=drop_last,
                                   num_workers=self.num_workers, collate_fn=collate_fn, persistent_workers=False)
        from .ranks import RankShard, world
        iterable = isinstance(dataset, torch.utils.data.IterableDataset)
        sampler = RankShard(dataset) if world()[1] > 1 and not (shuffle or iterable) else None
        return torch.utils.data.DataLoader(dataset, batch_size=size, shuffle=shuffle, sampler=sampler,
                                           drop_last=drop_last,
                                           num_workers=self.num_workers, collate_fn=collate_fn,
                                           persistent_workers=False,
                                           generator=torch.Generator().manual_seed(int(self.seed)))
