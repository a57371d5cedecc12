import copy

import pytest
import torch
from adapter_helpers import tiny_htdemucs  # noqa: E402

import booster
from booster.adapters import htdemucs
from booster.errors import CheckpointError, ConfigError


def randomise(b, std=0.2):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in b.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return b


def mix(seconds=1.0, batch=2):
    return torch.randn(batch, 2, int(8000 * seconds), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init(debug_muq, train):
    b = htdemucs.boost(tiny_htdemucs(), debug_muq, layers=[0, 12], encoder=[0], tencoder=[1]).train(train)
    x = mix()
    # eval: under no_grad, as for inference (with grad enabled, PyTorch's attention fast path is taken
    # only when nothing requires grad, which changes the host's own numerics at the 1e-8 level)
    with torch.set_grad_enabled(train):
        torch.manual_seed(0)
        ref = b.host(x)
        torch.manual_seed(0)
        assert torch.equal(b(x), ref)
    assert [s.layout for s in b.sites] == ["B C F T", "B C T", "B C F T", "B C T"]
    ref_model = copy.deepcopy(b.host).requires_grad_(True)  # an unboosted, unfrozen copy
    b.remove()
    b2 = htdemucs.boost(b.host, debug_muq, train_host=True).train(train)
    with torch.set_grad_enabled(train):
        torch.manual_seed(0)
        out = b2(x)
        torch.manual_seed(0)
        assert torch.equal(out, ref_model(x))  # same as an unboosted copy with the same requires_grad


def test_training_step_lowers_loss(debug_muq):
    b = htdemucs.boost(tiny_htdemucs(), debug_muq, layers=[6, 12], train_host=False).train()
    x = mix()
    target = torch.randn(2, 2, 2, 8000) * 0.1
    opt = torch.optim.Adam(b.adapter_parameters(), lr=2e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.l1_loss(b(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in b.host.parameters())


def test_round_trip_and_refusals(tmp_path, debug_muq):
    b = randomise(htdemucs.boost(tiny_htdemucs(), debug_muq, layers=[6, 12], tencoder=[0]).eval())
    booster.save_adapters(b, tmp_path / "ht")
    fresh = tiny_htdemucs(seed=7).eval()
    fresh.load_state_dict(b.host.state_dict())
    again = booster.load_adapters(fresh, debug_muq, tmp_path / "ht.safetensors")
    x = mix(0.7)
    with torch.no_grad():
        assert torch.equal(again(x), b(x)) and not torch.allclose(again(x), again.host(x), atol=1e-5)
    from demucs.htdemucs import HTDemucs
    wider = HTDemucs(sources=["drums", "bass"], channels=16, depth=2, nfft=512, t_layers=1, t_heads=2,
                     segment=1, samplerate=8000)
    with pytest.raises(CheckpointError, match="do not fit"):
        booster.load_adapters(wider, debug_muq, tmp_path / "ht")
    from booster.adapters import openunmix  # noqa: F401
    from adapter_helpers import tiny_separator
    with pytest.raises(CheckpointError):
        booster.load_adapters(tiny_separator(), debug_muq, tmp_path / "ht")


def test_pretrained_repo_bag_and_apply_model(demucs_repo, debug_muq, tmp_path):
    from demucs.apply import BagOfModels, apply_model
    from demucs.pretrained import get_model
    bag = get_model("bag1", repo=demucs_repo)
    assert isinstance(bag, BagOfModels)
    b = randomise(htdemucs.boost(bag, debug_muq, layers=[12]))
    from booster.injection import Boosted
    assert isinstance(b, Boosted) and b.host is bag.models[0]
    x = mix(2.3, batch=1)
    out = apply_model(b, x, split=True, overlap=0.25, shifts=1)
    plain = apply_model(b.host, x, split=True, overlap=0.25, shifts=0)
    assert out.shape == plain.shape == (1, 2, 2, x.shape[-1]) and torch.isfinite(out).all()
    assert not torch.allclose(apply_model(b, x, split=True, shifts=0), plain, atol=1e-5)
    bag2 = get_model("bag2", repo=demucs_repo)
    boosted_bag = htdemucs.boost(bag2, debug_muq, layers=[12])
    assert isinstance(boosted_bag, BagOfModels) and len(boosted_bag.models) == 2
    ref = apply_model(bag2, x, split=True, shifts=0)  # bag2 members are the hosts: hooks inert when called directly
    assert torch.equal(apply_model(boosted_bag, x, split=True, shifts=0), ref)  # zero-init adapters
    with pytest.raises(ConfigError, match="member"):
        htdemucs.prepare(bag2)
    one = htdemucs.boost(get_model("bag2", repo=demucs_repo), debug_muq, member=1)
    assert one.host is not None and len(one.sites) == 2
