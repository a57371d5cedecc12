"""LoRA beside the MuQ adapters: zero-init identity, what trains, parameter counts, merge, errors."""
import pytest
import torch
from torch import nn

from booster.errors import ConfigError
from booster.lora import add_lora, count_parameters, default_targets, lora_config, merge_lora
from booster.recipes.separation.module import SeparationModule
from booster.training.hosts import build_host

from lora_helpers import HOSTS, SOURCES, boosted_lora, mix, moved, randomise


def _target_sizes(host: nn.Module, targets) -> list[tuple[int, int]]:
    """``(D_in, D_out)`` of each target's projection, read from the modules themselves."""
    sizes = []
    for t in targets:
        m = host.get_submodule(t)
        if isinstance(m, nn.MultiheadAttention):
            sizes.append((m.embed_dim, 3 * m.embed_dim))          # packed q/k/v
        else:
            sizes.append((m.in_features, m.out_features))
    return sizes


@pytest.mark.parametrize("name", HOSTS)
def test_zero_init_lora_and_adapters_equal_the_host(name, debug_muq, device):
    b, _, _, plain = boosted_lora(name, debug_muq)
    b, plain, x = b.to(device), plain.to(device), mix().to(device)
    with torch.no_grad():
        assert torch.equal(b(x), plain(x))                          # B = 0 and zero-initialised adapters
        randomise(b)
        assert moved(b(x), plain(x))                                # the same model does move once trained
    debug_muq.to("cpu")                                             # the session's backbone, for later tests


