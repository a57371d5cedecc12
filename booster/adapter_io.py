"""Adapter files: ``<path>.safetensors`` (adapter weights only) + ``<path>.json`` (description).

The JSON holds the format name and version, the sites, channels, layers, fusion, host class, preset and
backbone identity, and the LoRA settings (rank, alpha, dropout, targets) when the host has LoRA
(:mod:`booster.lora`; its weights are ``lora.<target>.lora_A`` / ``.lora_B`` in the safetensors file).
Loading checks every one of them against the model and backbone it is given.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Callable

from torch import nn

from .backbone import check_identity, identity
from .errors import ConfigError
from .injection import Boosted, Site, find_module, infer_channels
from .lora import apply_config, load_lora_state_dict, lora_config, lora_state_dict, remove_lora
from .plugins import load_plugin

FORMAT = "muq-booster-adapters"
FORMAT_VERSION = 1
LORA_PREFIX = "lora."   # the host's LoRA weights in the adapter file: "lora.<target>.lora_A" / ".lora_B"


def _host_class(host: nn.Module) -> str:
    return f"{type(host).__module__}.{type(host).__qualname__}"


def _paths(path):
    from pathlib import Path
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_adapters(boosted: Boosted, path) -> tuple:
    """Write the adapters of ``boosted`` as ``<path>.safetensors`` (adapter weights only: no host, no
    backbone) and ``<path>.json`` (format version, sites, layers, fusion, host class, backbone identity).
    ``path`` may end in ``.safetensors``. Returns the two paths. Host weights are not saved, except a LoRA on
    the host (:func:`booster.lora.add_lora`: its A/B matrices and settings, a few MB for a 70-M-parameter host);
    if the host itself was trained too (``train_host=True``), save its ``state_dict()`` separately."""
    import json

    from safetensors.torch import save_file
    if not isinstance(boosted, Boosted):
        raise ConfigError(f"save_adapters expects a Boosted model (from booster.inject or a preset), got "
                          f"{type(boosted).__name__}")
    st_path, js_path = _paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in boosted.adapters.state_dict().items()}
    lora = lora_config(boosted)
    tensors.update({LORA_PREFIX + k: v.cpu().contiguous() for k, v in lora_state_dict(boosted).items()})
    bb = boosted.backbone
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "host_class": _host_class(boosted.host),
            "preset": boosted.preset, "layers": list(boosted.layers),
            "sites": [s.to_dict() for s in boosted.sites],
            "channels": [a.channels for a in boosted.adapters], "train_host": boosted.train_host,
            "sample_rate": boosted.sample_rate_override,
            "backbone": identity(bb),
            "weights": st_path.name}
    if lora is not None:
        meta["lora"] = lora
    from .fsutil import atomic_path, write_text
    with atomic_path(st_path) as tmp:   # a killed write leaves the old file (and no partial one)
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    write_text(js_path, json.dumps(meta, indent=2, default=str))
    return st_path, js_path


def read_adapter_meta(path) -> dict:
    """The JSON description of an adapter file, checked for format and version."""
    import json

    from .errors import CheckpointError
    st_path, js_path = _paths(path)
    if not js_path.exists() or not st_path.exists():
        raise CheckpointError(f"adapter file incomplete: need both {st_path} and {js_path} "
                              "(written by booster.save_adapters)")
    try:
        meta = json.loads(js_path.read_text())
    except ValueError as e:
        raise CheckpointError(f"{js_path} is not valid JSON ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{js_path} is not a muq-booster adapter description (format "
                              f"{meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{js_path} has adapter format version {meta.get('format_version')!r}; this "
                              f"muq-booster reads version {FORMAT_VERSION} only. Upgrade muq-booster (or "
                              "re-export the adapters with this version).")
    return meta


def load_adapters(model: nn.Module, backbone: nn.Module, path, *, input_fn: Callable | None = None,
                  span_fn: Callable | None = None, train_host: bool | None = None,
                  allow_other_weights: bool = False) -> Boosted:
    """Re-create the boosted model saved by :func:`save_adapters` on ``model`` (same host class) and
    ``backbone`` (same hidden size, depth and weight fingerprint: the one policy of
    :func:`booster.backbone.check_identity`; ``allow_other_weights=True`` accepts other weights of the same
    shape). Files written for a preset (``booster.adapters.htdemucs``/``openunmix``/...) are rebuilt through
    that preset, so e.g. a demucs ``BagOfModels`` is accepted again. A file with LoRA puts the same LoRA on the
    host (its own weights frozen) and loads its weights: a fresh host with the published weights becomes exactly
    the saved model. Raises
    :class:`~booster.errors.CheckpointError` on any mismatch."""
    from safetensors.torch import load_file

    from .errors import CheckpointError
    meta = read_adapter_meta(path)
    st_path, _ = _paths(path)
    check_identity(meta["backbone"], backbone, what=f"the adapters in {st_path}",
                   allow_other_weights=allow_other_weights)
    sites = [Site.from_dict(d) for d in meta["sites"]]
    sites = [Site(**{**asdict(s), "channels": c}) for s, c in zip(sites, meta["channels"])]
    train_host = meta.get("train_host", False) if train_host is None else train_host
    if meta.get("preset"):
        preset = load_plugin(meta["preset"])
        try:
            host, kw = preset.prepare(model)
        except ConfigError as e:
            raise CheckpointError(f"adapters in {st_path} were made for {meta['host_class']} "
                                  f"(preset {meta['preset']!r}): {e}") from None
    else:
        host, kw = model, {}
    if _host_class(host) != meta["host_class"]:
        raise CheckpointError(f"adapters in {st_path} were made for {meta['host_class']}, not "
                              f"{_host_class(host)}; load them onto the same kind of model")
    for site in sites:  # the host must have the channel counts the adapters were trained for
        try:
            expected = preset.site_channels(host, site) if meta.get("preset") else None
            expected = expected or infer_channels(find_module(host, site.path), site.where)
        except (ConfigError, AttributeError, IndexError) as e:
            raise CheckpointError(f"adapters in {st_path} do not fit this {type(host).__name__}: {e}") from None
        if expected is not None and expected != site.channels:
            raise CheckpointError(f"adapters in {st_path} do not fit this {type(host).__name__}: site "
                                  f"{site.describe()} has {expected} channels here, the adapters {site.channels}")
    kw.update({k: v for k, v in (("input_fn", input_fn), ("span_fn", span_fn)) if v is not None})
    try:
        boosted = Boosted(host, backbone, sites, layers=meta["layers"], sample_rate=meta.get("sample_rate"),
                          train_host=train_host, preset=meta.get("preset"), **kw)
    except ConfigError as e:
        raise CheckpointError(f"adapters in {st_path} do not fit this {type(host).__name__}: {e}") from None
    from .fsutil import check_safetensors_file
    check_safetensors_file(st_path, "adapter file")
    try:
        state = load_file(str(st_path))
    except Exception as e:   # safetensors' own error type: damaged file
        raise CheckpointError(f"adapter file {str(st_path)!r} is damaged ({type(e).__name__}: {e})") from None
    lora = {k[len(LORA_PREFIX):]: state.pop(k) for k in [k for k in state if k.startswith(LORA_PREFIX)]}
    added = False
    try:
        boosted.adapters.load_state_dict(state, strict=True)
        if meta.get("lora") is not None:
            apply_config(host, meta["lora"], what=str(st_path))
            added = True
            load_lora_state_dict(host, lora, what=f"the LoRA weights in {st_path}")
        elif lora:
            raise CheckpointError(f"{st_path} holds LoRA weights but its description no LoRA settings")
    except (RuntimeError, CheckpointError) as e:
        boosted.remove()
        if added:
            remove_lora(host)   # the caller's host is left without the LoRA added here
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"adapter weights in {st_path} do not fit this model: {e}") from None
    p = next(host.parameters(), None)
    return boosted.to(p.device) if p is not None else boosted
