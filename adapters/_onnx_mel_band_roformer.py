"""Mel-Band-RoFormer (either layout) as an ONNX graph (``booster export``).

Shape glossary: B batch, C channels, Q STFT bins, T STFT frames, S samples, N sources, F bands, D model dim,
R rows of the band features (bins in bands x channels); a trailing 2 holds (real, imaginary).

The graph takes ``spec`` ``[B, C, Q, T, 2]`` (the mix's STFT, all bins; a boosted graph also ``mix``
``[B, C, S]``, what MuQ hears) and returns ``mask`` ``[B, N, C, Q, T, 2]``: the overlapping mel bands are
gathered by index, embedded (the adapters' default site), transformed and masked, and the masks of a bin
that several bands share are averaged inside the graph, exactly as the host does (scatter-add, division by
the band count). The runner does the STFT, the complex multiply and the inverse STFT
(:func:`booster.adapters._onnx_roformer_msst.spectral_form`). The PyPI layout's part inside the graph is
``bs_roformer.MelBandRoformer.forward`` between its STFT and its complex multiply, step for step on its own
modules (:func:`_pypi_network`); the MSST layout's is :meth:`AxialRoformer.separate`'s.
"""
from __future__ import annotations

import torch

from ._onnx_roformer_msst import bin_masks, onnx_form as msst_form, rows, spectral_form


def onnx_form(model, chunk: int, *, boosted: bool = False) -> dict:
    from .mel_band_roformer import MSSTMelRoformerSeparator
    if isinstance(model, MSSTMelRoformerSeparator):
        return msst_form(model, chunk, boosted=boosted)
    return spectral_form(model, chunk, boosted=boosted, network=_pypi_network,
                         istft_length=bool(model.match_input_audio_length))


def _pypi_network(model, spec: torch.Tensor) -> torch.Tensor:
    """``MelBandRoformer.forward`` from ``view_as_real(stft)`` ``[B, C, Q, T, 2]`` to the masks per bin."""
    b, c, q, t, _ = spec.shape
    x = rows(spec)[:, model.freq_indices]                          # [B, R, T, 2]
    x = x.permute(0, 2, 1, 3).reshape(b, t, -1)                    # 'b f t c -> b t (f c)'
    x = model.band_split(x)                                        # [B, T, F, D]
    x = model.expand_streams(x)                                    # (residual streams fold into the batch)
    linear_res = time_res = freq_res = None
    for linear_transformer, time_transformer, freq_transformer in model.layers:
        bs, bands, d = x.shape[0], x.shape[2], x.shape[3]
        if linear_transformer is not None:                         # over all T * F tokens ('b * d')
            y, v = linear_transformer(x.reshape(bs, t * bands, d), value_residual=linear_res)
            linear_res = v if linear_res is None else linear_res
            x = y.reshape(bs, t, bands, d)
        y = x.permute(0, 2, 1, 3).reshape(bs * bands, t, d)        # 'b t f d -> (b f) t d'
        y, v = time_transformer(y, value_residual=time_res)
        time_res = v if time_res is None else time_res
        y = y.reshape(bs, bands, t, d).permute(0, 2, 1, 3).reshape(bs * t, bands, d)
        y, v = freq_transformer(y, value_residual=freq_res)
        freq_res = v if freq_res is None else freq_res
        x = y.reshape(bs, t, bands, d)
    x = model.reduce_streams(x)
    masks = torch.stack([fn(x) for fn in model.mask_estimators], dim=1)     # [B, N, T, R * 2]
    masks = masks.unflatten(-1, (-1, 2)).transpose(2, 3)                     # 'b n t (f c) -> b n f t c'
    return bin_masks(model, masks, spec)