@pytest.mark.parametrize("name,boost", [("bs_roformer", True), ("htdemucs", True), ("bs_roformer", False)])
def test_steps_change_only_lora_and_adapters(name, boost):
    torch.manual_seed(0)
    m = SeparationModule(host=name, sources=SOURCES, segment=1.0, size="debug", boost=boost, lora_rank=4,
                         lr=1e-2, adapter_lr=1e-2).train()
    opt = m.configure_optimizers()
    assert [g["name"] for g in opt.param_groups] == (["lora", "adapters"] if boost else ["lora"])
    before = {k: v.detach().clone() for k, v in m.model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    srcs = 0.1 * torch.randn(2, 2, 2, 22050, generator=g)
    for _ in range(3):
        loss = m.host_loss(srcs.sum(1), srcs).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = m.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    lora_keys = {k for k in before if k.rsplit(".", 1)[-1] in ("lora_A", "lora_B")}
    assert lora_keys and lora_keys <= changed                       # every A and B moved
    assert all(k in lora_keys or k.startswith("adapters.") for k in changed)   # host weights bit-identical
    assert any(k.startswith("adapters.") for k in changed) == boost


@pytest.mark.parametrize("name", HOSTS)
def test_parameter_counts(name, debug_muq):
    b, _, _, _ = boosted_lora(name, debug_muq, rank=4)
    cfg = lora_config(b)
    sizes = _target_sizes(b.host, cfg["targets"])
    assert cfg["rank"] == 4 and cfg["alpha"] == 4.0 and len(sizes) == len(cfg["targets"]) > 0
    assert count_parameters(b) == sum(4 * (i + o) for i, o in sizes)
    trainable = sum(p.numel() for p in b.parameters() if p.requires_grad)
    assert trainable == count_parameters(b) + sum(p.numel() for p in b.adapter_parameters())
    if name == "htdemucs":   # the plug-in's targets: the cross-transformer's attention and feed-forward
        assert all(t.startswith("crosstransformer.") for t in cfg["targets"])
        assert any(isinstance(b.host.get_submodule(t), nn.MultiheadAttention) for t in cfg["targets"])


def test_full_size_bs_roformer_file_size_on_the_meta_device(capsys):
    """Adapters (MuQ-large: 13 layers of 1024) + rank-8 LoRA of a full BS-RoFormer, counted without memory."""
    from booster.fusion import SiteAdapter
    from booster.lora import plugin_targets
    with torch.device("meta"):
        host, _ = build_host("bs_roformer", size="full", sources=["vocals"])
        adapter = SiteAdapter(num_layers=13, dim=1024, channels=512)
    host_params = sum(p.numel() for p in host.parameters())
    add_lora(host, 8, targets=plugin_targets("bs_roformer", host), host_name="bs_roformer")
    lora = count_parameters(host)
    assert lora == sum(8 * (i + o) for i, o in _target_sizes(host, lora_config(host)["targets"]))
    ship = (lora + sum(p.numel() for p in adapter.parameters())) * 4 / 2**20      # float32 MB
    with capsys.disabled():
        print(f"\nfull BS-RoFormer: {host_params / 1e6:.1f} M host parameters; rank-8 LoRA {lora / 1e6:.2f} M + "
              f"adapter -> {ship:.1f} MB adapter file (float32)")
    assert host_params > 30e6 and ship < 0.05 * host_params * 4 / 2**20           # a few MB, not the host


@pytest.mark.parametrize("name", HOSTS)
def test_merge_equals_lora_and_leaves_the_host_keys(name, debug_muq, device):
    b, _, published, plain = boosted_lora(name, debug_muq)
    randomise(b)
    b, plain, x = b.to(device), plain.to(device), mix().to(device)
    with torch.no_grad():
        for p in b.adapter_parameters():
            p.zero_()                                               # LoRA alone moves the output
        with_lora = b(x)
        assert moved(with_lora, plain(x))
        assert merge_lora(b) is b and lora_config(b) is None
        torch.testing.assert_close(b(x), with_lora, rtol=1e-5, atol=1e-6)
    assert set(b.host.state_dict()) == set(published)               # no LoRA modules left
    debug_muq.to("cpu")
    merged = {k: v.cpu() for k, v in b.host.state_dict().items()}
    assert any(not torch.equal(v, published[k]) for k, v in merged.items())   # the update is in the weights


def test_lora_dropout_acts_only_in_training(debug_muq):
    torch.manual_seed(0)
    h, _ = build_host("bs_roformer", size="debug", sources=SOURCES)
    add_lora(h, 4, dropout=0.5)
    randomise(h)
    x = mix()
    with torch.no_grad():
        h.eval()
        assert torch.equal(h(x), h(x))
        h.train()
        torch.manual_seed(1)
        a = h(x)
        torch.manual_seed(2)
        assert not torch.allclose(a, h(x))


def test_default_targets_and_errors():
    torch.manual_seed(0)
    h, _ = build_host("openunmix", size="debug", sources=SOURCES)
    assert default_targets(h) == [f"target_models.{s}.fc{i}" for s in SOURCES for i in (1, 2, 3)]
    grads = [p.requires_grad for p in h.parameters()]
    for bad, match in ((0, "positive integer"), (-2, "positive integer"), (2.5, "positive integer")):
        with pytest.raises(ConfigError, match=match):
            add_lora(h, bad)
    with pytest.raises(ConfigError, match="lora_dropout"):
        add_lora(h, 2, dropout=1.0)
    with pytest.raises(ConfigError, match="'nope' is not a submodule of host openunmix"):
        add_lora(h, 2, targets=["nope"], host_name="openunmix")
    with pytest.raises(ConfigError, match="target 'target_models.drums.lstm' .* LSTM"):
        add_lora(h, 2, targets=["target_models.drums.lstm"], host_name="openunmix")
    assert lora_config(h) is None and [p.requires_grad for p in h.parameters()] == grads   # nothing half-done
    add_lora(h, 2)
    with pytest.raises(ConfigError, match="already has LoRA"):
        add_lora(h, 2)


def test_a_host_without_projections_is_one_line():
    from booster.recipes.mixing.module import MixingModule
    with pytest.raises(ConfigError) as e:
        MixingModule(host="mix_wave_unet", stems=["drums", "bass"], size="debug", lora_rank=4)
    assert "host mix_wave_unet has no nn.Linear" in str(e.value) and "\n" not in str(e.value)
