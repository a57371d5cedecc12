"""A transcriber TRAINED by the recipe (`booster fit`, debug size, mel front end, no MuQ) on rendered clips
whose notes are known, then `booster transcribe` on a clip it never saw: the MIDI file read back with
pretty_midi has the right notes at the right times (mir_eval note F1, onsets within 50 ms).

Material: monophonic piano notes (numpy renderer, the project's own synthesiser) on 4 pitches, 0.15-0.45 s
long, 0.05-0.3 s apart: clear onsets, few classes. Training: 200 steps of batch 8 x 1 s at lr 5e-3 (seed 0),
about 40 s on one shared CPU thread; the held-out clip scored F1 1.00 in every run while tuning.
"""
from __future__ import annotations

from pathlib import Path

import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from booster.cli import main
from booster.data.render import render_song, resolve_renderer
from booster.data.songs import Song

SR = 16000
PITCHES = (64, 71, 78, 84)  # E4 B4 F#5 C6: several mel bands apart in the debug front end
PITCH_RANGE = (62, 86)   # a few keys around the material, so a wrong-pitch output is possible
TRAIN_CLIPS, CLIP_SECONDS, TEST_SECONDS = 8, 4.0, 8.0
MIN_F1 = 0.9             # ~20 test notes: at most one missed and one extra note


def _notes(rng: np.random.Generator, seconds: float) -> list[pretty_midi.Note]:
    notes, t = [], 0.1 + rng.uniform(0, 0.2)
    while True:
        length = rng.uniform(0.15, 0.45)
        if t + length > seconds - 0.2:
            return notes
        notes.append(pretty_midi.Note(int(rng.integers(70, 110)), int(rng.choice(PITCHES)), float(t), float(t + length)))
        t += length + rng.uniform(0.05, 0.3)


def write_clip(stem: Path, seed: int, seconds: float) -> None:
    """``stem.wav`` (mono 16 kHz) and ``stem.mid`` of a random monophonic piano clip."""
    inst = pretty_midi.Instrument(program=0, name="piano")
    inst.notes = _notes(np.random.default_rng(seed), seconds)
    song = Song(name=stem.name, tempo=120.0, key=0, mode="major", progression=(0,), drum_style="rock",
                seconds=seconds, parts={"piano": [inst]})
    audio = render_song(song, resolve_renderer("numpy"), frames=int(seconds * SR), sample_rate=SR, seed=seed)["piano"]
    stem.parent.mkdir(parents=True, exist_ok=True)
    sf.write(stem.with_suffix(".wav"), 0.5 * audio.mean(0) / np.abs(audio).max(), SR, subtype="FLOAT")
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(inst)
    pm.write(str(stem.with_suffix(".mid")))


def midi_notes(path: Path) -> list[pretty_midi.Note]:
    return sorted((n for i in pretty_midi.PrettyMIDI(str(path)).instruments for n in i.notes), key=lambda n: n.start)


