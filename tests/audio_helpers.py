"""Deterministic test audio shared by the test folders (imported by name: conftest modules collide)."""
import torch


def music_like(seconds: float, sr: int = 24000, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """``[C, S]``: a few decaying harmonic notes plus light noise (deterministic)."""
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * sr)
    t = torch.arange(n) / sr
    out = torch.zeros(channels, n)
    for c in range(channels):
        x = 0.01 * torch.randn(n, generator=gen)
        for k in range(max(1, int(seconds * 4))):
            f0 = 110 * 2 ** (torch.randint(0, 24, (1,), generator=gen).item() / 12)
            onset = k * 0.25
            env = torch.where(t >= onset, torch.exp(-(t - onset) * 6), torch.zeros_like(t))
            for h in range(1, 4):
                x += 0.2 / h * env * torch.sin(2 * torch.pi * f0 * h * t)
        out[c] = x
    return out
