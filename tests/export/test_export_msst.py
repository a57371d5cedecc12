"""A model converted from Music-Source-Separation-Training exports with MSST's chunking (issue 23): the manifest
carries ``chunking`` ``{"mode": "msst", "num_overlap": N, "step": chunk // N}``, the runner's numpy
``msst_chunked`` equals ``booster.training.chunking.msst_apply``, and the runner's stems of a converted model
equal `booster separate`'s (below -60 dB) on a file of several chunks and on one shorter than a chunk.
Shapes: K chunks, N sources, C channels, S samples."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from booster.cli import main
from booster.export.runner import chunked
from booster.export.runner import main as runner_main
from booster.training.chunking import msst_apply, tensor_reader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "msst"))
from msst_helpers import CHUNK, FOUR, SR, VOCALS, reference_model, write_config  # noqa: E402

from booster.msst import read_config  # noqa: E402


def _fake_model(chunks):
    """``[K, C, L]`` -> ``[K, 2, C, L]``: position-dependent, so where each chunk lies matters."""
    ramp = np.linspace(0.5, 1.5, chunks.shape[-1], dtype=np.float32)
    return np.stack([np.tanh(3 * chunks) * ramp, chunks ** 2 - ramp], 1)


@pytest.mark.parametrize("num_overlap", [1, 2, 4])
@pytest.mark.parametrize("length", [700, 1000, 1001, 1450, 1650, 3720])
def test_msst_chunked_equals_msst_apply(length, num_overlap):
    """Lengths: shorter than a chunk (one chunk), exactly one, one more, tails under and over half a chunk."""
    chunk, step = 1000, 1000 // num_overlap
    x = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    manifest = {"chunk": chunk, "hop": step, "chunking": {"mode": "msst", "num_overlap": num_overlap, "step": step}}
    got = chunked(x, manifest, _fake_model, batch_size=3)
    want = msst_apply(tensor_reader(torch.from_numpy(x)), length, chunk,
                      lambda c, starts: torch.from_numpy(_fake_model(c.numpy())), step=step).numpy()
    assert got.shape == want.shape == (2, 2, length)
    assert np.abs(got - want).max() <= 1e-5
    if length > chunk:   # the kit's cross-fade is another result: the mode is not ignored
        kit = chunked(x, dict(manifest, chunking={"mode": "kit"}, hop=750), _fake_model)
        assert np.abs(kit - want).max() > 1e-2


def _converted(tmp_path, kind, stems, num_overlap):
    cfg = write_config(tmp_path / "config.yaml", kind, stems, num_overlap=num_overlap)
    torch.save(reference_model(kind, read_config(cfg)["model"]).state_dict(), tmp_path / "model.ckpt")
    out = tmp_path / "host.safetensors"
    assert main(["convert", "msst", "--config", str(cfg), "--checkpoint", str(tmp_path / "model.ckpt"),
                 "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize("kind,stems,num_overlap", [("mel_band_roformer", VOCALS, 4), ("bs_roformer", FOUR, 2)])
def test_runner_on_converted_model_equals_booster_separate(tmp_path, kind, stems, num_overlap):
    model = _converted(tmp_path, kind, stems, num_overlap)
    folder = tmp_path / "onnx"
    assert main(["export", "--model", str(model), "-o", str(folder)]) == 0
    m = json.loads((folder / "manifest.json").read_text())
    step = CHUNK // num_overlap
    assert m["chunk"] == CHUNK and m["hop"] == step and m["window"]["kind"] == "msst"
    assert {k: m["chunking"][k] for k in ("mode", "num_overlap", "step")} == \
        {"mode": "msst", "num_overlap": num_overlap, "step": step}
    rng = np.random.default_rng(5)
    for name, samples in [("long", int(3.6 * CHUNK)), ("short", CHUNK - 1000)]:
        song = tmp_path / f"{name}.wav"
        sf.write(song, (0.3 * rng.standard_normal((samples, 2))).astype(np.float32), SR, subtype="FLOAT")
        assert runner_main([str(folder), str(song), "-o", str(tmp_path / "ort"), "--batch", "2"]) == 0
        assert main(["separate", str(song), "-o", str(tmp_path / "torch"), "--model", str(model),
                     "--no-progress"]) == 0
        for s in m["sources"]:
            a, _ = sf.read(tmp_path / "ort" / name / f"{s}.wav")
            b, _ = sf.read(tmp_path / "torch" / name / f"{s}.wav")
            assert a.shape == b.shape == (samples, 2)
            assert 20 * np.log10(np.linalg.norm(a - b) / np.linalg.norm(b)) < -60, (name, s)
