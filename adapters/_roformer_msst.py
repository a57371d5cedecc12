"""Band-split and mel-band RoFormers in MSST's class layout: our implementation, shared by two host plug-ins.

Shape glossary: B batch, C channels, F bands (``Q`` STFT bins where said), T STFT frames, S samples,
N sources (stems), D model dim, H heads.

ZFTurbo's Music-Source-Separation-Training (MSST) trains ``BSRoformer`` / ``MelBandRoformer`` on the class
layout of lucidrains' BS-RoFormer 0.3.x-0.4.x (gated attention, plain residuals) plus its own options
(``mlp_expansion_factor``, ``skip_connection``, ``linear_transformer_depth`` for both families,
``zero_dc``, ``use_torch_checkpoint``); today's PyPI ``bs-roformer`` (hyper-connections, value residuals)
computes something else and names its weights differently. The modules below compute MSST's maths and
carry MSST's state-dict names, so an MSST ``.ckpt`` loads with a strict key and shape check
(:func:`booster.msst.load_exact`). ``use_pope`` (PoPE positions) is not implemented: the plug-ins refuse it.

Per block: [linear-attention transformer over all (T, F) tokens] -> [+ the outputs of all earlier blocks
(``skip_connection``)] -> time transformer (over T, per band) -> frequency transformer (over F, per frame).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from booster.errors import ConfigError



class RMSNorm(nn.Module):
    """``x / |x| * sqrt(D) * gamma`` over the last axis."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    """``[B, L, H * d]`` -> ``[B, H, L, d]`` (a reshape by the input's own sizes: an ONNX trace keeps B dynamic)."""
    b, length, _ = x.shape
    return x.reshape(b, length, h, -1).transpose(1, 2)


class Attention(nn.Module):
    """Softmax attention with rotary positions and a sigmoid gate per head (``to_gates``)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, rotary_embed: nn.Module | None):
        super().__init__()
        self.heads, self.dropout = heads, float(dropout)
        self.rotary_embed = rotary_embed
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # [B, L, D] -> [B, L, D]
        x = self.norm(x)
        q, k, v = (_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        if self.rotary_embed is not None:
            q, k = self.rotary_embed.rotate_queries_or_keys(q), self.rotary_embed.rotate_queries_or_keys(k)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        out = out * self.to_gates(x).transpose(1, 2).unsqueeze(-1).sigmoid()   # [B, H, L, 1] gates
        return self.to_out(out.transpose(1, 2).flatten(2))


class _MergeHeads(nn.Module):
    """``[B, H, d, L]`` -> ``[B, L, H * d]`` (a parameter-free slot, so the projection keeps MSST's index)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2).flatten(2)


class LinearAttention(nn.Module):
    """Cross-covariance attention (El-Nouby et al., 2021): a ``[d, d]`` softmax map per head over
    L2-normalised feature rows, with a learned log-temperature per head and a fixed scale of 8."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, float(dropout)
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Sequential(nn.Linear(dim, 3 * heads * dim_head, bias=False))
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_out = nn.Sequential(_MergeHeads(), nn.Linear(heads * dim_head, dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # [B, L, D] -> [B, L, D]
        x = self.norm(x)
        q, k, v = (_heads(t, self.heads).transpose(-1, -2) for t in self.to_qkv(x).chunk(3, dim=-1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)                 # [B, H, d, L]
        q = q * self.temperature.exp()
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                             scale=8.0)
        return self.to_out(out)


class FeedForward(nn.Module):
    """RMSNorm, linear to ``mult * D``, GELU, linear back (dropout after each)."""

    def __init__(self, dim: int, mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(RMSNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mult, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """``depth`` pre-norm blocks ``x + attn(x)``, ``x + ff(x)``; ``norm`` an RMSNorm (mel-band) or none."""

    def __init__(self, *, dim: int, depth: int, heads: int, dim_head: int, attn_dropout: float,
                 ff_dropout: float, rotary_embed=None, linear: bool = False, norm_output: bool = False):
        super().__init__()
        attn = (lambda: LinearAttention(dim, heads, dim_head, attn_dropout)) if linear else \
            (lambda: Attention(dim, heads, dim_head, attn_dropout, rotary_embed))
        self.layers = nn.ModuleList(nn.ModuleList([attn(), FeedForward(dim, 4, ff_dropout)])
                                    for _ in range(depth))
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = x + attn(x)
            x = x + ff(x)
        return self.norm(x)


class BandSplit(nn.Module):
    """``[B, T, sum(dims_in)]`` -> ``[B, T, F, D]``: per band an RMSNorm and a linear map to D."""

    def __init__(self, dim: int, dims_in: tuple[int, ...]):
        super().__init__()
        self.dims_in = tuple(int(d) for d in dims_in)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(d), nn.Linear(d, dim)) for d in self.dims_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([f(p) for f, p in zip(self.to_features, x.split(self.dims_in, dim=-1))], dim=-2)


class MaskEstimator(nn.Module):
    """``[B, T, F, D]`` -> ``[B, T, sum(dims_in)]``: per band a tanh MLP (``hidden_layers`` hidden layers of
    ``D * expansion``) to twice the band's width, then a GLU. (BS-RoFormer's ``mask_estimator_depth`` counts
    linear maps, ``hidden_layers = depth - 1``; Mel-Band-RoFormer's counts hidden layers.)"""

    def __init__(self, dim: int, dims_in: tuple[int, ...], hidden_layers: int, expansion: int):
        super().__init__()
        hidden = dim * expansion

        def mlp(d_out: int) -> nn.Sequential:
            sizes = [dim] + [hidden] * hidden_layers + [d_out]
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers += [nn.Linear(a, b)] + ([nn.Tanh()] if i < len(sizes) - 2 else [])
            return nn.Sequential(*layers)
        self.to_freqs = nn.ModuleList(nn.Sequential(mlp(2 * d), nn.GLU(dim=-1)) for d in dims_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([f(b) for f, b in zip(self.to_freqs, x.unbind(dim=-2))], dim=-1)


class AxialRoformer(nn.Module):
    """MSST's RoFormer skeleton; subclasses say how STFT bins become bands and masks become bins
    (:meth:`gather_bands`, :meth:`apply_masks`) and set ``band_dims`` before :meth:`build`.

    ``forward(raw [B, C, S]) -> [B, N, C, S']`` with ``S' = S`` when ``istft_length`` is on, else the
    inverse STFT's own length (``S // hop * hop``)."""

    def build(self, *, dim: int, depth: int, stereo: bool, num_stems: int, band_dims: tuple[int, ...],
              time_transformer_depth: int, freq_transformer_depth: int, linear_transformer_depth: int,
              dim_head: int, heads: int, attn_dropout: float, ff_dropout: float, stft_n_fft: int,
              stft_hop_length: int, stft_win_length: int, stft_normalized: bool, zero_dc: bool,
              mask_hidden_layers: int, mlp_expansion_factor: int, skip_connection: bool,
              use_torch_checkpoint: bool, multi_stft_resolution_loss_weight: float,
              multi_stft_resolutions_window_sizes, multi_stft_hop_size: int, multi_stft_normalized: bool,
              transformer_norm: bool, final_norm: bool, istft_length: bool) -> None:
        from rotary_embedding_torch import RotaryEmbedding
        self.audio_channels = 2 if stereo else 1
        self.num_stems = int(num_stems)
        self.skip_connection, self.use_torch_checkpoint = bool(skip_connection), bool(use_torch_checkpoint)
        self.zero_dc, self.istft_length = bool(zero_dc), bool(istft_length)
        kw = dict(dim=dim, heads=heads, dim_head=dim_head, attn_dropout=attn_dropout, ff_dropout=ff_dropout,
                  norm_output=transformer_norm)
        time_rope, freq_rope = RotaryEmbedding(dim=dim_head), RotaryEmbedding(dim=dim_head)   # shared by blocks
        self.layers = nn.ModuleList()
        for _ in range(depth):
            block = [Transformer(depth=linear_transformer_depth, linear=True, **kw)] if linear_transformer_depth else []
            block += [Transformer(depth=time_transformer_depth, rotary_embed=time_rope, **kw),
                      Transformer(depth=freq_transformer_depth, rotary_embed=freq_rope, **kw)]
            self.layers.append(nn.ModuleList(block))
        if final_norm:
            self.final_norm = RMSNorm(dim)
        self.stft_kwargs = dict(n_fft=stft_n_fft, hop_length=stft_hop_length, win_length=stft_win_length,
                                normalized=stft_normalized)
        self.band_split = BandSplit(dim, band_dims)
        self.mask_estimators = nn.ModuleList(MaskEstimator(dim, band_dims, mask_hidden_layers, mlp_expansion_factor)
                                             for _ in range(num_stems))
        self.multi_stft_resolution_loss_weight = float(multi_stft_resolution_loss_weight)
        self.multi_stft_resolutions_window_sizes = tuple(multi_stft_resolutions_window_sizes)
        self.multi_stft_n_fft = stft_n_fft
        self.multi_stft_window_fn = torch.hann_window
        self.multi_stft_kwargs = dict(hop_length=multi_stft_hop_size, normalized=multi_stft_normalized)

    def stft_window_fn(self, device=None) -> torch.Tensor:
        return torch.hann_window(self.stft_kwargs["win_length"], device=device)

    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.use_torch_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def gather_bands(self, spec: torch.Tensor) -> torch.Tensor:
        """``[B, Q * C, T, 2]`` (bins frequency-major, channels interleaved) -> ``[B, T, sum(band_dims)]``."""
        raise NotImplementedError

    def apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``spec`` ``[B, Q * C, T]`` complex, ``masks`` ``[B, N, sum(band_dims) / 2, T]`` complex ->
        ``[B, N, Q * C, T]``."""
        raise NotImplementedError

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The block stack on band features ``[B, T, F, D]``."""
        outputs = []
        for i, block in enumerate(self.layers):
            if len(block) == 3:                              # linear attention over all T * F tokens
                b, t, f, d = x.shape
                x = self._run(block[0], x.reshape(b, t * f, d)).reshape(b, t, f, d)
            if self.skip_connection:
                for earlier in outputs:
                    x = x + earlier
            time_tf, freq_tf = block[-2], block[-1]
            b, t, f, d = x.shape
            x = self._run(time_tf, x.transpose(1, 2).reshape(b * f, t, d)).reshape(b, f, t, d).transpose(1, 2)
            x = self._run(freq_tf, x.reshape(b * t, f, d)).reshape(b, t, f, d)
            if self.skip_connection:
                outputs.append(x)
        return x

    def separate(self, raw: torch.Tensor) -> torch.Tensor:
        """``raw`` ``[B, C, S]`` (or ``[B, S]`` mono) -> ``[B, N, C, S']``."""
        raw = raw[:, None] if raw.dim() == 2 else raw
        b, c, s = raw.shape
        if c != self.audio_channels:
            raise ValueError(f"this RoFormer takes {self.audio_channels} channel(s), got {c}")
        window = self.stft_window_fn(device=raw.device)
        spec = torch.stft(raw.reshape(b * c, s), **self.stft_kwargs, window=window, return_complex=True)
        q, t = spec.shape[-2:]
        spec = spec.reshape(b, c, q, t).transpose(1, 2).reshape(b, q * c, t)   # bins major, channels minor
        x = self.band_split(self.gather_bands(torch.view_as_real(spec)))
        x = self.transform(x)
        if hasattr(self, "final_norm"):
            x = self.final_norm(x)
        masks = torch.stack([self._run(m, x) for m in self.mask_estimators], dim=1)   # [B, N, T, 2 * bins]
        masks = torch.view_as_complex(masks.unflatten(-1, (-1, 2)).transpose(2, 3).contiguous())
        out = self.apply_masks(spec, masks.to(spec.dtype))                     # [B, N, Q * C, T]
        n = out.shape[1]
        out = out.reshape(b, n, q, c, t).transpose(2, 3).reshape(b * n * c, q, t)
        if self.zero_dc:
            out = out.index_fill(1, torch.tensor([0], device=out.device), 0.0)
        wav = torch.istft(out, **self.stft_kwargs, window=window, return_complex=False,
                          length=s if self.istft_length else None)
        return wav.reshape(b, n, c, -1)


# ---- shared by the two RoFormer plug-ins (either layout) -------------------------------------------
def msst_arguments(kwargs: dict, family: str, defaults: dict) -> dict:
    """MSST keywords with their defaults filled in; unknown or unsupported ones: one ConfigError line."""
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ConfigError(f"MSST {family} option(s) {unknown} are not known to this host (known: "
                          f"{', '.join(sorted(defaults))})")
    kw = {**defaults, **kwargs}
    if kw.get("use_pope"):
        raise ConfigError(f"MSST {family} option use_pope: true (PoPE positions) is not supported by this host")
    return kw


def io_functions(model: nn.Module) -> dict:
    """``input_fn``: ``(mix, samplerate)``; ``span_fn``: the STFT frames (centred) tile ``1 + S // hop`` hops
    starting half a hop before the first sample."""
    def input_fn(mix=None, *args, **kwargs):
        return kwargs.get("mix", mix), int(model.samplerate)

    def span_fn(mix=None, *args, **kwargs):
        sr, hop = float(model.samplerate), int(model.stft_kwargs["hop_length"])
        frames = 1 + kwargs.get("mix", mix).shape[-1] // hop
        return -hop / 2 / sr, frames * hop / sr
    return {"input_fn": input_fn, "span_fn": span_fn}


def per_source_loss(model: nn.Module, host: nn.Module, mix: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Per-source RoFormer loss ``[N]``: waveform L1 + ``multi_stft_resolution_loss_weight`` x the
    multi-resolution STFT L1 (the packages' own loss, whose value is the mean of these over sources), on the
    samples the inverse STFT reconstructs. ``model``: the host or its boosted wrapper (called, so adapters run)."""
    est = model(mix)                                               # [B, N, C, S]
    n = mix.shape[-1] // host.stft_kwargs["hop_length"] * host.stft_kwargs["hop_length"]
    est, ref = est[..., :n], sources[..., :n]
    per = (est - ref).abs().mean(dim=(0, 2, 3))
    extra = getattr(host, "multi_stft_kwargs", None) or dict(hop_length=host.multi_stft_hop_length,
                                                               normalized=host.multi_stft_normalized)
    for win in host.multi_stft_resolutions_window_sizes:
        kw = dict(n_fft=max(win, host.multi_stft_n_fft), win_length=win, return_complex=True,
                  window=host.multi_stft_window_fn(win, device=mix.device), **extra)
        y_hat = torch.stft(est.transpose(0, 1).reshape(est.shape[1], -1, n).flatten(0, 1), **kw)
        y = torch.stft(ref.transpose(0, 1).reshape(ref.shape[1], -1, n).flatten(0, 1), **kw)
        d = (y_hat - y).abs()                                     # [N * B * C, F, T]: complex magnitude
        per = per + host.multi_stft_resolution_loss_weight * d.reshape(est.shape[1], -1).mean(1)
    return per


def transformer_linears(host: nn.Module) -> list[str]:
    """Qualified names of the ``nn.Linear`` maps inside a RoFormer's transformers (``layers.*``): attention
    q/k/v (fused ``to_qkv``), output (``to_out``) and feed-forward (``net``); gates and value-residual mixes
    are left out."""
    keep = ("to_qkv", "to_out", "net")
    return [name for name, m in host.named_modules() if isinstance(m, nn.Linear) and name.startswith("layers.")
            and any(part in keep for part in name.split("."))]
