"""Safe files of the kit: atomic model/adapter/report writes with the umask's mode, one-line errors for
damaged .safetensors files and mismatching shapes, `booster compare --json | head` without a traceback,
and a progress bar that never overshoots."""
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import booster
from booster import Site
from booster.errors import CheckpointError
from booster.training.boosting import load_trainable_state
from booster.training.checkpoint import read_model_file, save_model
from booster.training.chunking import chunked_apply, tensor_reader
from booster.training.report import Metric, write_report


class Frames(nn.Module):
    """``wav [B, 2, S]`` at 16 kHz -> ``[B, 8, T]``."""
    sample_rate = 16000

    def __init__(self):
        super().__init__()
        self.frames = nn.Conv1d(2, 8, kernel_size=320, stride=160)

    def forward(self, wav):
        return self.frames(wav)


def _mode(p) -> int:
    return p.stat().st_mode & 0o777


def _report(folder):
    items = {f"t{i}": {"drums": {"sdr": float(i)}} for i in range(3)}
    return write_report(folder, items, ["drums"], [Metric("sdr")], task="separation", meta={"name": "x"})


def test_writes_follow_umask_and_leave_no_temp_files(tmp_path, debug_muq):
    old = os.umask(0o022)
    try:
        model = save_model(tmp_path / "m.safetensors", nn.Linear(2, 3), {"format_version": 2})
        st, js = booster.save_adapters(booster.inject(Frames(), debug_muq, [Site(path="frames", layout="B C T")]),
                                       tmp_path / "ad")
        _report(tmp_path / "eval")
    finally:
        os.umask(old)
    for p in (model, st, js, tmp_path / "eval" / "results.json", tmp_path / "eval" / "results.md"):
        assert _mode(p) == 0o644, p
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        ["m.safetensors", "ad.safetensors", "ad.json", "results.json", "results.md"])


def test_damaged_safetensors_are_one_line(tmp_path, debug_muq):
    model = save_model(tmp_path / "m.safetensors", nn.Linear(2, 3), {"format_version": 2})
    data = model.read_bytes()
    model.write_bytes(data[: len(data) - 8])
    with pytest.raises(CheckpointError, match="truncated") as e:
        read_model_file(model)
    assert "\n" not in str(e.value)
    host = Frames()
    st, _ = booster.save_adapters(booster.inject(host, debug_muq, [Site(path="frames", layout="B C T")]),
                                  tmp_path / "ad")
    st.write_bytes(os.urandom(64))
    with pytest.raises(CheckpointError, match="adapter file .*ad.safetensors") as e:
        booster.load_adapters(Frames(), debug_muq, st)
    assert "\n" not in str(e.value)


def test_shape_mismatch_names_key_and_shapes():
    model = nn.Sequential(nn.Linear(4, 3))
    state = {"0.weight": torch.zeros(5, 4), "0.bias": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"0\.weight has shape \(5, 4\) in the file, \(3, 4\) in the model"):
        load_trainable_state(model, state)


def test_compare_json_into_closed_pipe(tmp_path):
    _report(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-m", "booster.cli", "compare", str(tmp_path / "run"),
                             str(tmp_path / "run"), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()   # the reader goes away before anything is printed (as `| head` does)
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_progress_bar_with_frames_past_the_input_does_not_overshoot(capsys):
    hop, n = 160, 16000
    x = torch.randn(1, n)
    run = lambda chunks, starts: chunks[:, :, ::hop][..., : chunks.shape[-1] // hop + 1].repeat(1, 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # tqdm's "clamping frac to range [0, 1]" fails the test
        out = chunked_apply(tensor_reader(x), n, 3200, run, overlap=0.25, hop=hop, out_frames=n // hop + 1,
                            progress=True, sample_rate=16000)
    assert out.shape[-1] == n // hop + 1
