"""Feature files and the on-disk cache: round trip, keys, atomicity, corruption."""
import pytest
import torch

from booster.cache import FeatureCache, FeatureFileError, load_features, save_features
from audio_helpers import music_like


def test_feature_file_roundtrip(debug_muq, tmp_path):
    f = debug_muq.extract(music_like(2.0), 24000, layers=[4, 8])
    p = save_features(tmp_path / "a.safetensors", f, meta={"source": "x"})
    g, meta = load_features(p)
    assert torch.equal(g.hidden, f.hidden) and g.layers == (4, 8) and meta["source"] == "x"
    save_features(tmp_path / "h.safetensors", f, dtype="float16")
    h, meta = load_features(tmp_path / "h.safetensors")
    assert meta["dtype"] == "float16" and h.hidden.dtype == torch.float32
    torch.testing.assert_close(h.hidden, f.hidden, atol=1e-2, rtol=1e-2)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_cache_hits_and_keys(debug_muq, tmp_path):
    cache = FeatureCache(tmp_path)
    wav = music_like(2.0, seed=1)
    a = cache.get_or_compute(debug_muq, wav, 24000, [12])
    b = cache.get_or_compute(debug_muq, wav.clone(), 24000, [12])
    assert (cache.hits, cache.misses) == (1, 1) and torch.equal(a.hidden, b.hidden)
    cache.get_or_compute(debug_muq, wav, 24000, [4, 12])            # other layers: new entry
    cache.get_or_compute(debug_muq, wav * 0.5, 24000, [12])          # other audio: new entry
    from booster import MuQ
    cache.get_or_compute(MuQ.debug(seed=9), wav, 24000, [12])        # other backbone: new entry
    assert cache.misses == 4 and len(list(tmp_path.rglob("*.safetensors"))) == 4


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_entry_is_recomputed_never_returned(debug_muq, tmp_path, damage):
    cache = FeatureCache(tmp_path)
    wav = music_like(1.5, seed=2)
    good = cache.get_or_compute(debug_muq, wav, 24000, [12])
    (entry,) = list(tmp_path.rglob("*.safetensors"))
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "flip":
        data[-5] ^= 0xFF  # inside the tensor bytes: only the checksum can tell
    else:
        data = bytearray(b"not a safetensors file")
    entry.write_bytes(bytes(data))
    with pytest.raises(FeatureFileError):
        load_features(entry)
    again = cache.get_or_compute(debug_muq, wav, 24000, [12])
    assert cache.misses == 2 and torch.equal(again.hidden, good.hidden)
    load_features(entry)  # rewritten and valid


def test_unknown_version_refused(debug_muq, tmp_path):
    import json
    from safetensors.torch import save_file
    save_file({"hidden": torch.zeros(1, 2, 3)}, str(tmp_path / "v9.safetensors"),
              metadata={"booster": json.dumps({"format_version": 9})})
    with pytest.raises(FeatureFileError, match="version 9"):
        load_features(tmp_path / "v9.safetensors")
