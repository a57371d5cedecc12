"""On-disk store of backbone features.

One safetensors file per audio input holds ``hidden`` ``[L, T, D]`` (float32 or float16) and JSON
metadata: format version, layers, frame rate, start, backbone identity, source hash, extraction settings
and a sha256 of the tensor bytes. ``booster features`` writes this format; :class:`FeatureCache` stores
the same files under a key made of the audio content, the backbone identity, the layers and the
extraction settings. Writes are atomic (:mod:`booster.fsutil`); a truncated or corrupt entry is
detected on read, removed and recomputed, never returned.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .errors import BoosterError
from .backbone import backbone_features, identity as backbone_identity
from .features import Features
from .fsutil import atomic_path

FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class FeatureFileError(BoosterError, ValueError):
    """A feature file is missing, truncated, corrupt or of an unknown format version."""


def audio_hash(wav, sample_rate: int) -> str:
    """sha256 of the float32 samples (any shape) and the sample rate: identifies audio by content."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().float().numpy()
    arr = np.ascontiguousarray(np.asarray(wav, dtype=np.float32))
    h = hashlib.sha256()
    h.update(f"{arr.shape}|{int(sample_rate)}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def file_hash(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_features(path: str | os.PathLike, features: Features, *, meta: dict | None = None,
                  dtype: str = "float32") -> Path:
    """Write one item (``features.hidden`` ``[1, L, T, D]``) as ``hidden`` ``[L, T, D]`` atomically."""
    from safetensors.torch import save_file

    if features.hidden.shape[0] != 1:
        raise ValueError(f"save_features stores one item; got a batch of {features.hidden.shape[0]}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    hidden = features.hidden[0].detach().cpu().to(_DTYPES[dtype]).contiguous()
    info = dict(meta or {})
    info.update(format_version=FORMAT_VERSION, layers=list(features.layers), frame_rate=features.frame_rate,
                start=features.start, dtype=dtype, shape=list(hidden.shape),
                checksum=hashlib.sha256(hidden.view(torch.uint8).numpy().tobytes()).hexdigest())
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({"hidden": hidden}, str(tmp), metadata={"booster": json.dumps(info, sort_keys=True)})
    return path


def load_features(path: str | os.PathLike, *, verify: bool = True) -> tuple[Features, dict]:
    """Read a feature file → (:class:`Features` with ``hidden`` ``[1, L, T, D]`` float32, metadata)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(f"feature file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("booster")
            hidden = f.get_tensor("hidden")
        meta = json.loads(raw) if raw else None
    except Exception as e:
        raise FeatureFileError(f"feature file {str(path)!r} is truncated or corrupt ({type(e).__name__}: {e}); "
                               "delete it and extract again") from None
    if not isinstance(meta, dict) or "format_version" not in meta:
        raise FeatureFileError(f"{str(path)!r} is not a muq-booster feature file (no metadata)")
    if meta["format_version"] != FORMAT_VERSION:
        raise FeatureFileError(f"{str(path)!r} has feature format version {meta['format_version']}; this "
                               f"muq-booster reads version {FORMAT_VERSION}. Extract the features again.")
    if list(hidden.shape) != meta.get("shape"):
        raise FeatureFileError(f"{str(path)!r}: tensor shape {list(hidden.shape)} does not match its metadata")
    if verify:
        digest = hashlib.sha256(hidden.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()
        if digest != meta.get("checksum"):
            raise FeatureFileError(f"{str(path)!r}: checksum mismatch, the file is corrupt; delete it")
    feats = Features(hidden.float()[None], tuple(meta["layers"]), float(meta["frame_rate"]),
                     float(meta.get("start", 0.0)))
    return feats, meta


SETTINGS = ("layers", "dtype", "precision", "window", "overlap", "backbone", "source_sha256")


def feature_settings(meta: dict) -> dict:
    """The settings of a feature file that decide its content (see :data:`SETTINGS`), JSON-normalised."""
    return json.loads(json.dumps({k: meta.get(k) for k in SETTINGS}, sort_keys=True))


def describe_difference(have: dict, want: dict) -> str:
    """``"layers [4, 8, 12] -> [0, 6]; window 30.0 -> 10.0"`` for the settings that differ."""
    have, want = feature_settings(have), feature_settings(want)
    parts = []
    for k in SETTINGS:
        if have[k] != want[k]:
            if k == "backbone":
                a, b = have[k] or {}, want[k] or {}
                parts.append(f"backbone {a.get('name')}@{a.get('fingerprint')} -> {b.get('name')}@{b.get('fingerprint')}")
            elif k == "source_sha256":
                parts.append("source audio changed")
            else:
                parts.append(f"{k} {have[k]} -> {want[k]}")
    return "; ".join(parts)


def check_feature_file(path: str | os.PathLike, want: dict, *, verify: bool = True) -> str | None:
    """Why the feature file at ``path`` cannot be reused for settings ``want`` (a dict with the keys of
    :data:`SETTINGS`), or None when it can: it loads, its checksum verifies and its settings and source
    hash match."""
    try:
        _, meta = load_features(path, verify=verify)
    except FeatureFileError as e:
        return "damaged: " + str(e).replace(f"{str(path)!r}", "the file").replace("feature file the file", "the file")
    diff = describe_difference(meta, want)
    return f"other settings: {diff}" if diff else None


class FeatureCache:
    """Feature store for fixed audio (validation/test mixtures, user datasets).

    ``cache.get_or_compute(muq, wav, sample_rate, layers)`` returns the stored features when the same
    audio (by content), backbone (by fingerprint), layers and extraction settings were seen before,
    else extracts, stores and returns them. ``wav`` is one item: ``[S]`` or ``[C, S]``.
    """

    def __init__(self, root: str | os.PathLike, dtype: str = "float32"):
        self.root = Path(root)
        self.dtype = dtype
        self.hits = 0
        self.misses = 0

    def key(self, muq, wav, sample_rate: int, layers, **settings) -> str:
        ident = json.dumps({"backbone": backbone_identity(muq), "layers": list(layers), "settings": settings,
                            "dtype": self.dtype, "audio": audio_hash(wav, sample_rate)}, sort_keys=True)
        return hashlib.sha256(ident.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> Features | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return load_features(p)[0]
        except FeatureFileError:
            p.unlink(missing_ok=True)  # never return a damaged entry; the caller recomputes
            return None

    def get_or_compute(self, muq, wav, sample_rate: int, layers, *, window: float = 30.0,
                       overlap: float = 5.0, precision: str = "fp32") -> Features:
        from .backbone import resolve_layers
        layers = resolve_layers(muq, layers)
        settings = {"window": window, "overlap": overlap, "precision": precision}
        if isinstance(wav, torch.Tensor) and wav.dim() == 3:
            raise ValueError("FeatureCache stores one item at a time: pass [S] or [C, S]")
        key = self.key(muq, wav, sample_rate, layers, **settings)
        cached = self.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        feats = backbone_features(muq, wav, sample_rate, layers, window=window, overlap=overlap, precision=precision)
        save_features(self.path(key), feats, dtype=self.dtype,
                      meta={"backbone": backbone_identity(muq), "source": audio_hash(wav, sample_rate), **settings})
        return load_features(self.path(key))[0] if self.dtype != "float32" else feats
