"""Evaluation under DDP: each rank evaluates its own share of the items, the metrics are reduced once.

:class:`RankShard` gives rank ``r`` of ``W`` the items ``r, r + W, r + 2W, ...`` (every item on exactly one
rank; :class:`~torch.utils.data.DistributedSampler` instead repeats items to even out the ranks).
:class:`ItemMeans` collects per-item metric sums and item counts on each rank and reduces them once per epoch
(one ``all_gather_object``): the mean over all items, however unequal the shards. (Lightning's
``self.log(..., sync_dist=True)`` averages the per-rank item counts as integers, so with an odd total it
divides by the wrong count.)
"""
from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler

from booster.data.resumable import world  # noqa: F401  (one (rank, world size), public here too)




class RankShard(DistributedSampler):
    """This rank's items of ``dataset`` in order: ``rank::world_size``, no padding, no duplicates.

    With fewer items than ranks every rank takes all of them: a rank without a batch would skip the loop and
    leave the others waiting in their collectives; :class:`ItemMeans` means and test items merged by name are
    unchanged by that uniform repetition. A subclass of DistributedSampler, so a Trainer with
    ``use_distributed_sampler=True`` keeps it as it is."""

    def __init__(self, dataset, rank: int | None = None, world_size: int | None = None):
        if rank is None or world_size is None:
            rank, world_size = world()
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=False, drop_last=False)

    def indices(self) -> list[int]:
        n = len(self.dataset)
        return list(range(n)) if n < self.num_replicas else list(range(self.rank, n, self.num_replicas))

    def __iter__(self):
        return iter(self.indices())

    def __len__(self) -> int:
        return len(self.indices())


def gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (DDP); ``[obj]`` on a single process."""
    import torch.distributed as dist
    rank, size = world()
    if size == 1:
        return [obj]
    parts = [None] * size
    dist.all_gather_object(parts, obj)
    return parts


class ItemMeans:
    """Means over items of named metrics, across every rank: :meth:`add` per step, :meth:`reduce` once.

    ``add(name, value, items)``: ``value`` is the mean over ``items`` items (a tensor stays on its device until
    :meth:`reduce`: no device->host sync per step)."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._sums: dict = {}
        self._counts: dict[str, float] = {}
        self._prog_bar: set[str] = set()

    def add(self, name: str, value, items: int = 1, prog_bar: bool = False) -> None:
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"metric {name!r} must be one number, got shape {tuple(value.shape)}")
            value = value.detach().reshape(()).double()
        self._sums[name] = self._sums.get(name, 0.0) + value * items
        self._counts[name] = self._counts.get(name, 0.0) + float(items)
        if prog_bar:
            self._prog_bar.add(name)

    def local(self) -> dict[str, tuple[float, float, bool]]:
        """``{name: (sum of values x items, items, prog_bar)}`` of this rank (one device->host copy)."""
        names = sorted(self._sums)
        dev = next((v.device for v in self._sums.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
        sums = torch.stack([torch.as_tensor(self._sums[k], dtype=torch.float64, device=dev) for k in names]).tolist() \
            if names else []
        return {k: (s, self._counts[k], k in self._prog_bar) for k, s in zip(names, sums)}

    def reduce(self) -> dict[str, tuple[float, bool]]:
        """``{name: (mean over every rank's items, prog_bar)}``, the same on every rank; clears the sums.
        Every rank must call it (a collective under DDP)."""
        local = self.local()
        self.clear()
        return merge_means(gather_objects(local))


def merge_means(parts: list[dict]) -> dict[str, tuple[float, bool]]:
    """The ranks' :meth:`ItemMeans.local` dicts as ``{name: (sum / items over all of them, prog_bar)}``."""
    total: dict[str, list] = {}
    for part in parts:
        for k, (s, n, prog) in part.items():
            t = total.setdefault(k, [0.0, 0.0, False])
            t[0], t[1], t[2] = t[0] + s, t[1] + n, t[2] or prog
    return {k: (s / n, prog) for k, (s, n, prog) in sorted(total.items()) if n > 0}
