"""`booster transcribe` on files of any format, rate and channel count; name clashes; model file round trip."""
from __future__ import annotations

import numpy as np
import pretty_midi
import soundfile as sf
import torch

from booster.adapters import onsets_frames as plugin
from booster.cli import main
from booster.recipes.transcription.inference import Transcriber
from booster.training.checkpoint import describe
from booster.training.hosts import HostSpec


def _model_file(path, debug_muq=None):
    torch.manual_seed(0)
    model = plugin.build(size="debug", pitch_range=[36, 84])
    if debug_muq is not None:
        model = plugin.boost(model, debug_muq, layers=[1])
    meta = describe("transcription", HostSpec("onsets_frames", plugin.architecture(model)), model,
                    backbone="debug", boost_kwargs={"layers": [1]}, sample_rate=16000, hop_length=512, pitch_range=[36, 84])
    return Transcriber(model.eval(), meta).save(path)


def test_any_format_rate_and_channels_with_clashing_names(tmp_path, debug_muq):
    model = _model_file(tmp_path / "tr.safetensors", debug_muq)
    rng = np.random.default_rng(0)
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "b").mkdir(parents=True)
    sf.write(tmp_path / "in" / "a" / "x.wav", 0.1 * rng.standard_normal((44100 * 2, 2)), 44100)  # stereo 44.1k
    sf.write(tmp_path / "in" / "b" / "x.flac", 0.1 * rng.standard_normal(22050 * 3), 22050)      # mono 22.05k
    out = tmp_path / "out"
    assert main(["transcribe", str(tmp_path / "in"), "-o", str(out), "--model", str(model), "--no-progress",
                 "--save-notes"]) == 0
    for name in ("a/x", "b/x"):
        pm = pretty_midi.PrettyMIDI(str(out / f"{name}.mid"))
        assert all(36 <= n.pitch <= 84 for i in pm.instruments for n in i.notes)
        assert (out / f"{name}.csv").is_file()
    assert not list(out.rglob("*.tmp*")) and not list(out.rglob(".*"))


def test_output_folder_errors(tmp_path, capsys):
    model = _model_file(tmp_path / "tr.safetensors")
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(16000), 16000)
    (tmp_path / "file").write_text("")
    assert main(["transcribe", str(wav), "-o", str(tmp_path / "file"), "--model", str(model)]) == 1
    assert "existing file" in capsys.readouterr().err
    bad = tmp_path / "bad.wav"
    sf.write(bad, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    assert main(["transcribe", str(bad), "-o", str(tmp_path / "o"), "--model", str(model), "--no-progress"]) == 1
    assert "NaN" in capsys.readouterr().err
    # silence decodes to no notes: still a valid, empty MIDI file
    assert main(["transcribe", str(wav), "-o", str(tmp_path / "o"), "--model", str(model), "--no-progress",
                 "--onset-threshold", "0.99"]) == 0
    assert [n for i in pretty_midi.PrettyMIDI(str(tmp_path / "o" / "x.mid")).instruments for n in i.notes] == []


def test_keep_going_skips_a_bad_input_and_transcribes_the_rest(tmp_path, capsys):
    model = _model_file(tmp_path / "tr.safetensors")
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "bad.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    sf.write(tmp_path / "in" / "good.wav", np.zeros(16000), 16000)
    out = tmp_path / "o"
    assert main(["transcribe", str(tmp_path / "in"), "-o", str(out), "--model", str(model), "--no-progress",
                 "--keep-going"]) == 1   # a skipped input makes the exit status 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "bad.wav" in captured.err and "NaN" in captured.err
    assert "good.wav -> " in captured.out and " notes, " in captured.out
    assert (out / "good.mid").is_file() and not (out / "bad.mid").exists()
