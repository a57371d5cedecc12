"""Loaders of BoosterDataModule: the training loader (built in any subclass's train_dataloader) is a
ResumableLoader; validation/test loaders never draw from the global RNG."""
import torch

from booster.data.resumable import ResumableLoader
from booster.training.data import BoosterDataModule


class Data(BoosterDataModule):
    def __init__(self):
        super().__init__(batch_size=2, seed=3)
        self.items = torch.arange(10.0)

    def train_dataloader(self):
        return self.loader(self.items, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return self.loader(self.items, shuffle=True)


def test_train_loader_is_resumable_and_val_loader_leaves_global_rng_alone():
    dm = Data()
    train = dm.train_dataloader()
    assert isinstance(train, ResumableLoader) and train.batch_size == 2
    assert not isinstance(dm.val_dataloader(), ResumableLoader)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    order = torch.cat(list(dm.val_dataloader()))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(order, torch.cat(list(dm.val_dataloader())))   # seeded: the same order each time
    it = iter(train)
    next(it)
    state = train.state_dict()
    again = dm.train_dataloader()
    again.load_state_dict(state)
    assert torch.equal(next(iter(again)), next(it))   # continues after the consumed batch
