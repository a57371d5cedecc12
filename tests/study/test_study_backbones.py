"""`booster study --backbones` (issue 20, item 3): per fraction and seed the plain host once and the host boosted
by each backbone; one table row per fraction and backbone with a paired interval over seeds; adding a backbone to
a finished study reuses its runs; a backbone that does not load is one line with nothing written."""
import json
import math
import shutil
from pathlib import Path

import lightning.pytorch  # noqa: F401  (imported first: its log handler keeps pytest's session stream)
import pytest

from booster.cli import main
from booster.errors import ConfigError
from booster.training import study
from booster.training.study_runs import parse_backbones

from test_study import TASK_OVERRIDES
from cli_helpers import one_line_error


def study_args(out, data, backbones, fractions="0.5,1.0", seeds="2", *extra):
    return ["study", "--config", "separation/demo", "--fractions", fractions, "--seeds", seeds, "--budget-steps",
            "2", "-o", str(out), "--device", "cpu", "--backbones", backbones, *extra, "--data.root", str(data),
            *TASK_OVERRIDES["separation"], "--model.eval_bsseval", "false"]


def one_line(capsys, *words):
    return one_line_error(capsys, "study", *words)


def test_backbone_values_labels_and_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "my teacher (v2)"
    local.mkdir()
    specs = parse_backbones(f"debug, debug@1,muq-mini,OpenMuQ/MuQ-large-msd-iter,{local.name}")
    assert [(s.source, s.seed) for s in specs] == [("debug", 0), ("debug", 1), ("muq-mini", 0),
                                                   ("OpenMuQ/MuQ-large-msd-iter", 0), (str(local), 0)]
    labels = [s.label for s in specs]
    assert labels[:3] == ["debug", "debug@1", "muq-mini"]
    assert labels[3].startswith("MuQ-large-msd-iter-") and labels[4].startswith("my_teacher_v2-")
    assert len(set(labels)) == 5 and all("/" not in x and " " not in x for x in labels)
    for bad in ("debug,debug@0", ",", f"{local.name},{local}"):
        with pytest.raises(ConfigError, match="--backbones"):
            parse_backbones(bad)
    s = study.StudySettings(config="separation/demo", fractions=[1.0], seeds=[0, 1], out=tmp_path / "st",
                            backbones="debug,debug@1")
    runs = study.plan(s)
    assert [r.folder.relative_to(tmp_path / "st").as_posix() for r in runs[:3]] == [
        "1/0/baseline", "1/0/boosted-debug", "1/0/boosted-debug@1"] and len(runs) == 6
    cfg = study.run_config({"model": {"backbone": "muq-mini"}}, "separation", s, runs[2])
    assert cfg["model"]["backbone"] == "debug" and cfg["model"]["backbone_seed"] == 1 and cfg["model"]["boost"]
    plain = study.StudySettings(config="separation/demo", fractions=[1.0], seeds=[0, 1], out=tmp_path / "st")
    # the baseline is the same run with or without backbones: a study can grow into a comparison
    assert study.run_settings(s, runs[0], "separation", "x") == study.run_settings(plain, study.plan(plain)[0],
                                                                                  "separation", "x")
    assert study.run_settings(s, runs[2], "separation", "x")["backbone_seed"] == 1
    with pytest.raises(ConfigError, match="set per run by --backbones"):
        study.check_overrides(["--model.backbone", "muq-mini"], backbones=True)


@pytest.fixture(scope="module")
def one_backbone(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    assert main(study_args(root / "study", root / "data", "debug")) == 0
    return root / "study", root / "data"


def test_adding_a_backbone_reuses_the_finished_runs(one_backbone, tmp_path, capsys):
    out = tmp_path / "study"
    shutil.copytree(one_backbone[0], out)
    finished = {p: p.stat().st_mtime_ns for p in out.rglob("run.json")}
    assert len(finished) == 8
    capsys.readouterr()
    assert main(study_args(out, one_backbone[1], "debug,debug@1")) == 0
    said = capsys.readouterr().out
    assert said.count("done before, kept") == 8 and said.count("boosted by debug@1: 2 steps") == 4
    assert "reused 8 finished run(s) (baseline 4, debug 4); running 4: debug@1 4" in said
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    state = json.loads((out / "1" / "1" / "boosted-debug@1" / "run.json").read_text())
    assert state["settings"]["backbone"] == "debug" and state["settings"]["backbone_seed"] == 1
    assert state["backbone"] == "debug@1" and state["settings"]["backbone_fingerprint"]
    data = json.loads((out / "study.json").read_text())
    assert [b["label"] for b in data["settings"]["backbones"]] == ["debug", "debug@1"]
    assert len(data["runs"]) == 12 and sum(r["backbone"] == "debug@1" for r in data["runs"]) == 4
    rows = data["table"][data["headline"]]
    assert [(r["fraction"], r["backbone"]) for r in rows] == [(0.5, "debug"), (0.5, "debug@1"),
                                                              (1.0, "debug"), (1.0, "debug@1")]
    for r in rows:
        d = r["difference"]
        assert d["n"] == 2 and r["seeds"] == [0, 1]
        assert d["ci"] is not None and all(math.isfinite(v) for v in d["ci"]) and d["ci"][0] <= d["mean"] <= d["ci"][1]
    base = {r["fraction"]: r["baseline"]["mean"] for r in rows}   # one baseline per fraction, shared
    assert all(r["baseline"]["mean"] == base[r["fraction"]] for r in rows)
    md = (out / "study.md").read_text()
    assert "| fraction | backbone | seeds |" in md and "| 0.5 | debug@1 | 2 |" in md and "one seed" not in md
    import matplotlib.image as mpimg
    assert mpimg.imread(str(out / "study.png")).shape[0] > 100


def test_a_bad_backbone_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    out, data = tmp_path / "study", tmp_path / "data"
    for bad, words in (("debug,nosuch", ("'nosuch'", "does not load")),
                       ("debug,empty", ("'empty'", "config.json")),
                       ("debug,debug@0", ("twice",))):
        capsys.readouterr()
        assert main(study_args(out, data, bad)) == 1
        one_line(capsys, "--backbones", *words)
    assert main(study_args(out, data, "debug", "1.0", "1", "--model.backbone", "muq-mini")) == 1
    one_line(capsys, "--model.backbone", "--backbones")
    assert not out.exists() and not data.exists() and not (tmp_path / "runs").exists()


def test_a_local_backbone_whose_weights_changed_is_other_settings(tmp_path, capsys):
    from booster.muq import MuQ
    teacher = tmp_path / "my teacher"
    MuQ.debug(0).save_pretrained(teacher)
    out, data = tmp_path / "study", tmp_path / "data"
    assert main(study_args(out, data, str(teacher), "1.0", "1")) == 0
    folder = next((out / "1" / "0").glob("boosted-my_teacher-*"))
    assert json.loads((folder / "run.json").read_text())["settings"]["backbone"] == str(teacher.resolve())
    MuQ.debug(3).save_pretrained(teacher)   # same path, other weights
    capsys.readouterr()
    assert main(study_args(out, data, str(teacher), "1.0", "1")) == 1
    one_line(capsys, "other settings", "the backbone's weights (fingerprint)", "--force")
    assert main(study_args(out, data, str(teacher), "1.0", "1", "--force")) == 0
    said = capsys.readouterr().out
    assert "baseline: done before, kept" in said and said.count("run again") == 1
    assert len(list(folder.parent.glob(folder.name + ".old-*"))) == 1
