"""Device resolution for every command: ``--device`` default (CUDA when available), one-line errors.

``resolve_device(None)`` → ``cuda`` when a GPU is visible, else ``cpu``. ``resolve_device("cuda:3")`` on a
machine without that GPU, or ``resolve_device("foo")``, raises :class:`~booster.errors.ConfigError` with
one line saying what exists. Use it in commands (``--device``) and pass the result to ``.to(device)``.
"""
from __future__ import annotations

import torch

from booster.errors import ConfigError


def default_device() -> str:
    """``"cuda"`` when a CUDA device is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def available_devices() -> list[str]:
    """``["cpu", "cuda:0", ...]``: the devices this machine has (the tests parametrise over these)."""
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """A usable :class:`torch.device` for ``name`` (None or "auto": :func:`default_device`)."""
    if name is None or str(name) == "auto":
        return torch.device(default_device())
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {name!r} is not a device name; use cpu, cuda, cuda:N or mps "
                          f"(this machine has: {', '.join(available_devices())})") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"--device {name!r}: no CUDA device is available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {name!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {name!r}: MPS is not available on this machine; use --device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {name!r}: unsupported device type {dev.type!r}; use cpu or cuda")
    return dev


def parallel_devices(name: str, jobs: int) -> list[str | None]:
    """Devices for ``jobs`` concurrent runs asked to run on ``name`` (auto/cuda/gpu): one GPU each, in turn,
    when there are several; otherwise ``[None]`` (every run on ``name`` itself)."""
    if jobs > 1 and name in ("auto", "cuda", "gpu") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [f"cuda:{k % torch.cuda.device_count()}" for k in range(jobs)]
    return [None]
