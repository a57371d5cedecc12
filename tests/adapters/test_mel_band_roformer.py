"""Mel-Band-RoFormer host plug-in: zero-init identity, features reach the host, adapter files, the package's
loss, both layouts, LoRA targets; baseline and boosted recipes fit a few steps and separate a file; a kit
separator file as --model.pretrained. Shapes: [B, C, S] in, [B, N, C, S] out."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import booster
from booster.adapters import mel_band_roformer as mbr
from booster.errors import CheckpointError, ConfigError
from booster.training.hosts import build_host, host_from_spec

SOURCES = ["drums", "vocals"]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))   # recipe_helpers (write_stems)


@pytest.fixture(scope="module")
def stems_root(tmp_path_factory) -> Path:
    from recipe_helpers import write_stems
    return write_stems(tmp_path_factory.mktemp("stems"), {"train": 2, "valid": 1, "test": 1})


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def tiny(seed=0, channels=2, **overrides):
    torch.manual_seed(seed)
    return mbr.build(size="debug", sources=SOURCES, sample_rate=8000, channels=channels, overrides=overrides)


def audio(seconds=1.0, batch=2, channels=2):
    return 0.1 * torch.randn(batch, channels, int(8000 * seconds), generator=torch.Generator().manual_seed(0))


def randomise(b, std=0.3):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in b.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return b


@pytest.mark.parametrize("layout", ["pypi", "msst"])
def test_identity_at_init_then_features_arrive(debug_muq, layout):
    b = mbr.boost(tiny(layout=layout), debug_muq, layers=[4, 12]).train()
    assert [(s.path, s.layout) for s in b.sites] == [("band_split", "B T F C")]
    x = audio(1.03)                                    # not a multiple of the STFT hop
    out = b(x)
    assert out.shape == (2, 2, 2, x.shape[-1])
    assert torch.equal(out, b.host(x))                 # zero-initialised adapters: exactly the host
    randomise(b)
    assert not torch.allclose(b(x), b.host(x), atol=1e-5)


def test_round_trip_and_mismatches(tmp_path, debug_muq):
    b = randomise(mbr.boost(tiny(), debug_muq, layers=[12], fusion="film")).eval()
    booster.save_adapters(b, tmp_path / "mbr")
    fresh = tiny(seed=3).eval()
    fresh.load_state_dict(b.host.state_dict())
    again = booster.load_adapters(fresh, debug_muq, tmp_path / "mbr")
    x = audio(0.6, batch=1)
    with torch.no_grad():
        assert torch.equal(again(x), b(x))
    with pytest.raises(CheckpointError, match="24 channels here"):
        booster.load_adapters(tiny(dim=24), debug_muq, tmp_path / "mbr")
    with pytest.raises(CheckpointError, match="MelRoformerSeparator"):
        booster.load_adapters(torch.nn.Linear(2, 2), debug_muq, tmp_path / "mbr")


def test_loss_is_the_packages_own_per_source():
    m = tiny()
    mix, src = audio(), 0.1 * torch.randn(2, 2, 2, 8000)
    per = mbr.loss(m, mix, src)
    assert per.shape == (2,)
    torch.testing.assert_close(per.mean(), m(mix, target=src), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["pypi", "msst"])
def test_spec_round_trip_mono_weights_and_errors(tmp_path, layout):
    m, spec = build_host("mel_band_roformer", size="debug", sources=SOURCES, sample_rate=8000, channels=1,
                         overrides={"layout": layout})
    rebuilt = host_from_spec(json.loads(json.dumps(spec.to_dict())))
    assert type(rebuilt) is type(m) and rebuilt.state_dict().keys() == m.state_dict().keys()
    assert m(audio(0.5, channels=1)).shape == (2, 2, 1, 4000)
    torch.save(m.state_dict(), tmp_path / "w.ckpt")
    loaded, _ = build_host("mel_band_roformer", size="debug", sources=SOURCES, sample_rate=8000, channels=1,
                           pretrained=str(tmp_path / "w.ckpt"), overrides={"layout": layout})
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), m.state_dict().values()))
    with pytest.raises(CheckpointError, match="does not match"):
        build_host("mel_band_roformer", size="debug", sources=SOURCES, sample_rate=8000, channels=1,
                   pretrained=str(tmp_path / "w.ckpt"), overrides={"layout": layout, "dim": 24})
    with pytest.raises(ConfigError, match="mono or stereo"):
        build_host("mel_band_roformer", size="debug", sources=SOURCES, channels=3, overrides={"layout": layout})


def test_the_two_layouts_name_their_weights_differently():
    pypi, msst = tiny(), tiny(layout="msst")
    assert set(pypi.state_dict()) != set(msst.state_dict())
    assert "layers.0.0.layers.0.0.to_gates.weight" in msst.state_dict()       # MSST: [time, freq] per block


@pytest.mark.parametrize("plugin", ["bs_roformer", "mel_band_roformer"])
@pytest.mark.parametrize("layout", ["pypi", "msst"])
def test_lora_targets_are_the_transformer_projections(plugin, layout):
    from booster.plugins import load_plugin
    p = load_plugin(plugin)
    m = p.build(size="debug", sources=SOURCES, sample_rate=8000, overrides={"layout": layout})
    names = p.lora_targets(m)
    modules = dict(m.named_modules())
    assert names and all(isinstance(modules[n], torch.nn.Linear) for n in names)
    kinds = {n.split(".")[-2] if n.split(".")[-1].isdigit() else n.split(".")[-1] for n in names}
    assert {"to_qkv", "to_out", "net"} <= kinds
    assert not any("to_gates" in n or "band_split" in n or "mask_estimators" in n for n in names)
    depth = p.DEBUG["time_transformer_depth"] + p.DEBUG["freq_transformer_depth"]
    assert len(names) == 4 * depth * p.DEBUG["depth"]     # q/k/v, out, two feed-forward maps per layer


@pytest.mark.parametrize("boost", [False, True])
def test_recipe_fits_and_separates_a_file(boost, stems_root, tmp_path):
    import lightning as L
    from recipe_helpers import trainer_kwargs

    from booster.cli import main
    from booster.recipes.separation.data import StemsDataModule
    from booster.recipes.separation.module import SeparationModule
    torch.manual_seed(0)
    m = SeparationModule(host="mel_band_roformer", sources=SOURCES, segment=1.0, size="debug", boost=boost)
    dm = StemsDataModule(str(stems_root), sources=SOURCES, segment=1.0, samples_per_epoch=4, batch_size=2)
    before = {k: v.clone() for k, v in m.model.state_dict().items()}
    L.Trainer(**trainer_kwargs(tmp_path, max_steps=2, limit_val_batches=1)).fit(m, dm)
    assert any(not torch.equal(before[k], v) for k, v in m.model.state_dict().items())
    model_file = m.separator().save(tmp_path / "mbr.safetensors")
    assert main(["separate", str(stems_root / "test" / "t0" / "drums.wav"), "-o", str(tmp_path / "out"),
                 "--model", str(model_file), "--no-progress", "--device", "cpu"]) == 0
    for s in SOURCES:
        data, rate = sf.read(tmp_path / "out" / "drums" / f"{s}.wav")
        assert rate == 44100 and data.shape == (2 * 44100, 2) and np.isfinite(data).all()


def test_a_separator_file_as_pretrained_builds_its_recorded_host(tmp_path):
    """--model.pretrained host.safetensors (e.g. from `booster convert msst`): the file's architecture (here
    MSST's layout, a size no preset has) with its weights exactly; a file for other sources is one line."""
    from booster.recipes.separation.module import SeparationModule
    from booster.training.checkpoint import describe, save_model
    from booster.training.hosts import HostSpec
    src = tiny(seed=5, layout="msst", dim=24, num_bands=12)
    spec = HostSpec("mel_band_roformer", mbr.architecture(src))
    path = save_model(tmp_path / "host.safetensors", src,
                      describe("separation", spec, src, sources=SOURCES, sample_rate=8000, channels=2, segment=1.0))
    m = SeparationModule(host="mel_band_roformer", sources=SOURCES, sample_rate=8000, segment=1.0,
                         pretrained=str(path), boost=False)
    assert type(m.model) is mbr.MSSTMelRoformerSeparator
    assert all(torch.equal(a, b) for a, b in zip(m.model.state_dict().values(), src.state_dict().values()))
    with pytest.raises(ConfigError, match="sources"):
        SeparationModule(host="mel_band_roformer", sources=["bass", "other"], sample_rate=8000, pretrained=str(path))
    with pytest.raises(ConfigError, match="is a mel_band_roformer model"):
        SeparationModule(host="bs_roformer", sources=SOURCES, sample_rate=8000, pretrained=str(path))
