"""Debug hosts for the LoRA tests: built, boosted, LoRA-ed, with the host's "published" weights kept."""
import copy

import torch

from booster.lora import add_lora, lora_parameters, plugin_targets
from booster.training.hosts import boost_host, build_host, load_plugin

SOURCES = ["drums", "vocals"]
TASK = {"bs_roformer": dict(sources=SOURCES), "htdemucs": dict(sources=SOURCES, segment=1.0),
        "mel_band_roformer": dict(sources=SOURCES)}
HOSTS = list(TASK)


def host(name: str, seed: int = 0):
    """``(debug host, HostSpec)`` of plug-in ``name`` with seeded random ("published") weights."""
    torch.manual_seed(seed)
    h, spec = build_host(name, size="debug", **TASK[name])
    with torch.no_grad():   # demucs' LayerScale starts at 1e-4: as trained weights, let the transformer count
        for m in h.modules():
            if type(m).__name__ == "LayerScale":
                m.scale.fill_(1.0)
    return h, spec


def fresh_host(name: str, spec, state: dict):
    """A new host of the same architecture with the given ("published") weights."""
    h = load_plugin(name).from_architecture(**spec.kwargs)
    h.load_state_dict(state)
    return h.eval()


def boosted_lora(name: str, backbone, rank: int = 4, seed: int = 0):
    """``(boosted model with LoRA, HostSpec, published host state, plain host copy)``; eval mode."""
    h, spec = host(name, seed)
    published = copy.deepcopy(h.state_dict())
    plain = copy.deepcopy(h).eval()
    b = boost_host(name, h, backbone, train_host=False)
    add_lora(b, rank, targets=plugin_targets(name, b.host), host_name=name)
    return b.eval(), spec, published, plain


def randomise(model, std: float = 0.2, seed: int = 3):
    """Random LoRA B (and A) and adapter weights: the update and the features visibly change the output."""
    gen = torch.Generator().manual_seed(seed)
    params = list(lora_parameters(model)) + (list(model.adapter_parameters()) if hasattr(model, "adapters") else [])
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def mix(seconds: float = 0.5, seed: int = 0, sr: int = 44100):
    return 0.1 * torch.randn(1, 2, int(seconds * sr), generator=torch.Generator().manual_seed(seed))


def moved(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-3) -> bool:
    """``a`` differs from ``b`` by more than ``rel`` of ``b``'s peak (a visible change, not rounding)."""
    return bool((a - b).abs().max() > rel * b.abs().max())
