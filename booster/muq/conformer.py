"""Conformer encoder with the numerics of transformers' ``Wav2Vec2ConformerEncoder`` (rotary variant).

Parameter names follow the official state dict (``conformer.layers.N.ffn1.intermediate_dense`` ...).
Like the reference, the rotary rotation is applied to the layer input *before* the query/key
projections, and values use the un-rotated input. Attention runs through
``torch.nn.functional.scaled_dot_product_attention``. Shapes: B batch, T frames, D feature dim.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MuQConfig

_ACTIVATIONS = {"swish": F.silu, "silu": F.silu, "gelu": F.gelu, "relu": F.relu}


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, hidden)
        self.output_dense = nn.Linear(hidden, dim)
        self.act = _ACTIVATIONS[act]
        self.dropout = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.output_dense(self.dropout(self.act(self.intermediate_dense(x)))))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_size = dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotary rotation of ``x`` ``[B, T, D]`` per head; ``cos``/``sin`` ``[T, 1, head_size]``."""
        b, t, d = x.shape
        x = x.view(b, t, self.heads, self.head_size)
        half = self.head_size // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return (x * cos + rotated * sin).view(b, t, d)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        qk_in = self.rotate(x, cos, sin)
        q = self.linear_q(qk_in).view(b, t, self.heads, self.head_size).transpose(1, 2)
        k = self.linear_k(qk_in).view(b, t, self.heads, self.head_size).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.heads, self.head_size).transpose(1, 2)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.linear_out(h.transpose(1, 2).reshape(b, t, d))


class ConvolutionModule(nn.Module):
    def __init__(self, dim: int, kernel_size: int, act: str):
        super().__init__()
        self.layer_norm = nn.LayerNorm(dim)
        self.pointwise_conv1 = nn.Conv1d(dim, 2 * dim, 1, bias=False)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel_size, padding=(kernel_size - 1) // 2,
                                        groups=dim, bias=False)
        self.batch_norm = nn.BatchNorm1d(dim)
        self.pointwise_conv2 = nn.Conv1d(dim, dim, 1, bias=False)
        self.act = _ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, T, D]; the pointwise convolutions run as matmuls in time-major layout.
        h = F.linear(self.layer_norm(x), self.pointwise_conv1.weight.squeeze(-1))
        h = F.glu(h, dim=-1).transpose(1, 2)  # [B, D, T]
        if self.training:
            h = self.batch_norm(self.depthwise_conv(h))
        else:  # BatchNorm folded into the depthwise convolution
            bn = self.batch_norm
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            w = self.depthwise_conv.weight * scale[:, None, None]
            bias = bn.bias - bn.running_mean * scale
            h = F.conv1d(h, w.to(h.dtype), bias.to(h.dtype), padding=self.depthwise_conv.padding,
                         groups=self.depthwise_conv.groups)
        h = self.act(h).transpose(1, 2)
        return F.linear(h, self.pointwise_conv2.weight.squeeze(-1))


class ConformerLayer(nn.Module):
    def __init__(self, config: MuQConfig):
        super().__init__()
        d = config.encoder_dim
        self.ffn1_layer_norm = nn.LayerNorm(d)
        self.ffn1 = FeedForward(d, config.ffn_dim, config.activation)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = SelfAttention(d, config.num_heads)
        self.conv_module = ConvolutionModule(d, config.kernel_size, config.activation)
        self.ffn2_layer_norm = nn.LayerNorm(d)
        self.ffn2 = FeedForward(d, config.ffn_dim, config.activation)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x, cos, sin, mask=None):
        x = x + 0.5 * self.ffn1(self.ffn1_layer_norm(x))
        x = x + self.self_attn(self.self_attn_layer_norm(x), cos, sin, mask)
        x = x + self.conv_module(x)
        x = x + 0.5 * self.ffn2(self.ffn2_layer_norm(x))
        return self.final_layer_norm(x)


class ConformerEncoder(nn.Module):
    """``[B, T, D]`` → hidden states; index 0 = input, i = output of layer i, depth = final LayerNorm."""

    def __init__(self, config: MuQConfig):
        super().__init__()
        self.heads = config.num_heads
        head = config.encoder_dim // config.num_heads
        inv_freq = 1.0 / (config.rotary_base ** (torch.arange(0, head, 2, dtype=torch.int64).float() / head))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.layers = nn.ModuleList(ConformerLayer(config) for _ in range(config.encoder_depth))
        self.layer_norm = nn.LayerNorm(config.encoder_dim, eps=config.layer_norm_eps)

    def rotary(self, t: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(t, device=device).type_as(self.inv_freq)
        freqs = torch.outer(pos, self.inv_freq.to(device))
        emb = torch.cat((freqs, freqs), dim=-1)[:, None, :]  # [T, 1, head]
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def forward(self, x: torch.Tensor, upto: int | None = None, keep=None,
                frame_mask: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        """Run up to hidden-state index ``upto`` (default: all) and return ``{index: [B, T, D]}`` for the
        indices in ``keep`` (default: all computed). ``frame_mask`` ``[B, T]`` (True = valid frame)
        zeroes padded frames and hides them from attention, as the reference does."""
        depth = len(self.layers)
        upto = depth if upto is None else upto
        keep = set(range(upto + 1)) if keep is None else set(keep)
        mask = None
        if frame_mask is not None:
            x = x.masked_fill(~frame_mask[..., None], 0.0)
            mask = frame_mask[:, None, None, :]
        cos, sin = self.rotary(x.shape[1], x.dtype, x.device)
        out = {}
        if 0 in keep:
            out[0] = x
        for i, layer in enumerate(self.layers[:min(upto, depth)], start=1):
            x = layer(x, cos, sin, mask)
            if i == depth:
                x = self.layer_norm(x)
            if i in keep:
                out[i] = x
        return out
