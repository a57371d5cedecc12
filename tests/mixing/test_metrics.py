"""Mixing loss and metrics: known answers (identical mixes, gains, mono/side signals, sines)."""
import math

import pytest
import torch

from booster.recipes.mixing.metrics import (LOUDNESS_FLOOR, METRICS, SI_SDR_CAP, MixLoss, crest_factor_db,
                                            loudness, mix_metrics, panning_profile, si_sdr, stereo_width)

SR = 16000


def _music(seconds=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    tone = torch.sin(2 * math.pi * 440 * t) * (0.5 + 0.5 * torch.sin(2 * math.pi * 2 * t))
    return 0.3 * torch.stack([tone + 0.05 * torch.randn(t.shape, generator=g),
                              0.7 * tone + 0.05 * torch.randn(t.shape, generator=g)])


def test_identical_mix_gives_zero_distances_and_capped_si_sdr():
    x = _music()
    m = mix_metrics(x, x.clone(), SR)
    assert set(m) == set(METRICS)
    assert m["si_sdr"] == SI_SDR_CAP
    for name in METRICS:
        if name != "si_sdr":
            assert m[name] == 0.0, name
    assert all(math.isfinite(v) for v in m.values())


def test_si_sdr_edge_cases():
    x = _music()
    assert si_sdr(3.0 * x, x) == SI_SDR_CAP                  # scale invariance: still "infinite"
    assert si_sdr(torch.zeros_like(x), x) == -SI_SDR_CAP      # silent estimate
    assert math.isnan(si_sdr(x, torch.zeros_like(x)))        # undefined against a silent reference
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    noise = noise - (noise.flatten() @ x.flatten()) / (x.flatten() @ x.flatten()) * x  # orthogonal to x
    noisy = x + noise * (x.norm() / noise.norm()) / math.sqrt(10)                      # 10 dB below x
    assert si_sdr(noisy, x) == pytest.approx(10.0, abs=1e-3)
    with pytest.raises(ValueError):
        si_sdr(x, x[:, :10])


def test_gain_change_is_a_loudness_difference():
    x = _music()
    m = mix_metrics(0.5 * x, x, SR)
    assert m["loudness_db"] == pytest.approx(20 * math.log10(2), abs=0.05)
    assert m["si_sdr"] == SI_SDR_CAP and m["width"] == pytest.approx(0, abs=1e-12)
    assert m["crest_db"] == pytest.approx(0, abs=1e-9) and m["centroid_hz"] == pytest.approx(0, abs=1e-6)
    assert m["mrstft"] > 0.1
    assert loudness(torch.zeros(2, SR), SR) == LOUDNESS_FLOOR


def test_width_panning_and_crest_known_answers():
    t = torch.arange(SR) / SR
    sine = torch.sin(2 * math.pi * 1000 * t)
    assert stereo_width(torch.stack([sine, sine])) == pytest.approx(0.0)
    assert stereo_width(torch.stack([sine, -sine])) == pytest.approx(1.0)
    left = panning_profile(torch.stack([sine, torch.zeros_like(sine)]))
    assert left.min() == pytest.approx(-1.0) and (left[left != 0] == -1).all()
    assert crest_factor_db(torch.stack([sine, sine])) == pytest.approx(10 * math.log10(2), abs=1e-3)
    m = mix_metrics(torch.stack([sine, torch.zeros_like(sine)]), torch.stack([torch.zeros_like(sine), sine]), SR)
    assert m["panning"] > 1.0 and m["width"] == pytest.approx(0.0, abs=1e-12)  # hard left vs hard right


def test_spectral_distance_grows_with_brightness():
    t = torch.arange(SR) / SR
    low, high = (torch.sin(2 * math.pi * f * t).repeat(2, 1) for f in (300, 3000))
    m = mix_metrics(high, low, SR)
    assert m["centroid_hz"] == pytest.approx(2700, rel=0.05)


def test_short_clips_are_padded_for_the_stft():
    x = _music(0.01)
    assert mix_metrics(x, x, SR)["mrstft"] == 0.0


def test_mix_loss():
    loss = MixLoss()
    x = _music()[None].repeat(2, 1, 1)
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    swapped = x.flip(1)                                      # same sum, opposite side signal
    assert float(loss(swapped, x)) > 0
    with pytest.raises(ValueError, match=r"\[B, 2, S\]"):
        loss(x[:, :1], x[:, :1])
    est = x.clone().requires_grad_(True)
    loss(est * 0.5, x).backward()
    assert est.grad is not None and est.grad.abs().sum() > 0
