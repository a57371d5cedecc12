"""Multi-process training through Lightning's own strategy: a 2-process DDP fit on CPU (gloo)."""
import os
import subprocess
import sys

import torch


def test_ddp_two_processes_on_cpu(stems_root, tmp_path):
    """`booster fit --trainer.devices 2 --trainer.strategy ddp` of a boosted debug config: both ranks train,
    the feature cache and the checkpoints are written safely (one last.ckpt, readable, rank-0 metrics CSV),
    and `booster test` on 2 processes gathers every test track into one report."""
    common = ["--config", "separation/demo", "--data.root", str(stems_root), "--data.sources", "[drums, vocals]",
              "--data.segment", "0.5", "--data.valid_segment", "1.0", "--data.batch_size", "1",
              "--data.samples_per_epoch", "8", "--data.test_seconds", "1.0", "--model.boost", "true",
              "--model.feature_cache", str(tmp_path / "cache"), "--model.eval_dir", str(tmp_path / "eval"),
              "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
              "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    ckpt_dir = tmp_path / "ckpt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    fit = subprocess.run([sys.executable, "-m", "booster.cli", "fit", *common, "--trainer.max_steps", "2",
                          "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1",
                          "--trainer.callbacks+=ModelCheckpoint", f"--trainer.callbacks.dirpath={ckpt_dir}",
                          "--trainer.callbacks.save_last=true"],
                         cwd=tmp_path, env=env, capture_output=True, timeout=240)
    assert fit.returncode == 0, fit.stderr.decode()[-3000:]
    ckpt = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["booster"]["boost"] is True
    assert sorted(p.name for p in ckpt_dir.iterdir()) == sorted(["last.ckpt", *[p.name for p in ckpt_dir.glob("epoch=*")]])
    metrics = list((tmp_path / "logs").glob("version_*/metrics.csv"))
    assert len(metrics) == 1 and "valid/nsdr" in metrics[0].read_text()
    assert any((tmp_path / "cache").rglob("*.safetensors"))
    test = subprocess.run([sys.executable, "-m", "booster.cli", "test", *common, "--ckpt_path",
                           str(ckpt_dir / "last.ckpt"), "--trainer.logger", "false"],
                          cwd=tmp_path, env=env, capture_output=True, timeout=240)
    assert test.returncode == 0, test.stderr.decode()[-3000:]
    import json
    report = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert sorted(report["items"]) == ["t0"] and report["task"] == "separation"
