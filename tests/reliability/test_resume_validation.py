"""A validation that draws from the global RNG at a checkpointing step does not break bit-for-bit resume:
RngStateCallback puts the training stream back after each validation, so an uninterrupted run continues
from the state a checkpoint of that step holds (saved at the step's end, or at validation end)."""
import lightning.pytorch as pl
import torch

from booster.data.resumable import ResumableLoader, RngStateCallback


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        return torch.randn(8, generator=torch.Generator().manual_seed(i))


class Drawing(pl.LightningModule):
    """Training draws dropout masks and a global ``torch.rand`` per step; validation draws noise, and its
    plain shuffled DataLoader (no ``generator=``) takes a seed from torch's RNG for every iterator."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1))

    def training_step(self, x, batch_idx):
        return self.net(x).pow(2).mean() * (1 + torch.rand(()))

    def validation_step(self, x, batch_idx):
        self.log("val_loss", self.net(x + torch.randn_like(x)).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return ResumableLoader(Items(), batch_size=2, shuffle=True, seed=1, drop_last=True)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(Items(), batch_size=4, shuffle=True)


class StepRngOnly(RngStateCallback):
    """RngStateCallback without the validation hooks (what it was before): the control."""

    def on_validation_end(self, trainer, pl_module):
        pass


def fit(root, rng=RngStateCallback, ckpt_path=None):
    torch.manual_seed(0)
    model = Drawing()
    every = pl.callbacks.ModelCheckpoint(dirpath=root, every_n_train_steps=2, save_top_k=-1, filename="{step}")
    at_val = pl.callbacks.ModelCheckpoint(dirpath=root, monitor="val_loss", save_top_k=-1, filename="val-{step}")
    trainer = pl.Trainer(max_steps=12, val_check_interval=4, check_val_every_n_epoch=None, accelerator="cpu",
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[rng(), every, at_val], default_root_dir=root)
    torch.manual_seed(123)  # a different global state before fit: only the checkpoint may decide
    trainer.fit(model, ckpt_path=ckpt_path)
    return model.state_dict()


def same(a, b):
    return all(torch.equal(x, b[k]) for k, x in a.items())


def test_validation_at_a_checkpoint_step_keeps_resume_exact(tmp_path):
    full = fit(tmp_path / "a")
    assert (tmp_path / "a" / "step=4.ckpt").is_file() and (tmp_path / "a" / "val-step=4.ckpt").is_file()
    for name in ("step=4.ckpt", "val-step=4.ckpt"):   # saved at the step's end / at validation end
        assert same(full, fit(tmp_path / name[:-5], ckpt_path=str(tmp_path / "a" / name))), name
    # the control: without putting the states back, the same resume differs (validation shifts the stream)
    control = fit(tmp_path / "c", rng=StepRngOnly)
    assert not same(control, fit(tmp_path / "c", rng=StepRngOnly, ckpt_path=str(tmp_path / "c" / "step=4.ckpt")))
