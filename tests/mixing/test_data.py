"""Multitrack layout (slot mapping, aliases, silence, unknown names, rates) and the mixing datasets."""
import pytest
import soundfile as sf
import torch

from booster.errors import ConfigError, DatasetError
from booster.recipes.mixing.data import FixedSegments, MixingDataModule, RandomSegments
from booster.recipes.mixing.layout import SlotMap, list_multitracks, scan_track
from mixing_helpers import SLOTS, SR, write_folder


def test_generated_tracks_map_to_slots(mix_data):
    tracks = list_multitracks(mix_data, "train", SlotMap(tuple(SLOTS)))
    assert [t.name for t in tracks] == ["song_0000", "song_0001"]
    t = tracks[0]
    assert t.present == SLOTS and t.mix_path.name == "mixture.wav"   # mixture.wav (plain sum) is ignored
    r = t.reader(SR, 2)
    stems, mix = r.stems(0, r.length), r.mix(0, r.length)
    assert stems.shape == (4, 2, 2 * SR) and mix.shape == (2, 2 * SR)
    ref, _ = sf.read(t.path / "bass.wav", dtype="float32", always_2d=True)
    assert torch.allclose(stems[1], torch.from_numpy(ref.T))


def test_aliases_sum_files_missing_slots_are_silence_rates_converted(tmp_path):
    folder = write_folder(tmp_path / "song", {"Kick": (22050, 1), "snare": (44100, 2), "vocals": (16000, 2),
                                             "mix": (16000, 2)}, seconds=0.5)
    (tmp_path / "song" / "mix.wav").rename(tmp_path / "song" / "reference.wav")
    sm = SlotMap(tuple(SLOTS), {"drums": ["kick*", "snare*"]})
    t = scan_track(folder, sm, mix="reference.wav")
    assert [len(f) for f in t.files] == [2, 0, 0, 1]
    r = t.reader(16000, 2)
    stems = r.stems(0, r.length)
    assert r.length == 8000 and stems.shape == (4, 2, 8000)
    assert stems[1].abs().max() == 0 and stems[2].abs().max() == 0         # bass, other: silence
    assert sm.slot_of("KICK_in") == "drums" and sm.slot_of("hihat") is None
    assert stems[0].abs().max() > 0 and torch.equal(stems[0, 0], stems[0, 1]) is False  # stereo snare kept
    assert r.mix(0, 100).shape == (2, 100)


def test_unknown_names_are_an_error_listing_the_slots(tmp_path):
    folder = write_folder(tmp_path / "song", {"drums": (SR, 2), "guitar": (SR, 2)}, seconds=0.2)
    with pytest.raises(DatasetError, match=r"unknown stem name 'guitar'.*drums, bass, other, vocals"):
        scan_track(folder, SlotMap(tuple(SLOTS)), mix=None, require_mix=False)
    t = scan_track(folder, SlotMap(tuple(SLOTS), unknown="ignore"), mix=None, require_mix=False)
    assert t.present == ["drums"]
    with pytest.raises(DatasetError, match="missing reference mix"):
        scan_track(folder, SlotMap(tuple(SLOTS), unknown="ignore"))
    with pytest.raises(ConfigError, match="unknown slots"):
        SlotMap(tuple(SLOTS), {"keys": ["piano*"]})


def test_dataset_listing_reports_every_bad_track(tmp_path):
    write_folder(tmp_path / "train" / "a", {"drums": (SR, 2)}, seconds=0.2)
    write_folder(tmp_path / "train" / "b", {"flute": (SR, 2)}, seconds=0.2)
    with pytest.raises(DatasetError, match=r"(?s)2 of 2 track\(s\).*'a': missing reference mix.*'b': unknown stem"):
        list_multitracks(tmp_path, "train", SlotMap(tuple(SLOTS)))


def test_random_segments_are_deterministic_and_fraction_nests(mix_data):
    tracks = list_multitracks(mix_data, "train", SlotMap(tuple(SLOTS)))
    ds = RandomSegments(tracks, 0.5, 6, SR, 2, seed=3)
    draws = [ds.draw(i) for i in range(6)]
    stems, mix = ds[0]
    assert stems.shape == (4, 2, SR // 2) and mix.shape == (2, SR // 2)
    assert draws == [RandomSegments(tracks, 0.5, 6, SR, 2, seed=3).draw(i) for i in range(6)]
    ds.set_epoch(1)
    assert [ds.draw(i) for i in range(6)] != draws
    small = RandomSegments(tracks, 0.5, 6, SR, 2, fraction=0.5, seed=3)
    assert len(small.tracks) == 1 and small.tracks[0] in tracks


def test_fixed_segments(mix_data):
    tracks = list_multitracks(mix_data, "train", SlotMap(tuple(SLOTS)))
    seg = FixedSegments(tracks, 0.75, SR, 2)
    assert len(seg) == 2 * 3 and seg.item(1) == ("song_0000", 0.75)
    assert seg[2][0].shape == (4, 2, 12000)                  # the last segment is zero-padded
    whole = FixedSegments(tracks, None, SR, 2)
    assert len(whole) == 2 and whole[0][1].shape == (2, 2 * SR)


def test_data_module(mix_data):
    dm = MixingDataModule(str(mix_data), segment=0.5, samples_per_epoch=4, batch_size=2, sample_rate=8000,
                          test_seconds=1.0)
    dm.setup("fit")
    stems, mix = next(iter(dm.train_dataloader()))
    assert stems.shape == (2, 4, 2, 4000) and mix.shape == (2, 2, 4000)
    assert len(dm._valid) == 2 and len(dm.val_dataloader()) == 1   # 1-s segments of the 2-s valid track
    dm.setup("test")
    name, stems, mix = dm.load_test_track(0)
    assert name == "song_0000" and stems.shape == (4, 2, 8000) and mix.shape == (2, 8000)
