"""`booster fit` over an earlier run (issue 19, item 2): a folder holding checkpoints/ or logs of an earlier fit is
never trained over silently. Without `--ckpt_path last` it is one line that offers `--ckpt_path last`, another
`--trainer.default_root_dir` or `--overwrite`, and last.ckpt keeps its bytes; `--ckpt_path last` resumes;
`--overwrite` starts again (the old checkpoints go). Also the sweep of fit/validate/test: a read-only or file
default_root_dir and a bad override are one line with exit 1 (the override was 60+ lines of usage, exit 2)."""
import numpy as np
import soundfile as sf
import lightning.pytorch  # noqa: F401  (imported first: its log handler keeps pytest's session stream)
import torch

from booster.cli import main
from cli_helpers import one_line_error

SMALL = ["--data.generate", "{splits: {train: 2, valid: 1, test: 1}, seconds: 2, seed: 0}",
         "--data.sources", "[drums, vocals]", "--data.segment", "0.5", "--data.valid_segment", "0.5",
         "--data.batch_size", "2", "--data.samples_per_epoch", "8", "--data.test_seconds", "1",
         "--model.eval_bsseval", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"]


one_line = one_line_error


def step(path):
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_fit_over_an_earlier_run_resumes_or_starts_again_only_when_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    fit = ["fit", "--config", "separation/demo", "--data.root", str(tmp_path / "data"),
           "--trainer.default_root_dir", str(run), *SMALL]
    assert main([*fit, "--trainer.max_steps", "2"]) == 0
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    capsys.readouterr()
    assert main([*fit, "--trainer.max_steps", "2"]) == 1   # the same command again
    one_line(capsys, "fit", str(run), "--ckpt_path last", "--trainer.default_root_dir", "--overwrite")
    assert last.read_bytes() == before
    assert main([*fit, "--trainer.max_steps", "3", "--overwrite", "true", "--ckpt_path", "last"]) == 1
    one_line(capsys, "fit", "--overwrite", "--ckpt_path")
    assert last.read_bytes() == before and step(last) == 2

    assert main([*fit, "--trainer.max_steps", "3", "--ckpt_path", "last"]) == 0   # resumes
    assert step(last) == 3
    stale = run / "checkpoints" / "epoch=0-step=1.ckpt"   # a checkpoint only the earlier run had
    stale.write_bytes(last.read_bytes())
    assert main([*fit, "--trainer.max_steps", "2", "--overwrite"]) == 0            # starts again
    assert step(last) == 2 and not stale.exists()
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["version_0", "version_1", "version_2"]


def test_pretraining_fit_over_an_earlier_run_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(24000 * 3) / 24000
    for i in range(3):
        sf.write(music / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * 110 * (i + 2) * t)).astype(np.float32), 24000)
    run = tmp_path / "run"
    fit = ["fit", "--config", "pretraining/debug", "--data.folders", f"[{music}]", "--data.synth", "null",
           "--data.cache_dir", str(tmp_path / "cache"), "--data.seconds", "1.0", "--data.holdout", "1",
           "--model.tokenizer_steps", "2", "--trainer.default_root_dir", str(run), "--trainer.max_steps", "2",
           "--trainer.val_check_interval", "2"]
    assert main(fit) == 0
    kept = {p: p.read_bytes() for p in [run / "checkpoints" / "last.ckpt", *sorted((run / "export").iterdir())]}
    capsys.readouterr()
    assert main(fit) == 1
    one_line(capsys, "fit", "holds an earlier run", "--ckpt_path last", "--overwrite")
    assert {p: p.read_bytes() for p in kept} == kept   # last.ckpt and export/ untouched

    # the stage-1 tokenizer the earlier fit left is reused only with its own settings ...
    from booster.recipes.pretraining.tokenizer import MelRVQ
    tok = run / "tokenizer.safetensors"
    levels = MelRVQ.load(tok).config.num_levels
    import shutil
    for earlier in ("checkpoints", "logs"):            # as if killed after stage 1: a fit there may start, reusing it
        shutil.rmtree(run / earlier)
    capsys.readouterr()
    assert main([*fit, "--model.levels", str(levels + 1)]) == 1
    one_line(capsys, "fit", "tokenizer.safetensors", f"num_levels: {levels} -> {levels + 1}", "--overwrite")
    # ... and --overwrite starts again: stage 1 is made anew with the new settings, not reused
    assert main([*fit, "--model.levels", str(levels + 1), "--overwrite"]) == 0
    assert MelRVQ.load(tok).config.num_levels == levels + 1


def test_fit_validate_test_refuse_an_unwritable_root_and_bad_overrides(tmp_path, read_only_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["--config", "separation/demo", "--data.root", str(tmp_path / "data"), *SMALL]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for root in (read_only_dir / "run", a_file):
        assert main(["fit", *common, "--trainer.default_root_dir", str(root), "--trainer.max_steps", "1"]) == 1
        one_line(capsys, "fit", "--trainer.default_root_dir", str(root))
    assert not (read_only_dir / "run").exists() and a_file.read_text() == "x"
    run = tmp_path / "run"
    assert main(["fit", *common, "--trainer.default_root_dir", str(run), "--trainer.max_steps", "1"]) == 0
    capsys.readouterr()
    for sub in ("validate", "test"):
        assert main([sub, *common, "--trainer.default_root_dir", str(read_only_dir),
                     "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]) == 1
        one_line(capsys, sub, "--trainer.default_root_dir", "not writable")
    for sub in ("fit", "validate", "test"):
        for bad, words in ((["--trainer.max_stepz", "3"], ["--trainer.max_stepz"]),
                           (["--trainer.max_steps", "many"], ["trainer.max_steps", "many"]),
                           (["--model.hots", "x"], ["--model.hots"])):
            assert main([sub, *common, "--trainer.default_root_dir", str(tmp_path / "other"), *bad]) == 1, bad
            one_line(capsys, sub, *words)
    assert not (tmp_path / "other").exists()