def onset_f1(ref: list[pretty_midi.Note], est: list[pretty_midi.Note], shift: float = 0.0) -> float:
    """mir_eval note F1: same pitch, onset within 50 ms (offsets ignored); ``shift`` moves ``est`` in time."""
    def arrays(notes, dt=0.0):
        iv = np.array([[n.start + dt, n.end + dt] for n in notes], dtype=np.float64).reshape(-1, 2)
        return iv, np.array([pretty_midi.note_number_to_hz(n.pitch) for n in notes], dtype=np.float64)
    if not est:
        return 0.0
    return mir_eval.transcription.precision_recall_f1_overlap(*arrays(ref), *arrays(est, shift), onset_tolerance=0.05,
                                                              offset_ratio=None)[2]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tr_clips")
    for i in range(TRAIN_CLIPS):
        write_clip(root / "train" / f"clip{i}", 100 + i, CLIP_SECONDS)
    write_clip(root / "validation" / "valid0", 900, CLIP_SECONDS)
    write_clip(root / "heldout" / "test0", 1000, TEST_SECONDS)        # not in any split the recipe reads
    return root


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory) -> Path:
    """``last.ckpt`` of the demo recipe trained on the clips (layout pairs, debug preset, log-mel front end,
    200 steps, no validation)."""
    out = tmp_path_factory.mktemp("tr_fit")
    args = ["fit", "--config", "transcription/demo", "--data.root", str(clips), "--data.layout", "pairs",
            "--data.valid_split", "validation", "--data.generate", "null",
            "--data.pitch_range", f"[{PITCH_RANGE[0]}, {PITCH_RANGE[1]}]", "--data.segment", "1.0",
            "--data.batch_size", "8", "--data.samples_per_epoch", "1600", "--data.num_workers", "0",
            "--model.frontend", "mel", "--model.frontend_kwargs", "null", "--model.size", "debug",
            "--model.host_kwargs", "null", "--model.boost", "false",      # debug preset as built in code, no MuQ
            "--trainer.max_steps", "200", "--model.lr", "0.005", "--trainer.limit_val_batches", "0",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--seed_everything", "0",
            "--trainer.default_root_dir", str(out), "--model.eval_dir", str(out / "eval")]
    assert main(args) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


def _transcribe(model: Path, wav: Path, out: Path) -> list[pretty_midi.Note]:
    assert main(["transcribe", str(wav), "-o", str(out), "--model", str(model), "--no-progress"]) == 0
    return midi_notes(out / f"{wav.stem}.mid")


def test_trained_transcriber_finds_the_notes_of_an_unseen_clip(clips, trained, tmp_path):
    wav = clips / "heldout" / "test0.wav"
    ref = midi_notes(wav.with_suffix(".mid"))
    assert len(ref) >= 15
    est = _transcribe(trained, wav, tmp_path / "out")
    f1 = onset_f1(ref, est)
    assert f1 >= MIN_F1, (f"note F1 {f1:.2f}: ref {[(round(n.start, 3), n.pitch) for n in ref]} "
                          f"est {[(round(n.start, 3), n.pitch) for n in est]}")
    assert all(PITCH_RANGE[0] <= n.pitch <= PITCH_RANGE[1] and 0 <= n.start < n.end <= TEST_SECONDS + 0.1 for n in est)
    # the same notes 100 ms late fail the check: it measures timing, not only note counts
    assert onset_f1(ref, est, shift=0.1) < 0.5


def test_untrained_transcriber_fails_the_same_check(clips, trained, tmp_path):
    """The trained model with its weights re-initialised (as at step 0) fails the same check."""
    from booster.models.transcriber import init_head_priors
    from booster.recipes.transcription.inference import Transcriber

    tr = Transcriber.load(trained)
    arch = tr.model.architecture()
    assert (arch["frontend"], arch["model_size"], arch["pitch_range"]) == ("mel", 32, list(PITCH_RANGE))
    torch.manual_seed(0)
    for m in tr.model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    init_head_priors(tr.model)
    path = tr.save(tmp_path / "untrained.safetensors")
    wav = clips / "heldout" / "test0.wav"
    assert onset_f1(midi_notes(wav.with_suffix(".mid")), _transcribe(path, wav, tmp_path / "out")) < 0.5


@pytest.mark.parametrize("backend", ["onsets_frames", "shallow"])
def test_heads_start_at_their_prior_probability(backend):
    """Known answer: at initialisation the onset/offset/frame read-outs give their prior probability on a
    zero input to the read-out (their bias), so training does not start at p = 0.5 for ~1 % positives."""
    from booster.models.transcriber import HEAD_PRIORS, build_transcriber

    model = build_transcriber("debug", backend=backend, pitch_range=(60, 72))
    for name, prior in HEAD_PRIORS.items():
        bias = getattr(model, name).bias
        assert bias.shape == (13,)
        assert torch.allclose(torch.sigmoid(bias), torch.full_like(bias, prior), atol=1e-6)
