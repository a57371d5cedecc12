import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="session")
def music_dir(tmp_path_factory):
    """A few seconds of harmonic tones at two sample rates and formats (real files soundfile reads)."""
    d = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(0)
    for i, (sr, ext) in enumerate([(24000, "wav"), (44100, "flac"), (22050, "ogg"), (32000, "wav")]):
        t = np.arange(int(sr * 4.0)) / sr
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        wav = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
        wav *= 0.3 * (1 + np.sin(2 * np.pi * 2 * t)) / 2
        wav = wav + 0.01 * rng.standard_normal(len(t))
        sf.write(d / f"tone{i}.{ext}", np.stack([wav, wav], 1).astype(np.float32), sr)
    (d / "notes.txt").write_text("not audio")
    return d
