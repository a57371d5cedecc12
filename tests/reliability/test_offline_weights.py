"""Published host weights offline (issue 9): weights in torch's hub cache load with no network check; missing
weights fail at once, before any download, with one line naming the model, the file, the hub folder and an
option the command really has (``booster separate --model``; ``booster fit --model.pretrained_repo``)."""
import socket
import time

import lightning.pytorch  # noqa: F401  (imported first: its log handler keeps pytest's session stream, not a test's)
import numpy as np
import pytest
import soundfile as sf
import torch

import booster.adapters.htdemucs as ht
from booster import hub as hub_module
from booster.cli import main
from booster.errors import DownloadError

RELEASE = "955717e8-8726e21a.th"   # demucs' file of the published `htdemucs`


@pytest.fixture()
def downloads():
    """Download attempts (demucs catches a failed Hugging Face attempt, so each one is recorded as well)."""
    attempts = []
    yield attempts
    assert attempts == [], f"downloads were attempted: {attempts}"


@pytest.fixture()
def hub(tmp_path, monkeypatch, downloads):
    """An empty torch hub cache of our own, and every download path of demucs / torch.hub turned into a failure."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert torch.hub.get_dir() == str(tmp_path / "torch" / "hub")

    def no_download(*args, **kwargs):
        downloads.append(args)
        raise AssertionError(f"a download was attempted: {args}")

    import demucs.hf
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(demucs.hf, "get_hf_model", no_download)
    return hub_module.hub_checkpoints()


@pytest.fixture()
def offline(monkeypatch):
    """The reachability check answers "unreachable"; records the hosts it was asked about."""
    asked = []
    monkeypatch.setattr(hub_module, "reachable", lambda host, *a, **k: asked.append(host) or False)
    return asked


def song(tmp_path):
    path = tmp_path / "song.wav"
    rng = np.random.default_rng(0)
    sf.write(str(path), (0.1 * rng.standard_normal((44100, 2))).astype(np.float32), 44100)
    return path


def one_line(capsys, command):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "Seed set to" not in line]  # Lightning's log
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith(f"booster {command}: error:"), err
    return lines[0]


def test_separate_offline_fails_at_once_naming_its_own_option(tmp_path, capsys, hub, offline):
    t0 = time.perf_counter()
    code = main(["separate", str(song(tmp_path)), "-o", str(tmp_path / "out"), "--model", "htdemucs",
                 "--device", "cpu", "--no-progress"])
    elapsed = time.perf_counter() - t0
    line = one_line(capsys, "separate")
    assert code == 1 and offline == [ht.DOWNLOAD_HOST] and elapsed < 5, (elapsed, offline)
    assert "'htdemucs'" in line and "unreachable" in line and RELEASE in line and str(hub) in line
    assert "--model a .ckpt" in line and "pretrained_repo" not in line   # separate has no such option
    assert not any((tmp_path / "out").rglob("*.wav"))


def test_fit_offline_names_the_recipe_options(tmp_path, capsys, hub, offline):
    code = main(["fit", "--config", "separation/htdemucs_baseline", "--trainer.default_root_dir", str(tmp_path / "run"),
                 "--data.root", str(tmp_path / "none")])
    line = one_line(capsys, "fit")
    assert code == 1 and offline == [ht.DOWNLOAD_HOST]
    assert RELEASE in line and "--model.pretrained_repo DIR" in line and "--model.pretrained null" in line


def test_fit_openunmix_offline_names_the_recipe_options(tmp_path, capsys, hub, offline):
    code = main(["fit", "--config", "separation/openunmix_baseline", "--model.pretrained", "umxhq",
                 "--trainer.default_root_dir", str(tmp_path / "run"), "--data.root", str(tmp_path / "none")])
    line = one_line(capsys, "fit")
    assert code == 1 and offline == ["zenodo.org"]
    assert "'umxhq'" in line and "unreachable" in line and "--model.pretrained_repo DIR" in line
    assert "--checkpoint" not in line


def test_unknown_demucs_name_needs_no_network(tmp_path, capsys, hub, offline):
    with pytest.raises(Exception, match="demucs publishes no model 'nosuch'"):
        ht.build(pretrained="nosuch", sources=["drums", "bass", "other", "vocals"])
    assert ht.from_published("nosuch") is None and offline == []


def test_cached_release_loads_without_any_network_check(tmp_path, capsys, hub, monkeypatch):
    """A real (debug-size) demucs package under the release's file name in the hub cache: `booster separate
    --model htdemucs` uses it, and never asks whether the network is there."""
    def no_check(*args, **kwargs):
        raise AssertionError("reachability was checked although the weights are cached")

    monkeypatch.setattr(hub_module, "reachable", no_check)
    torch.manual_seed(0)
    model = ht.build(size="debug", sources=["drums", "bass", "other", "vocals"], segment=1.0)
    hub.mkdir(parents=True)
    args, kwargs = model._init_args_kwargs   # demucs' own package layout (what demucs.states.load_model reads)
    torch.save({"klass": type(model), "args": args, "kwargs": kwargs, "state": model.state_dict()}, hub / RELEASE)
    assert ht.missing_files(ht.published_urls("htdemucs")) == []
    loaded = ht.from_published("htdemucs")
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    code = main(["separate", str(song(tmp_path)), "-o", str(tmp_path / "out"), "--model", "htdemucs",
                 "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out" / "song").iterdir()) == [
        "bass.wav", "drums.wav", "other.wav", "vocals.wav"]


def test_reachable_is_one_short_connect():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert hub_module.reachable("127.0.0.1", port, timeout=1.0)
    finally:
        server.close()
    t0 = time.perf_counter()
    assert not hub_module.reachable("127.0.0.1", port, timeout=1.0)   # closed port: refused at once
    assert time.perf_counter() - t0 < 1.5
