"""Mix-Wave-U-Net and CRAFx2: shapes over lengths, batch independence, silence, architecture round trip."""
import pytest
import torch

from booster.errors import AudioError, ConfigError
from booster.models import CRAFx2, MixWaveUNet

MODELS = [MixWaveUNet, CRAFx2]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("length", [1, 777, 4096, 5001])
def test_shapes_any_length(cls, length, device):
    torch.manual_seed(0)
    m = cls.build("debug", stems=["a", "b", "c"], sample_rate=16000).to(device)
    out = m(torch.randn(2, 3, 2, length, device=device))
    assert out.shape == (2, 2, length) and out.device.type == device.type
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("cls", MODELS)
def test_batch_items_are_independent(cls):
    torch.manual_seed(0)
    m = cls.build("debug").eval()
    x = torch.randn(3, 4, 2, 3000)
    whole = m(x)
    single = torch.cat([m(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(whole, single, atol=1e-5)


@pytest.mark.parametrize("cls", MODELS)
def test_full_size_builds_and_runs(cls):
    m = cls.build("full")
    assert sum(p.numel() for p in m.parameters()) > 5 * sum(p.numel() for p in cls.build("debug").parameters())
    assert m(torch.randn(1, 4, 2, 2100)).shape == (1, 2, 2100)


def test_crafx2_silent_stem_contributes_nothing():
    torch.manual_seed(0)
    m = CRAFx2.build("debug").eval()
    x = torch.randn(1, 4, 2, 4000)
    x[:, 2] = 0
    alone = x.clone()
    alone[:, [0, 1, 3]] = 0
    assert m(alone).abs().max() == 0          # only the silent stem: exactly silence
    assert m(torch.zeros(1, 4, 2, 100)).abs().max() == 0


@pytest.mark.parametrize("cls", MODELS)
def test_architecture_round_trip(cls):
    m = cls.build("debug", stems=["x", "y"], sample_rate=22050)
    again = cls(**m.architecture())
    assert again.stems == ["x", "y"] and again.sample_rate == 22050
    assert {k: v.shape for k, v in m.state_dict().items()} == {k: v.shape for k, v in again.state_dict().items()}


@pytest.mark.parametrize("cls", MODELS)
def test_wrong_input_shape_is_a_clear_error(cls):
    m = cls.build("debug")
    with pytest.raises(AudioError, match=r"expects stems \[B, 4, 2, S\].*drums"):
        m(torch.randn(1, 3, 2, 1000))


def test_bad_settings():
    with pytest.raises(ConfigError, match="distinct"):
        MixWaveUNet(stems=["a", "a"])
    with pytest.raises(ConfigError, match="odd"):
        CRAFx2(kernel=16)
    with pytest.raises(ConfigError, match="size"):
        CRAFx2.build("huge")
    with pytest.raises(ConfigError, match="no site"):
        MixWaveUNet.build("debug").site_channels("up.9")
