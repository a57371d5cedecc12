"""LoRA on a host's projections, beside (or without) the MuQ adapters; merge into the host's weights.

Shape glossary: D_in / D_out input / output features of a projection, R the LoRA rank.

``add_lora(host, rank)`` gives each target projection ``W`` ``[D_out, D_in]`` a low-rank update: the host
computes with ``W + (alpha / rank) * B @ A`` (``A`` ``[R, D_in]``, Kaiming-uniform; ``B`` ``[D_out, R]``,
zeros, so at step 0 the host is exactly itself) and every other host weight is frozen. Targets are
qualified names of ``nn.Linear`` modules inside the host (their ``weight``) or of ``nn.MultiheadAttention``
modules (their packed q/k/v ``in_proj_weight``; its ``out_proj`` is a Linear target of its own). Default
targets: a host plug-in's ``lora_targets(model)`` when it has one, else every such module of the host.

The update lives in weight space (a :mod:`torch.nn.utils.parametrize` parametrisation of the weight), so
it acts wherever the weight is read: in ``nn.Linear.forward``, in ``nn.MultiheadAttention``'s functional
forward (which never calls ``out_proj.forward``) and in PyTorch's fused inference paths; the frozen weight
itself is never written (peft's MultiheadAttention LoRA merges and unmerges it on every call, which moves
it by rounding error). Cost: the weight gradient is computed as in full fine-tuning; the savings are the
optimiser state (LoRA parameters only) and the file a user ships. ``dropout``: the LoRA branch's input
features are dropped with this probability (one mask per forward call, shared by every token: a
weight-space update cannot drop per token). :func:`merge_lora` folds the update into the weights (no LoRA
left; outputs unchanged).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from .errors import CheckpointError, ConfigError

CONFIG_KEYS = ("rank", "alpha", "dropout", "targets")


class LoRAUpdate(nn.Module):
    """Parametrisation ``W -> W + scale * B @ A`` of one weight ``[D_out, D_in]`` (``scale = alpha / rank``)."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float, dropout: float = 0.0,
                 *, device=None, dtype=None):
        super().__init__()
        self.rank, self.alpha, self.dropout = int(rank), float(alpha), float(dropout)
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, device=device, dtype=dtype))
        if self.lora_A.device.type != "meta":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))   # as nn.Linear (and the LoRA paper's code)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta(self) -> torch.Tensor:
        """``scale * B @ A`` ``[D_out, D_in]`` (with the dropout mask over ``D_in`` when training)."""
        a = self.lora_A
        if self.training and self.dropout > 0:
            keep = torch.full((1, a.shape[1]), 1 - self.dropout, device=a.device, dtype=a.dtype)
            a = a * torch.bernoulli(keep) / (1 - self.dropout)
        return (self.lora_B @ a) * self.scale

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.delta().to(weight.dtype)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, dropout={self.dropout:g}"


def _weight_name(module: nn.Module, target: str, host_name: str) -> str:
    """The parameter of ``module`` (found at ``target``) that LoRA updates."""
    if isinstance(module, nn.Linear):
        return "weight"
    if isinstance(module, nn.MultiheadAttention):
        if not module._qkv_same_embed_dim:
            raise ConfigError(f"LoRA target {target!r} of host {host_name} is a MultiheadAttention with separate "
                              "q/k/v sizes (kdim/vdim); LoRA updates only packed in_proj_weight projections")
        return "in_proj_weight"
    raise ConfigError(f"LoRA target {target!r} of host {host_name} is a {type(module).__name__}; targets are "
                      "nn.Linear or nn.MultiheadAttention modules")


def default_targets(host: nn.Module) -> list[str]:
    """Every ``nn.Linear`` and ``nn.MultiheadAttention`` of ``host`` (qualified names, module order)."""
    return [n for n, m in host.named_modules() if n and isinstance(m, (nn.Linear, nn.MultiheadAttention))]


def plugin_targets(plugin_name: str | None, host: nn.Module) -> list[str]:
    """The host plug-in's ``lora_targets(host)`` when it defines one, else :func:`default_targets`."""
    if plugin_name:
        from .plugins import load_plugin
        fn = getattr(load_plugin(plugin_name), "lora_targets", None)
        if fn is not None:
            return list(fn(host))
    return default_targets(host)


def _host(model: nn.Module) -> nn.Module:
    from .injection import Boosted
    return model.host if isinstance(model, Boosted) else model


def _updates(model: nn.Module):
    """``(target name, module, weight name, LoRAUpdate)`` for every LoRA in ``model``'s host."""
    for name, m in _host(model).named_modules():
        if parametrize.is_parametrized(m):
            for wname, plist in m.parametrizations.items():
                for p in plist:
                    if isinstance(p, LoRAUpdate):
                        yield name, m, wname, p


