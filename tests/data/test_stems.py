import numpy as np
import pytest
import soundfile as sf
import torch

from booster.data.stems import RemixDataset, SegmentDataset, list_tracks, select_fraction
from booster.errors import ConfigError, DatasetError

SOURCES = ("drums", "bass", "other", "vocals")


@pytest.fixture(scope="module")
def tracks(synth_set):
    return list_tracks(synth_set[0], "train")


def test_list_tracks_and_load(synth_set, tracks):
    assert [t.name for t in tracks] == ["song_0000", "song_0001", "song_0002"]
    t = tracks[1]
    assert (t.sources, t.sample_rate, t.frames, t.channels) == (SOURCES, 44100, 3 * 44100, 2)
    assert t.mixture_path.name == "mixture.wav"
    mix, srcs = t.load(0.5, 1.0)
    assert mix.shape == (2, 44100) and srcs.shape == (4, 2, 44100) and mix.dtype == torch.float32
    ref = sf.read(str(t.path / "bass.wav"), dtype="float32", start=22050, frames=44100)[0].T
    assert torch.equal(srcs[1], torch.from_numpy(ref))
    assert torch.allclose(mix, srcs.sum(0), atol=1e-6)
    whole_mix, whole = t.load()
    assert whole.shape == (4, 2, 3 * 44100)
    # past the end: zero-padded to the exact length
    _, tail = t.load(2.5, 1.0)
    assert tail.shape[-1] == 44100 and tail[..., 22050:].abs().max() == 0
    # split=None: root holds the track folders; any source names
    assert [x.name for x in list_tracks(synth_set[0] / "valid", sources=("vocals", "bass"))] == ["song_0000"]


def test_resampling_and_channels(tracks):
    mix, srcs = tracks[0].load(1.0, 0.5, sample_rate=24000, channels=1)
    assert mix.shape == (1, 12000) and srcs.shape == (4, 1, 12000)
    ds = SegmentDataset(tracks, segment=1.0, sample_rate=22050, channels=1)
    m, s = ds[0]
    assert m.shape == (1, 22050) and s.shape == (4, 1, 22050)
    native = tracks[0].load(0.0, 1.0)[1].mean(1)[:, ::2]  # crude decimation as a sanity reference
    assert torch.corrcoef(torch.stack([s[0, 0, 100:-100], native[0, 100:-100]]))[0, 1] > 0.9


def test_segment_dataset_is_fixed(tracks):
    ds = SegmentDataset(tracks, segment=1.0, stride=0.75)
    # 3 s tracks: starts 0, .75, 1.5, 2.25 (last zero-padded)
    assert ds.items[:4] == [("song_0000", 0.0), ("song_0000", 0.75), ("song_0000", 1.5), ("song_0000", 2.25)]
    assert len(ds) == 12 and ds.item(5) == ("song_0001", 0.75)
    m1, s1 = ds[5]
    m2, s2 = ds[5]
    assert torch.equal(s1, s2) and s1.shape == (4, 2, 44100)
    assert torch.equal(s1, tracks[1].load(0.75, 1.0)[1])
    whole = SegmentDataset(tracks, segment=None)
    assert len(whole) == 3 and whole[2][1].shape == (4, 2, 3 * 44100)
    with pytest.raises(ConfigError):
        SegmentDataset(tracks, segment=-1.0)
    with pytest.raises(DatasetError):
        SegmentDataset([], segment=1.0)


def test_remix_invariants(tracks):
    ds = RemixDataset(tracks, segment=0.5, samples_per_epoch=6, gain=(0.25, 1.25), seed=3)
    for i in range(len(ds)):
        mix, srcs = ds[i]
        d = ds.last_draw
        assert mix.shape == (2, 22050) and srcs.shape == (4, 2, 22050)
        assert torch.allclose(mix, srcs.sum(0), atol=1e-6)
        assert all(0.25 <= g <= 1.25 for g in d["gains"])
        for j, name in enumerate(d["tracks"]):  # each source = gain * sign * (swapped) original stem
            track = next(t for t in tracks if t.name == name)
            orig = track.load(d["starts"][j], 0.5)[1][j]
            orig = orig.flip(0) if d["swaps"][j] else orig
            sign = -1.0 if d["flips"][j] else 1.0
            assert torch.allclose(srcs[j], orig * d["gains"][j] * sign, atol=1e-6)
    draws = [ds.draw(i) for i in range(200)]
    assert len({tuple(d["tracks"]) for d in draws}) > 3 and any(len(set(d["tracks"])) > 1 for d in draws)
    assert 0.3 < np.mean([s for d in draws for s in d["swaps"]]) < 0.7
    assert 0.3 < np.mean([f for d in draws for f in d["flips"]]) < 0.7
    # deterministic in (seed, epoch, i)
    again = RemixDataset(tracks, segment=0.5, samples_per_epoch=6, seed=3)
    assert torch.equal(again[2][1], ds[2][1])
    again.set_epoch(1)
    assert not torch.equal(again[2][1], ds[2][1])
    # no remix: one track and offset for all sources, no augmentation → the original mixture
    plain = RemixDataset(tracks, segment=0.5, samples_per_epoch=2, remix=False, gain=None,
                         channel_swap=False, sign_flip=False)
    mix, srcs = plain[0]
    d = plain.last_draw
    assert len(set(d["tracks"])) == 1
    track = next(t for t in tracks if t.name == d["tracks"][0])
    assert torch.allclose(mix, track.load(d["starts"][0], 0.5)[0], atol=1e-6)


def test_remix_in_dataloader_workers(tracks):
    ds = RemixDataset(tracks, segment=0.25, samples_per_epoch=4, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert batches[0][1].shape == (2, 4, 2, 11025)
    assert torch.equal(batches[1][1][0], ds[2][1])


def test_fraction_selects_a_nested_deterministic_subset(tracks):
    many = [t.__class__(**{**t.__dict__, "name": f"t{k:02d}"}) for k in range(10) for t in tracks[:1]]
    half = select_fraction(many, 0.5, seed=0)
    assert len(half) == 5 and half == select_fraction(many, 0.5, seed=0)
    assert [t.name for t in half] == sorted(t.name for t in half)
    assert set(t.name for t in select_fraction(many, 0.2, seed=0)) <= set(t.name for t in half)
    assert select_fraction(many, 0.5, seed=1) != half
    assert len(select_fraction(many, 0.01, seed=0)) == 1
    ds = RemixDataset(many, segment=0.5, samples_per_epoch=50, fraction=0.3, seed=7)
    allowed = {t.name for t in ds.tracks}
    assert len(allowed) == 3 and all(n in allowed for i in range(50) for n in ds.draw(i)["tracks"])
    with pytest.raises(ConfigError, match="fraction"):
        RemixDataset(many, segment=0.5, samples_per_epoch=5, fraction=0.0)
