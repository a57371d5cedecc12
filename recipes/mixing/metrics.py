"""Loss and metrics of the mixing recipe.

Loss (:class:`MixLoss`): auraloss' multi-resolution STFT loss on the stereo mix (each channel) plus
auraloss' :class:`~auraloss.freq.SumAndDifferenceSTFTLoss` (the same resolutions on the mid and side
signals, which carry the stereo image).

Metrics (:func:`mix_metrics`, one estimate against its reference mix), lower is better unless noted:

``mrstft``       auraloss multi-resolution STFT distance on the stereo mix (0 for identical mixes);
``si_sdr``       scale-invariant SDR in dB over both channels, higher is better; an exact match is +inf,
                 reported as ``SI_SDR_CAP`` (100 dB); a silent reference gives NaN (undefined);
``loudness_db``  |integrated loudness difference| in LU (ITU-R BS.1770 via pyloudnorm; silence is
                 taken as ``LOUDNESS_FLOOR`` = -70 LUFS, the standard's absolute gate);
``centroid_hz`` / ``bandwidth_hz``  mean |difference| of the frame-wise spectral centroid / bandwidth
                 of the mono downmix (Hz; frames weighted equally, silent frames count as 0 Hz);
``width``        |difference| of the stereo width, side energy / (mid + side energy), in [0, 1];
``panning``      mean |difference| of the per-band panning (-1 left .. +1 right, energy-weighted over
                 time, 32 bands between 0 and Nyquist on a log scale);
``crest_db``     |difference| of the crest factor (peak / RMS, dB) of the mono downmix.

These are the feature families automix-toolkit reports (loudness, spectral, panning, dynamics), with
our own definitions stated above. Shapes: mixes ``[C, S]`` (or ``[B, C, S]`` for the loss).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

SI_SDR_CAP = 100.0
LOUDNESS_FLOOR = -70.0
METRICS = ("mrstft", "si_sdr", "loudness_db", "centroid_hz", "bandwidth_hz", "width", "panning", "crest_db")
HIGHER_IS_BETTER = {"si_sdr"}
RESOLUTIONS = {"fft_sizes": [2048, 1024, 512], "hop_sizes": [512, 256, 128], "win_lengths": [2048, 1024, 512]}


def _mrstft(**kw):
    import auraloss

    return auraloss.freq.MultiResolutionSTFTLoss(**{**RESOLUTIONS, **kw})


class MixLoss(nn.Module):
    """``loss(estimate [B, 2, S], reference [B, 2, S]) -> scalar``: stereo MR-STFT + sum/difference MR-STFT.

    ``w_stereo`` / ``w_sum_diff`` weight the two terms. Computed in float32 (also under autocast).
    """

    def __init__(self, w_stereo: float = 1.0, w_sum_diff: float = 1.0):
        super().__init__()
        import auraloss

        self.w_stereo, self.w_sum_diff = float(w_stereo), float(w_sum_diff)
        self.stereo = _mrstft()
        self.sum_diff = auraloss.freq.SumAndDifferenceSTFTLoss(**RESOLUTIONS)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if estimate.shape != reference.shape or estimate.dim() != 3 or estimate.shape[1] != 2:
            raise ValueError(f"MixLoss expects two [B, 2, S] tensors, got {tuple(estimate.shape)} and "
                             f"{tuple(reference.shape)}")
        est, ref = estimate.float(), reference.float()  # STFTs in float32 (bf16-mixed training gives bf16)
        with torch.autocast(est.device.type, enabled=False):
            return self.w_stereo * self.stereo(est, ref) + self.w_sum_diff * self.sum_diff(est, ref)


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, cap: float = SI_SDR_CAP) -> float:
    """Scale-invariant SDR (dB) of ``estimate`` against ``reference`` (same shape, all samples together).

    +inf (exact match up to scale) is clamped to ``cap``, -inf (estimate orthogonal or silent) to
    ``-cap``; a silent reference returns NaN.
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"si_sdr needs equal shapes, got {tuple(estimate.shape)} and {tuple(reference.shape)}")
    s = reference.detach().double().flatten()
    e = estimate.detach().double().flatten()
    ref_energy = float(s @ s)
    if ref_energy == 0.0:
        return float("nan")
    target = (float(e @ s) / ref_energy) * s
    noise = e - target
    t_energy, n_energy = float(target @ target), float(noise @ noise)
    if t_energy == 0.0:
        return -float(cap)
    if n_energy == 0.0 or n_energy / t_energy < 10 ** (-cap / 10):
        return float(cap)
    return float(max(-cap, min(cap, 10 * math.log10(t_energy / n_energy))))


