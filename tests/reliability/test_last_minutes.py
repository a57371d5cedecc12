"""``last.ckpt`` on a wall-clock schedule (``LastCheckpoint(minutes=)``, ``booster fit --last_minutes``), besides
or instead of the step schedule: a slow run saves while it trains, not only every N steps."""
import lightning.pytorch as pl
import pytest
import torch

from booster.data.resumable import LastCheckpoint, ResumableLoader
from test_resume_validation import Items   # 20 items [8]


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 1)

    def training_step(self, x, batch_idx):
        return self.net(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return ResumableLoader(Items(), batch_size=2)


class LastSeen(pl.Callback):
    """The step held by ``last.ckpt`` (None: no file yet) at the start of every training step."""

    def __init__(self, path):
        self.path, self.seen = path, []

    def on_train_batch_start(self, trainer, *args):
        ok = self.path.is_file()
        self.seen.append(torch.load(self.path, weights_only=True)["global_step"] if ok else None)


def seen(root, **kw):
    probe = LastSeen(root / "last.ckpt")
    trainer = pl.Trainer(max_steps=5, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=root,
                         callbacks=[LastCheckpoint(root, **kw), probe])
    trainer.fit(Tiny())
    return probe.seen + [torch.load(root / "last.ckpt", weights_only=True)["global_step"]]   # + after the fit


def test_time_schedule_saves_during_training(tmp_path):
    tiny = 1e-6   # minutes: due at every step
    assert seen(tmp_path / "time", every_n_train_steps=0, minutes=tiny) == [None, 1, 2, 3, 4, 5]
    assert seen(tmp_path / "both", every_n_train_steps=1000, minutes=tiny) == [None, 1, 2, 3, 4, 5]
    # steps only: 2, 4, and the step that reaches max_steps (5), so the file ends with the final weights
    assert seen(tmp_path / "steps", every_n_train_steps=2) == [None, None, 2, 2, 4, 5]
    # neither schedule due: only the final step writes it
    assert seen(tmp_path / "slow", every_n_train_steps=1000, minutes=60) == [None] * 5 + [5]
    with pytest.raises(ValueError):
        LastCheckpoint(tmp_path, every_n_train_steps=0)


def test_booster_fit_last_minutes(tmp_path, capsys):
    """The command-line option reaches the callback; nonsense values are refused in one line."""
    from booster.training.cli import fit_callbacks

    last = fit_callbacks({"default_root_dir": str(tmp_path)}, 0, 0.5)[-2]
    assert isinstance(last, LastCheckpoint) and last._train_time_interval.total_seconds() == 30
    assert last._every_n_train_steps == 0
    from booster.cli import main
    for args in (["--last_minutes", "0"], ["--last_minutes", "-1"], ["--last_every", "0"]):
        assert main(["fit", "--config", "separation/demo", "--trainer.default_root_dir", str(tmp_path), *args]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("--last_minutes" in err or "--last_every" in err), err
