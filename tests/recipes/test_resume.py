"""Exact resume through `booster fit`: a run stopped at step 4 and resumed to step 8 ends with the same
weights, optimizer state and data position as an uninterrupted 8-step run (bit for bit). `--last_every 3`:
neither 4 nor 8 is on the schedule, so this also checks that the step reaching max_steps writes last.ckpt."""
import shutil

import torch

from booster.cli import main


def _fit(stems_root, root, *extra):
    return main(["fit", "--config", "separation/demo", "--data.root", str(stems_root),
                 "--data.sources", "[drums, vocals]", "--data.segment", "0.5", "--data.valid_segment", "0.5",
                 "--data.batch_size", "2", "--data.samples_per_epoch", "64", "--model.boost", "true",
                 "--model.feature_cache", "null", "--model.eval_dir", str(root / "eval"),
                 "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
                 "--trainer.logger", "false", "--trainer.val_check_interval", "3",
                 "--trainer.limit_val_batches", "1", "--last_every", "3", *extra])


def test_resume_is_bit_for_bit(stems_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    assert _fit(stems_root, a, "--trainer.max_steps", "8") == 0
    assert _fit(stems_root, b, "--trainer.max_steps", "4") == 0
    half = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert half["global_step"] == 4
    shutil.copy(b / "checkpoints" / "last.ckpt", tmp_path / "step4.ckpt")
    assert _fit(stems_root, b, "--trainer.max_steps", "8", "--ckpt_path", "last") == 0
    ca = torch.load(a / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    cb = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ca["global_step"] == cb["global_step"] == 8
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    differ = [k for k in ca["state_dict"] if not torch.equal(ca["state_dict"][k], cb["state_dict"][k])]
    assert differ == []
    moved = [k for k, v in half["state_dict"].items() if not torch.equal(v, ca["state_dict"][k])]
    assert moved   # steps 5-8 changed the weights: the comparison is not between two untouched models
    sa, sb = ca["optimizer_states"][0]["state"], cb["optimizer_states"][0]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
