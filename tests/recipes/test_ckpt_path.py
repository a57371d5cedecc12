"""`--ckpt_path` of `booster fit | validate | test`: bad files are one line before Lightning reads them,
a checkpoint that contradicts an explicit option is an error naming both values, `last` with nothing to
resume is one line, and harmless explicit options (eval_dir) win over the checkpoint's saved ones."""
import os
import pickle

import pytest
import torch

from booster.cli import main


def _common(stems_root, root):
    return ["--config", "separation/demo", "--data.root", str(stems_root), "--data.sources", "[drums, vocals]",
            "--data.segment", "0.5", "--data.valid_segment", "0.5", "--data.batch_size", "1",
            "--data.samples_per_epoch", "4", "--data.test_seconds", "0.5", "--model.feature_cache", "null",
            "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false"]


@pytest.fixture(scope="module")
def baseline_ckpt(stems_root, tmp_path_factory):
    """A 1-step baseline checkpoint of the demo config (LastCheckpoint writes it at the end of the fit)."""
    root = tmp_path_factory.mktemp("baseline")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["fit", *_common(stems_root, root), "--trainer.max_steps", "1",
                     "--trainer.limit_val_batches", "0", "--model.eval_dir", str(root / "eval")]) == 0
    finally:
        os.chdir(cwd)
    return root / "checkpoints" / "last.ckpt"


def _one_line_error(capsys, *words):
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def _bad_files(tmp_path, good: bytes):
    files = {"missing": tmp_path / "missing.ckpt", "empty": tmp_path / "empty.ckpt",
             "truncated": tmp_path / "truncated.ckpt", "random": tmp_path / "random.ckpt",
             "pickle": tmp_path / "pickle.ckpt"}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["random"].write_bytes(os.urandom(4096))
    files["pickle"].write_bytes(pickle.dumps({"state_dict": {}, "x": [1, 2]}))
    return files


@pytest.mark.parametrize("sub", ["fit", "validate", "test"])
def test_bad_ckpt_path_is_one_line(sub, stems_root, baseline_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for kind, path in _bad_files(tmp_path, baseline_ckpt.read_bytes()).items():
        capsys.readouterr()
        assert main([sub, *_common(stems_root, tmp_path), "--ckpt_path", str(path)]) == 1, kind
        _one_line_error(capsys, "--ckpt_path", path.name)
    assert not (tmp_path / "checkpoints").exists()   # nothing ran


def test_checkpoint_contradicting_options_is_an_error(stems_root, baseline_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = _common(stems_root, tmp_path)
    assert main(["validate", *common, "--model.boost", "true", "--ckpt_path", str(baseline_ckpt)]) == 1
    _one_line_error(capsys, "--model.boost true vs checkpoint boost false")
    assert main(["test", *common, "--data.sources", "[drums, bass, vocals]", "--ckpt_path", str(baseline_ckpt)]) == 1
    _one_line_error(capsys, "--data.sources [drums, bass, vocals] vs checkpoint sources [drums, vocals]")
    assert main(["validate", *common, "--model.host", "openunmix", "--ckpt_path", str(baseline_ckpt)]) == 1
    _one_line_error(capsys, "--model.host openunmix vs checkpoint host htdemucs")


def test_explicit_harmless_option_beats_checkpoint(stems_root, baseline_ckpt, tmp_path, monkeypatch):
    """The checkpoint was trained with eval_dir <baseline>/eval; `test --model.eval_dir X` writes to X."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mine"
    assert main(["test", *_common(stems_root, tmp_path), "--model.boost", "false", "--model.eval_dir", str(out),
                 "--ckpt_path", str(baseline_ckpt)]) == 0
    assert (out / "results.json").is_file()
    assert not (baseline_ckpt.parent.parent / "eval").exists()


def test_ckpt_path_last_without_checkpoint(stems_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *_common(stems_root, tmp_path), "--ckpt_path", "last"]) == 1
    _one_line_error(capsys, "no last.ckpt", str(tmp_path / "checkpoints"), "nothing to resume")
