"""Model descriptions, checkpoints and saved-model files: one format version, one backbone policy.

Every recipe checkpoint (Lightning ``.ckpt``) holds ``checkpoint["booster"]``, a JSON-safe description,
and every exported model file (``.safetensors``) holds the same description in its metadata:

``{"format": "muq-booster-model", "format_version": 2, "task": ..., "host": {"name", "kwargs"},
"boost": bool, "boost_kwargs": {...}, "backbone": "<src>", "backbone_seed": int,
"backbone_identity": {...}, "lora": {"rank", "alpha", "dropout", "targets"} (only with LoRA on the host,
:mod:`booster.lora`), ...task fields (e.g. sources, sample_rate, channels, segment)}``.

Never pickled classes: the host is rebuilt by its plug-in (``booster.adapters.<name>``) from the JSON
keyword arguments, the backbone by :func:`booster.backbone.load_backbone`, and its fingerprint checked by
:func:`booster.backbone.check_identity` (the one policy). Unknown versions are refused clearly.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import nn

from booster.backbone import check_identity, identity, load_backbone
from booster.errors import CheckpointError
from booster.lora import apply_config, lora_config

from .boosting import backbone_of, is_boosted, load_trainable_state, trainable_state
from .hosts import HostSpec, boost_host, host_from_spec

FORMAT = "muq-booster-model"
FORMAT_VERSION = 2
META_KEY = "booster_model"    # safetensors metadata key
CKPT_KEY = "booster"          # Lightning checkpoint key
EMA_KEY = "booster_ema"


def describe(task: str, host: HostSpec, model: nn.Module, *, backbone: str | None = None,
             backbone_seed: int = 0, boost_kwargs: dict | None = None, **task_fields) -> dict:
    """The description of ``model`` (plain host or boosted) for checkpoints and model files."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": task, "host": host.to_dict(),
            "boost": is_boosted(model), **task_fields}
    if is_boosted(model):
        meta.update(backbone=str(backbone), backbone_seed=int(backbone_seed),
                    boost_kwargs=dict(boost_kwargs or {}), backbone_identity=identity(backbone_of(model)))
    return _with_lora(meta, model)


def _with_lora(meta: dict, model: nn.Module) -> dict:
    """``meta`` whose ``"lora"`` entry says the LoRA ``model`` has now (none: no entry; e.g. after merge_lora)."""
    meta = {k: v for k, v in meta.items() if k != "lora"}
    cfg = lora_config(model)
    return {**meta, "lora": cfg} if cfg is not None else meta


def check_meta(meta, *, what: str, task: str | None = None) -> dict:
    """``meta`` if it is a description this version reads (and of ``task`` when given), else an error."""
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        got = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(f"{what} has model format version {got!r}; this muq-booster reads version "
                              f"{FORMAT_VERSION} only. Re-train or re-export it with this version.")
    if task is not None and meta.get("task") != task:
        raise CheckpointError(f"{what} is a {meta.get('task')!r} model, not a {task!r} model")
    return meta


def build_from_meta(meta: dict, *, what: str = "the model", allow_other_weights: bool = False) -> nn.Module:
    """Re-create the (random-weight) model a description names: host by its plug-in, boosted with the
    recorded backbone (whose identity must match, :func:`booster.backbone.check_identity`), with the recorded
    LoRA on the host."""
    check_meta(meta, what=what)
    model = host_from_spec(meta["host"])
    if meta.get("boost"):
        bb = load_backbone(meta["backbone"], int(meta.get("backbone_seed", 0)))
        check_identity(meta.get("backbone_identity"), bb, what=what, allow_other_weights=allow_other_weights)
        model = boost_host(meta["host"]["name"], model, bb, **(meta.get("boost_kwargs") or {}))
    if meta.get("lora") is not None:   # after boosting: boost() sets the host's requires_grad, LoRA freezes it
        apply_config(model, meta["lora"], what)
    return model


