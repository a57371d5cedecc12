"""Weight fingerprints of torch modules, hashed once per set of weights (every backbone's ``identity``).

:func:`hash_state` is a sha256 (first 16 hex digits) over ``extra`` (what else defines the features: for
MuQ its mel statistics and architecture) and every tensor of the module's state dict. Hashing reads every
byte of the weights (MuQ-large: 1.2 GB copied to the CPU), so :class:`Fingerprint` caches the hash under a
cheap signature of the state (:func:`state_signature`) and hashes again only when a parameter or buffer
changed (an optimiser step, a BatchNorm update in train mode, ``load_state_dict``, ``.to(dtype)``), never
because of a ``train()`` / ``eval()`` switch. This module imports no other part of booster.
"""
from __future__ import annotations

import hashlib

import torch


def state_signature(module: torch.nn.Module, extra=()) -> tuple | None:
    """``extra`` plus, for every tensor of the state dict: name, data pointer, version counter (bumped by
    every in-place update), dtype and shape. None when a tensor keeps no version counter (an inference
    tensor): then the fingerprint is hashed on every read."""
    try:
        return (extra, tuple((k, v.data_ptr(), v._version, v.dtype, tuple(v.shape))
                             for k, v in module.state_dict(keep_vars=True).items()))
    except RuntimeError:  # "Inference tensors do not track version counter"
        return None


def hash_state(module: torch.nn.Module, extra=()) -> str:
    """sha256 (first 16 hex digits) of ``repr(extra)`` and ``module``'s state dict (names and bytes)."""
    h = hashlib.sha256()
    h.update(repr(extra).encode())
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
                 if v.dim() else v.detach().cpu().reshape(1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class Fingerprint:
    """The hash of a module's weights, computed once per set of weights: ``fp(module, extra)``."""

    def __init__(self):
        self._cached: tuple | None = None   # (state signature, hash)

    def __call__(self, module: torch.nn.Module, extra=()) -> str:
        sig = state_signature(module, extra)
        if self._cached is None or sig is None or self._cached[0] != sig:
            self._cached = (sig, hash_state(module, extra))
        return self._cached[1]
