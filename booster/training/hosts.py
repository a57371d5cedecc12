"""Host plug-ins: one module per host model in ``adapters/`` (installed as ``booster.adapters.<name>``).

A plug-in module declares (required):

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
chunk length the host wants at inference), ``from_published(name) -> nn.Module | None``.

Nothing outside a plug-in branches on host names: generic code calls :func:`load_plugin` and these names.
"""
from __future__ import annotations

import fractions
import importlib
import pkgutil
import re
from dataclasses import dataclass, field

from booster.errors import CheckpointError, ConfigError

REQUIRED = ("NAME", "build", "architecture", "from_architecture", "boost")


@dataclass(frozen=True)
class HostSpec:
    """A host as data: plug-in name + JSON keyword arguments of ``from_architecture``."""

    name: str
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "kwargs": jsonable(self.kwargs)}

    @classmethod
    def from_dict(cls, d: dict) -> "HostSpec":
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise CheckpointError(f"host description {d!r} is not {{'name': ..., 'kwargs': {{...}}}}")
        return cls(d["name"], dict(d.get("kwargs") or {}))


def jsonable(value):
    """Fractions, tuples and nested containers as JSON values (demucs keeps Fractions in its kwargs)."""
    if isinstance(value, fractions.Fraction):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def available_hosts() -> list[str]:
    """Names of the plug-in modules in ``booster.adapters``."""
    import booster.adapters as pkg
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def load_plugin(name: str):
    """The plug-in module ``booster.adapters.<name>``; :class:`ConfigError` for unknown / incomplete ones."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"host name {name!r} is not a plug-in name; known hosts: {', '.join(available_hosts())}")
    try:
        plugin = importlib.import_module(f"booster.adapters.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"booster.adapters.{name}":
            raise ConfigError(f"unknown host {name!r}; known hosts: {', '.join(available_hosts())}") from None
        raise ConfigError(f"host {name!r} needs the package {e.name!r}, which is not installed "
                          f"(pip install {e.name})") from None
    missing = [a for a in REQUIRED if not hasattr(plugin, a)]
    if missing:
        raise ConfigError(f"booster.adapters.{name} is not a host plug-in: it lacks {missing} "
                          "(see booster.training.hosts)")
    return plugin


def build_host(name: str, *, size: str = "full", pretrained: str | None = None,
               pretrained_repo: str | None = None, overrides: dict | None = None, **task):
    """``(model, HostSpec)``: the host built by its plug-in and its description as data."""
    if size not in ("full", "debug"):
        raise ConfigError(f"size must be 'full' or 'debug', got {size!r}")
    plugin = load_plugin(name)
    model = plugin.build(size=size, pretrained=pretrained, pretrained_repo=pretrained_repo,
                         overrides=dict(overrides or {}), **task)
    return model, HostSpec(name, jsonable(plugin.architecture(model)))


def host_from_spec(spec: HostSpec | dict):
    """Rebuild a host (random weights) from its :class:`HostSpec` (or its dict)."""
    spec = spec if isinstance(spec, HostSpec) else HostSpec.from_dict(spec)
    try:
        plugin = load_plugin(spec.name)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint names host {spec.name!r}: {e}") from None
    try:
        return plugin.from_architecture(**spec.kwargs)
    except TypeError as e:
        raise CheckpointError(f"checkpoint's {spec.name} arguments do not fit this version of the host "
                              f"package: {e}") from None


def boost_host(name: str, model, backbone, **options):
    """``booster.adapters.<name>.boost(model, backbone, **options)``; bad options are a ConfigError."""
    plugin = load_plugin(name)
    try:
        return plugin.boost(model, backbone, **options)
    except TypeError as e:
        raise ConfigError(f"invalid boost options for host {name}: {e}") from None


def host_loss(name: str):
    """The plug-in's ``loss(model, inputs, targets)`` hook, or None when the host has none."""
    return getattr(load_plugin(name), "loss", None)


def chunk_seconds(name: str, model, default: float) -> float:
    """Chunk length for inference: the plug-in's ``chunk_seconds(model)`` when it has one, else ``default``."""
    fn = getattr(load_plugin(name), "chunk_seconds", None)
    value = fn(model) if fn is not None else None
    return float(value) if value else float(default)
