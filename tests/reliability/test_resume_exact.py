"""Kill-and-resume continues exactly: ResumableLoader + RngStateCallback give the same batches, the same
dropout masks and bit-for-bit the same weights as an uninterrupted run (issue 9, item 2)."""
import warnings

import lightning.pytorch as pl
import pytest
import torch

from booster.data.resumable import ResumableLoader, RngStateCallback
from booster.errors import CheckpointError


class Items(torch.utils.data.Dataset):
    """Item i is a pure function of i (what the recipes' datasets guarantee)."""

    def __len__(self):
        return 20

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.tensor(i), torch.randn(8, generator=g)


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1))
        self.seen = []

    def training_step(self, batch, batch_idx):
        idx, x = batch
        self.seen.append((self.global_step, idx.tolist()))
        return self.net(x).pow(2).mean() + 0.01 * torch.rand(()).item()  # a global-RNG draw per step

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return ResumableLoader(Items(), batch_size=2, shuffle=True, seed=3, drop_last=True)


def fit(root, max_steps, ckpt_path=None, every=None):
    torch.manual_seed(0)
    model = Tiny()
    callbacks = [RngStateCallback()]
    if every:
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=-1,
                                                      filename="{step}"))
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, default_root_dir=root,
                         enable_checkpointing=bool(every))
    torch.manual_seed(123)  # a different global state before fit: only the checkpoint may decide
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=pl.utilities.warnings.PossibleUserWarning)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(model, ckpt_path=ckpt_path)
    return model


@pytest.mark.parametrize("resume_step", [6, 12, 10])  # mid epoch 0, mid epoch 1, at the epoch boundary
def test_resume_is_bit_for_bit(tmp_path, resume_step):
    full = fit(tmp_path / "a", 16, every=2)
    resumed = fit(tmp_path / "b", 16, ckpt_path=str(tmp_path / "a" / f"step={resume_step}.ckpt"))
    assert resumed.seen == [s for s in full.seen if s[0] >= resume_step]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    epoch0 = [i for s, b in full.seen if s < 10 for i in b]
    epoch1 = [i for s, b in full.seen if 10 <= s < 20 for i in b]
    assert sorted(epoch0) == list(range(20)) and epoch0 != epoch1  # shuffled, a new order per epoch


def test_state_mismatch_is_refused():
    a = ResumableLoader(Items(), batch_size=2, seed=1)
    b = ResumableLoader(Items(), batch_size=4, seed=1)
    with pytest.raises(CheckpointError, match="batch_size 2 -> 4"):
        b.load_state_dict(a.state_dict())


def test_loader_outside_lightning_continues_its_stream():
    a = ResumableLoader(Items(), batch_size=3, shuffle=True, seed=5, )
    it = iter(a)
    first = [next(it)[0].tolist() for _ in range(2)]
    b = ResumableLoader(Items(), batch_size=3, shuffle=True, seed=5, )
    b.load_state_dict(a.state_dict())
    rest_b = [x[0].tolist() for x in b]
    rest_a = [x[0].tolist() for x in it]
    assert rest_a == rest_b and len(first) + len(rest_b) == len(a) == 7


KILLED_RUN = """
import sys, time
sys.path.insert(0, {here!r})
import lightning.pytorch as pl
from booster.data.resumable import LastCheckpoint, RngStateCallback
from test_resume_exact import Tiny

class Loud(Tiny):
    def training_step(self, batch, batch_idx):
        print('step', self.global_step, flush=True)
        time.sleep(0.05)
        return super().training_step(batch, batch_idx)

monitored = pl.callbacks.ModelCheckpoint(dirpath={ckpts!r}, monitor='val_loss', save_top_k=1)  # never logged
trainer = pl.Trainer(max_steps=1000, accelerator='cpu', logger=False, enable_progress_bar=False,
                     callbacks=[monitored, LastCheckpoint({ckpts!r}, every_n_train_steps=5), RngStateCallback()])
trainer.fit(Loud())
"""


def test_killed_run_leaves_a_resumable_last_checkpoint(tmp_path):
    """SIGKILL at step 12 of a run whose monitored metric never appeared: last.ckpt (step 10) exists,
    is a complete checkpoint, and ``ckpt_path='last'`` resumes from it."""
    import subprocess
    import sys
    from pathlib import Path

    from booster.fsutil import check_checkpoint_file

    ckpts = tmp_path / "checkpoints"
    script = KILLED_RUN.format(here=str(Path(__file__).parent), ckpts=str(ckpts))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    for line in proc.stdout:
        if line.strip() == "step 12":
            break
    proc.kill()
    proc.wait()
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt"]  # no temp file, no partial file
    check_checkpoint_file(ckpts / "last.ckpt")
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 10
    resumed = fit_from(tmp_path, ckpts)
    assert resumed.seen[0][0] == 10


def fit_from(tmp_path, ckpts):
    from booster.data.resumable import LastCheckpoint
    model = Tiny()
    trainer = pl.Trainer(max_steps=12, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[LastCheckpoint(ckpts, every_n_train_steps=5), RngStateCallback()])
    trainer.fit(model, ckpt_path="last")
    return model
