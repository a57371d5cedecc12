"""Extraction costs at MuQ-large scale: fp32 really is fp32 under an outer autocast, features can be
returned on another device / as float16, files are read at the host's rate, finite checks never copy a
device tensor to the host, and one resolve_layers."""
import numpy as np
import pytest
import soundfile as sf
import torch

from booster import MuQ
from booster.audio import FileReader, check_finite
from booster.cache import FeatureCache
from booster.errors import AudioError, ConfigError
from audio_helpers import music_like


def test_fp32_extraction_ignores_an_outer_bf16_autocast(debug_muq):
    wav = music_like(2.0, seed=2)
    plain = debug_muq.extract(wav, 24000, [0, 6, 12]).hidden
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fp32 = debug_muq.extract(wav, 24000, [0, 6, 12], precision="fp32").hidden
        bf16 = debug_muq.extract(wav, 24000, [0, 6, 12], precision="bf16").hidden
    torch.testing.assert_close(fp32, plain, atol=1e-6, rtol=0)
    assert (bf16 - plain).abs().max() > 1e-3


def test_cached_fp32_entry_made_under_autocast_holds_fp32_features(debug_muq, tmp_path):
    wav = music_like(2.0, seed=4)
    cache = FeatureCache(tmp_path)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cached = cache.get_or_compute(debug_muq, wav, 24000, [12], precision="fp32")
    torch.testing.assert_close(cached.hidden, debug_muq.extract(wav, 24000, [12]).hidden, atol=1e-6, rtol=0)


def test_check_finite_on_a_device_tensor_does_not_copy_it_to_the_host():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        x = torch.zeros(2, 100, device="cuda")
        check_finite(x, "batch")   # fake tensors have no values: a host copy would raise


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_check_finite_on_cpu_keeps_the_one_line_error(dtype):
    x = torch.zeros(2, 100, dtype=dtype)
    check_finite(x, "clip")
    x[1, 7] = float("nan")
    x[0, 3] = float("inf")
    with pytest.raises(AudioError, match=r"^clip contains 2 NaN/Inf sample\(s\); clean or re-export the audio$"):
        check_finite(x, "clip")
    check_finite(np.zeros(3, dtype=np.float32))


def test_windowed_features_on_the_host_as_float16_equal_float32_cast(debug_muq):
    wav = music_like(6.0, seed=3)
    ref = debug_muq.extract(wav, 24000, [0, 12], window=2.0, overlap=0.5)
    half = debug_muq.extract(wav, 24000, [0, 12], window=2.0, overlap=0.5, out_device="cpu",
                             out_dtype=torch.float16)
    assert half.hidden.dtype == torch.float16 and half.hidden.device.type == "cpu"
    assert torch.equal(half.hidden, ref.hidden.half())   # float32 cross-fade per window, one cast
    single = debug_muq.extract(wav[:, :24000], 24000, [12], out_dtype="float16")
    assert torch.equal(single.hidden, debug_muq.extract(wav[:, :24000], 24000, [12]).hidden.half())
    with pytest.raises(ConfigError, match="out_dtype"):
        debug_muq.extract(wav, 24000, [12], out_dtype=torch.int8)


def _write(path, wav, sr):
    sf.write(str(path), wav.T.numpy(), sr, subtype="FLOAT")
    return path


def test_extract_file_at_the_read_rate_equals_extract_of_the_file_read_there(debug_muq, tmp_path):
    path = _write(tmp_path / "clip.wav", music_like(3.0, sr=44100, seed=5), 44100)
    reader = FileReader(path, 16000, 1)
    ref = debug_muq.extract(reader(0, reader.length), 16000, [0, 6, 12]).hidden
    got = debug_muq.extract_file(path, [0, 6, 12], read_rate=16000).hidden
    assert torch.equal(got, ref)
    full_band = debug_muq.extract_file(path, [0, 6, 12]).hidden   # read at 24 kHz: content above 8 kHz
    assert got.shape == full_band.shape and not torch.allclose(got, full_band, atol=1e-3)


def test_windowed_extract_file_at_the_read_rate_matches_the_whole_read(debug_muq, tmp_path):
    path = _write(tmp_path / "song.wav", music_like(7.0, sr=44100, seed=6), 44100)
    reader = FileReader(path, 16000, 1)
    ref = debug_muq.extract(reader(0, reader.length), 16000, [0, 12], window=2.0, overlap=0.5)
    got = debug_muq.extract_file(path, [0, 12], read_rate=16000, window=2.0, overlap=0.5, out_device="cpu",
                                 out_dtype=torch.float16)
    assert got.hidden.dtype == torch.float16 and got.hidden.shape == ref.hidden.shape
    torch.testing.assert_close(got.hidden.float(), ref.hidden, atol=2e-3, rtol=2e-3)


def test_one_resolve_layers():
    import booster.backbone
    import booster.features
    import booster.muq.extract
    assert booster.backbone.resolve_layers is booster.features.resolve_layers
    assert booster.muq.extract.resolve_layers is booster.features.resolve_layers   # imported, not a copy
    assert booster.features.resolve_layers(MuQ.debug(depth=4), "1, 4") == (1, 4)
    with pytest.raises(ConfigError, match=r"layers \[5\] out of range"):
        booster.features.resolve_layers(4, [5])
    assert not hasattr(MuQ, "frame_times") and not hasattr(booster.features.Features, "frame_times")
