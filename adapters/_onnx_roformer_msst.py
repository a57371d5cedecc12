"""RoFormers with full-band masks (MSST class layout, either family; PyPI Mel-Band-RoFormer) as ONNX graphs.

Shape glossary: B batch, C channels, Q STFT bins, T STFT frames, S samples, N sources, R rows of the band
features (bins in bands x channels, a bin counted once per band it is in); a trailing 2 holds (real, imaginary).

The graph holds the network between the STFT and the masking: ``spec`` ``[B, C, Q, T, 2]`` (the mix's
``torch.stft`` as the host takes it: centred, reflect padding, Hann window of ``stft_win_length``) -> the
host's band gathering and band split (where the adapters' default site is) -> its transformers -> one mask
estimator per source -> ``mask`` ``[B, N, C, Q, T, 2]``, the complex mask of every bin. Mel bands overlap:
a bin in several bands gets the average of their masks, computed in the graph as the host computes it
(a ScatterElements add over the rows, then division by the bin's band count), so the mask is exact.
``zero_dc`` (the DC bin of each estimate zeroed) is a zero mask at bin 0 in the graph: the estimate is
``spec * mask``, so it is the same zero. The runner multiplies the mix's STFT by each mask and inverts the
STFT: ``length = chunk`` when the host asks the inverse STFT for the input length (MSST BS-RoFormer,
``match_input_audio_length``), else ``hop * (T - 1)`` samples zero-padded to the chunk, as the host pads.
"""
from __future__ import annotations

import contextlib

import torch

from booster.errors import ConfigError


def onnx_form(model, chunk: int, *, boosted: bool = False) -> dict:
    """The export form of an MSST-layout RoFormer (:class:`~booster.adapters._roformer_msst.AxialRoformer`)."""
    from ._roformer_msst import AxialRoformer
    if not isinstance(model, AxialRoformer):
        raise ConfigError(f"{type(model).__name__} is not an MSST-layout RoFormer")
    return spectral_form(model, chunk, boosted=boosted, network=_msst_network,
                         istft_length=bool(model.istft_length))


def spectral_form(model, chunk: int, *, boosted: bool, network, istft_length: bool) -> dict:
    """``onnx_form``'s dict for a host whose graph maps the full STFT to full-band masks (``network(model,
    spec) -> mask``): pre = the host's STFT, post = complex multiply and the host's inverse STFT."""
    kw = model.stft_kwargs
    n_fft, hop = int(kw["n_fft"]), int(kw["hop_length"])
    win = int(kw.get("win_length") or n_fft)
    bins, c, n, frames = n_fft // 2 + 1, int(model.audio_channels), len(model.mask_estimators), 1 + chunk // hop
    stft = dict(n_fft=n_fft, hop=hop, win_length=win, window="hann", center=True, normalized=bool(kw["normalized"]))
    pre = [dict(op="stft", **{"in": "mix"}, out="spec", center_pad_mode="reflect", **stft,
                meaning="the host's STFT of the mix")]
    length = dict(length=chunk) if istft_length else dict(fit=chunk)
    post = [dict(op="complex_mul", **{"in": ["spec", "mask"]}, out="zout", expand=1,
                 meaning="the mix's STFT times each source's complex mask"),
            dict(op="istft", **{"in": "zout"}, out="stems", **length, **stft,
                 meaning="the host's inverse STFT" + (" at the chunk's length" if istft_length
                                                       else ", zero-padded to the chunk"))]
    spec = dict(name="spec", shape=["B", c, bins, frames, 2], meaning="the STFT of `pre` (real, imag)")
    inputs = [dict(name="mix", shape=["B", c, chunk], meaning="the chunk's audio (for MuQ)")] if boosted else []
    return {"inputs": inputs + [spec],
            "outputs": [dict(name="mask", shape=["B", n, c, bins, frames, 2],
                             meaning="complex mask of each source (real, imag), in the order of `sources`"
                             + (", zero at the DC bin (zero_dc)" if model.zero_dc else ""))],
            "pre": pre, "post": post, "output": "stems", "patch": lambda: patched(model, network)}


def rows(spec: torch.Tensor) -> torch.Tensor:
    """``[B, C, Q, T, 2]`` -> ``[B, Q * C, T, 2]`` (bins major, channels minor, as the hosts stack them)."""
    b, c, q, t, _ = spec.shape
    return spec.permute(0, 2, 1, 3, 4).reshape(b, q * c, t, 2)


def bin_masks(model, masks: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """Masks per row ``[B, N, R, T, 2]`` -> per bin ``[B, N, C, Q, T, 2]`` (``spec``: the graph input, whose
    sizes the exporter keeps dynamic): a host with ``freq_indices`` (mel bands) sums the rows into their bins
    and divides by ``num_bands_per_freq``, as its forward does; ``zero_dc``: bin 0 is zero."""
    n, channels, bins, t = masks.shape[1], spec.shape[1], spec.shape[2], spec.shape[3]
    index = getattr(model, "freq_indices", None)
    if index is not None:
        zeros = rows(torch.zeros_like(spec))[:, None].repeat(1, n, 1, 1, 1)      # [B, N, Q * C, T, 2]
        summed = zeros.scatter_add(2, index.view(1, 1, -1, 1, 1).expand_as(masks), masks)
        denom = model.num_bands_per_freq.to(masks.dtype).repeat_interleave(int(model.audio_channels))
        masks = summed / denom.clamp(min=1e-8).view(-1, 1, 1)
    masks = masks.reshape(-1, n, bins, channels, t, 2).permute(0, 1, 3, 2, 4, 5)
    if model.zero_dc:                                  # times (0, 1, 1, ...) over the bins: a trace keeps B dynamic
        masks = masks * (torch.arange(masks.shape[3]) > 0).to(masks.dtype).view(-1, 1, 1)
    return masks


def _msst_network(model, spec: torch.Tensor) -> torch.Tensor:
    """:meth:`AxialRoformer.separate` from ``view_as_real(stft)`` ``[B, C, Q, T, 2]`` to the masks."""
    x = model.band_split(model.gather_bands(rows(spec)))                     # [B, T, F, D]
    x = model.transform(x)
    if hasattr(model, "final_norm"):
        x = model.final_norm(x)
    masks = torch.stack([m(x) for m in model.mask_estimators], dim=1)       # [B, N, T, R * 2]
    masks = masks.unflatten(-1, (-1, 2)).transpose(2, 3)                     # [B, N, R, T, 2]
    return bin_masks(model, masks, spec)


@contextlib.contextmanager
def patched(model, network):
    """``model([mix,] spec) -> mask`` inside the block (an instance attribute, removed on exit)."""
    object.__setattr__(model, "forward", lambda *inputs: network(model, inputs[-1]))
    try:
        yield model
    finally:
        model.__dict__.pop("forward", None)
