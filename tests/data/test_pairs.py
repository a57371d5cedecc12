import pretty_midi
import pytest
import torch

from booster.data.pairs import PairDataset, frame_targets, list_stem_pairs
from booster.errors import ConfigError


def test_frame_targets_known_answer():
    notes = [pretty_midi.Note(127, 60, 0.10, 0.36), pretty_midi.Note(64, 62, 0.32, 0.50),
             pretty_midi.Note(100, 20, 0.0, 1.0)]  # below the piano range: ignored
    r = frame_targets(notes, frame_rate=10.0, n_frames=6, start=0.0, pitch_range=(21, 108))
    assert r["onset"].shape == (6, 88)
    c4, d4 = 60 - 21, 62 - 21
    assert r["onset"][:, c4].tolist() == [0, 1, 0, 0, 0, 0]
    assert r["frame"][:, c4].tolist() == [0, 1, 1, 1, 0, 0]  # frames 1..3 (end 0.36 → 4, exclusive)
    assert r["offset"][:, c4].tolist() == [0, 0, 0, 0, 1, 0]
    assert r["velocity"][1, c4] == 1.0 and r["velocity"][3, d4] == pytest.approx(64 / 127)
    assert r["frame"][:, d4].tolist() == [0, 0, 0, 1, 1, 0] and r["offset"][5, d4] == 1
    assert r["frame"].sum() == 5
    # window starting later: onset cut off, remaining frames kept
    late = frame_targets(notes, frame_rate=10.0, n_frames=3, start=0.2)
    assert late["onset"][:, c4].sum() == 0 and late["frame"][:, c4].tolist() == [1, 1, 0]
    with pytest.raises(ConfigError):
        frame_targets(notes, frame_rate=10.0, n_frames=3, pitch_range=(50, 40))


def test_pair_dataset_targets_match_the_notes(synth_set):
    pairs = list_stem_pairs(synth_set[0], "train", stems=("vocals",))
    ds = PairDataset(pairs, segment=1.0, sample_rate=16000, frame_rate=50.0)
    assert len(ds) == 9
    item = ds[4]
    assert item["audio"].shape == (1, 16000) and item["frame"].shape == (50, 88)
    assert (item["name"], item["start"]) == ("song_0001/vocals", 1.0)
    notes = [n for n in pairs[1].notes() if 1.0 <= n.start < 1.98]
    assert item["onset"].sum() == len({(round((n.start - 1.0) * 50), n.pitch) for n in notes}) > 0
    assert item["audio"].abs().max() > 0.01
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["onset"].shape == (2, 50, 88)
