"""The host plug-in registry (core): one module per host model, ``booster.adapters.<name>``.

Core code (``booster.load_adapters``) and the recipe kit (:mod:`booster.training.hosts`) find a host by its
name here; nothing imports a host module by name anywhere else. A plug-in module declares (required):

* ``NAME``: its name (the module name), recorded in checkpoints;
* ``build(*, size="full", pretrained=None, pretrained_repo=None, overrides=None, **task) -> nn.Module``:
  the host with debug/full architecture (``size``), published weights (``pretrained``), architecture
  ``overrides`` and the task's keyword arguments (separation: ``sources``, ``sample_rate``, ``channels``,
  ``segment``);
* ``architecture(model) -> dict``: JSON-safe keyword arguments such that ``from_architecture(**kw)``
  rebuilds the same architecture (random weights); this is what checkpoints store, never a class;
* ``from_architecture(**kw) -> nn.Module``;
* ``boost(model, backbone, *, layers=None, sites=None, fusion="add", train_host=True, **options) -> Boosted``
  with the plug-in's default sites and its ``input_fn`` (host arguments -> (waveform, sample rate)).

Optional: ``default_sites(model, **options)``, ``io_functions(model) -> {"input_fn", "span_fn"}``,
``prepare(model, **options) -> (host, Boosted kwargs)`` and ``site_channels(model, site)`` (used by
``booster.load_adapters``), ``loss(model, inputs, targets) -> Tensor`` (the host's own training output +
loss; ``model`` may be the boosted wrapper, call it so the adapters run), ``chunk_seconds(model)`` (the
chunk length the host wants at inference), ``from_published(name) -> nn.Module | None``,
``lora_targets(model) -> list[str]`` (names of the nn.Linear / nn.MultiheadAttention modules that
``--model.lora_rank`` adapts; default every one, :mod:`booster.lora`).
"""
from __future__ import annotations

import importlib
import pkgutil
import re

from .errors import ConfigError

PACKAGE = "booster.adapters"   # the plug-ins' namespace (the adapters/ folder, installed under this name)
REQUIRED = ("NAME", "build", "architecture", "from_architecture", "boost")


def available_hosts() -> list[str]:
    """Names of the plug-in modules in ``booster.adapters``."""
    pkg = importlib.import_module(PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def load_plugin(name: str):
    """The plug-in module ``booster.adapters.<name>``; :class:`ConfigError` for unknown / incomplete ones."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"host name {name!r} is not a plug-in name; known hosts: {', '.join(available_hosts())}")
    try:
        plugin = importlib.import_module(f"{PACKAGE}.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"{PACKAGE}.{name}":
            raise ConfigError(f"unknown host {name!r}; known hosts: {', '.join(available_hosts())}") from None
        raise ConfigError(f"host {name!r} needs the package {e.name!r}, which is not installed "
                          f"(pip install {e.name})") from None
    missing = [a for a in REQUIRED if not hasattr(plugin, a)]
    if missing:
        raise ConfigError(f"{PACKAGE}.{name} is not a host plug-in: it lacks {missing} (see booster.plugins)")
    return plugin
