"""muq-booster: make music models better with the intermediate layers of a frozen MuQ.

Public API (see README): :class:`MuQ`, :class:`TorchBackbone` (bring your own backbone), :class:`Features`,
:func:`inject`, :func:`save_adapters`, :func:`load_adapters`; the backbone contract in :mod:`booster.backbone`;
the recipe kit in :mod:`booster.training`.

The names are loaded on first use (PEP 562), so that importing a torch-free part of the package — the ONNX
runner :mod:`booster.export.runner`, :mod:`booster.errors` — never imports torch. The injection code lives
in :mod:`booster.injection`; ``booster.inject`` is its function.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (submodule, attribute)
_LAZY = {
    "BoosterError": ("errors", "BoosterError"),
    "Features": ("features", "Features"),
    "MuQ": ("muq", "MuQ"),
    "MuQConfig": ("muq", "MuQConfig"),
    "TorchBackbone": ("torch_backbone", "TorchBackbone"),
    "Site": ("injection", "Site"),
    "inject": ("injection", "inject"),
    "save_adapters": ("adapter_io", "save_adapters"),
    "load_adapters": ("adapter_io", "load_adapters"),
}
__all__ = ["MuQ", "MuQConfig", "TorchBackbone", "Features", "BoosterError", "Site", "inject", "save_adapters",
           "load_adapters", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value          # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
