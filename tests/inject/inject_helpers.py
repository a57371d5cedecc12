import pytest
import torch
from torch import nn


class TinyHost(nn.Module):
    """``wav [B, C, S]`` at 16 kHz → ``[B, 1, T]``; has sites in layouts B C T, B C F T, B T C and T B C."""

    sample_rate = 16000

    def __init__(self):
        super().__init__()
        self.frames = nn.Conv1d(2, 8, kernel_size=320, stride=160)
        self.freq = nn.Conv2d(1, 4, 3, padding=1)
        self.lin = nn.Linear(8 * 4 + 8, 12)
        self.rnn = nn.GRU(12, 6)
        self.head = nn.Linear(6, 1)

    def forward(self, wav):
        x = self.frames(wav)                                   # [B, 8, T]
        f = self.freq(x[:, None])                              # [B, 4, 8, T]
        h = torch.cat([f.flatten(1, 2), x], 1).transpose(1, 2)  # [B, T, 40]
        h = self.lin(h)                                        # [B, T, 12]
        h, _ = self.rnn(h.transpose(0, 1))                     # [T, B, 6]
        return self.head(h).permute(1, 2, 0)                   # [B, 1, T]




def randomise(boosted, std: float = 0.2, seed: int = 1):
    """Give every adapter parameter a random value, so that the features visibly change the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in boosted.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return boosted
