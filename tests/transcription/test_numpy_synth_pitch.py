"""The numpy renderer sounds every GM family at its note's pitch (transcription material is only learnable if
the audio carries the MIDI's pitch). Until 2026-11-26 every non-voice program rendered a pitchless decaying
DC offset: the phase was built from a scalar vibrato and had one sample."""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from booster.data.numpy_synth import _tone

SR = 16000


@pytest.mark.parametrize("program", [0, 4, 16, 24, 33, 48, 52, 89])   # piano, e-piano, organ, guitar, bass, strings, voice, pad
@pytest.mark.parametrize("pitch", [40, 69])
def test_tone_has_its_pitch(program, pitch):
    f0 = pretty_midi.note_number_to_hz(pitch)
    wave = _tone(program, pretty_midi.Note(100, pitch, 0.0, 0.5), SR, np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(wave[:SR // 2] * np.hanning(SR // 2)))        # 2 Hz bins
    hz = np.fft.rfftfreq(SR // 2, 1 / SR)
    power = spec ** 2
    k = np.round(hz / f0)
    harmonic = (k >= 1) & (np.abs(hz - k * f0) <= 0.03 * k * f0 + 4)      # within 3 % (+ 2 bins) of k * f0
    share = power[harmonic].sum() / power.sum()
    assert share > 0.9, f"program {program}: {share:.0%} of the power lies on the harmonics of {f0:.1f} Hz"
    assert power[np.abs(hz - f0) <= 4].sum() > 0.01 * power.sum(), f"program {program}: no fundamental"
