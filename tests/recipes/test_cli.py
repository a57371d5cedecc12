"""`booster fit | validate | test` through LightningCLI: every packaged config runs, resume after a kill."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from booster.cli import main
from booster.training.cli import packaged_configs

CONFIGS = ["demo", "htdemucs_baseline", "htdemucs_boosted", "openunmix_baseline", "openunmix_boosted",
           "bs_roformer_baseline", "bs_roformer_boosted", "bs_roformer_debug", "mel_band_roformer_baseline",
           "mel_band_roformer_boosted", "mel_band_roformer_debug"]


def _overrides(root, tmp, name):
    args = ["--data.root", str(root), "--data.sources", "[drums, vocals]", "--data.segment", "1.0",
            "--data.valid_segment", "1.0", "--data.batch_size", "1", "--data.num_workers", "0",
            "--data.samples_per_epoch", "4", "--data.test_seconds", "1.0",
            "--trainer.default_root_dir", str(tmp), "--trainer.enable_progress_bar", "false",
            "--model.eval_dir", str(tmp / "eval"), "--model.run_name", name]
    if name != "demo":  # full-size hosts take tens of seconds per step on 2 CPUs: same recipe, debug size
        args += ["--model.size", "debug", "--model.pretrained", "null"]
    if "boosted" in name:
        args += ["--model.backbone", "debug", "--model.feature_cache", str(tmp / "cache")]
    return args


def test_packaged_configs_are_listed():
    assert {f"separation/{c}" for c in CONFIGS} <= set(packaged_configs())


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_fits_a_few_steps(name, stems_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs write runs/... relative to the working directory
    assert main(["fit", "--config", f"separation/{name}", *_overrides(stems_root, tmp_path, name),
                 "--trainer.fast_dev_run", "2"]) == 0


def test_fit_validate_test_and_compare(stems_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt_dir = tmp_path / "ckpt"
    common = _overrides(stems_root, tmp_path, "demo") + ["--model.boost", "true",
                                                         "--model.feature_cache", str(tmp_path / "cache")]
    assert main(["fit", "--config", "separation/demo", *common, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
                 "--trainer.val_check_interval", "2", "--trainer.logger", "false",
                 "--trainer.callbacks+=ModelCheckpoint", f"--trainer.callbacks.dirpath={ckpt_dir}",
                 "--trainer.callbacks.save_last=true"]) == 0
    last = ckpt_dir / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)       # no pickled classes
    assert ckpt["global_step"] == 2 and ckpt["booster"]["boost"] is True
    assert not any(k.startswith("model.backbone") for k in ckpt["state_dict"])
    assert main(["validate", "--config", "separation/demo", *common, "--ckpt_path", str(last),
                 "--trainer.logger", "false"]) == 0
    assert main(["test", "--config", "separation/demo", *common, "--ckpt_path", str(last), "--trainer.logger", "false"]) == 0
    results = tmp_path / "eval" / "results.json"
    assert results.is_file() and (tmp_path / "eval" / "results.md").is_file()
    capsys.readouterr()
    assert main(["compare", str(results), str(results)]) == 0
    assert "+0.00" in capsys.readouterr().out
    assert main(["separate", str(stems_root / "test" / "t0" / "drums.wav"), "-o", str(tmp_path / "stems"),
                 "--model", str(last), "--no-progress"]) == 0
    assert (tmp_path / "stems" / "drums" / "vocals.wav").is_file()


def test_unknown_config_is_a_clear_error(capsys):
    assert main(["fit", "--config", "no_such_config"]) == 1
    assert "separation/htdemucs_boosted" in capsys.readouterr().err


def test_resume_after_kill(stems_root, tmp_path):
    """SIGKILL of `booster fit --config separation/demo` before its first validation (so the monitored checkpoint has
    saved nothing) leaves <root>/checkpoints/last.ckpt (LastCheckpoint, every --last_every steps), and
    `--ckpt_path last` continues from it with the optimizer state."""
    cfg = tmp_path / "resume.yaml"
    cfg.write_text(f"""
trainer: {{max_steps: 100000, logger: false, enable_progress_bar: false}}
data: {{root: {stems_root}, sources: [drums, vocals], segment: 0.5, batch_size: 1, samples_per_epoch: 100000}}
model: {{boost: true, feature_cache: null}}
""")
    cmd = [sys.executable, "-m", "booster.cli", "fit", "--config", "separation/demo", "--config", str(cfg),
           "--trainer.default_root_dir", str(tmp_path), "--last_every", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    log = open(tmp_path / "first_run.log", "wb")  # a file, not a pipe: a full pipe would block the run
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=log)
    ckpt_dir = tmp_path / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    deadline = time.time() + 240
    killed_at = None
    try:
        while time.time() < deadline and proc.poll() is None:
            if last.exists():   # written atomically: never a partial file
                step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
                if step >= 4:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    killed_at = step
                    break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert killed_at is not None, (tmp_path / "first_run.log").read_text()[-2000:]
    assert sorted(p.name for p in ckpt_dir.iterdir() if not p.name.startswith(".")) == ["last.ckpt"]
    saved = torch.load(last, map_location="cpu", weights_only=True)
    resume_from = saved["global_step"]
    target = resume_from + 2
    done = subprocess.run(cmd + ["--ckpt_path", "last", "--trainer.max_steps", str(target)], cwd=tmp_path,
                          env=env, capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == target
    adam_steps = {int(s["step"]) for s in final["optimizer_states"][0]["state"].values()}
    assert adam_steps == {target}           # optimizer state restored, not restarted at the resume point
    moved = [k for k, v in saved["state_dict"].items() if not torch.equal(v, final["state_dict"][k])]
    assert any(k.startswith("model.adapters.") for k in moved)


@pytest.mark.parametrize("argv", [["separate", "--help"], ["compare", "--help"], ["fit", "--help"],
                                  ["fit", "--config", "separation/demo", "--help"]])
def test_help_texts_are_plain(argv, capsys):
    """No raw reStructuredText double backticks in our --help texts (a recipe's full help also lists
    Lightning's own Trainer docstrings, which have them), and the fit usage line names fit once."""
    try:
        code = main(argv)
    except SystemExit as e:   # argparse / jsonargparse exit after printing help
        code = e.code
    assert code == 0
    out = capsys.readouterr().out
    assert "usage" in out and "fit [options] fit" not in out
    ours = out if "--trainer.accelerator" not in out else out[out.index("--last_every"):][:400]
    assert "``" not in ours
