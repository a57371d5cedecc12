import copy

import pytest
import torch
from inject_helpers import randomise

import booster
from booster import Site
from booster.errors import ConfigError
from booster.features import Features

SITES = [Site(path="frames", layout="B C T"),
         Site(path="freq", layout="B C F T", fusion="film"),
         Site(path="lin", layout="B T C", layers=(12,)),
         Site(path="rnn", where="input", layout="T B C")]


def wav(seconds=1.0, batch=2, seed=0):
    return torch.randn(batch, 2, int(16000 * seconds), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init_bitwise(tiny_host, debug_muq, train):
    b = booster.inject(tiny_host, debug_muq, SITES, layers=[0, 6, 12]).train(train)
    x = wav()
    assert torch.equal(b(x), b.host(x))
    randomise(b)
    assert not torch.allclose(b(x), b.host(x), atol=1e-4)  # the hooks are live


def test_identity_against_unfrozen_copy(tiny_host, debug_muq):
    ref = copy.deepcopy(tiny_host)
    b = booster.inject(tiny_host, debug_muq, SITES, train_host=True)
    x = wav()
    assert torch.equal(b(x), ref(x))


def test_trainable_state_and_gradients(tiny_host, debug_muq):
    b0 = booster.inject(tiny_host, debug_muq, SITES)
    assert all(p.requires_grad for p in b0.host.parameters())  # end-to-end by default
    b0.remove()
    b = booster.inject(tiny_host, debug_muq, SITES, layers=[0, 6, 12], train_host=False)
    adapter_ids = {id(p) for p in b.adapter_parameters()}
    assert adapter_ids == {id(p) for p in b.adapters.parameters()}
    assert not any(id(p) in adapter_ids for p in b.host.parameters())
    assert {id(p) for p in b.parameters() if p.requires_grad} == adapter_ids   # host frozen on request
    assert not any(k.startswith("backbone") for k in b.state_dict())
    assert not set(map(id, debug_muq.parameters())) & {id(p) for p in b.parameters()}
    randomise(b)
    b(wav()).pow(2).mean().backward()
    assert all(p.grad is None for p in debug_muq.parameters())
    assert all(p.grad is not None for p in b.adapter_parameters())
    assert all(a.fusion.proj.weight.grad.abs().sum() > 0 for a in b.adapters)
    assert all(p.grad is None for p in b.host.parameters())
    b.remove()
    b2 = booster.inject(b.host, debug_muq, SITES[:1], train_host=True)
    assert all(p.requires_grad for p in b2.host.parameters())


def test_training_step_lowers_loss(tiny_host, debug_muq):
    b = booster.inject(tiny_host, debug_muq, SITES, layers=[6, 12], train_host=False)
    x, target = wav(batch=2), torch.rand(2, 1, 99)
    opt = torch.optim.Adam(b.adapter_parameters(), lr=3e-2)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.mse_loss(b(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1e-3


def test_layer_mix_starts_as_mean_and_signature(tiny_host, debug_muq):
    b = booster.inject(tiny_host, debug_muq, SITES, layers=[0, 6, 12])
    assert torch.allclose(b.adapters[0].mix.weights(), torch.full((3,), 1 / 3))
    import inspect
    assert list(inspect.signature(b).parameters) == ["wav"]
    assert b.sample_rate == 16000  # host attributes are visible through the wrapper


def test_use_features_live_equivalence_and_slices(tiny_host, debug_muq):
    b = randomise(booster.inject(tiny_host, debug_muq, SITES, layers=[0, 6, 12]))
    x = wav(1.0, batch=1)
    with torch.no_grad():
        live = b(x)
        with b.use_features(debug_muq.extract(x, 16000, layers=[0, 6, 12])):
            assert torch.equal(b(x), live)
        track = wav(4.0, batch=1, seed=3)
        feats = debug_muq.extract(track, 16000, layers=[0, 6, 12])
        t0, dur = 1.52, 1.0
        chunk = track[..., int(t0 * 16000): int((t0 + dur) * 16000)]
        with b.use_features(feats, input_start=t0):
            whole = b(chunk)
        part = feats.slice_time(t0, t0 + dur, margin=2)
        with b.use_features(part, input_start=t0):
            sliced = b(chunk)
        shifted = Features(part.hidden, part.layers, part.frame_rate, part.start - t0)
        with b.use_features(shifted):
            rel = b(chunk)
        assert torch.allclose(whole, sliced, atol=1e-6) and torch.allclose(whole, rel, atol=1e-6)
        with b.use_features(feats, input_start=0.0):
            assert not torch.allclose(b(chunk), whole, atol=1e-4)  # the offset matters
        with pytest.raises(ConfigError, match="input_start"):
            with b.use_features(part):
                b(chunk)
        with pytest.raises(ConfigError, match="layers"):
            with b.use_features(feats.select([0])):
                pass


def test_bad_path_lists_closest_names(tiny_host, debug_muq):
    with pytest.raises(ConfigError, match=r"no submodule 'frame'.*'frames'"):
        booster.inject(tiny_host, debug_muq, [Site(path="frame", layout="B C T")])


def test_layout_mismatch_names_site_layout_and_shape(tiny_host, debug_muq):
    b = booster.inject(tiny_host, debug_muq, [Site(path="lin", layout="B C T")])
    with pytest.raises(ConfigError, match=r"'lin'.*B C T.*\(2, 99, 12\)"):
        b(wav())
    b.remove()
    b = booster.inject(tiny_host, debug_muq, [Site(path="rnn", layout="T B C")])
    with pytest.raises(ConfigError, match="tuple of 2 elements"):
        b(wav())
    b.remove()
    b = booster.inject(tiny_host, debug_muq, [Site(path="rnn", layout="T B C", element=0)])
    assert torch.equal(b(wav()), b.host(wav()))
    with pytest.raises(ConfigError, match="invalid layout"):
        Site(path="lin", layout="B X T")


def test_double_boost_refused(tiny_host, debug_muq):
    b = booster.inject(tiny_host, debug_muq, SITES[:1])
    with pytest.raises(ConfigError, match="already boosted"):
        booster.inject(tiny_host, debug_muq, SITES[:1])
    copied = copy.deepcopy(b)
    randomise(copied)
    x = wav()
    assert torch.equal(b(x), b.host(x)) and not torch.allclose(copied(x), b(x), atol=1e-4)
    assert copied.backbone is b.backbone
