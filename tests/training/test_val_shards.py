"""DDP evaluation: each rank validates / tests its own items (every item on exactly one rank), and the
validation means are over every item of every rank, however unequal the shards."""
import json

import pytest
import torch
import torch.multiprocessing as mp

from booster.training.data import BoosterDataModule, IndexDataset
from booster.training.ranks import ItemMeans, RankShard, merge_means


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_two_simulated_ranks_cover_every_item_once(n):
    shards = [RankShard(IndexDataset(n), rank=r, world_size=2).indices() for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(n))      # all items, none twice (no padding)
    assert [len(RankShard(IndexDataset(n), rank=r, world_size=2)) for r in range(2)] == [len(s) for s in shards]
    assert shards[0] == list(range(0, n, 2)) and shards[1] == list(range(1, n, 2))


def test_fewer_items_than_ranks_every_rank_takes_them_all():
    """A rank with no batch would skip the loop (and its collectives): with 1 item and 2 ranks both take it."""
    assert [RankShard(IndexDataset(1), rank=r, world_size=2).indices() for r in range(2)] == [[0], [0]]


def test_means_are_over_items_not_over_ranks():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]                 # rank 0: items 0, 2, 4; rank 1: items 1, 3
    parts = []
    for rank in range(2):
        m = ItemMeans()
        for i in RankShard(IndexDataset(len(values)), rank=rank, world_size=2):
            m.add("valid/x", torch.tensor(values[i]), prog_bar=True)
        m.add("valid/batched", torch.tensor(float(rank)), items=3 - rank)   # a batch-mean of 3 and of 2 items
        parts.append(m.local())
    means = merge_means(parts)
    assert means["valid/x"] == (pytest.approx(4.0), True)   # 20 / 5, not (14/3 + 3) / 2
    assert means["valid/batched"] == (pytest.approx(2 / 5), False)
    one = ItemMeans()
    one.add("valid/x", 2.0, items=4)
    assert one.reduce() == {"valid/x": (2.0, False)} and one.reduce() == {}   # one process; reduce clears


class _Data(BoosterDataModule):
    def val_dataloader(self):
        return self.loader(IndexDataset(5), batch_size=None)

    def test_dataloader(self):
        return self.loader(IndexDataset(5), batch_size=2)


def _rank(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        data = _Data(batch_size=1)
        seen = [int(i) for i in data.val_dataloader()]
        batches = [b.tolist() for b in data.test_dataloader()]
        means = ItemMeans()
        for i in seen:
            means.add("valid/item", torch.tensor(float(i)))
        reduced = means.reduce()
        with open(f"{out}.{rank}", "w") as f:
            json.dump({"seen": seen, "batches": batches, "mean": reduced["valid/item"][0]}, f)
    finally:
        dist.destroy_process_group()


def test_loaders_shard_by_rank_under_a_real_process_group(tmp_path):
    """Two gloo processes: the validation loader of a BoosterDataModule gives each rank its own items (all
    five once), the test loader batches within the shard, and the reduced mean is over the five items."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(2, port, str(tmp_path / "rank")), nprocs=2, join=True)
    got = [json.loads((tmp_path / f"rank.{r}").read_text()) for r in range(2)]
    assert got[0]["seen"] == [0, 2, 4] and got[1]["seen"] == [1, 3]
    assert got[0]["batches"] == [[0, 2], [4]] and got[1]["batches"] == [[1, 3]]
    assert got[0]["mean"] == got[1]["mean"] == pytest.approx(2.0)      # (0 + 1 + 2 + 3 + 4) / 5
