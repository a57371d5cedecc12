"""Pretraining on several processes through Lightning's DDP (2 CPU processes, gloo)."""
import json
import os
import subprocess
import sys

import torch

from booster import MuQ


def test_pretraining_fits_on_two_ddp_processes(tmp_path):
    """`booster fit --config pretraining/debug` with 2 DDP processes: rank 0 makes the data and the stage-1
    tokenizer (the other rank waits, then loads it), both ranks train, and the export holds exactly the final
    encoder weights of the checkpoint and loads with ``MuQ.from_pretrained``."""
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    fit = subprocess.run([sys.executable, "-m", "booster.cli", "fit", "--config", "pretraining/debug",
                          "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
                          "--trainer.default_root_dir", str(run)],
                         cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert fit.returncode == 0, fit.stderr.decode()[-3000:]
    assert sorted(p.name for p in run.glob("tokenizer*")) == [
        "tokenizer.json", "tokenizer.safetensors", "tokenizer_metrics.json", "tokenizer_stat.json"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    assert json.loads((run / "export" / "training.json").read_text())["global_step"] == 4
    model = MuQ.from_pretrained(run / "export")
    trained = {k[len("model.encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.encoder.")}
    exported = model.state_dict()
    assert trained and set(trained) <= set(exported)
    for k, v in trained.items():
        assert torch.equal(exported[k], v), k
    metrics = list((run / "logs").glob("version_*/metrics.csv"))
    assert len(metrics) == 1 and "val/ce" in metrics[0].read_text()  # one logger: rank 0
