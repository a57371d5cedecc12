"""Known answers: for a boosted model per task, the CLI's output on a file equals what ``booster test``
predicts for the same file (its ``test_step`` inference wrapper on the datamodule's item), to float
tolerance -- both give MuQ the host's audio at the host's rate, chunk by chunk, as training did.

On the code before this change ``booster transcribe`` and ``booster mix`` fed MuQ other audio than
``booster test`` (the file at 24 kHz, full band; whole-track windows), so these comparisons failed there.
"""
from __future__ import annotations

import csv

import numpy as np
import soundfile as sf
import torch

from booster.cli import main
from booster.recipes.mixing.data import MixingDataModule
from booster.recipes.mixing.inference import Mixer
from booster.recipes.mixing.module import MixingModule
from booster.recipes.separation.data import StemsDataModule
from booster.recipes.separation.module import SeparationModule
from booster.recipes.transcription.data import TranscriptionDataModule
from booster.recipes.transcription.inference import Transcriber
from booster.recipes.transcription.module import TranscriptionModule

SOURCES = ["drums", "bass", "other", "vocals"]


def _perturb(module, scale: float = 0.5):
    """Non-zero adapters (zero-initialised ones would make boosted == plain and hide the features)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.model.adapter_parameters():
            p.add_(scale * torch.randn_like(p))
    return module.eval()


def _plain_differs(module, call, reference, tol):
    host_only = module.model.host
    module.model, boosted = host_only, module.model
    try:
        plain = call()
    finally:
        module.model = boosted
    assert (plain - reference).abs().max() > tol          # the features changed the output: they arrived


def _threshold(onset: torch.Tensor, frame: torch.Tensor) -> float:
    """A decoding threshold (onset and frame) that a few onsets pass and that no probability lies within
    5e-4 of, so the CLI's float16 rolls decode like the float32 logits (an untrained debug transcriber's
    probabilities are small)."""
    top = np.sort(onset.flatten().numpy())[::-1]
    both = np.concatenate([onset.flatten().numpy(), frame.flatten().numpy()])
    for thr in np.arange(float(top[0]) - 6e-4, 0.0, -1e-4):
        if (top > thr).sum() >= 3 and not (np.abs(both - thr) < 5e-4).any():
            return round(float(thr), 5)
    raise AssertionError("no threshold with a margin")


def test_separate_cli_equals_test_prediction(song_root, tmp_path):
    torch.manual_seed(0)
    m = _perturb(SeparationModule(host="htdemucs", sources=SOURCES, segment=1.0, size="debug", boost=True,
                                  feature_cache=str(tmp_path / "cache")))
    dm = StemsDataModule(str(song_root), sources=SOURCES, segment=1.0)
    dm.setup("test")
    name, mix, _ = dm.load_test_track(0)
    sep = m.separator()
    assert sep.context == "chunk" and sep.segment == 44100          # the training segment
    predicted = sep.separate_tensor(mix, cached=True)                # what test_step computes
    sf.write(tmp_path / "song.wav", mix.T.numpy(), 44100, subtype="FLOAT")
    model = sep.save(tmp_path / "sep.safetensors")
    assert main(["separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--no-progress", "--device", "cpu"]) == 0
    cli = torch.stack([torch.from_numpy(sf.read(tmp_path / "out" / "song" / f"{s}.wav", dtype="float32")[0].T)
                       for s in SOURCES])
    assert cli.shape == predicted.shape
    torch.testing.assert_close(cli, predicted, rtol=0, atol=1e-4)
    _plain_differs(m, lambda: m.separator().separate_tensor(mix), predicted, 1e-3)


def test_transcribe_cli_equals_test_prediction(song_root, tmp_path):
    torch.manual_seed(0)
    m = _perturb(TranscriptionModule(host="onsets_frames", size="debug", boost=True, segment=1.0,
                                     pitch_range=(21, 108), feature_cache=str(tmp_path / "cache")), 1.0)
    dm = TranscriptionDataModule(str(song_root), layout="stems", stems=["bass"], stem_audio="stem",
                                 segment=1.0, valid_split="valid", test_split="test")
    dm.setup("test")
    _, audio, _, _ = dm.load_item("test", 0)                         # 16 kHz, as test_step loads it
    tr = m.transcriber()
    assert tr.segment == 31 * 512 and tr.meta["segment"] == 1.0     # the training segment (whole hops), recorded
    outputs = tr.predict(audio, cached=True)                         # what test_step computes
    tr.onset_threshold = tr.frame_threshold = thr = _threshold(*(torch.sigmoid(outputs[k]) for k in ("onset", "frame")))
    expected = tr.decode(outputs)
    path = dm.test_pairs[0].audio_path                               # the 44.1 kHz file itself
    model = tr.save(tmp_path / "tr.safetensors")
    rolls, _ = Transcriber.load(model).file_rolls(path)             # what `booster transcribe` decodes
    for k in ("onset", "frame"):
        np.testing.assert_allclose(rolls[k].astype(np.float32), torch.sigmoid(outputs[k]).numpy(),
                                   rtol=1e-2, atol=2e-4)   # float16 rolls
    assert main(["transcribe", str(path), "-o", str(tmp_path / "out"), "--model", str(model), "--no-progress",
                 "--save-notes", "--device", "cpu", "--onset-threshold", str(thr), "--frame-threshold", str(thr)]) == 0
    with open(tmp_path / "out" / f"{path.stem}.csv") as f:
        notes = [(round(float(r["onset_s"]), 3), int(r["pitch"])) for r in csv.DictReader(f)]
    assert notes and notes == [(round(n.start, 3), n.pitch) for n in expected]
    _plain_differs(m, lambda: torch.sigmoid(m.transcriber().predict(audio)["frame"]),
                   torch.sigmoid(outputs["frame"]), 1e-2)


def test_mix_cli_equals_test_prediction(song_root, tmp_path):
    torch.manual_seed(0)
    m = _perturb(MixingModule(host="mix_wave_unet", stems=SOURCES, sample_rate=22050, channels=2, segment=1.0,
                              size="debug", boost=True, feature_cache=str(tmp_path / "cache")))
    dm = MixingDataModule(str(song_root), stems=SOURCES, sample_rate=22050, channels=2, segment=1.0)
    dm.setup("test")
    name, stems, _ = dm.load_test_track(0)                           # read at 22.05 kHz, as test_step does
    mixer = m.mixer()
    assert mixer.segment == 22050                                    # the training segment
    predicted = mixer.mix_tensor(stems, cached=True)                 # what test_step computes
    model = mixer.save(tmp_path / "mix.safetensors")
    assert Mixer.load(model).segment == 22050
    assert main(["mix", str(song_root / "test" / name), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--no-progress", "--device", "cpu"]) == 0
    cli, rate = sf.read(tmp_path / "out" / f"{name}.wav", dtype="float32")
    assert rate == 22050
    torch.testing.assert_close(torch.from_numpy(cli.T), predicted, rtol=0, atol=1e-4)
    _plain_differs(m, lambda: m.mixer().mix_tensor(stems), predicted, 1e-3)
