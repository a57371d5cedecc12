"""`booster export` + the torch-free runner on whole files give the notes `booster transcribe` gives (plain and
boosted, several chunks; a plain graph also on a file shorter than one chunk); the runner never imports torch."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from booster.cli import main
from booster.errors import AudioError
from booster.recipes.transcription.inference import Transcriber
from test_export_transcription import debug_transcriber

FRAME = 512 / 16000


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread (tests/conftest.py)."""


def _notes(path) -> list[tuple]:
    pm = pretty_midi.PrettyMIDI(str(path))
    return sorted((n.pitch, n.start, n.end, n.velocity) for i in pm.instruments for n in i.notes)


def assert_same_notes(got: list[tuple], want: list[tuple]) -> None:
    """Pitch equal, onset and offset within one frame, velocity within 1 (MIDI tick rounding differs)."""
    assert len(got) == len(want)
    for (gp, g0, g1, gv), (wp, w0, w1, wv) in zip(got, want):
        assert gp == wp and abs(g0 - w0) <= FRAME and abs(g1 - w1) <= FRAME and abs(gv - wv) <= 1


def _setup(tmp_path, backbone=None):
    model, meta = debug_transcriber(backbone, sharp=True)
    src = Transcriber(model, meta).save(tmp_path / "tr.safetensors")
    assert main(["export", "--model", str(src), "-o", str(tmp_path / "onnx"), "--chunk-seconds", "2"]) == 0
    rng = np.random.default_rng(1)
    sf.write(tmp_path / "long.wav", (0.3 * rng.standard_normal(16000 * 5 + 123)).astype(np.float32), 16000)
    sf.write(tmp_path / "short.wav", (0.3 * rng.standard_normal(16000 + 77)).astype(np.float32), 16000)
    return src, json.loads((tmp_path / "onnx" / "manifest.json").read_text())


@pytest.mark.parametrize("boosted", [False, True])
def test_runner_midi_equals_booster_transcribe(boosted, debug_muq, tmp_path):
    src, manifest = _setup(tmp_path, debug_muq if boosted else None)
    assert manifest["task"] == "transcription" and manifest["boosted"] is boosted
    assert manifest["chunk"] == 62 * 512 and manifest["dynamic_length"] is not boosted
    files = [str(tmp_path / "long.wav")] + ([] if boosted else [str(tmp_path / "short.wav")])
    assert main(["transcribe", *files, "-o", str(tmp_path / "ref"), "--model", str(src), "--segment", "2",
                 "--no-progress"]) == 0
    from booster.export.runner import main as runner_main
    assert runner_main([str(tmp_path / "onnx"), *files, "-o", str(tmp_path / "run"), "--batch", "2"]) == 0
    for name in ["long"] + ([] if boosted else ["short"]):
        want = _notes(tmp_path / "ref" / f"{name}.mid")
        assert len(want) > 20                       # notes to compare, across four chunks for "long"
        assert_same_notes(_notes(tmp_path / "run" / f"{name}.mid"), want)


def test_runner_imports_no_torch_and_refuses_a_clip_shorter_than_a_frame(tmp_path):
    _setup(tmp_path)
    sf.write(tmp_path / "tiny.wav", np.zeros(300, np.float32), 16000)
    code = ("import sys; from booster.export.runner import main; "
            f"rc = main([{str(tmp_path / 'onnx')!r}, {str(tmp_path / 'short.wav')!r}, '-o', {str(tmp_path / 'o')!r}]); "
            "bad = sorted(m for m in ('torch', 'pretty_midi', 'mido') if m in sys.modules); "
            "print('RC', rc, 'IMPORTED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RC 0 IMPORTED []" in out.stdout, out.stdout + out.stderr
    assert _notes(tmp_path / "o" / "short.mid")
    from booster.export import runner, runner_transcription
    man, sessions = runner.load(tmp_path / "onnx")
    with pytest.raises(AudioError, match="shorter than one frame"):
        runner_transcription.process_file(man, sessions, tmp_path / "tiny.wav", tmp_path / "o")
