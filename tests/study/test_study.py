"""``booster study``: per-run configs, resume rules, and a tiny real study (2 fractions x 1 seed) per task."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from booster.cli import main
from booster.errors import ConfigError
from booster.training import study
from booster.training.cli import packaged_configs

# Every task with a demo config runs a tiny study here (test_every_demo_task_is_studied keeps this complete).
TASK_OVERRIDES = {
    # two mono sources: museval's BSSEval solves a (sources x channels x 512)^2 system per window
    "separation": ["--data.generate", "{splits: {train: 4, valid: 1, test: 1}, seconds: 2, seed: 0}",
                   "--data.sources", "[drums, bass]", "--data.channels", "1", "--data.segment", "0.5", "--data.valid_segment", "1.0", "--data.samples_per_epoch", "4",
                   "--data.batch_size", "2", "--data.test_seconds", "1", "--trainer.limit_val_batches", "0",
                   "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1"],
    "transcription": ["--data.generate", "{splits: {train: 4, valid: 1, test: 1}, seconds: 2, seed: 0}",
                      "--data.segment", "1.0", "--data.samples_per_epoch", "4", "--data.batch_size", "2",
                      "--data.test_seconds", "1", "--trainer.limit_val_batches", "0",
                      "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1"],
    "mixing": ["--data.generate", "{splits: {train: 4, valid: 1, test: 1}, seconds: 2, seed: 0}",
               "--data.segment", "0.5", "--data.valid_segment", "1.0", "--data.samples_per_epoch", "4",
               "--data.batch_size", "2", "--data.test_seconds", "1", "--trainer.limit_val_batches", "0",
               "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1"],
}


def _settings(tmp_path, **kw):
    base = dict(config="separation/demo", fractions=[1.0, 0.5], seeds=[0], out=tmp_path / "study", budget_steps=3)
    base.update(kw)
    return study.StudySettings(**base)


def test_settings_are_checked(tmp_path):
    s = _settings(tmp_path)
    assert s.fractions == [0.5, 1.0]
    for bad in (dict(fractions=[0.0]), dict(fractions=[1.5]), dict(seeds=[]), dict(seeds=[1, 1]),
                dict(budget_minutes=2.0), dict(budget_steps=0), dict(device="tpu"), dict(device="cuda:x"),
                dict(confidence=1.0)):
        with pytest.raises(ConfigError):
            _settings(tmp_path, **bad)
    with pytest.raises(ConfigError, match="set by the study"):
        study.check_overrides(["--data.fraction", "0.3"])
    with pytest.raises(ConfigError, match="set by the study"):
        study.check_overrides(["--model.boost=true"])
    study.check_overrides(["--model.backbone", "muq-mini"])


def test_plan_pairs_every_fraction_and_seed(tmp_path):
    runs = study.plan(_settings(tmp_path, seeds=[0, 1]))
    assert [(r.seed, r.fraction, r.variant) for r in runs] == [
        (0, 0.5, "baseline"), (0, 0.5, "boosted"), (0, 1.0, "baseline"), (0, 1.0, "boosted"),
        (1, 0.5, "baseline"), (1, 0.5, "boosted"), (1, 1.0, "baseline"), (1, 1.0, "boosted")]
    assert runs[5].folder == tmp_path / "study" / "0.5" / "1" / "boosted"


def test_run_config_sets_variant_subset_seed_budget(tmp_path):
    base = {"trainer": {"max_steps": 200, "strategy": "ddp", "callbacks": [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"dirpath": "runs/x", "monitor": "v"}}]},
        "model": {"host": "htdemucs", "boost": False}, "data": {"class_path": "my.Data", "init_args": {"root": "d"}}}
    s = _settings(tmp_path, budget_steps=7)
    run = study.Run(0.5, 3, "boosted", tmp_path / "r")
    cfg = study.run_config(base, "separation", s, run)
    assert base["trainer"]["max_steps"] == 200  # the base config is not modified
    assert cfg["task"] == "separation" and cfg["seed_everything"] == 3
    t = cfg["trainer"]
    assert t["max_steps"] == 7 and t["default_root_dir"] == str(run.folder) and "strategy" not in t
    assert t["accelerator"] == "auto" and t["devices"] == 1 and t["num_sanity_val_steps"] == 0
    assert t["callbacks"][0]["init_args"] == {"dirpath": str(run.folder / "checkpoints"), "monitor": "v"}
    assert cfg["model"]["boost"] is True and cfg["model"]["eval_dir"] == str(run.folder)
    assert cfg["model"]["feature_cache"] == str(tmp_path / "study" / "feature_cache")
    assert cfg["data"]["init_args"] == {"root": "d", "fraction": 0.5, "seed": 3}
    s = _settings(tmp_path, budget_steps=None, budget_minutes=62.5, device="cpu")
    cfg = study.run_config({}, "separation", s, study.Run(1.0, 0, "baseline", tmp_path / "r"))
    t = cfg["trainer"]
    assert t["max_time"] == "00:01:02:30" and t["max_steps"] == -1 and t["accelerator"] == "cpu"
    assert t["callbacks"][0]["class_path"].endswith("ModelCheckpoint")  # added: a last.ckpt per run
    assert cfg["model"]["boost"] is False and cfg["data"] == {"fraction": 1.0, "seed": 0}
    cfg = study.run_config({}, "separation", _settings(tmp_path, device="cuda:1"), study.Run(1.0, 0, "baseline", tmp_path))
    assert cfg["trainer"]["accelerator"] == "gpu" and cfg["trainer"]["devices"] == [1]


def test_flat_metrics():
    report = {"summary": {"drums": {"SDR": 1.0, "gSDR": None}, "bass": {"SDR": 3.0, "gSDR": 2.0},
                          "mean": {"SDR": 2.0, "gSDR": 2.0}}}
    assert study.flat_metrics(report) == {"SDR": 2.0, "gSDR": 2.0, "drums/SDR": 1.0, "drums/gSDR": None,
                                          "bass/SDR": 3.0, "bass/gSDR": 2.0}
    assert study.flat_metrics({"summary": {"all": {"note_f1": 0.5}}}) == {"note_f1": 0.5}


def test_every_demo_task_is_studied():
    demos = {c.split("/")[0] for c in packaged_configs() if c.endswith("/demo")}
    assert demos == set(TASK_OVERRIDES), f"tasks with a demo config: {sorted(demos)}"


def _run_tiny(task, out, data, fractions="0.5,1.0", steps=1, extra=()):
    args = ["study", "--config", f"{task}/demo", "--fractions", fractions, "--seeds", "1",
            "--budget-steps", str(steps), "-o", str(out), "--device", "cpu", *extra,
            "--data.root", str(data), *TASK_OVERRIDES[task]]
    assert main(args) == 0


@pytest.fixture(scope="module")
def tiny_studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    return root, {}


def _tiny(tiny_studies, task):
    root, done = tiny_studies
    if task not in done:
        _run_tiny(task, root / task / "study", root / task / "data")
        done[task] = root / task / "study"
    return done[task]


@pytest.mark.parametrize("task", sorted(TASK_OVERRIDES))
def test_tiny_study_writes_three_files(tiny_studies, task):
    out = _tiny(tiny_studies, task)
    data = json.loads((out / "study.json").read_text())
    assert data["task"] == task and data["complete"] is True
    assert sorted((r["fraction"], r["variant"]) for r in data["runs"]) == [
        (0.5, "baseline"), (0.5, "boosted"), (1.0, "baseline"), (1.0, "boosted")]
    head = data["headline"]
    for r in data["runs"]:
        assert r["steps"] == 1 and r["device"] == "cpu"
        assert isinstance(r["metrics"].get(head), float)
        folder = Path(r["folder"])
        assert (folder / "results.json").is_file() and list((folder / "logs").rglob("metrics.csv"))
        assert yaml.safe_load((folder / "config.yaml").read_text())["model"]["boost"] == (r["variant"] == "boosted")
    rows = data["table"][head]
    assert [row["fraction"] for row in rows] == [0.5, 1.0]
    assert all(row["difference"]["n"] == 1 and row["difference"]["ci"] is None for row in rows)
    md = (out / "study.md").read_text()
    assert f"#### {head} (" in md and "one seed: no interval" in md
    import matplotlib.image as mpimg
    assert mpimg.imread(str(out / "study.png")).shape[0] > 100
    # the runs' curves plot too
    assert main(["plot", str(out), "-o", str(out / "curves.png")]) == 0


def test_parallel_jobs_give_the_sequential_results(tiny_studies, tmp_path):
    """``--jobs 2``: the data made on first use is made once before the workers start (fresh data root), the
    runs train in two processes, and study.json lists the same runs in the same order with the same numbers."""
    seq = json.loads((_tiny(tiny_studies, "separation") / "study.json").read_text())
    out, lines, at_first_finish = tmp_path / "study", [], []

    def say(line):
        lines.append(line)
        if "steps in" in line and not at_first_finish:  # a run is recorded as soon as it ends, not at the end
            at_first_finish.append(sum(1 for p in out.rglob("results.json")))
    settings = study.StudySettings(config="separation/demo", fractions=[0.5, 1.0], seeds=[0], out=out,
                                   budget_steps=1, device="cpu", jobs=2,
                                   overrides=["--data.root", str(tmp_path / "data"), *TASK_OVERRIDES["separation"]])
    study.run_study(settings, say=say)
    assert any("4 runs in 2 parallel processes" in line for line in lines)
    assert at_first_finish and at_first_finish[0] < 4
    par = json.loads((out / "study.json").read_text())
    key = lambda r: (r["fraction"], r["variant"])  # noqa: E731
    assert [key(r) for r in par["runs"]] == [key(r) for r in seq["runs"]]
    for a, b in zip(seq["runs"], par["runs"]):
        assert a["steps"] == b["steps"] and set(a["metrics"]) == set(b["metrics"])
        for m, v in a["metrics"].items():
            assert (v is None and b["metrics"][m] is None) or b["metrics"][m] == pytest.approx(v, rel=1e-4, abs=1e-4)
    with pytest.raises(ConfigError, match="--jobs"):
        _settings(tmp_path, jobs=0)


def test_resume_keeps_finished_runs_and_redoes_the_others(tiny_studies, tmp_path, capsys):
    src = _tiny(tiny_studies, "separation")
    out = tmp_path / "study"
    shutil.copytree(src, out)
    killed = out / "0.5" / "0" / "boosted"      # killed half-way: status running, no results
    state = json.loads((killed / "run.json").read_text())
    state["status"] = "running"
    (killed / "run.json").write_text(json.dumps(state))
    (killed / "results.json").unlink()
    other = out / "1" / "0" / "baseline"        # trained with other settings
    state = json.loads((other / "run.json").read_text())
    state["settings"]["budget_steps"] = 99
    (other / "run.json").write_text(json.dumps(state))
    kept = [out / "0.5" / "0" / "baseline" / "run.json", out / "1" / "0" / "boosted" / "run.json"]
    before = [p.stat().st_mtime_ns for p in kept]
    capsys.readouterr()
    _run_tiny("separation", out, src.parent / "data", extra=["--force"])  # other settings: redone on --force only
    said = capsys.readouterr().out
    assert said.count("done before, kept") == 2 and said.count("run again") == 2
    assert [p.stat().st_mtime_ns for p in kept] == before
    for folder in (killed, other):
        state = json.loads((folder / "run.json").read_text())
        assert state["status"] == "done" and state["settings"]["budget_steps"] == 1
    data = json.loads((out / "study.json").read_text())
    assert len(data["runs"]) == 4 and all(r["folder"].startswith(str(out)) for r in data["runs"])


def test_foreign_folder_is_not_deleted(tmp_path):
    s = _settings(tmp_path, fractions=[1.0])
    foreign = s.out / "1" / "0" / "baseline"
    foreign.mkdir(parents=True)
    (foreign / "precious.txt").write_text("x")
    with pytest.raises(ConfigError, match="is not a study run"):
        study.run_study(s, say=lambda *a: None)
    assert (foreign / "precious.txt").is_file()


def test_cli_errors(tmp_path, capsys):
    assert main(["study", "--config", "separation/nope", "-o", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["study", "--config", "separation/demo", "--fractions", "a,b", "-o", str(tmp_path)]) == 1
    assert "--fractions" in capsys.readouterr().err
    assert main(["study", "--config", "separation/demo", "--seeds", "0", "-o", str(tmp_path)]) == 1
    assert main(["study", "--config", "separation/demo", "-o", str(tmp_path), "--data.fraction", "0.2"]) == 1
    assert "set by the study" in capsys.readouterr().err


def test_missing_gpu_is_a_one_line_error(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        assert main(["study", "--config", "separation/demo", "--device", "cuda:99", "-o", str(tmp_path)]) == 1
    else:
        assert main(["study", "--config", "separation/demo", "--device", "cuda", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("booster study: error: --device") and "\n" not in err
    assert not (tmp_path / "study.json").exists()


def test_parallel_devices_one_gpu_per_concurrent_run(monkeypatch):
    import torch

    from booster.training.device import parallel_devices
    assert parallel_devices("cpu", 4) == [None]
    assert parallel_devices("auto", 1) == [None]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no GPU here: pretend two
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parallel_devices("cuda", 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert parallel_devices("cuda:1", 3) == [None]  # an explicit GPU: every run there
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert parallel_devices("auto", 2) == [None]
