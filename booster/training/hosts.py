"""Hosts for recipes: a host as data (:class:`HostSpec`), built, rebuilt and boosted through its plug-in.

The plug-in registry and the plug-in contract are core: :mod:`booster.plugins` (``load_plugin``,
``available_hosts``, re-exported here). Nothing outside a plug-in branches on host names: generic code calls
:func:`load_plugin` and the plug-in's names.
"""
from __future__ import annotations

import fractions
from dataclasses import dataclass, field

from booster.errors import CheckpointError, ConfigError
from booster.plugins import REQUIRED, available_hosts, load_plugin

__all__ = ["REQUIRED", "HostSpec", "available_hosts", "boost_host", "build_host", "chunk_seconds", "host_from_spec",
           "host_loss", "jsonable", "load_plugin"]


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


def build_host(name: str, *, size: str = "full", pretrained: str | None = None,
               pretrained_repo: str | None = None, overrides: dict | None = None, **task):
    """``(model, HostSpec)``: the host built by its plug-in and its description as data."""
    if size not in ("full", "debug"):
        raise ConfigError(f"size must be 'full' or 'debug', got {size!r}")
    plugin = load_plugin(name)
    if pretrained and _is_model_file(pretrained):
        model = _host_from_model_file(name, plugin, pretrained, dict(overrides or {}), task)
    else:
        model = plugin.build(size=size, pretrained=pretrained, pretrained_repo=pretrained_repo,
                             overrides=dict(overrides or {}), **task)
    return model, HostSpec(name, jsonable(plugin.architecture(model)))


def _is_model_file(path: str) -> bool:
    """A kit separator file (``.safetensors`` with the kit's model description), e.g. ``booster convert``'s."""
    from pathlib import Path

    from booster.filechecks import check_safetensors_file
    p = Path(path).expanduser()
    return p.suffix == ".safetensors" and p.is_file() and "booster_model" in check_safetensors_file(p, "pretrained")


def _host_from_model_file(name: str, plugin, path: str, overrides: dict, task: dict):
    """The host a kit model file records (its architecture, ``overrides`` on top), its weights loaded exactly;
    the file's host, sources, sample rate and channels must be the recipe's (one line naming them)."""
    from booster.lora import apply_config, merge_lora
    from booster.msst import load_exact

    from .checkpoint import check_meta, read_model_file
    meta, state = read_model_file(path, "--model.pretrained")
    check_meta(meta, what=f"--model.pretrained {path!r}")
    if meta["host"]["name"] != name:
        raise ConfigError(f"--model.pretrained {path!r} is a {meta['host']['name']} model; set --model.host "
                          f"{meta['host']['name']} (and a {meta['host']['name']} recipe)")
    if meta.get("boost"):
        raise ConfigError(f"--model.pretrained {path!r} is a boosted model; pass a plain host file (e.g. from "
                          "`booster convert`) or resume its run with --ckpt_path")
    differ = [f"{k} {meta[k]!r} (recipe: {task[k]!r})" for k in ("sources", "sample_rate", "channels")
              if k in meta and k in task and jsonable(task[k]) != jsonable(meta[k])]
    if differ:
        raise ConfigError(f"--model.pretrained {path!r} was made for {', '.join(differ)}; set the recipe's "
                          "--data.sources / --data.sample_rate / --data.channels to the file's")
    model = plugin.from_architecture(**{**meta["host"]["kwargs"], **overrides})
    if meta.get("lora") is not None:   # a LoRA fine-tuned host starts from its weights with the LoRA folded in
        apply_config(model, meta["lora"], f"--model.pretrained {path!r}", freeze=False)
    load_exact(model, state, f"--model.pretrained {path!r}")
    return merge_lora(model)


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
