"""`booster fit --last_minutes M` (pretraining, a slow run): last.ckpt is written on the wall-clock schedule while
training runs, with the step schedule off (``--last_every 0``)."""
import lightning.pytorch as pl
import torch

from booster.cli import main

SEEN = []


class LastSeen(pl.Callback):
    """Records the step held by ``path`` (None: no file yet) at the start of every training step."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, *args):
        import os
        ok = os.path.isfile(self.path)
        SEEN.append(torch.load(self.path, weights_only=True)["global_step"] if ok else None)


def test_fit_last_minutes_saves_while_training(music_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "run"
    probe = tmp_path / "probe.yaml"
    probe.write_text("trainer:\n  callbacks:\n    - class_path: test_pretraining_last_minutes.LastSeen\n"
                     f"      init_args: {{path: {root / 'checkpoints' / 'last.ckpt'}}}\n")
    SEEN.clear()
    assert main(["fit", "--config", "pretraining/debug", "--config", str(probe), "--data.folders", f"[{music_dir}]",
                 "--data.synth", "null", "--data.cache_dir", str(tmp_path / "cache"),
                 "--trainer.default_root_dir", str(root), "--trainer.logger", "false",
                 "--last_every", "0", "--last_minutes", "1e-6"]) == 0
    assert SEEN == [None, 1, 2, 3]   # max_steps 4: a save after every step (due at once), none before the first
    assert torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
