"""BS-RoFormer host plug-in: zero-init identity, features reach the host, adapter files, the package's loss."""
import json

import pytest
import torch

import booster
from booster.adapters import bs_roformer
from booster.errors import CheckpointError, ConfigError
from booster.training.hosts import build_host, host_from_spec

SOURCES = ["drums", "vocals"]


def tiny(seed=0, channels=2):
    torch.manual_seed(seed)
    return bs_roformer.build(size="debug", sources=SOURCES, sample_rate=8000, channels=channels)


def audio(seconds=1.0, batch=2, channels=2):
    return 0.1 * torch.randn(batch, channels, int(8000 * seconds), generator=torch.Generator().manual_seed(0))


def randomise(b, std=0.3):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in b.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return b


@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init_then_features_arrive(debug_muq, train, device):
    b = bs_roformer.boost(tiny(), debug_muq, layers=[4, 12]).train(train).to(device)
    assert [(s.path, s.layout) for s in b.sites] == [("band_split", "B T F C")]
    x = audio(1.03).to(device)                         # not a multiple of the STFT hop
    out = b(x)
    assert out.shape == (2, 2, 2, x.shape[-1]) and out.device == x.device
    assert torch.equal(out, b.host(x))                 # zero-initialised adapters: exactly the host
    randomise(b)
    assert not torch.allclose(b(x), b.host(x), atol=1e-5)


def test_round_trip_and_mismatches(tmp_path, debug_muq):
    b = randomise(bs_roformer.boost(tiny(), debug_muq, layers=[12], fusion="film")).eval()
    booster.save_adapters(b, tmp_path / "bsr")
    fresh = tiny(seed=3).eval()
    fresh.load_state_dict(b.host.state_dict())
    again = booster.load_adapters(fresh, debug_muq, tmp_path / "bsr")
    x = audio(0.6, batch=1)
    with torch.no_grad():
        assert torch.equal(again(x), b(x))
    wider = bs_roformer.build(size="debug", sources=SOURCES, sample_rate=8000, overrides={"dim": 24})
    with pytest.raises(CheckpointError, match="24 channels here"):
        booster.load_adapters(wider, debug_muq, tmp_path / "bsr")
    with pytest.raises(CheckpointError, match="RoformerSeparator"):
        booster.load_adapters(torch.nn.Linear(2, 2), debug_muq, tmp_path / "bsr")


def test_loss_is_the_packages_own_per_source():
    m = tiny()
    mix, src = audio(), 0.1 * torch.randn(2, 2, 2, 8000)
    per = bs_roformer.loss(m, mix, src)
    assert per.shape == (2,)
    torch.testing.assert_close(per.mean(), m(mix, target=src), rtol=1e-5, atol=1e-6)


def test_spec_round_trip_mono_and_errors(tmp_path):
    m, spec = build_host("bs_roformer", size="debug", sources=SOURCES, sample_rate=8000, channels=1)
    rebuilt = host_from_spec(json.loads(json.dumps(spec.to_dict())))
    assert rebuilt.state_dict().keys() == m.state_dict().keys() and rebuilt.audio_channels == 1
    assert m(audio(0.5, channels=1)).shape == (2, 2, 1, 4000)
    torch.save(m.state_dict(), tmp_path / "w.ckpt")
    loaded, _ = build_host("bs_roformer", size="debug", sources=SOURCES, sample_rate=8000, channels=1,
                           pretrained=str(tmp_path / "w.ckpt"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), m.state_dict().values()))
    with pytest.raises(CheckpointError, match="do not fit"):
        build_host("bs_roformer", size="debug", sources=SOURCES, sample_rate=8000, channels=1,
                   pretrained=str(tmp_path / "w.ckpt"), overrides={"dim": 24})
    with pytest.raises(ConfigError, match="mono or stereo"):
        build_host("bs_roformer", size="debug", sources=SOURCES, channels=3)
