"""Checks of model and checkpoint files before anything loads them (re-exported by :mod:`booster.fsutil`).

:func:`check_checkpoint_file` reads a PyTorch/Lightning checkpoint's zip directory, CRCs and pickle opcodes
without unpickling anything; :func:`check_safetensors_file` a safetensors header and tensor ranges;
:func:`torch_load_error` says why ``torch.load(weights_only=True)`` refused a file, never repeating torch's
advice to load it with ``weights_only=False``. Every problem is one line (:class:`CheckpointError`).
"""
from __future__ import annotations

import os
import pickletools
import zipfile
from pathlib import Path

from .errors import CheckpointError


def check_checkpoint_file(path: str | os.PathLike, option: str = "--ckpt_path") -> Path:
    """Check a PyTorch/Lightning checkpoint before anything unpickles it; raise
    :class:`CheckpointError` (one line) for a missing, empty, truncated or non-zip file (random
    bytes, a raw pickle, a legacy ``torch.save`` file) or a zip without a ``data.pkl`` record whose
    members fail their CRC check. Reads the file once; unpickles nothing."""
    path = Path(path)
    where = f"{option} {str(path)!r}"
    if not path.exists():
        raise CheckpointError(f"{where} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{where} is a folder, expected a checkpoint file (.ckpt)")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{where} is empty (0 bytes); the run that wrote it was probably killed")
    with open(path, "rb") as f:
        head = f.read(8)
    if not zipfile.is_zipfile(path):
        if head[:1] == b"\x80" or head[:2] in (b"(d", b"}q", b"(l"):
            raise CheckpointError(f"{where} is a raw pickle, not a PyTorch zip checkpoint; it is not loaded "
                                  "(unpickling runs code). Re-save it with torch.save in PyTorch >= 1.6")
        if head[:2] == b"PK":
            raise CheckpointError(f"{where} is truncated ({size} bytes, no zip directory at its end); the run "
                                  "that wrote it was probably killed. Use an earlier checkpoint")
        raise CheckpointError(f"{where} is not a PyTorch checkpoint ({size} bytes of unknown format)")
    try:
        with zipfile.ZipFile(path) as z:
            members = z.namelist()
            pkl = [m for m in members if m.endswith("/data.pkl") or m == "data.pkl"]
            if not pkl:
                raise CheckpointError(f"{where} is a zip file but not a PyTorch checkpoint (no data.pkl)")
            bad = z.testzip()
            if bad is not None:
                raise CheckpointError(f"{where} is corrupt: member {bad!r} fails its CRC check")
            _check_pickle_ops(z.read(pkl[0]), where)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{where} is truncated or corrupt ({e})") from None
    return path


def check_safetensors_file(path: str | os.PathLike, option: str = "--model") -> dict:
    """Check a ``.safetensors`` file without loading its tensors: header present and valid JSON, every
    tensor's byte range inside the file; returns the header's ``__metadata__`` (``{}`` if none). Raises
    :class:`CheckpointError` with one line for a missing, empty, truncated or non-safetensors file."""
    import json
    import struct

    path = Path(path)
    where = f"{option} {str(path)!r}"
    if not path.is_file():
        raise CheckpointError(f"{where} does not exist" if not path.exists() else f"{where} is not a file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{where} is empty or truncated ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100_000_000):
            raise CheckpointError(f"{where} is not a safetensors file, or is truncated (header of {n} bytes, "
                                  f"file of {size})")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{where} is not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} is not a safetensors file (header is not a JSON object)")
    end = max((int(v["data_offsets"][1]) for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if 8 + n + end > size:
        raise CheckpointError(f"{where} is truncated: its tensors need {8 + n + end} bytes, the file has {size}")
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def torch_load_error(e: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words: never torch's advice to load it
    with ``weights_only=False`` (unpickling an untrusted file runs its code)."""
    import re
    text = str(e)
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if m:
        return f"it holds a pickled Python object ({m.group(1)}), which is never loaded (unpickling runs code)"
    if "weights_only" in text or "Weights only" in text or "WeightsUnpickler" in text:
        return "its contents are not the tensors and plain values a checkpoint holds"
    first = text.strip().splitlines()[0][:200] if text.strip() else type(e).__name__
    return f"{type(e).__name__}: {first}"


def _check_pickle_ops(data: bytes, where: str) -> None:
    """The pickle must parse to its end (a damaged one raises here, before any unpickling)."""
    try:
        for _ in pickletools.genops(data):
            pass
    except Exception as e:  # pickletools raises ValueError and friends on damaged streams
        raise CheckpointError(f"{where} holds a damaged pickle record ({e})") from None
