"""Res2d convolutional subsampling: mel ``[B, F, T_mel]`` → ``[B, T, D]`` at 25 Hz.

Parameter names follow the official ``Conv2dSubsampling`` (``conv.{0,1}.conv{1,2,3}``, ``bn{1,2,3}``,
``linear``). In eval mode the forward pass folds each BatchNorm into its convolution and runs the two
convolutions that read the same input with the same stride (``conv1`` and the residual ``conv3``) as
one convolution with twice the output channels; the arithmetic is the same up to float rounding.
"""
from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(conv(x))`` as a single convolution (eval-mode statistics)."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    bias = (bias - bn.running_mean) * scale + bn.bias
    return weight, bias


class Res2dModule(nn.Module):
    def __init__(self, idim: int, odim: int, stride=(2, 2)):
        super().__init__()
        self.stride = tuple(stride)
        self.fold = True  # eval mode folds BatchNorm into the convolutions; False runs the plain path
        self.conv1 = nn.Conv2d(idim, odim, 3, padding=1, stride=stride)
        self.bn1 = nn.BatchNorm2d(odim)
        self.conv2 = nn.Conv2d(odim, odim, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(odim)
        self.relu = nn.ReLU()
        self.diff = idim != odim or stride[0] > 1
        if self.diff:
            self.conv3 = nn.Conv2d(idim, odim, 3, padding=1, stride=stride)
            self.bn3 = nn.BatchNorm2d(odim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.fold:
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            res = self.bn3(self.conv3(x)) if self.diff else x
            return self.relu(res + out)
        return self._forward_folded(x)

    def _forward_folded(self, x: torch.Tensor) -> torch.Tensor:
        w1, b1 = fold_bn(self.conv1, self.bn1)
        w2, b2 = fold_bn(self.conv2, self.bn2)
        odim = w1.shape[0]
        if self.diff:
            w3, b3 = fold_bn(self.conv3, self.bn3)
            both = F.conv2d(x, torch.cat([w1, w3]).to(x.dtype), torch.cat([b1, b3]).to(x.dtype),
                            stride=self.stride, padding=1)
            h, res = both[:, :odim], both[:, odim:]
        else:
            h, res = F.conv2d(x, w1.to(x.dtype), b1.to(x.dtype), stride=self.stride, padding=1), x
        h = F.conv2d(torch.relu(h), w2.to(x.dtype), b2.to(x.dtype), padding=1)
        return torch.relu(res + h)


class Conv2dSubsampling(nn.Module):
    """``[B, F, T_mel]`` → ``[B, T, D]`` with ``T = ceil(ceil(T_mel / s0) / s1)`` (frequency /4).

    On CPU in eval mode, the module runs through a frozen TorchScript graph optimised for inference
    (oneDNN blocked layout, BatchNorm folded, ReLU and residual add fused into the convolutions): the
    same arithmetic, about 1.2-1.4x faster on the 512-channel convolutions that dominate MuQ's cost. The
    graph is built on first use per dtype, rebuilt when the weights change, and the eager path is used
    if building it fails or ``optimize`` is False.
    """

    def __init__(self, idim: int, hdim: int, odim: int, strides=(2, 2), n_bands: int = 128):
        super().__init__()
        self.conv = nn.Sequential(
            Res2dModule(idim, hdim, (2, strides[0])),
            Res2dModule(hdim, hdim, (2, strides[1])),
        )
        self.linear = nn.Linear(hdim * n_bands // 4, odim)
        self.strides = tuple(strides)
        self.optimize = True
        self.tile = 1024  # mel frames per tile (~10 s); 0 disables tiling
        self._frozen: dict = {}

    # Output frame j depends on mel frames 4j-9 .. 4j+9 (two stride-2 Res2d stages of 3x3 convolutions),
    # so a halo of 16 mel frames (a multiple of 4) on each side of a tile makes tiling exact.
    HALO = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, F, T_mel]`` → ``[B, T, D]``. Long inputs run in time tiles of ``tile`` mel frames
        with a halo of :attr:`HALO` frames: the same result, with activation memory bounded by the tile."""
        if x.dim() == 3:
            x = x.unsqueeze(1)  # [B, 1, F, T_mel]
        n, step = x.shape[-1], self.tile
        if not step or n <= step + 2 * self.HALO or self.training:
            return self._forward_any(x)
        factor = self.strides[0] * self.strides[1]
        assert step % 4 == 0 and self.HALO % 4 == 0, "tile and halo must be multiples of 4 mel frames"
        pieces = []
        for a in range(0, n, step):
            lo, hi = max(0, a - self.HALO), min(n, a + step + self.HALO)
            y = self._forward_any(x[..., lo:hi])
            first = (a - lo) // factor                  # lo is a multiple of the factor: frames align
            count = subsampled_length(min(n, a + step), self.strides) - a // factor
            pieces.append(y[:, first:first + count])
        return torch.cat(pieces, dim=1)

    def _forward_any(self, x: torch.Tensor) -> torch.Tensor:
        if self.optimize and not self.training and x.device.type == "cpu" and not torch.jit.is_tracing():
            dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
            frozen = self._frozen_graph(dtype)
            if frozen is not None:
                with torch.autocast("cpu", enabled=False):
                    return frozen(x.to(dtype))
        return self._forward_eager(x)

    def _forward_eager(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # [B, C, F/4, T]
        b, c, f, t = x.shape
        x = x.permute(0, 3, 1, 2).reshape(b, t, c * f)
        return self.linear(x)

    def _frozen_graph(self, dtype: torch.dtype):
        state = tuple((t.data_ptr(), t._version) for t in self.state_dict().values())
        entry = self._frozen.get(dtype)
        if entry is not None and entry[0] == state:
            return entry[1]
        try:
            plain = _Eager(copy.deepcopy(self).to(dtype)).eval()
            example = torch.zeros(1, 1, self.linear.in_features // self.conv[0].conv1.out_channels * 4, 16,
                                  dtype=dtype)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.compile
                graph = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(plain, example)))
        except Exception:  # pragma: no cover - depends on the torch build
            graph = None
        self._frozen[dtype] = (state, graph)
        return graph

    def __getstate__(self):  # frozen graphs are a cache: never pickled or deep-copied
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_frozen"] = {}
        return state


class _Eager(nn.Module):
    """The plain (unfolded) computation, traced for the frozen graph."""

    def __init__(self, sub: Conv2dSubsampling):
        super().__init__()
        sub.optimize = False
        for block in sub.conv:
            block.fold = False
        self.sub = sub

    def forward(self, x):
        return self.sub._forward_eager(x)


def subsampled_length(n_mel: int, strides=(2, 2)) -> int:
    """Frames out of :class:`Conv2dSubsampling` for ``n_mel`` input frames (k=3, pad=1 per stride)."""
    n = n_mel
    for s in strides:
        n = (n - 1) // s + 1
    return n
