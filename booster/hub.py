"""Published weights that libraries download through ``torch.hub``: where they are cached, and one fast check
that the download host answers, so a plug-in can fail at once offline instead of inside a library's retries
(the plug-ins, e.g. ``booster.adapters.htdemucs`` / ``openunmix``, say which files and which options)."""
from __future__ import annotations

import socket
from pathlib import Path

CONNECT_TIMEOUT = 3.0   # seconds for the one reachability check


def hub_checkpoints() -> Path:
    """torch's download cache (``torch.hub.get_dir()/checkpoints``), where ``torch.hub`` downloads go."""
    import torch
    return Path(torch.hub.get_dir()) / "checkpoints"


def reachable(host: str, port: int = 443, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Whether one TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False
