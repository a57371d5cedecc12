"""A user's own backbone for the tests: a small conv encoder at 16 kHz, 25 frames per second, wrapped in
booster.TorchBackbone by the factory ``make`` (``--model.backbone py:toy_backbone:make``).

Shape glossary: B batch, S samples, T frames, D feature dim.
"""
import torch
from torch import nn

import booster

SAMPLE_RATE, HOP, DIM, DEPTH = 16000, 640, 16, 3   # 16000 / 640 = 25 frames per second


class ToyEncoder(nn.Module):
    """``wav`` ``[B, S]`` at 16 kHz → hidden states 0..DEPTH, each ``[B, T, D]`` with ``T = S // 640``."""

    def __init__(self, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():   # weights from `seed`, the caller's random state untouched
            torch.manual_seed(seed)
            self.front = nn.Conv1d(1, DIM, kernel_size=HOP, stride=HOP)
            self.norm = nn.BatchNorm1d(DIM)   # buffers: a forward in train mode would change them
            self.layers = nn.ModuleList(nn.Conv1d(DIM, DIM, 3, padding=1) for _ in range(DEPTH))

    def forward(self, wav: torch.Tensor):
        x = self.norm(self.front(wav[:, None]))   # [B, D, T]
        states = [x]
        for layer in self.layers:
            x = x + torch.tanh(layer(x))
            states.append(x)
        return tuple(s.transpose(1, 2) for s in states)


def wrap(module: nn.Module, name: str = "toy", **kw) -> booster.TorchBackbone:
    return booster.TorchBackbone(module, sample_rate=SAMPLE_RATE, frame_rate=SAMPLE_RATE / HOP,
                                 num_layers=DEPTH, hidden_size=DIM, name=name, **kw)


def make(seed: int = 0) -> booster.TorchBackbone:
    """The factory a recipe names: ``backbone: py:toy_backbone:make``."""
    return wrap(ToyEncoder(seed), name=f"toy-seed{seed}")


def plain_module():
    """A factory that forgets the wrapper (a bad factory)."""
    return ToyEncoder()


def broken():
    """A factory that fails."""
    raise RuntimeError("no weights in /nowhere")
