"""muq-booster: make music models better with the intermediate layers of a frozen MuQ.

Public API (see README): :class:`MuQ`, :class:`TorchBackbone` (bring your own backbone), :class:`Features`,
:func:`inject`, :func:`save_adapters`, :func:`load_adapters`; the backbone contract in :mod:`booster.backbone`;
the recipe kit in :mod:`booster.training`.
"""
__version__ = "0.1.0"

from .errors import BoosterError  # noqa: E402
from .features import Features  # noqa: E402
from .muq import MuQ, MuQConfig  # noqa: E402
from .torch_backbone import TorchBackbone  # noqa: E402

__all__ = ["MuQ", "MuQConfig", "TorchBackbone", "Features", "BoosterError", "__version__"]

# booster.inject is imported eagerly so that the function `booster.inject` (not the module of the
# same name) is what the package attribute holds.
from .inject import Site, inject  # noqa: E402
from .adapter_io import load_adapters, save_adapters  # noqa: E402

__all__ += ["Site", "inject", "save_adapters", "load_adapters"]
