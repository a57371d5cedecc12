"""A run writes under its own folder (issue 9): with ``--trainer.default_root_dir`` moved, a packaged config's
checkpoints and evaluation report land under that folder, nothing under the config's default ``runs/...``.
The packaged configs hard-code neither a checkpoint folder nor ``eval_dir``, and none keeps the old plain
``ModelCheckpoint(save_last=True)`` (``booster fit`` adds ``last.ckpt`` itself)."""
import json

import lightning.pytorch  # noqa: F401  (imported first: its log handler keeps pytest's session stream)
import pytest
import yaml

from booster.cli import main
from booster.training.cli import packaged_configs, resolve_config

SMALL = ["--data.generate", "{splits: {train: 2, valid: 1, test: 1}, seconds: 2, seed: 0}",
         "--data.sources", "[drums, vocals]", "--data.segment", "0.5", "--data.valid_segment", "0.5",
         "--data.batch_size", "2", "--data.samples_per_epoch", "8", "--data.test_seconds", "1",
         "--model.eval_bsseval", "false", "--trainer.enable_progress_bar", "false"]


def test_checkpoints_and_report_follow_default_root_dir(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    run = tmp_path / "elsewhere"
    common = ["--config", "separation/demo", "--data.root", str(tmp_path / "data"),
              "--trainer.default_root_dir", str(run), *SMALL]
    assert main(["fit", *common, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
                 "--trainer.limit_val_batches", "1"]) == 0
    assert main(["test", *common, "--ckpt_path", "last"]) == 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert {p.parent for p in tmp_path.rglob("*.ckpt")} == {run / "checkpoints"}   # every checkpoint is there
    report = json.loads((run / "eval" / "results.json").read_text())
    assert report["summary"] and len(report["evaluated"]["items"]) == 1 and (run / "eval" / "results.md").is_file()
    assert not (cwd / "runs").exists() and not list(run.glob("checkpoints/last-v*.ckpt"))


@pytest.mark.parametrize("name", packaged_configs())
def test_packaged_configs_leave_run_paths_to_the_kit(name):
    cfg = yaml.safe_load(open(resolve_config(name)[0]))
    assert "eval_dir" not in (cfg.get("model") or {}), name
    for cb in (cfg.get("trainer") or {}).get("callbacks") or []:
        args = cb.get("init_args") or {}
        assert "dirpath" not in args and "save_last" not in args, (name, cb)
        if cb["class_path"].endswith("ModelCheckpoint"):
            assert cb["class_path"] == "booster.data.resumable.AtomicModelCheckpoint", (name, cb)
