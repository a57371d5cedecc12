"""Every host plug-in, every default site: a feature impulse at time t reaches the host frame centred nearest t.

Shape glossary: B batch, N stems/sources, C channels, F frequency bins, T frames, S samples.

Frame centres come from each host's own geometry, in samples of its input (sample i at i / sr, the
convention of MuQ's frames and of ``torch.stft(center=True)``):

* STFT hosts (Open-Unmix Separator, BS-RoFormer, the transcriber's mel and CQT front ends): centred frames,
  frame j at ``j * hop``, ``1 + S // hop`` frames (checked on the transform itself with a click).
* HTDemucs, frequency branch: ``_spec`` reflect-pads ``hop // 2 * 3`` samples, runs a centred STFT and keeps
  frames ``2 .. 2 + ceil(S / hop)``: frame j at ``(j + 2) * hop - hop // 2 * 3`` = ``(j + 0.5) * hop``;
  the frequency encoders convolve over F only. Time branch: each time encoder pads its input to a multiple
  of its stride and convolves (kernel k, stride s, padding p): frame j at ``s * j - p + (k - 1) / 2`` of the
  level below. In eval mode a mix shorter than the training segment is padded to it first.
* Mix-Wave-U-Net: "same" convolutions and decimation ``x[..., ::2]``: level m frame j at ``j * 2**m``;
  the bottleneck is level ``levels``, decoder ``up.i`` level ``levels - 1 - i`` (its skip's grid).
* CRAFx2: a centred filter bank, then max-pooling by ``hop``: latent frame j pools samples
  ``j * hop .. (j + 1) * hop - 1``, centred at ``j * hop + (hop - 1) / 2``.
"""
from __future__ import annotations

import math

import pytest
import torch
from alignment_helpers import check_site, open_adapters

from booster.training.hosts import available_hosts, load_plugin


def _affine(step: float, first: float, sr: float, frames: int) -> torch.Tensor:
    """``[T]`` centres in seconds of frames ``first + j * step`` samples."""
    return (first + step * torch.arange(frames, dtype=torch.float64)) / sr


