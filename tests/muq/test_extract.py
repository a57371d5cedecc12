"""muq.extract: shapes, sample rates, channels, layer subsets, windows, precision."""
import numpy as np
import pytest
import torch

from booster import Features
from booster.errors import AudioError, ConfigError
from booster.muq.extract import window_plan
from audio_helpers import music_like


@pytest.mark.parametrize("seed", range(4))
def test_frame_count_rule_random_lengths(debug_muq, seed):
    gen = torch.Generator().manual_seed(seed)
    s = int(torch.randint(1100, 60000, (1,), generator=gen))
    wav = torch.randn(1, s, generator=gen) * 0.1
    out = debug_muq(wav)
    expected = -(-(-(-(s // 240) // 2)) // 2)  # ceil(ceil((S // 240) / 2) / 2)
    assert out.last_hidden_state.shape == (1, expected, 32)
    assert debug_muq.num_frames(s) == expected
    f = debug_muq.extract(wav[0], 24000, layers=[0, 12], window=0.5, overlap=0.2)  # chunked path
    assert f.hidden.shape == (1, 2, expected, 32)


def test_single_window_is_bit_identical_to_forward(debug_muq):
    wav = music_like(3.0, seed=1)
    ref = debug_muq(wav).hidden_states
    f = debug_muq.extract(wav, 24000, layers=[0, 3, 12])
    assert isinstance(f, Features) and f.layers == (0, 3, 12) and f.frame_rate == 25.0
    for j, i in enumerate(f.layers):
        assert torch.equal(f.hidden[0, j], ref[i][0])


def test_stops_at_deepest_requested_layer(debug_muq):
    calls = []
    hooks = [layer.register_forward_hook(lambda m, a, o: calls.append(m)) for layer in debug_muq.conformer.layers]
    try:
        debug_muq.extract(music_like(1.0), 24000, layers=[2, 4])
    finally:
        for h in hooks:
            h.remove()
    assert len(calls) == 4


def test_shapes_rates_and_channels(debug_muq):
    mono = music_like(2.0, sr=44100, seed=2)            # [1, S]
    stereo = torch.cat([mono, 0.5 * mono])              # [2, S]
    five = torch.cat([mono] * 5)                        # [5, S]
    batch = torch.stack([stereo, stereo.flip(0)])       # [2, 2, S]
    a = debug_muq.extract(mono[0], 44100, layers=[6])   # [S]
    b = debug_muq.extract(stereo, 44100, layers=[6])
    c = debug_muq.extract(five, 44100, layers=[6])
    d = debug_muq.extract(batch, 44100, layers=[6])
    t = debug_muq.num_frames(48000)
    assert a.hidden.shape == (1, 1, t, 32) and d.hidden.shape == (2, 1, t, 32)
    torch.testing.assert_close(c.hidden, a.hidden)      # 5 identical channels average to the same mono
    torch.testing.assert_close(b.hidden, debug_muq.extract(0.75 * mono[0], 44100, layers=[6]).hidden)
    torch.testing.assert_close(d.hidden[0], d.hidden[1])  # channel order does not matter (averaged)


def test_resampling_matches_native_rate(debug_muq):
    wav24 = music_like(2.0, sr=24000, seed=3)
    import torchaudio.functional as AF
    wav48 = AF.resample(wav24, 24000, 48000)
    a = debug_muq.extract(wav24, 24000, layers=[12]).hidden
    b = debug_muq.extract(wav48, 48000, layers=[12]).hidden
    cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
    assert a.shape == b.shape and cos > 0.99


def test_int16_and_numpy_input(debug_muq):
    wav = music_like(1.5, seed=4)[0]
    pcm = (wav * 32767).round().to(torch.int16)
    a = debug_muq.extract(pcm.numpy(), 24000, layers=[12]).hidden
    b = debug_muq.extract(wav.numpy().astype(np.float32), 24000, layers=[12]).hidden
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_window_plan_covers_and_aligns():
    for s in [24000 * 10 + 7, 24000 * 31, 24000 * 95 + 500]:
        plan = window_plan(s, 24000 * 30, 24000 * 5, 960)
        assert plan[0][0] == 0 and plan[-1][1] == s
        assert all(st % 960 == 0 for st, _ in plan)
        assert all(b[0] < a[1] for a, b in zip(plan, plan[1:]))  # consecutive windows overlap
        assert all(en - st <= 24000 * 30 for st, en in plan)


def test_chunked_conv_frontend_is_exact(debug_muq):
    """Hidden state 0 has local context, so windowing must reproduce the single pass exactly."""
    wav = music_like(9.0, seed=5)
    whole = debug_muq.extract(wav, 24000, layers=[0], window=60).hidden
    chunked = debug_muq.extract(wav, 24000, layers=[0], window=2.0, overlap=0.8).hidden
    assert chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


def test_chunked_deep_layers_have_no_seam(debug_muq):
    wav = music_like(12.0, seed=6)
    window, overlap = 3.0, 1.0
    f = debug_muq.extract(wav, 24000, layers=[12], window=window, overlap=overlap).hidden[0, 0]
    whole = debug_muq.extract(wav, 24000, layers=[12], window=60).hidden[0, 0]
    step = (f[1:] - f[:-1]).norm(dim=-1)                  # frame-to-frame change
    plan = window_plan(wav.shape[-1], 72000, 24000, 960)
    edges = set()
    for st, en in plan[1:]:
        edges.update(range(st // 960 - 2, st // 960 + 30))   # around every window start / overlap
    inside = torch.tensor([i for i in range(len(step)) if i not in edges])
    near = torch.tensor(sorted(i for i in edges if 0 <= i < len(step)))
    assert step[near].max() <= 1.5 * step[inside].max()
    cos = torch.nn.functional.cosine_similarity(f, whole, dim=-1)
    assert cos.mean() > 0.9                               # windowed context stays close to full context


def test_bf16_close_to_fp32(debug_muq):
    wav = music_like(2.0, seed=7)
    a = debug_muq.extract(wav, 24000, layers=[4, 8, 12]).hidden
    b = debug_muq.extract(wav, 24000, layers=[4, 8, 12], precision="bf16").hidden
    assert b.dtype == torch.float32
    for j in range(3):
        cos = torch.nn.functional.cosine_similarity(a[0, j], b[0, j], dim=-1).mean()
        assert cos > 0.98


def test_bad_arguments(debug_muq):
    wav = music_like(1.0)
    with pytest.raises(ConfigError, match="out of range"):
        debug_muq.extract(wav, 24000, layers=[13])
    with pytest.raises(ConfigError, match="precision"):
        debug_muq.extract(wav, 24000, precision="fp8")
    with pytest.raises(ConfigError, match="overlap"):
        debug_muq.extract(wav, 24000, window=1.0, overlap=2.0)
    with pytest.raises(AudioError, match="sample_rate"):
        debug_muq.extract(wav, 0)
    with pytest.raises(AudioError, match=r"\[S\], \[C, S\] or \[B, C, S\]"):
        debug_muq.extract(torch.zeros(1, 1, 1, 100), 24000)


def test_features_helpers(debug_muq):
    f = debug_muq.extract(music_like(4.0), 24000, layers=[2, 4, 6])
    assert torch.equal(f.layer(4), f.hidden[:, 1])
    g = f.select([6, 2])
    assert g.layers == (6, 2) and torch.equal(g.hidden[:, 0], f.hidden[:, 2])
    s = f.slice_time(1.0, 2.0)
    assert s.num_frames == 25 and abs(s.start - 1.0) < 1e-9
    assert torch.equal(s.hidden, f.hidden[:, :, 25:50])
    with pytest.raises(KeyError):
        f.layer(12)


def test_debug_features_follow_the_input(debug_muq):
    """The debug model must not collapse to a constant vector (it drives every demo and recipe test)."""
    a = debug_muq.extract(music_like(6.0, seed=1), 24000, layers=[4, 8, 12]).hidden[0]
    for j in range(3):
        time_share = a[j].var(0).sum() / (a[j] ** 2).mean(0).sum()
        assert time_share > 0.03


@pytest.mark.parametrize("label_rate", [25, 50])
def test_conv_tiling_is_exact(label_rate):
    """The conv front end runs long inputs in tiles with a halo: same frames, same values."""
    from booster import MuQ
    from booster.muq.config import MuQConfig
    cfg = MuQConfig.debug()
    cfg.label_rate = label_rate
    m = MuQ(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1, generator=torch.Generator().manual_seed(p.numel()))
    for n in (37, 1057, 2049, 4101):
        mel = torch.randn(2, 128, n)
        m.conv.tile = 0
        whole = m.conv(mel)
        m.conv.tile = 256
        tiled = m.conv(mel)
        assert whole.shape == tiled.shape == (2, m.num_frames(n * 240 + 239), 32)
        torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-6)
