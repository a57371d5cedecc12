"""The one live-extraction path and the two inference contexts (per chunk; whole track in host memory)."""
from __future__ import annotations

import torch

from booster.backbone import backbone_features
from booster.recipes.separation.inference import Separator
from booster.recipes.separation.module import SeparationModule

SOURCES = ["drums", "bass", "other", "vocals"]


def _boosted(tmp_path):
    torch.manual_seed(0)
    m = SeparationModule(host="htdemucs", sources=SOURCES, segment=1.0, size="debug", boost=True,
                         feature_cache=str(tmp_path / "cache"))
    with torch.no_grad():
        for p in m.model.adapter_parameters():
            p.add_(0.5 * torch.randn_like(p))
    return m.eval()


def test_backbone_features_keeps_the_backbone_frozen_and_stores_as_asked(debug_muq):
    wav = 0.1 * torch.randn(2, 16000)
    debug_muq.train()
    try:
        f = backbone_features(debug_muq, wav, 16000, (1, 3), out_device="cpu", out_dtype=torch.float16)
        assert not debug_muq.training                       # the booster's freezing policy
    finally:
        debug_muq.eval()
    ref = debug_muq.extract(wav, 16000, (1, 3))
    assert f.hidden.dtype == torch.float16 and f.hidden.device.type == "cpu" and not f.hidden.requires_grad
    assert f.hidden.shape == ref.hidden.shape and f.layers == (1, 3)
    torch.testing.assert_close(f.hidden.float(), ref.hidden, rtol=1e-2, atol=1e-2)


def test_chunk_context_through_the_cache_equals_the_live_path(tmp_path):
    m = _boosted(tmp_path)
    sep = m.separator()
    mix = 0.1 * torch.randn(2, int(2.3 * 44100))
    live = sep.separate_tensor(mix)
    cached = sep.separate_tensor(mix, cached=True)
    assert sep.cache.misses == 3 and sep.cache.hits == 0     # one entry per chunk: 0, 0.75, 1.5 s (ends past 2.3 s)
    again = sep.separate_tensor(mix, cached=True)
    assert sep.cache.hits == 3
    torch.testing.assert_close(cached, live, rtol=0, atol=1e-5)
    torch.testing.assert_close(again, cached, rtol=0, atol=0)


def test_track_context_keeps_features_in_host_memory_optionally_float16(tmp_path):
    m = _boosted(tmp_path)
    mix = 0.1 * torch.randn(2, int(2.3 * 44100))
    full = Separator(m.model, m.description(), context="track")
    half = Separator(m.model, m.description(), context="track", feature_dtype="float16")
    f32, f16 = full.track_features(mix), half.track_features(mix)
    assert f32.hidden.device.type == "cpu" and f32.hidden.dtype == torch.float32
    assert f16.hidden.device.type == "cpu" and f16.hidden.dtype == torch.float16
    a, b = full.separate_tensor(mix), half.separate_tensor(mix)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-3)
    per_chunk = m.separator().separate_tensor(mix)
    assert (per_chunk - a).abs().max() > 1e-5                # the two contexts give MuQ other audio
