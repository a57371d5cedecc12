"""MIDI onsets line up with audio onsets in the rendered stems (real FluidSynth / numpy rendering)."""
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from scipy.signal import stft

from booster.data.render import render_fluidsynth, resolve_renderer
from booster.data.numpy_synth import render_numpy
from booster.data.songs import Song

SR = 44100
ONSETS = (0.5, 1.35, 2.2)  # separated by > 0.8 s of silence


def _sparse_song() -> Song:
    song = Song(name="sparse", tempo=120.0, key=0, mode="major", progression=(0,), drum_style="rock", seconds=3.0)
    specs = {"drums": (0, True, (36, 38, 42)), "bass": (33, False, (40, 43, 45)),
             "other": (0, False, (60, 64, 67)), "vocals": (53, False, (72, 74, 76))}
    for stem, (program, drum, pitches) in specs.items():
        inst = pretty_midi.Instrument(program, is_drum=drum)
        inst.notes = [pretty_midi.Note(110, p, t, t + 0.2) for p, t in zip(pitches, ONSETS)]
        song.parts[stem] = [inst]
    return song


def _first_sound(x: np.ndarray, around: float) -> float:
    """Time of the first sample above 2% of the local peak in [around - 0.3 s, around + 0.3 s]."""
    a, b = int((around - 0.3) * SR), int((around + 0.3) * SR)
    env = np.abs(x[:, a:b]).max(0)
    return (a + int(np.argmax(env > 0.02 * env.max()))) / SR


@pytest.mark.parametrize("renderer", ["fluidsynth", "numpy"])
def test_each_stem_sounds_exactly_at_its_midi_onsets(renderer):
    if renderer == "fluidsynth":
        choice = resolve_renderer("auto")
        if choice.name != "fluidsynth":
            pytest.skip("fluidsynth unavailable")
        stems = render_fluidsynth(_sparse_song(), soundfont=choice.soundfont, frames=3 * SR, sample_rate=SR)
    else:
        stems = render_numpy(_sparse_song(), frames=3 * SR, sample_rate=SR, seed=0)
    for stem, x in stems.items():
        assert x.shape == (2, 3 * SR)
        for t in ONSETS:
            got = _first_sound(x, t)
            assert t - 0.001 <= got <= t + 0.015, f"{renderer} {stem}: onset at {t} s sounds at {got:.4f} s"
        # silence before the first note: nothing leaks from the previous stem of the batch render
        quiet = np.abs(x[:, :int(0.49 * SR)]).max()
        assert quiet < 0.01 * np.abs(x).max(), f"{renderer} {stem}: sound before the first note"


def _onset_strength(x: np.ndarray, hop: int = 128) -> tuple[np.ndarray, np.ndarray]:
    f, t, Z = stft(x.mean(0), fs=SR, nperseg=1024, noverlap=1024 - hop, boundary=None, padded=False)
    m = np.log1p(1000 * np.abs(Z))
    return np.maximum(np.diff(m, axis=1), 0).sum(0), t[1:]


def test_drum_onsets_align_in_generated_songs(synth_set):
    root, report = synth_set
    for entry in report["tracks"]:
        x = sf.read(str(root / entry["path"] / "drums.wav"), dtype="float32")[0].T
        pm = pretty_midi.PrettyMIDI(str(root / entry["path"] / "midi" / "drums.mid"))
        onsets = np.unique(np.round([n.start for n in pm.instruments[0].notes], 4))
        flux, times = _onset_strength(x)
        hop = times[1] - times[0]
        train = np.zeros_like(flux)
        idx = np.round((onsets - times[0]) / hop).astype(int)
        train[idx[(idx >= 0) & (idx < len(train))]] = 1
        z = (flux - flux.mean()) / flux.std()
        lags = np.arange(-40, 41)
        cc = np.array([np.dot(np.roll(train, lag), z) for lag in lags])
        best = lags[np.argmax(cc)] * hop
        assert -0.003 <= best <= 0.012, f"{entry['path']}: drum audio lags MIDI by {best * 1000:.1f} ms"
        assert cc.max() > 4 * np.median(np.abs(cc))
