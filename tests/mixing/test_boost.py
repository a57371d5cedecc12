"""Boosted mixers: zero-init identity, features of the stems' sum, training reaches the adapters, adapter files."""
import pytest
import torch

import booster
from booster.training.hosts import build_host, load_plugin

HOSTS = {"mix_wave_unet": {"decoder": (0, 1)}, "crafx2": {}}


def _pair(name, backbone, **opts):
    torch.manual_seed(0)
    host, _ = build_host(name, size="debug", stems=["drums", "bass", "other", "vocals"], sample_rate=16000, channels=2)
    return host, load_plugin(name).boost(host, backbone, layers=[3, 6], **opts)


@pytest.mark.parametrize("name", HOSTS)
def test_zero_init_identity(name, debug_muq, device):
    host, boosted = _pair(name, debug_muq, **HOSTS[name])
    boosted.to(device)
    x = torch.randn(2, 4, 2, 7000, device=device) * 0.1
    with torch.no_grad():
        out = boosted(x)
        boosted.remove()
        ref = host(x)  # the same host with its hooks removed
    assert out.shape == (2, 2, 7000)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("name", HOSTS)
def test_features_come_from_the_stems_sum(name, debug_muq):
    _, boosted = _pair(name, debug_muq, **HOSTS[name])
    for a in boosted.adapters:  # open the gates so that features change the output
        torch.nn.init.normal_(a.fusion.gate, std=1.0)
    x = torch.randn(1, 4, 2, 8000) * 0.1
    with torch.no_grad():
        live = boosted(x)
        feats = debug_muq.extract(x.sum(1), 16000, layers=[3, 6])
        with boosted.use_features(feats):
            given = boosted(x)
        other = debug_muq.extract(x[:, 0], 16000, layers=[3, 6])  # the first stem alone: different features
        with boosted.use_features(other):
            wrong = boosted(x)
    assert torch.allclose(live, given, atol=1e-5)
    assert not torch.allclose(live, wrong, atol=1e-4)


@pytest.mark.parametrize("name", HOSTS)
def test_gradients_reach_adapters_and_host(name, debug_muq):
    _, boosted = _pair(name, debug_muq, **HOSTS[name])
    out = boosted(torch.randn(2, 4, 2, 6000) * 0.1)
    out.pow(2).mean().backward()
    gates = [a.fusion.gate.grad for a in boosted.adapters]
    assert all(g is not None and g.abs().sum() > 0 for g in gates)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in boosted.host.parameters())
    assert not any(p.requires_grad for p in debug_muq.parameters())


@pytest.mark.parametrize("name", HOSTS)
def test_adapter_file_round_trip(name, debug_muq, tmp_path):
    host, boosted = _pair(name, debug_muq, **HOSTS[name])
    for a in boosted.adapters:
        torch.nn.init.normal_(a.fusion.gate, std=1.0)
    x = torch.randn(1, 4, 2, 5000) * 0.1
    with torch.no_grad():
        ref = boosted(x)
    booster.save_adapters(boosted, tmp_path / "a.safetensors")
    state = {k: v.clone() for k, v in boosted.host.state_dict().items()}
    fresh, _ = build_host(name, size="debug", stems=["drums", "bass", "other", "vocals"], sample_rate=16000,
                          channels=2)
    fresh.load_state_dict(state)
    again = booster.load_adapters(fresh, debug_muq, tmp_path / "a.safetensors")
    with torch.no_grad():
        assert torch.allclose(again(x), ref, atol=1e-6)
