"""A user's backbone through the whole booster: a boosted debug HTDemucs equals the plain host at init,
the feature cache keys by the backbone's identity, adapter files round-trip and refuse another module's
weights, ``load_backbone("py:module:function")`` with its one-line errors, and ``booster fit`` with
``--model.backbone py:toy_backbone:make`` (then ``booster separate`` of its checkpoint)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_backbone

import booster
from booster.adapters import htdemucs
from booster.backbone import load_backbone
from booster.cache import FeatureCache
from booster.errors import CheckpointError, ConfigError

sys.path.insert(0, str(Path(__file__).parents[1] / "recipes"))
from recipe_helpers import write_stems  # noqa: E402

SR = 8000


def tiny_host(seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return htdemucs.build(size="debug", sources=["drums", "bass"], sample_rate=SR, channels=2, segment=1.0)


def mix(batch: int = 2, seconds: float = 1.0):
    return torch.randn(batch, 2, int(SR * seconds), generator=torch.Generator().manual_seed(0))


def randomise(b, std: float = 0.2):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in b.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return b


def test_boosted_host_equals_plain_host_at_init(toy):
    b = htdemucs.boost(tiny_host(), toy, layers=[0, 3], encoder=[0])
    assert b.backbone is toy and not any(p.requires_grad for p in toy.parameters())
    x = mix()
    with torch.no_grad():
        torch.manual_seed(0)
        ref = b.host(x)
        torch.manual_seed(0)
        assert torch.equal(b(x), ref)
        randomise(b)        # adapters that are not zero: the toy's features reach the output
        torch.manual_seed(0)
        assert not torch.allclose(b(x), ref, atol=1e-4)
    assert not any(k.startswith("backbone") for k in b.state_dict())


def test_feature_cache_keys_by_the_backbone_identity(toy, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    wav = mix(batch=1)[0]
    first = cache.get_or_compute(toy, wav, SR, [1, 3])
    again = cache.get_or_compute(toy, wav, SR, [1, 3])
    assert (cache.hits, cache.misses) == (1, 1) and torch.equal(again.hidden, first.hidden)
    assert torch.allclose(first.hidden, toy.extract(wav, SR, [1, 3]).hidden, atol=1e-6)
    other = toy_backbone.make(seed=1)          # same architecture, other weights: another entry
    feats = cache.get_or_compute(other, wav, SR, [1, 3])
    assert cache.misses == 2 and not torch.allclose(feats.hidden, first.hidden)
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 2


def test_adapter_files_round_trip_and_refuse_other_weights(toy, tmp_path):
    b = randomise(htdemucs.boost(tiny_host(), toy, layers=[2, 3]))
    st, js = booster.save_adapters(b, tmp_path / "a")
    import json
    meta = json.loads(js.read_text())["backbone"]
    assert meta["name"] == "toy-seed0" and meta["fingerprint"] == toy.fingerprint and meta["hidden_size"] == 16
    again = booster.load_adapters(tiny_host(), toy_backbone.make(seed=0), st)
    x = mix()
    with torch.no_grad():
        torch.manual_seed(0)
        want = b(x)
        torch.manual_seed(0)
        assert torch.equal(again(x), want)
    with pytest.raises(CheckpointError, match="fingerprint"):
        booster.load_adapters(tiny_host(), toy_backbone.make(seed=1), st)
    with pytest.raises(CheckpointError, match="hidden size 16 and 3 layers"):
        booster.load_adapters(tiny_host(), booster.MuQ.debug(), st)
    other = booster.load_adapters(tiny_host(), toy_backbone.make(seed=1), st, allow_other_weights=True)
    with torch.no_grad():
        torch.manual_seed(0)
        assert not torch.equal(other(x), want)   # loaded, and its adapters read the other weights' features


def test_load_backbone_from_a_python_factory():
    bb = load_backbone("py:toy_backbone:make", seed=2)
    assert isinstance(bb, booster.TorchBackbone) and bb.name == "toy-seed2"
    assert not bb.training and not any(p.requires_grad for p in bb.parameters())   # frozen
    assert bb.fingerprint == toy_backbone.make(seed=2).fingerprint


@pytest.mark.parametrize("src, says", [
    ("py:toy_backbone", "expected 'py:package.module:function'"),
    ("py:no_such_module_here:make", "cannot import 'no_such_module_here' (ModuleNotFoundError"),
    ("py:toy_backbone:nothing", "module 'toy_backbone' has no function 'nothing'"),
    ("py:toy_backbone:plain_module", "the factory returned a ToyEncoder, not a backbone: it lacks"),
    ("py:toy_backbone:broken", "the factory raised RuntimeError: no weights in /nowhere"),
])
def test_bad_factory_is_one_line(src, says):
    with pytest.raises(ConfigError) as e:
        load_backbone(src)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"backbone {src!r}: ") and says in msg
    if src.endswith("plain_module"):
        assert "booster.TorchBackbone(module, sample_rate=" in msg


def test_fit_with_a_factory_backbone_then_separate(tmp_path, monkeypatch, capsys):
    from booster.cli import main
    monkeypatch.chdir(tmp_path)
    root = write_stems(tmp_path / "stems", {"train": 1, "valid": 1, "test": 1}, seconds=1.5)
    ckpt_dir = tmp_path / "ckpt"
    args = ["--data.root", str(root), "--data.sources", "[drums, vocals]", "--data.segment", "1.0",
            "--data.valid_segment", "1.0", "--data.batch_size", "1", "--data.num_workers", "0",
            "--data.samples_per_epoch", "2", "--data.test_seconds", "1.0", "--trainer.default_root_dir",
            str(tmp_path), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
            "--model.eval_dir", str(tmp_path / "eval"), "--model.boost", "true",
            "--model.backbone", "py:toy_backbone:make", "--model.feature_cache", str(tmp_path / "cache")]
    assert main(["fit", "--config", "separation/demo", *args, "--trainer.max_steps", "2",
                 "--trainer.limit_val_batches", "1", "--trainer.val_check_interval", "2",
                 "--trainer.callbacks+=ModelCheckpoint", f"--trainer.callbacks.dirpath={ckpt_dir}",
                 "--trainer.callbacks.save_last=true"]) == 0
    ckpt = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    meta = ckpt["booster"]
    assert ckpt["global_step"] == 2 and meta["backbone"] == "py:toy_backbone:make"
    assert meta["backbone_identity"]["fingerprint"] == toy_backbone.make(seed=0).fingerprint
    assert not any(k.startswith("model.backbone") for k in ckpt["state_dict"])
    assert list((tmp_path / "cache").rglob("*.safetensors"))      # validation features cached
    out = tmp_path / "stems_out"
    assert main(["separate", str(root / "test" / "t0" / "drums.wav"), "-o", str(out),
                 "--model", str(ckpt_dir / "last.ckpt"), "--no-progress"]) == 0
    assert (out / "drums" / "vocals.wav").is_file()


def test_features_command_with_a_factory_backbone(tmp_path, capsys):
    """`booster features --checkpoint py:...` writes the toy's features of a file, read at its 16 kHz."""
    import soundfile as sf

    from booster.cache import load_features
    from booster.cli import main
    wav = torch.randn(2, 44100, generator=torch.Generator().manual_seed(3)) * 0.1
    sf.write(tmp_path / "a.wav", wav.T.numpy(), 44100, subtype="FLOAT")
    assert main(["features", str(tmp_path / "a.wav"), "-o", str(tmp_path / "f"), "--checkpoint",
                 "py:toy_backbone:make", "--layers", "1,3", "--no-progress"]) == 0
    feats, meta = load_features(tmp_path / "f" / "a.safetensors")
    toy = toy_backbone.make(seed=0)
    assert meta["backbone"]["fingerprint"] == toy.fingerprint and feats.layers == (1, 3)
    assert torch.allclose(feats.hidden, toy.extract(wav, 44100, [1, 3]).hidden, atol=1e-5)


def test_a_backbone_with_only_the_contract_takes_no_muq_options(tmp_path):
    """extract(wav, sample_rate, layers) and nothing else: MuQ's options (window, precision) are not forced on it
    by the shared paths (features command, cache, extract_file)."""
    import soundfile as sf

    from booster.backbone import backbone_features, extract_file
    from booster.features import Features

    class Minimal:
        sample_rate, frame_rate, hidden_size, num_layers = 16000, 25.0, 4, 1
        identity = {"name": "minimal", "architecture": {}, "fingerprint": "0"}

        def extract(self, wav, sample_rate, layers=None):
            t = wav.shape[-1] * 25 // sample_rate
            return Features(torch.zeros(1, 2, t, 4), (0, 1), 25.0)

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    for feats in (extract_file(Minimal(), path, None, 16000, window=30.0, overlap=5.0, precision="fp32"),
                  backbone_features(Minimal(), torch.zeros(16000), 16000, None, precision="fp32", window=30.0)):
        assert feats.hidden.shape == (1, 2, 25, 4)
