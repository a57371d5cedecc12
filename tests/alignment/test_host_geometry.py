"""The frame centres the alignment tests expect, checked on the hosts' own transforms with a click.

Shape glossary: B batch, N stems, C channels, F frequency bins, T frames, S samples.

A click at input sample i gives the largest STFT energy in the frame whose window is centred nearest i
(a Hann window peaks at its centre), so the centre conventions of test_host_alignment.py (``j * hop`` for
``center=True`` transforms, ``(j + 0.5) * hop`` for HTDemucs' ``_spec``) are measured here, not assumed.
Mix-Wave-U-Net's decimation is measured the same way: with centred unit-impulse kernels, the bottleneck
frame j holds exactly input sample ``j * 2**levels``.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from booster.training.hosts import load_plugin


def _click(length: int, at: int, channels: int = 2) -> torch.Tensor:
    x = torch.zeros(1, channels, length)
    x[..., at] = 1.0
    return x


def _spectral_hosts():
    """(name, energy(x [1, C, S]) -> [T], centre of frame j in samples, hop)."""
    torch.manual_seed(0)
    hd = load_plugin("htdemucs").build(size="debug", sources=["drums", "bass"], sample_rate=16000, channels=2)
    umx = load_plugin("openunmix").build(size="debug", sources=["vocals"], sample_rate=16000, channels=2)
    bsr = load_plugin("bs_roformer").build(size="debug", sources=["vocals"], sample_rate=16000, channels=2)
    mel = load_plugin("onsets_frames").build(size="debug", frontend="mel")
    cqt = load_plugin("onsets_frames").build(size="debug", frontend="cqt")

    def bsr_energy(x):
        kw = bsr.stft_kwargs
        z = torch.stft(x[0], **kw, window=bsr.stft_window_fn(device=x.device), return_complex=True)
        return z.abs().pow(2).sum((0, 1))

    return [
        ("htdemucs _spec", lambda x: hd._spec(x).abs().pow(2).sum((0, 1, 2)), lambda j, h: (j + 0.5) * h,
         hd.hop_length),
        ("openunmix stft", lambda x: umx.stft(x).pow(2).sum((0, 1, 2, 4)), lambda j, h: j * h, umx.stft.n_hop),
        ("bs_roformer stft", bsr_energy, lambda j, h: j * h, bsr.stft_kwargs["hop_length"]),
        ("transcriber mel", lambda x: mel.spectrogram(x[:, 0])[0].exp().sum(-1), lambda j, h: j * h, mel.hop_length),
        ("transcriber cqt", lambda x: cqt.spectrogram(x[:, 0])[0].exp().sum(-1), lambda j, h: j * h, cqt.hop_length),
    ]


@pytest.mark.parametrize("index", range(5), ids=["htdemucs", "openunmix", "bs_roformer", "mel", "cqt"])
def test_a_click_peaks_in_the_frame_centred_nearest_it(index):
    name, energy, centre, hop = _spectral_hosts()[index]
    length = 40 * hop + 17
    for j in (12, 25):
        for frac in (-0.3, 0.0, 0.3):
            at = int(round(centre(j, hop) + frac * hop))
            got = int(energy(_click(length, at)).argmax())
            assert got == j, f"{name}: a click at sample {at} peaks in frame {got}, expected {j} (hop {hop})"


def test_mix_wave_unet_bottleneck_frame_j_is_input_sample_j_times_2_to_the_levels():
    levels = 3
    host = load_plugin("mix_wave_unet").build(size="debug", stems=["a", "b"], sample_rate=16000, channels=1,
                                             overrides={"levels": levels, "filters": 2})
    with torch.no_grad():
        for conv in [m for m in host.modules() if isinstance(m, nn.Conv1d)]:
            conv.weight.zero_()
            conv.weight[:, 0, conv.kernel_size[0] // 2] = 1.0   # every channel copies channel 0, centred
            conv.bias.zero_()
    seen = []
    host.bottleneck.register_forward_hook(lambda m, i, out: seen.append(out[0, 0]))
    block = 2 ** levels
    for j in (3, 10):
        for shift in range(block):
            x = torch.zeros(1, 2, 1, 16 * block - 5)
            x[0, 0, 0, j * block + shift] = 1.0
            host(x)
            lit = seen[-1].nonzero().flatten().tolist()
            assert lit == ([j] if shift == 0 else []), (j, shift, lit)
