"""The recipe kit: config resolution by task, reports/compare for any metric names, devices, backbone contract."""
import pytest
import torch

from booster.backbone import Backbone, check_backbone, check_identity, identity, resolve_layers
from booster.cli import main
from booster.errors import CheckpointError, ConfigError
from booster.training.cli import packaged_configs, resolve_args, resolve_config, tasks
from booster.training.device import resolve_device
from booster.training.report import Metric, compare_reports, load_report, write_report


def test_config_resolution_by_task(tmp_path, capsys):
    assert "separation" in tasks()
    path, task = resolve_config("separation/htdemucs_boosted")
    assert task == "separation" and path.endswith("separation/htdemucs_boosted.yaml")
    assert resolve_config("recipes/separation/demo.yaml")[1] == "separation"       # old spelling
    path, task = resolve_config("htdemucs_boosted")                               # bare name of one task
    assert task == "separation" and path.endswith("separation/htdemucs_boosted.yaml")
    with pytest.raises(ConfigError, match="several tasks.*mixing/demo.*separation/demo"):  # no default task
        resolve_config("demo")
    for name in packaged_configs():                                              # every packaged name resolves
        assert resolve_config(name)[1] == name.split("/")[0]
    own = tmp_path / "mine.yaml"
    own.write_text("task: separation\ntrainer: {max_steps: 1}\n")
    assert resolve_config(str(own)) == (str(own), "separation")
    plain = tmp_path / "plain.yaml"
    plain.write_text("trainer: {max_steps: 1}\n")
    args, task = resolve_args(["--config", "separation/demo", "--config", str(plain), "--x", "1"])
    assert task == "separation" and args[1].endswith("demo.yaml") and args[3] == str(plain)
    assert resolve_config(str(plain)) == (str(plain), None)
    with pytest.raises(ConfigError, match=r"plain.yaml: which task\? Add `task: <task>` to the YAML or pass "
                                          r"--config <task>/<name>"):
        resolve_args(["--config", str(plain)])                                   # used to mean separation
    with pytest.raises(ConfigError, match="separation/demo"):
        resolve_config("no_such_config")
    other = tmp_path / "other.yaml"
    other.write_text("task: transcription\n")
    with pytest.raises(ConfigError, match="different tasks"):
        resolve_args(["--config", "separation/demo", "--config", str(other)])


NOTE_METRICS = [Metric("note_f1", "mean"), Metric("frame_f1", "median"), Metric("onset_ms", "mean", "ms", False)]


def _items(shift=0.0, names=("a", "b", "c")):
    vals = {"a": (0.5, 0.6, 20.0), "b": (0.7, 0.9, 10.0), "c": (0.9, 0.3, 30.0)}
    return {n: {"all": {"note_f1": vals[n][0] + shift, "frame_f1": vals[n][1] + shift, "onset_ms": vals[n][2]}}
            for n in names}


def test_report_and_compare_for_other_metric_names(tmp_path, capsys):
    ra = write_report(tmp_path / "a", _items(), ["all"], NOTE_METRICS, task="transcription",
                      evaluated={"seconds": 10}, meta={"name": "base"})
    assert ra["summary"]["all"]["note_f1"] == pytest.approx(0.7)         # mean over items
    assert ra["summary"]["all"]["frame_f1"] == pytest.approx(0.6)        # median over items
    assert "mean" not in ra["summary"] and "onset_ms (ms)" in (tmp_path / "a" / "results.md").read_text()
    write_report(tmp_path / "b", _items(0.1), ["all"], NOTE_METRICS, task="transcription",
                 evaluated={"seconds": 10}, meta={"name": "boost"})
    _, diff = compare_reports(load_report(tmp_path / "a"), load_report(tmp_path / "b"))
    assert diff["all"]["note_f1"] == pytest.approx(0.1) and diff["all"]["onset_ms"] == pytest.approx(0.0)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "lower is better for: onset_ms" in capsys.readouterr().out
    # not comparable: other items, other evaluation settings, other task
    write_report(tmp_path / "c", _items(0.1, ("a", "b")), ["all"], NOTE_METRICS, task="transcription",
                 evaluated={"seconds": 10})
    write_report(tmp_path / "d", _items(), ["all"], NOTE_METRICS, task="transcription", evaluated={"seconds": 5})
    write_report(tmp_path / "e", _items(), ["all"], NOTE_METRICS, task="mixing", evaluated={"seconds": 10})
    for run, why in (("c", "items differ"), ("d", "seconds"), ("e", "task")):
        assert main(["compare", str(tmp_path / "a"), str(tmp_path / run)]) == 1
        err = capsys.readouterr().err
        assert "not comparable" in err and why in err and "Traceback" not in err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--force"]) == 0
    assert "warning: not comparable" in capsys.readouterr().out


def test_resolve_device():
    assert resolve_device(None).type in ("cpu", "cuda") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a device name"):
        resolve_device("foo")
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_device(f"cuda:{torch.cuda.device_count() + 3}")


def test_backbone_contract(debug_muq):
    from booster import MuQ
    assert isinstance(debug_muq, Backbone)
    check_backbone(debug_muq)
    with pytest.raises(ConfigError, match="lacks"):
        check_backbone(torch.nn.Linear(2, 2))
    assert resolve_layers(debug_muq, None) == tuple(range(13)) and resolve_layers(debug_muq, "4, 8") == (4, 8)
    for bad in ("x", [13], []):
        with pytest.raises(ConfigError):
            resolve_layers(debug_muq, bad)
    ident = identity(debug_muq)
    assert ident["hidden_size"] == 32 and ident["num_layers"] == 12 and ident["fingerprint"]
    check_identity(ident, debug_muq, what="x")
    with pytest.raises(CheckpointError, match="fingerprint"):
        check_identity(ident, MuQ.debug(seed=1), what="x")
    check_identity(ident, MuQ.debug(seed=1), what="x", allow_other_weights=True)
    with pytest.raises(CheckpointError, match="4 layers"):
        check_identity(ident, MuQ.debug(depth=4), what="x", allow_other_weights=True)


def test_adding_a_host_is_one_plug_in_file(monkeypatch, tmp_path):
    """The README example host (tests/training/example_host.py) registered as booster.adapters.tiny_mask:
    the separation recipe trains it baseline and boosted, saves and reloads it, with nothing else edited."""
    import sys

    import example_host
    from booster.recipes.separation.inference import Separator
    from booster.recipes.separation.module import SeparationModule
    monkeypatch.setitem(sys.modules, "booster.adapters.tiny_mask", example_host)
    mix = 0.1 * torch.randn(2, 2, 44100)
    srcs = torch.stack([mix * 0.3, mix * 0.7], 1)
    for boost in (False, True):
        torch.manual_seed(0)
        m = SeparationModule(host="tiny_mask", sources=["a", "b"], segment=1.0, boost=boost, lr=1e-2).train()
        opt = m.configure_optimizers()
        losses = []
        for _ in range(3):
            loss, _ = m.compute_loss(mix, srcs, m.live_features(mix))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0]
        path = m.separator().save(tmp_path / f"tiny{boost}.safetensors")
        again = Separator.load(path)
        assert again.meta["host"] == {"name": "tiny_mask", "kwargs": example_host.architecture(m.host)}
        torch.testing.assert_close(again.separate_tensor(mix[0]), m.separator().separate_tensor(mix[0]))
