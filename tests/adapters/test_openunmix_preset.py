import pytest
import torch
from adapter_helpers import tiny_separator

import booster
from booster.adapters import openunmix
from booster.errors import CheckpointError, ConfigError


def randomise(b, std=0.3):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in b.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return b


def audio(seconds=1.0, batch=2):
    return torch.randn(batch, 2, int(8000 * seconds), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("train", [False, True])
def test_separator_identity_at_init(debug_muq, train):
    b = openunmix.boost(tiny_separator(), debug_muq, layers=[4, 12]).train(train)
    assert [s.path for s in b.sites] == ["target_models.vocals.lstm", "target_models.drums.lstm"]
    assert all(s.layout == "T B C" and s.where == "input" for s in b.sites)
    x = audio()
    torch.manual_seed(0)
    ref = b.host(x)
    torch.manual_seed(0)
    assert torch.equal(b(x), ref)
    randomise(b)
    assert not torch.allclose(b(x), b.host(x), atol=1e-4)


def test_training_step_lowers_loss(debug_muq):
    b = openunmix.boost(tiny_separator(), debug_muq, layers=[12], targets=["vocals"], train_host=False).train()
    x, target = audio(), audio() * 0.3
    opt = torch.optim.Adam(b.adapter_parameters(), lr=5e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.l1_loss(b(x)[:, 0], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_round_trip(tmp_path, debug_muq):
    b = randomise(openunmix.boost(tiny_separator(), debug_muq, layers=[12], fusion="film")).eval()
    booster.save_adapters(b, tmp_path / "umx")
    fresh = tiny_separator(seed=3).eval()
    fresh.load_state_dict(b.host.state_dict())
    again = booster.load_adapters(fresh, debug_muq, tmp_path / "umx")
    x = audio(0.8, batch=1)
    with torch.no_grad():
        assert torch.equal(again(x), b(x))
    from openunmix.model import OpenUnmix, Separator
    other = Separator({"vocals": OpenUnmix(nb_bins=129, nb_channels=2, hidden_size=24, nb_layers=1),
                       "drums": OpenUnmix(nb_bins=129, nb_channels=2, hidden_size=24, nb_layers=1)},
                      n_fft=256, n_hop=64, sample_rate=8000.0)
    with pytest.raises(CheckpointError, match="channels"):
        booster.load_adapters(other, debug_muq, tmp_path / "umx")


def test_bare_openunmix_needs_features_and_matches_separator(debug_muq):
    sep = tiny_separator()
    b_sep = randomise(openunmix.boost(sep, debug_muq, layers=[12], targets=["vocals"])).eval()
    x = audio(1.0, batch=1)
    with torch.no_grad():
        spec = sep.complexnorm(sep.stft(x))                                 # [B, C, F, T]
        expected = {}
        b_sep.host.target_models["vocals"].register_forward_hook(lambda m, a, o: expected.setdefault("v", o))
        b_sep(x)
    b_sep.remove()
    bare = openunmix.boost(sep.target_models["vocals"], debug_muq, layers=[12], sample_rate=8000.0, n_hop=64)
    bare.adapters.load_state_dict(b_sep.adapters.state_dict())
    with pytest.raises(ConfigError, match="spectrogram"):
        bare(spec)
    with torch.no_grad(), bare.use_features(debug_muq.extract(x, 8000, layers=[12])):
        assert torch.allclose(bare(spec), expected["v"], atol=1e-6)
