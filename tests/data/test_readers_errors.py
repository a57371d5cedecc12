"""Every reader error names the track and the problem; nothing is skipped silently."""
import shutil

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from booster.data.multitrack import MixDataset, list_mix_tracks
from booster.data.pairs import list_pairs, list_stem_pairs
from booster.data.stems import list_tracks
from booster.errors import DatasetError


def test_missing_stem(scratch_set):
    (scratch_set / "song_0001" / "vocals.wav").unlink()
    with pytest.raises(DatasetError, match=r"song_0001: missing stem 'vocals'"):
        list_tracks(scratch_set)


def test_rate_mismatch(scratch_set):
    x, _ = sf.read(str(scratch_set / "song_0000" / "bass.wav"))
    sf.write(str(scratch_set / "song_0000" / "bass.wav"), x, 48000, subtype="FLOAT")
    with pytest.raises(DatasetError, match=r"song_0000: sample-rate mismatch.*bass=48000 Hz"):
        list_tracks(scratch_set)


def test_length_mismatch_and_all_bad_tracks_listed(scratch_set):
    x, sr = sf.read(str(scratch_set / "song_0002" / "drums.wav"))
    sf.write(str(scratch_set / "song_0002" / "drums.wav"), x[:-100], sr, subtype="FLOAT")
    (scratch_set / "song_0000" / "other.wav").write_bytes(b"not audio at all")
    with pytest.raises(DatasetError) as err:
        list_tracks(scratch_set)
    msg = str(err.value)
    assert "2 of 3 track(s)" in msg and "song_0002: length mismatch" in msg and "drums=132200 samples" in msg
    assert "song_0000: unreadable file other.wav" in msg and "song_0001" not in msg
    with pytest.warns(UserWarning, match="song_0002"):
        ok = list_tracks(scratch_set, skip_invalid=True)
    assert [t.name for t in ok] == ["song_0001"]


def test_missing_folder_and_split(synth_set, tmp_path):
    with pytest.raises(DatasetError, match="splits found.*train, valid"):
        list_tracks(synth_set[0], "test")
    with pytest.raises(DatasetError, match="no track folders"):
        list_tracks(tmp_path)


def test_mix_reader_and_its_errors(scratch_set):
    mts = list_mix_tracks(scratch_set)
    assert len(mts) == 3 and mts[0].params["stems"]["bass"]["compressor"]["ratio"] > 1
    stems, mix = MixDataset(mts, segment=1.0)[1]
    assert stems.shape == (4, 2, 44100) and mix.shape == (2, 44100)
    ref = sf.read(str(scratch_set / "song_0000" / "mix" / "mixture.wav"), dtype="float32", start=44100, frames=44100)[0]
    assert np.allclose(mix.numpy().T, ref)
    (scratch_set / "song_0002" / "mix" / "mixture.wav").unlink()
    with pytest.raises(DatasetError, match="song_0002: missing reference mix"):
        list_mix_tracks(scratch_set)


def test_stem_pairs_and_their_errors(scratch_set):
    pairs = list_stem_pairs(scratch_set, stems=("bass", "vocals"))
    assert [p.name for p in pairs[:2]] == ["song_0000/bass", "song_0000/vocals"]
    drums = list_stem_pairs(scratch_set, stems=("drums",), include_drums=True)
    assert len(drums) == 3
    with pytest.raises(DatasetError, match="song_0000/drums: MIDI file drums.mid is empty"):
        list_stem_pairs(scratch_set, stems=("drums",))
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(33))
    empty.write(str(scratch_set / "song_0001" / "midi" / "bass.mid"))
    with pytest.raises(DatasetError, match=r"song_0001/bass: MIDI file bass.mid is empty"):
        list_stem_pairs(scratch_set, stems=("bass",))
    (scratch_set / "song_0002" / "midi" / "vocals.mid").unlink()
    with pytest.raises(DatasetError, match="song_0002: missing midi/vocals.mid"):
        list_stem_pairs(scratch_set, stems=("vocals",), audio="mixture")


def test_maestro_like_pairs_and_their_errors(synth_set, tmp_path):
    src = synth_set[0] / "train"
    (tmp_path / "2004").mkdir()
    for k, track in enumerate(["song_0000", "song_0001"]):
        shutil.copy(src / track / "vocals.wav", tmp_path / "2004" / f"piece{k}.wav")
        shutil.copy(src / track / "midi" / "vocals.mid", tmp_path / "2004" / f"piece{k}.midi")
    pairs = list_pairs(tmp_path)
    assert [p.name for p in pairs] == ["2004/piece0", "2004/piece1"] and pairs[0].notes()
    (tmp_path / "maestro-v3.0.0.csv").write_text(
        "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration\n"
        "A,B,train,2004,2004/piece0.midi,2004/piece0.wav,3.0\n"
        "A,C,validation,2004,2004/piece1.midi,2004/piece1.wav,3.0\n")
    assert [p.name for p in list_pairs(tmp_path, "validation")] == ["2004/piece1"]
    shutil.copy(src / "song_0002" / "bass.wav", tmp_path / "2004" / "lonely.wav")
    with pytest.raises(DatasetError, match="2004/lonely: audio file lonely.wav has no MIDI file"):
        list_pairs(tmp_path)
    (tmp_path / "2004" / "lonely.wav").unlink()
    (tmp_path / "2004" / "piece1.midi").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="2004/piece1: cannot read MIDI file piece1.midi"):
        list_pairs(tmp_path)


def test_truncated_stem_is_a_dataset_problem(scratch_set):
    """A stem whose data chunk was cut (interrupted copy) would be read at a shorter length."""
    p = scratch_set / "song_0001" / "bass.wav"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"song_0001: truncated file bass.wav \(header declares 132300 samples"):
        list_tracks(scratch_set)