def loudness(wav: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness (LUFS) of ``wav`` ``[C, S]``; silence gives ``LOUDNESS_FLOOR``."""
    import pyloudnorm

    x = wav.detach().cpu().double().numpy().T  # [S, C]
    block = min(0.4, x.shape[0] / sample_rate)  # clips shorter than the standard 400 ms block
    if block <= 0:
        return LOUDNESS_FLOOR
    with np.errstate(divide="ignore"):
        value = pyloudnorm.Meter(sample_rate, block_size=block).integrated_loudness(x)
    return float(value) if math.isfinite(value) and value > LOUDNESS_FLOOR else LOUDNESS_FLOOR


def _spectrum(wav: torch.Tensor, n_fft: int = 2048, hop: int = 512) -> torch.Tensor:
    """Magnitude STFT ``[C, F, T]`` (Hann window, centred)."""
    window = torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    n_fft_used = n_fft if wav.shape[-1] >= n_fft // 2 + 1 else 2 ** int(math.log2(max(2, wav.shape[-1])))
    if n_fft_used != n_fft:
        window = torch.hann_window(n_fft_used, device=wav.device, dtype=wav.dtype)
        hop = max(1, n_fft_used // 4)
    return torch.stft(wav, n_fft_used, hop, window=window, center=True, return_complex=True).abs()


def spectral_shape(wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-wise spectral centroid and bandwidth (Hz) of the mono downmix of ``wav`` ``[C, S]``: ``([T], [T])``."""
    mag = _spectrum(wav.double().mean(0, keepdim=True))[0]            # [F, T]
    freqs = torch.linspace(0, sample_rate / 2, mag.shape[0], dtype=mag.dtype, device=mag.device)[:, None]
    total = mag.sum(0)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    centroid = torch.where(total > 0, (freqs * mag).sum(0) / safe, torch.zeros_like(total))
    spread = ((freqs - centroid) ** 2 * mag).sum(0) / safe
    return centroid, torch.where(total > 0, spread.sqrt(), torch.zeros_like(total))


def stereo_width(wav: torch.Tensor) -> float:
    """Side energy / (mid + side energy) of a stereo ``[2, S]`` signal (0: mono, 1: fully out of phase)."""
    x = wav.detach().double()
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    total = float(mid @ mid + side @ side)
    return float(side @ side) / total if total > 0 else 0.0


def panning_profile(wav: torch.Tensor, bands: int = 32) -> torch.Tensor:
    """Per-band panning of a stereo ``[2, S]`` signal: ``[bands]`` in [-1 (left), +1 (right)], energy-weighted."""
    mag = _spectrum(wav.detach().double())                          # [2, F, T]
    left, right = mag[0] ** 2, mag[1] ** 2
    n_bins = mag.shape[1]
    edges = np.unique(np.round(np.geomspace(1, n_bins, bands + 1)).astype(int))
    edges[0] = 0
    out = torch.zeros(bands, dtype=mag.dtype, device=mag.device)
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        e_l, e_r = float(left[a:b].sum()), float(right[a:b].sum())
        out[i] = (e_r - e_l) / (e_r + e_l) if e_r + e_l > 0 else 0.0
    return out


def crest_factor_db(wav: torch.Tensor) -> float:
    """Peak / RMS of the mono downmix in dB (0 for silence)."""
    x = wav.detach().double().mean(0)
    rms = float(x.pow(2).mean().sqrt())
    return 20 * math.log10(float(x.abs().max()) / rms) if rms > 0 else 0.0


def mix_metrics(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int,
                mrstft: nn.Module | None = None) -> dict[str, float]:
    """All :data:`METRICS` of one stereo estimate ``[2, S]`` against its reference ``[2, S]``.

    ``mrstft``: a prebuilt auraloss MR-STFT module to reuse (built on each call otherwise).
    """
    if estimate.shape != reference.shape or estimate.dim() != 2 or estimate.shape[0] != 2:
        raise ValueError(f"mix_metrics expects two [2, S] mixes, got {tuple(estimate.shape)} and "
                         f"{tuple(reference.shape)}")
    est, ref = estimate.detach().float(), reference.detach().float()
    mr = (mrstft or _mrstft())
    short = max(0, max(RESOLUTIONS["fft_sizes"]) - est.shape[-1])  # the STFTs need a whole window
    with torch.no_grad():
        dist = float(mr(torch.nn.functional.pad(est, (0, short))[None],
                        torch.nn.functional.pad(ref, (0, short))[None]))
    c_e, b_e = spectral_shape(est, sample_rate)
    c_r, b_r = spectral_shape(ref, sample_rate)
    return {
        "mrstft": dist,
        "si_sdr": si_sdr(est, ref),
        "loudness_db": abs(loudness(est, sample_rate) - loudness(ref, sample_rate)),
        "centroid_hz": float((c_e - c_r).abs().mean()),
        "bandwidth_hz": float((b_e - b_r).abs().mean()),
        "width": abs(stereo_width(est) - stereo_width(ref)),
        "panning": float((panning_profile(est) - panning_profile(ref)).abs().mean()),
        "crest_db": abs(crest_factor_db(est) - crest_factor_db(ref)),
    }
