"""MuQ.from_pretrained: official layout, key checks, wrong sizes, registry, hub ids offline."""
import json
import shutil

import pytest
import torch

from booster import MuQ
from booster.errors import CheckpointError
from booster.muq.registry import CheckpointEntry, entries, lookup, verify_files
from official_layout import official_state_dict, reduced_config, write_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    cfg = reduced_config(depth=2, dim=32, heads=2, ffn=64)
    sd = official_state_dict(cfg, seed=0)
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "muq", cfg, sd), cfg, sd


def copy(ckpt, tmp_path):
    return shutil.copytree(ckpt[0], tmp_path / "copy")


def test_roundtrip_save_pretrained(ckpt, tmp_path):
    a = MuQ.from_pretrained(ckpt[0])
    a.save_pretrained(tmp_path / "saved")
    b = MuQ.from_pretrained(tmp_path / "saved")
    wav = torch.randn(1, 30000) * 0.1
    assert torch.equal(a(wav).last_hidden_state, b(wav).last_hidden_state)
    assert a.fingerprint == b.fingerprint
    assert MuQ.debug(seed=1).fingerprint != MuQ.debug(seed=2).fingerprint


def test_missing_config(ckpt, tmp_path):
    d = copy(ckpt, tmp_path)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        MuQ.from_pretrained(d)


def test_missing_weights(ckpt, tmp_path):
    d = copy(ckpt, tmp_path)
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights file"):
        MuQ.from_pretrained(d)


def test_wrong_size_weights(ckpt, tmp_path):
    d = copy(ckpt, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["encoder_dim"] = 64  # config claims a bigger model than the weights hold
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"wrong size.*model\.conformer\..*has shape"):
        MuQ.from_pretrained(d)


def test_unexpected_and_missing_keys_are_named(ckpt, tmp_path):
    _, cfg, sd = ckpt
    bad = dict(sd)
    bad["model.conformer.layers.0.ffn1.intermediate_dense.weightt"] = bad.pop(
        "model.conformer.layers.0.ffn1.intermediate_dense.weight")
    d = write_checkpoint(tmp_path / "bad", cfg, bad)
    with pytest.raises(CheckpointError) as e:
        MuQ.from_pretrained(d)
    msg = str(e.value)
    assert "unexpected key" in msg and "intermediate_dense.weightt" in msg and "did you mean" in msg
    assert "missing key" in msg and "'model.conformer.layers.0.ffn1.intermediate_dense.weight'" in msg


def test_corrupt_weights_file(ckpt, tmp_path):
    d = copy(ckpt, tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read weights"):
        MuQ.from_pretrained(d)


def test_pickled_objects_are_refused(ckpt, tmp_path):
    _, cfg, sd = ckpt
    d = write_checkpoint(tmp_path / "pickle", cfg, {}, fmt="bin")
    torch.save({"model": torch.nn.Linear(2, 2)}, d / "pytorch_model.bin")  # a pickled module
    with pytest.raises(CheckpointError, match="cannot read weights"):
        MuQ.from_pretrained(d)


def test_nan_weights(ckpt, tmp_path):
    _, cfg, sd = ckpt
    bad = dict(sd)
    bad["model.conv.linear.weight"] = torch.full_like(sd["model.conv.linear.weight"], float("nan"))
    with pytest.raises(CheckpointError, match="NaN"):
        MuQ.from_pretrained(write_checkpoint(tmp_path / "nan", cfg, bad))


def test_invalid_config(ckpt, tmp_path):
    d = copy(ckpt, tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        MuQ.from_pretrained(d)
    cfg = json.loads((ckpt[0] / "config.json").read_text())
    cfg["w2v2_config"]["position_embeddings_type"] = "relative"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="rotary"):
        MuQ.from_pretrained(d)


def test_hub_id_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError) as e:
        MuQ.from_pretrained("OpenMuQ/MuQ-large-msd-iter", cache_dir=str(tmp_path / "hf"))
    assert "OpenMuQ/MuQ-large-msd-iter" in str(e.value) and "HF_HUB_OFFLINE is set" in str(e.value)
    assert "MuQ.from_pretrained('DIR')" in str(e.value)  # the API's way; commands name their own option


def test_nonexistent_path():
    with pytest.raises(CheckpointError, match="neither an existing directory nor a hub id"):
        MuQ.from_pretrained("/no/such/dir/anywhere")


def test_registry_entry_and_checks(ckpt, tmp_path):
    entry = lookup("OpenMuQ/MuQ-large-msd-iter")
    assert entry is not None and "CC-BY-NC" in entry.licence and "model.safetensors" in entry.files
    assert entry.architecture["encoder_dim"] == 1024 and entry.architecture["encoder_depth"] == 12
    from booster.muq.config import MuQConfig
    entry.check_architecture(MuQConfig.large(), "config.json")  # the real architecture passes
    with pytest.raises(CheckpointError, match="encoder_dim: expected 1024, found 32"):
        entry.check_architecture(ckpt[1], "config.json")
    fake = CheckpointEntry("x/y", ("model.safetensors",), {"model.safetensors": "0" * 64}, {}, "none")
    with pytest.raises(CheckpointError, match="sha256"):
        verify_files(fake, ckpt[0])
    assert list(entries()) == ["OpenMuQ/MuQ-large-msd-iter", "muq-mini"]
    assert entries()["OpenMuQ/MuQ-large-msd-iter"].local is None  # hub checkpoints are never shipped