# ---- per host: build + boost (debug size), the call's arguments, the centres of each default site --------------
def htdemucs_case(muq, train: bool):
    plugin = load_plugin("htdemucs")
    torch.manual_seed(0)
    host = plugin.build(size="debug", sources=["drums", "bass"], sample_rate=16000, channels=2, segment=0.99)
    host.train(train)
    boosted = plugin.boost(host, muq, layers=[1])
    boosted.train(train)
    sr = host.samplerate

    def args(length, batch):
        return (torch.randn(batch, 2, length),)

    def centres(site):
        time_branch = site.element == 1

        def fn(length, frames):
            if host.use_train_segment and not host.training:
                length = max(length, int(host.segment * sr))
            if not time_branch:
                hop = host.hop_length
                n = math.ceil(length / hop)
                return _affine(hop, 2 * hop - hop // 2 * 3, sr, n)
            step, first, n = 1.0, 0.0, length
            for layer in host.tencoder:
                conv = layer.conv
                k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
                n = math.ceil(n / s) * s
                n = (n + 2 * p - k) // s + 1
                first, step = first + step * (-p + (k - 1) / 2), step * s
            return _affine(step, first, sr, n)
        return fn
    return boosted, args, centres, [16000 - 37, 12345] if train else [9001]


def openunmix_case(muq):
    plugin = load_plugin("openunmix")
    torch.manual_seed(0)
    host = plugin.build(size="debug", sources=["vocals", "drums"], sample_rate=16000, channels=2)
    boosted = plugin.boost(host.eval(), muq, layers=[1])
    assert host.stft.center, "Open-Unmix's Separator uses a centred STFT"
    hop, sr = host.stft.n_hop, float(host.sample_rate)

    def centres(site):
        return lambda length, frames: _affine(hop, 0.0, sr, 1 + length // hop)
    return boosted, lambda length, batch: (torch.randn(batch, 2, length),), centres, [16000 - 37, 9001]


def bs_roformer_case(muq, name="bs_roformer"):   # and mel_band_roformer: the same STFT front end
    plugin = load_plugin(name)
    torch.manual_seed(0)
    host = plugin.build(size="debug", sources=["vocals", "drums"], sample_rate=16000, channels=2)
    boosted = plugin.boost(host.eval(), muq, layers=[1])
    hop, sr = host.stft_kwargs["hop_length"], host.samplerate

    def centres(site):  # BSRoformer calls torch.stft with its default center=True
        return lambda length, frames: _affine(hop, 0.0, sr, 1 + length // hop)
    return boosted, lambda length, batch: (torch.randn(batch, 2, length),), centres, [16000 - 37, 9001]


def onsets_frames_case(muq, backend: str, frontend: str):
    plugin = load_plugin("onsets_frames")
    torch.manual_seed(0)
    host = plugin.build(size="debug", backend=backend, frontend=frontend)
    boosted = plugin.boost(host.eval(), muq, layers=[1])
    hop, sr = host.hop_length, host.sample_rate

    def centres(site):
        return lambda length, frames: _affine(hop, 0.0, sr, length // hop + 1)
    return boosted, lambda length, batch: (torch.randn(batch, length),), centres, [16000 - 37, 9001]


STEMS = ["drums", "bass", "other", "vocals"]


def mix_wave_unet_case(muq, levels: int, decoder=()):
    plugin = load_plugin("mix_wave_unet")
    torch.manual_seed(0)
    host = plugin.build(size="debug", stems=STEMS, sample_rate=16000, channels=1,
                        overrides={"levels": levels, "filters": 2})
    boosted = plugin.boost(host.eval(), muq, layers=[1], decoder=decoder)
    sr, block = host.sample_rate, 2 ** levels

    def centres(site):
        level = levels if site.path == "bottleneck" else levels - 1 - int(site.path.split(".")[1])

        def fn(length, frames):
            padded = math.ceil(length / block) * block
            return _affine(2 ** level, 0.0, sr, padded // 2 ** level)
        return fn
    return boosted, lambda length, batch: (torch.randn(batch, len(STEMS), 1, length),), centres, \
        [16000 - 37, 9001]


def crafx2_case(muq):
    plugin = load_plugin("crafx2")
    torch.manual_seed(0)
    host = plugin.build(size="debug", stems=STEMS, sample_rate=16000, channels=1)
    boosted = plugin.boost(host.eval(), muq, layers=[1])
    hop, sr = host.hop, host.sample_rate
    assert host.filterbank.padding[0] == host.filterbank.kernel_size[0] // 2 and host.local.padding[0] == 2

    def centres(site):
        return lambda length, frames: _affine(hop, (hop - 1) / 2, sr, math.ceil(length / hop))
    return boosted, lambda length, batch: (torch.randn(batch, len(STEMS), 1, length),), centres, \
        [16000 - 37, 9001]


CASES = {
    "htdemucs-train": ("htdemucs", lambda m: htdemucs_case(m, train=True)),
    "htdemucs-eval-padded": ("htdemucs", lambda m: htdemucs_case(m, train=False)),
    "openunmix": ("openunmix", openunmix_case),
    "bs_roformer": ("bs_roformer", bs_roformer_case),
    "mel_band_roformer": ("mel_band_roformer", lambda m: bs_roformer_case(m, "mel_band_roformer")),
    "onsets_frames-mel": ("onsets_frames", lambda m: onsets_frames_case(m, "onsets_frames", "mel")),
    "onsets_frames-cqt": ("onsets_frames", lambda m: onsets_frames_case(m, "onsets_frames", "cqt")),
    "onsets_frames-shallow": ("onsets_frames", lambda m: onsets_frames_case(m, "shallow", "mel")),
    "mix_wave_unet": ("mix_wave_unet", lambda m: mix_wave_unet_case(m, levels=3)),
    "mix_wave_unet-10-levels": ("mix_wave_unet", lambda m: mix_wave_unet_case(m, levels=10)),
    "crafx2": ("crafx2", crafx2_case),
}


def test_every_host_has_an_alignment_case():
    assert {host for host, _ in CASES.values()} == set(available_hosts())


@pytest.mark.parametrize("name", list(CASES))
def test_feature_impulse_reaches_the_nearest_host_frame(name, debug_muq):
    boosted, make_args, centres, lengths = CASES[name][1](debug_muq)
    open_adapters(boosted)
    bad = []
    for i, site in enumerate(boosted.sites):
        for length in lengths:
            bad += check_site(boosted, make_args, i, centres(site), length)
    assert not bad, "\n".join(bad)


def test_mix_wave_unet_decoder_sites_are_aligned_too(debug_muq):
    boosted, make_args, centres, _ = mix_wave_unet_case(debug_muq, levels=4, decoder=(0, 1, 3))
    open_adapters(boosted)
    bad = []
    for i, site in enumerate(boosted.sites):
        bad += check_site(boosted, make_args, i, centres(site), 7001)
    assert not bad, "\n".join(bad)
