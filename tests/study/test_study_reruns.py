"""`booster study` never loses or trusts blindly what it has (issue 19, items 3, 4, 6, 9, 10):
every run keeps the weights it was tested with as checkpoints/last.ckpt; a rerun with other settings is one
line naming them and deletes nothing (`--force` redoes, the old folders kept as <run>.old-<time>); a corrupt
results.json is redone, saying so (bad -o, seeds, overrides, configs: tests/reliability/test_study_inputs.py)."""
import json
import shutil

import lightning.pytorch  # noqa: F401  (imported first: its log handler keeps pytest's session stream)
import pytest
import torch

from booster.cli import main

from test_study import TASK_OVERRIDES
from cli_helpers import one_line_error


def study_args(out, data, steps=2, *extra):
    return ["study", "--config", "separation/demo", "--fractions", "1.0", "--seeds", "1", "--budget-steps",
            str(steps), "-o", str(out), "--device", "cpu", *extra, "--data.root", str(data),
            *TASK_OVERRIDES["separation"], "--model.eval_bsseval", "false"]


def one_line(capsys, *words):
    return one_line_error(capsys, "study", *words)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("reruns")
    assert main(study_args(root / "study", root / "data")) == 0
    return root / "study", root / "data"


def copy(small_study, tmp_path):
    out = tmp_path / "study"
    shutil.copytree(small_study[0], out)
    return out


def test_every_run_keeps_the_weights_it_was_tested_with(small_study):
    out, _ = small_study
    runs = json.loads((out / "study.json").read_text())["runs"]
    assert len(runs) == 2
    for r in runs:
        ckpt = torch.load(f"{r['folder']}/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == r["steps"] == 2
        assert ckpt["booster"]["boost"] is (r["variant"] == "boosted")


def test_other_settings_are_refused_and_force_keeps_the_old_runs(small_study, tmp_path, capsys):
    out, data = copy(small_study, tmp_path), small_study[1]
    results = {p: p.read_bytes() for p in sorted(out.rglob("results.json"))}
    capsys.readouterr()
    assert main(study_args(out, data, 3)) == 1
    one_line(capsys, "--budget-steps: 2 → 3", "--force", "-o")
    assert {p: p.read_bytes() for p in results} == results and not list(out.rglob("*.old-*"))
    assert main(study_args(out, data, 3, "--force")) == 0
    said = capsys.readouterr().out
    assert said.count("made with other settings (--budget-steps: 2 → 3); run again") == 2
    for p, data_bytes in results.items():   # the old runs, moved aside whole
        old = list(p.parent.parent.glob(p.parent.name + ".old-*"))
        assert len(old) == 1 and (old[0] / "results.json").read_bytes() == data_bytes
        assert (old[0] / "checkpoints" / "last.ckpt").is_file()
        assert json.loads((p.parent / "run.json").read_text())["steps"] == 3


def test_corrupt_results_are_redone_saying_so(small_study, tmp_path, capsys):
    out, data = copy(small_study, tmp_path), small_study[1]
    bad = out / "1" / "0" / "boosted"
    (bad / "results.json").write_text("{garbage")
    kept = out / "1" / "0" / "baseline" / "run.json"
    before = kept.stat().st_mtime_ns
    capsys.readouterr()
    assert main(study_args(out, data)) == 0
    said = capsys.readouterr().out
    assert "baseline: done before, kept" in said and said.count("done before, kept") == 1
    assert "boosted: results.json is not readable" in said and "run again" in said
    assert json.loads((bad / "results.json").read_text())["summary"] and kept.stat().st_mtime_ns == before
    assert (next(bad.parent.glob("boosted.old-*")) / "results.json").read_text() == "{garbage"


def test_reused_runs_are_verified(small_study, tmp_path, capsys):
    """Each way a finished run can fail verification is redone, not kept."""
    from booster.training.study_runs import verdict
    out = copy(small_study, tmp_path)
    run = out / "1" / "0" / "baseline"
    expected = json.loads((run / "run.json").read_text())["settings"]
    assert verdict(run, expected)[0] == "kept"
    report = json.loads((run / "results.json").read_text())
    for damage, why in ((lambda: (run / "results.json").write_text("[1, 2]"), "not a test report"),
                        (lambda: (run / "results.json").write_text(json.dumps({**report, "summary": {"mean": {"gSDR": 99.0}}})),
                         "does not give the metrics"),
                        (lambda: (run / "checkpoints" / "last.ckpt").unlink(), "no checkpoints/last.ckpt"),
                        (lambda: (run / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04junk"), "not a readable"),
                        (lambda: (run / "run.json").write_text("{garbage"), "run.json is not readable")):
        shutil.rmtree(run)
        shutil.copytree(small_study[0] / "1" / "0" / "baseline", run)
        damage()
        kind, detail = verdict(run, expected)
        assert kind == "corrupt" and why in detail, (why, kind, detail)