def save_model(path: str | Path, model: nn.Module, meta: dict) -> Path:
    """One ``.safetensors`` file: host + adapter weights (never the backbone) and ``meta``."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = _with_lora(meta, model)     # the LoRA the model has now (merge_lora before an export removes it)
    # clone: some hosts share tensors between modules (safetensors refuses shared memory)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in trainable_state(model).items()}
    from safetensors import SafetensorError

    from booster.fsutil import OutputError, atomic_path
    try:
        with atomic_path(path) as tmp:   # a killed write leaves the old file (and no partial one)
            save_file(state, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    except (OSError, SafetensorError) as e:    # full disk, folder gone read-only... (OutputError is an OSError)
        if isinstance(e, OutputError):
            raise
        raise OutputError(f"cannot write model file {str(path)!r}: {getattr(e, 'strerror', None) or e}") from None
    return path


def read_model_file(path: str | Path, option: str = "model file") -> tuple[dict, dict]:
    """``(meta, state)`` of a ``.safetensors`` model file or a recipe ``.ckpt`` (EMA weights preferred);
    ``option``: how errors name the file (``--model``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{option} {str(p)!r} does not exist" if not p.exists()
                              else f"{option} {str(p)!r} is a directory, expected a .ckpt or .safetensors file")
    if p.suffix == ".ckpt":
        ckpt = read_checkpoint(p, option)
        meta = ckpt.get(CKPT_KEY)
        if meta is None:
            raise CheckpointError(f"{option} {str(p)!r} is not a checkpoint of a muq-booster recipe")
        state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        return meta, dict(ckpt.get(EMA_KEY) or state)
    from safetensors import safe_open

    from booster.fsutil import check_safetensors_file
    check_safetensors_file(p, option)
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"cannot read {str(p)!r} as a model file ({type(e).__name__}: {e})") from None
    if raw is None:
        raise CheckpointError(f"{str(p)!r} is a safetensors file but not a muq-booster model file (no metadata)")
    return json.loads(raw), state


def checkpoint_header(path: str | Path, option: str = "checkpoint") -> tuple[dict | None, dict]:
    """``(muq-booster meta, hyper_parameters)`` of a recipe checkpoint, read once per file version (the CLI asks
    for them twice before Lightning loads the file itself: a 1 GB checkpoint is then checked and read once)."""
    p = Path(path).expanduser()
    st = p.stat() if p.is_file() else None
    return _header(str(p.resolve()) if st else str(p), st.st_size if st else -1, st.st_mtime_ns if st else -1,
                   option)


@functools.lru_cache(maxsize=4)
def _header(path: str, size: int, mtime_ns: int, option: str) -> tuple[dict | None, dict]:
    ckpt = read_checkpoint(path, option)
    return ckpt.get(CKPT_KEY), dict(ckpt.get("hyper_parameters") or {})


def read_checkpoint(path: str | Path, option: str = "checkpoint") -> dict:
    """A Lightning checkpoint read safely (``weights_only=True``) after :func:`booster.fsutil.check_checkpoint_file`
    (empty, truncated, random bytes: one line saying the file is not a checkpoint); errors never point a user
    at unpickling (``weights_only=False``). ``option``: how messages name the file (``--model``)."""
    from booster.fsutil import check_checkpoint_file, torch_load_error
    check_checkpoint_file(path, option)
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{option} {str(path)!r} is not a muq-booster checkpoint: "
                              f"{torch_load_error(e)}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{option} {str(path)!r} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def load_model(path: str | Path, *, task: str | None = None, device="cpu", allow_other_weights: bool = False,
               option: str = "model file") -> tuple[nn.Module, dict]:
    """``(model in eval mode on device, meta)`` from a ``.ckpt`` or ``.safetensors`` model file."""
    meta, state = read_model_file(path, option)
    check_meta(meta, what=str(path), task=task)
    model = build_from_meta(meta, what=str(path), allow_other_weights=allow_other_weights)
    load_trainable_state(model, state)
    return model.to(device).eval(), meta