def add_lora(model: nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0,
             targets: list[str] | None = None, *, host_name: str | None = None, freeze: bool = True) -> dict:
    """Put LoRA of ``rank`` on ``targets`` of ``model``'s host (``model``: a host or a boosted model) and freeze
    the host's own weights (a boosted model's adapters keep their ``requires_grad``). ``alpha``: scale
    numerator (default ``rank``: scale 1). ``targets``: module names (default :func:`default_targets`).
    ``host_name``: how errors name the host (its plug-in name). ``freeze=False`` leaves the host's
    ``requires_grad`` as it is (to load recorded LoRA weights and merge them). Returns :func:`lora_config`."""
    host = _host(model)
    who = host_name or type(host).__name__
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"lora_rank must be a positive integer, got {rank!r}")
    alpha = float(rank if alpha is None else alpha)
    if not math.isfinite(alpha) or alpha <= 0:
        raise ConfigError(f"lora_alpha must be a positive number, got {alpha!r}")
    if not 0 <= float(dropout) < 1:
        raise ConfigError(f"lora_dropout must be in [0, 1), got {dropout!r}")
    if next(_updates(host), None) is not None:
        raise ConfigError(f"host {who} already has LoRA; add it once (or merge_lora first)")
    targets = default_targets(host) if targets is None else list(targets)
    if not targets:
        raise ConfigError(f"host {who} has no nn.Linear or nn.MultiheadAttention module for LoRA to adapt "
                          "(LoRA needs projection layers); train it without --model.lora_rank")
    modules = {}
    for t in dict.fromkeys(targets):
        try:
            m = host.get_submodule(t)
        except AttributeError:
            raise ConfigError(f"LoRA target {t!r} is not a submodule of host {who}") from None
        modules[t] = (m, _weight_name(m, t, who))
    if freeze:
        host.requires_grad_(False)
    for t, (m, wname) in modules.items():
        w = getattr(m, wname)
        update = LoRAUpdate(w.shape[0], w.shape[1], rank, alpha, float(dropout), device=w.device, dtype=w.dtype)
        parametrize.register_parametrization(m, wname, update, unsafe=True)   # unsafe: no trial call (meta ok)
    return lora_config(host)


def lora_config(model: nn.Module) -> dict | None:
    """``{"rank", "alpha", "dropout", "targets"}`` of the LoRA in ``model``'s host, None without LoRA."""
    found = list(_updates(model))
    if not found:
        return None
    u = found[0][3]
    return {"rank": u.rank, "alpha": u.alpha, "dropout": u.dropout, "targets": [n for n, *_ in found]}


def check_config(cfg, what: str) -> dict:
    """A recorded LoRA config (checkpoint / adapter file) with its keys checked; CheckpointError otherwise."""
    if not isinstance(cfg, dict) or set(cfg) != set(CONFIG_KEYS) or not isinstance(cfg.get("targets"), list):
        raise CheckpointError(f"{what} has a malformed LoRA description {cfg!r} (expected keys {list(CONFIG_KEYS)})")
    return cfg


def apply_config(model: nn.Module, cfg: dict, what: str, *, freeze: bool = True) -> None:
    """Re-create recorded LoRA (:func:`lora_config`) on a fresh host; a mismatch is a CheckpointError."""
    cfg = check_config(cfg, what)
    try:
        add_lora(model, int(cfg["rank"]), cfg["alpha"], cfg["dropout"], cfg["targets"], freeze=freeze)
    except ConfigError as e:
        raise CheckpointError(f"the LoRA in {what} does not fit this host: {e}") from None


def lora_parameters(model: nn.Module):
    """The LoRA parameters (``A`` and ``B`` of every target) of ``model``'s host."""
    for *_, u in _updates(model):
        yield from (u.lora_A, u.lora_B)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{"<target>.lora_A": [R, D_in], "<target>.lora_B": [D_out, R]}`` (detached, on their devices)."""
    state = {}
    for name, _, _, u in _updates(model):
        state[f"{name}.lora_A"], state[f"{name}.lora_B"] = u.lora_A.detach(), u.lora_B.detach()
    return state


def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor], what: str = "the LoRA weights") -> None:
    """Load :func:`lora_state_dict` output; every missing, unexpected or mis-shaped key is a CheckpointError."""
    own = {f"{name}.{k}": getattr(u, k) for name, _, _, u in _updates(model) for k in ("lora_A", "lora_B")}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{what} do not fit this model's LoRA: missing {missing[:4]}, unexpected "
                              f"{unexpected[:4]}")
    for k, p in own.items():
        if tuple(state[k].shape) != tuple(p.shape):
            raise CheckpointError(f"{what} do not fit this model's LoRA: {k} is {tuple(state[k].shape)} in the "
                                  f"file, {tuple(p.shape)} here")
    with torch.no_grad():
        for k, p in own.items():
            p.copy_(state[k])


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update of ``model``'s host into its weight (``W + scale * B @ A``, as the forward
    computes it, in eval mode) and remove the LoRA modules: state-dict keys are the host's own again.
    In place; returns ``model``. A model without LoRA is returned unchanged."""
    for _, m, wname, u in list(_updates(model)):
        u.eval()
        requires = m.parametrizations[wname].original.requires_grad
        parametrize.remove_parametrizations(m, wname, leave_parametrized=True)
        getattr(m, wname).requires_grad_(requires)
    return model


def remove_lora(model: nn.Module) -> nn.Module:
    """Drop every LoRA of ``model``'s host without merging it (the host's own weights, as they were)."""
    for _, m, wname, _ in list(_updates(model)):
        parametrize.remove_parametrizations(m, wname, leave_parametrized=False)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of LoRA parameters: ``sum over targets of R * (D_in + D_out)``."""
    return sum(p.numel() for p in lora_parameters(model))
