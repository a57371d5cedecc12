"""A MuQ hub id offline (issue 9): a cached copy loads without network; otherwise one short reachability check
and a one-line error at once, suggesting the option of the command that ran (never another command's)."""
import lightning.pytorch  # noqa: F401  (imported first: its log handler keeps pytest's session stream, not a test's)
import numpy as np
import pytest
import soundfile as sf

from booster import MuQ, hub
from booster.cli import main
from booster.errors import CheckpointError
from booster.muq import loading

HUB_ID = "OpenMuQ/MuQ-large-msd-iter"


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    """An empty Hugging Face cache, network allowed by the settings, the download host unreachable; any
    download attempt beyond the cache lookup fails the test."""
    import huggingface_hub
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    checked = []
    monkeypatch.setattr(hub, "reachable", lambda host, *a, **k: checked.append(host) or False)
    real = huggingface_hub.snapshot_download

    def snapshot(*args, **kwargs):
        if not kwargs.get("local_files_only"):
            raise AssertionError(f"a download was attempted: {args}")
        return real(*args, **kwargs)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    return checked


def test_hub_id_offline_fails_at_once_with_the_api_remedy(offline):
    with pytest.raises(CheckpointError) as e:
        MuQ.from_pretrained(HUB_ID)
    msg = str(e.value)
    assert offline == ["huggingface.co"] and "\n" not in msg
    assert "not in the Hugging Face cache" in msg and "huggingface.co cannot be reached" in msg
    assert "MuQ.from_pretrained('DIR')" in msg and "--checkpoint" not in msg and "--model.backbone" not in msg


def test_hub_id_with_hf_hub_offline_set_needs_no_check(offline, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set"):
        MuQ.from_pretrained(HUB_ID)
    assert offline == []


def test_a_cached_hub_copy_loads_without_network(offline, tmp_path, monkeypatch):
    """A copy in the cache (written here in the official layout by the toolkit itself) is found locally."""
    src = tmp_path / "src"
    MuQ.debug().save_pretrained(src)
    monkeypatch.setattr(loading, "_looks_like_hub_id", lambda s: True)
    import huggingface_hub

    def cached(repo_id, **kwargs):
        assert kwargs.get("local_files_only") is True
        return str(src)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached)
    model = MuQ.from_pretrained("someone/muq-copy")
    assert model.hidden_size == MuQ.debug().hidden_size and offline == []


@pytest.mark.parametrize("command,option,other", [("features", "--checkpoint DIR", "--model.backbone"),
                                                  ("fit", "--model.backbone DIR", "--checkpoint")])
def test_cli_names_the_option_of_that_command(offline, tmp_path, capsys, command, option, other):
    if command == "features":
        wav = tmp_path / "a.wav"
        sf.write(wav, np.zeros(24000, dtype="float32"), 24000)
        args = ["features", str(wav), "-o", str(tmp_path / "out"), "--checkpoint", HUB_ID]
    else:
        args = ["fit", "--config", "separation/demo", "--model.boost", "true", "--model.backbone", HUB_ID,
                "--data.root", str(tmp_path / "none"), "--trainer.max_steps", "1",
                "--trainer.default_root_dir", str(tmp_path / "run")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert option in err[0] and other not in err[0] and "cannot be reached" in err[0]
