"""BS-RoFormer (:class:`~booster.adapters.bs_roformer.RoformerSeparator`) as an ONNX graph (``booster export``).

Shape glossary: B batch, C channels, F frequency bins, T STFT frames, S samples, N sources, D model dim; a
trailing 2 holds (real, imaginary).

The graph holds the network between the STFT and the masking: ``spec`` ``[B, C, F, T, 2]`` (the mix's
``torch.stft`` as BS-RoFormer takes it: centred, reflect padding, Hann window of ``stft_win_length``, the
bins of ``freq_range`` kept) -> band split (where the adapters' default site is) -> the axial time /
frequency transformers -> one mask estimator per source -> ``mask`` ``[B, N, C, F, T, 2]``. A boosted graph
also takes the chunk's audio ``mix`` ``[B, C, S]`` (what MuQ hears). The runner multiplies the mix's STFT by
each complex mask, zero-pads the bins outside ``freq_range`` and inverts the STFT (``hop * (T - 1)``
samples, zero-padded to the chunk as :class:`RoformerSeparator` pads). The part inside the graph is
BS-RoFormer's own forward between its STFT and its complex multiply, step for step on its own modules
(:func:`_network`; tests/export check it against the model's forward). ``zero_dc`` is a zero mask at the DC
bin (the estimate is ``spec * mask``: the same zero). The MSST class layout has its own form
(:mod:`booster.adapters._onnx_roformer_msst`).
"""
from __future__ import annotations

import contextlib

import torch


def onnx_form(model, chunk: int, *, boosted: bool = False) -> dict:
    from .bs_roformer import RoformerSeparator
    if not isinstance(model, RoformerSeparator):          # MSST class layout: its own form
        from ._onnx_roformer_msst import onnx_form as msst_form
        return msst_form(model, chunk, boosted=boosted)
    kw = model.stft_kwargs
    n_fft, hop = int(kw["n_fft"]), int(kw["hop_length"])
    win = int(kw.get("win_length") or n_fft)
    lo, hi = int(model.freq_slice.start), int(model.freq_slice.stop)
    bins_total = n_fft // 2 + 1
    c, n, frames = int(model.audio_channels), len(model.mask_estimators), 1 + chunk // hop
    stft = dict(n_fft=n_fft, hop=hop, win_length=win, window="hann", center=True, normalized=bool(kw["normalized"]))
    pre = [dict(op="stft", **{"in": "mix"}, out="spec", center_pad_mode="reflect", bins=[lo, hi], **stft,
                meaning="BS-RoFormer's STFT of the mix, bins of freq_range")]
    post = [dict(op="complex_mul", **{"in": ["spec", "mask"]}, out="zout", expand=1,
                 meaning="the mix's STFT times each source's complex mask"),
            dict(op="istft", **{"in": "zout"}, out="stems", pad_bins=[lo, bins_total - hi], fit=chunk, **stft,
                 meaning="BS-RoFormer's iSTFT, zero-padded to the chunk")]
    spec = dict(name="spec", shape=["B", c, hi - lo, frames, 2], meaning="the STFT of `pre` (real, imag)")
    inputs = [dict(name="mix", shape=["B", c, chunk], meaning="the chunk's audio (for MuQ)")] if boosted else []
    return {"inputs": inputs + [spec],
            "outputs": [dict(name="mask", shape=["B", n, c, hi - lo, frames, 2],
                             meaning="complex mask of each source (real, imag), in the order of `sources`")],
            "pre": pre, "post": post, "output": "stems", "patch": lambda: _patched(model)}


def _network(model, spec):
    """BS-RoFormer's forward from ``view_as_real(stft)`` ``[B, C, F, T, 2]`` to the masks ``[B, N, C, F, T, 2]``."""
    b, c, f, t, _ = spec.shape
    x = spec.permute(0, 2, 1, 3, 4).reshape(b, f * c, t, 2)        # 'b s f t c -> b (f s) t c'
    x = x.permute(0, 2, 1, 3).reshape(b, t, f * c * 2)             # 'b f t c -> b t (f c)'
    x = model.band_split(x)                                        # [B, T, bands, D]
    x = model.expand_stream(x)                                     # (residual streams fold into the batch)
    time_res = freq_res = None
    for time_transformer, freq_transformer in model.layers:
        bs, bands, d = x.shape[0], x.shape[2], x.shape[3]
        y = x.permute(0, 2, 1, 3).reshape(bs * bands, t, d)        # 'b t f d -> (b f) t d'
        y, v = time_transformer(y, value_residual=time_res)
        time_res = v if time_res is None else time_res
        y = y.reshape(bs, bands, t, d).permute(0, 2, 1, 3).reshape(bs * t, bands, d)
        y, v = freq_transformer(y, value_residual=freq_res)
        freq_res = v if freq_res is None else freq_res
        x = y.reshape(bs, t, bands, d)
    x = model.final_norm(model.reduce_stream(x))
    mask = torch.stack([fn(x) for fn in model.mask_estimators], dim=1)      # [B, N, T, F*C*2]
    n = mask.shape[1]
    mask = mask.reshape(b, n, t, f, c, 2)                          # 'b n t ((f s) c)'
    mask = mask.permute(0, 1, 4, 3, 2, 5)                          # [B, N, C, F, T, 2]
    if model.zero_dc and model.freq_slice.start == 0:              # the estimate's DC bin is zero: so is its mask
        mask = torch.cat([torch.zeros_like(mask[:, :, :, :1]), mask[:, :, :, 1:]], dim=3)
    return mask


@contextlib.contextmanager
def _patched(model):
    """``model([mix,] spec) -> mask`` inside the block (an instance attribute, removed on exit)."""
    object.__setattr__(model, "forward", lambda *inputs: _network(model, inputs[-1]))
    try:
        yield model
    finally:
        model.__dict__.pop("forward", None)
