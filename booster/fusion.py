"""Fusion modules: how backbone features enter a host tensor at one injection site.

Shape glossary: B batch, C channels, F frequency bins, T frames, L layers, D feature dim.

A :class:`SiteAdapter` turns backbone hidden states ``[B, L, T_feat, D]`` into a change of the host's
tensor at one site: :class:`~booster.features.LayerMix` over the layers, a parameter-free LayerNorm,
a fusion-specific projection D → C (computed at the 25 Hz feature rate), linear time alignment onto
exactly the site's T frames (:func:`~booster.features.align_frames`), broadcast over F where the site
has a frequency axis, then the fusion itself:

* ``"add"`` (default, :class:`GatedAdd`): ``x + gate * W f``, ``gate`` ``[C]`` starts at zero.
* ``"film"`` (:class:`FiLM`): ``x * (1 + W_s f) + W_b f``, both projections start at zero.

Both start as the identity, bit for bit: the boosted model's output equals the host's at step 0.
"""
from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError
from .features import LayerMix, align_frames

FUSIONS = ("add", "film")
AXES = ("B", "C", "F", "T")


def parse_layout(layout: str) -> tuple[str, ...]:
    """``"B C F T"`` → ``("B", "C", "F", "T")``; must hold B, C and T once each, F at most once."""
    tokens = tuple(layout.replace(",", " ").split())
    bad = [t for t in tokens if t not in AXES]
    if bad or len(set(tokens)) != len(tokens) or not {"B", "C", "T"} <= set(tokens):
        raise ConfigError(f"invalid layout {layout!r}: name each of the axes B, C, T once (F optional), "
                          "separated by spaces, in the order of the tensor's dimensions, "
                          "e.g. 'B C T', 'B C F T', 'B T C' or 'T B C'")
    return tokens


class GatedAdd(nn.Module):
    """``x + gate * proj(f)``. ``params(f)``: ``[B, T, D]`` → ``[B, T, C]``; ``gate`` ``[C]`` is zero at
    initialisation (the projection keeps its default random init so it learns once the gate opens)."""

    def __init__(self, dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(dim, channels)
        self.gate = nn.Parameter(torch.zeros(channels))

    def params(self, f: torch.Tensor) -> torch.Tensor:
        return self.proj(f) * self.gate


class FiLM(nn.Module):
    """``x * (1 + scale(f)) + shift(f)``. ``params(f)``: ``[B, T, D]`` → ``[B, T, 2C]`` (scale, shift);
    the projection starts at zero, so the modulation starts as the identity."""

    def __init__(self, dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def params(self, f: torch.Tensor) -> torch.Tensor:
        return self.proj(f)


def make_fusion(name: str, dim: int, channels: int) -> nn.Module:
    if name == "add":
        return GatedAdd(dim, channels)
    if name == "film":
        return FiLM(dim, channels)
    raise ConfigError(f"unknown fusion {name!r}; choose one of {FUSIONS}")


class SiteAdapter(nn.Module):
    """Everything trainable at one site: layer mix, projection and fusion.

    ``forward(x, hidden, ...)``: ``x`` is the host tensor at the site in ``layout`` (e.g. ``[B, C, F, T]``),
    ``hidden`` ``[B, L, T_feat, D]``; returns a tensor of ``x``'s shape.
    """

    def __init__(self, *, num_layers: int, dim: int, channels: int, fusion: str = "add"):
        super().__init__()
        self.channels = channels
        self.fusion_name = fusion
        self.mix = LayerMix(num_layers)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.fusion = make_fusion(fusion, dim, channels)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor, *, layout: tuple[str, ...], frame_rate: float,
                start: float, span_start: float, span: float, where: str = "site") -> torch.Tensor:
        check_site_tensor(x, layout, self.channels, hidden.shape[0], where)
        f = self.norm(self.mix(hidden.to(device=x.device)))               # [B, T_feat, D]
        p = self.fusion.params(f.to(self.fusion.proj.weight.dtype))      # [B, T_feat, C or 2C]
        p = align_frames(p, num_frames=x.shape[layout.index("T")], frame_rate=frame_rate, start=start,
                         span_start=span_start, span=span).to(x.dtype)  # [B, T, C or 2C]
        if isinstance(self.fusion, FiLM):
            scale, shift = p.chunk(2, dim=-1)
            return x * (1 + to_layout(scale, layout)) + to_layout(shift, layout)
        return x + to_layout(p, layout)


def to_layout(p: torch.Tensor, layout: tuple[str, ...]) -> torch.Tensor:
    """``[B, T, C]`` → the site's layout, with a size-1 F axis (broadcast) where the layout has one."""
    names = ["B", "T", "C"]
    if "F" in layout:
        p = p.unsqueeze(-1)
        names.append("F")
    return p.permute([names.index(a) for a in layout])


def check_site_tensor(x, layout: tuple[str, ...], channels: int, batch: int, where: str) -> None:
    """Raise :class:`ConfigError` naming the site, the layout and the shape when ``x`` does not fit."""
    shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
    lay = " ".join(layout)
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"site {where}: expected a tensor with layout '{lay}', got {shape}; if the module "
                          "takes or returns a tuple, choose the element with Site(element=...)")
    problem = None
    if x.dim() != len(layout):
        problem = f"the layout has {len(layout)} axes but the tensor has {x.dim()}"
    elif x.shape[layout.index("C")] != channels:
        problem = f"axis C has size {x.shape[layout.index('C')]}, the adapter was built for {channels} channels"
    elif x.shape[layout.index("B")] != batch:
        problem = (f"axis B has size {x.shape[layout.index('B')]} but the backbone features have batch "
                   f"{batch} (features must come from the same batch as the host input)")
    if problem:
        raise ConfigError(f"site {where}: layout '{lay}' does not match the tensor seen there, shape "
                          f"{shape}: {problem}. Fix the Site's layout (axes B, C, T and optional F, in "
                          "tensor order) or its channels.")
