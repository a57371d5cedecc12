"""Overlap-add chunking: exact reconstruction, streaming = in-memory, file reader = whole-file resample."""
import numpy as np
import pytest
import soundfile as sf
import torch

from booster.audio import resample
from booster.errors import AudioError
from booster.recipes.separation.chunking import FileReader, overlap_add, tensor_reader, triangle


@pytest.mark.parametrize("length", [1, 999, 1000, 4321])
def test_overlap_add_reconstructs_a_pointwise_model(length):
    torch.manual_seed(length)
    mix = torch.randn(2, length)
    run = lambda chunk, first: torch.stack([chunk, 2 * chunk], dim=1)  # [1, C, S] -> [1, N=2, C, S]
    out = overlap_add(tensor_reader(mix), length, 300, run, overlap=0.25)
    assert out.shape == (2, 2, length)
    torch.testing.assert_close(out[0], mix)
    torch.testing.assert_close(out[1], 2 * mix)


def test_overlap_add_crossfades_chunk_dependent_outputs():
    # each chunk outputs its own offset: the result is a weighted mean of overlapping offsets, monotone
    length, seg = 2000, 400
    run = lambda chunk, first: torch.full((1, 1, 1, seg), float(first))
    out = overlap_add(tensor_reader(torch.zeros(1, length)), length, seg, run, overlap=0.5)[0, 0]
    assert out[0] == 0 and torch.all(out[1:] >= out[:-1] - 1e-4)
    assert triangle(seg).min() > 0


def test_streaming_emits_the_same_samples():
    torch.manual_seed(0)
    mix = torch.randn(2, 5000)
    w = torch.randn(2, 2)
    run = lambda chunk, first: torch.einsum("nc,bcs->bncs", w, chunk) + first * 1e-4
    whole = overlap_add(tensor_reader(mix), 5000, 700, run, overlap=0.3)
    blocks = []
    assert overlap_add(tensor_reader(mix), 5000, 700, run, overlap=0.3, emit=blocks.append) is None
    assert max(b.shape[-1] for b in blocks) <= 700
    torch.testing.assert_close(torch.cat(blocks, -1), whole)


def test_file_reader_resamples_and_converts_channels(tmp_path):
    sr = 22050
    x = np.random.default_rng(0).standard_normal(sr * 2).astype(np.float32) * 0.1
    sf.write(tmp_path / "m.wav", x, sr, subtype="FLOAT")
    reader = FileReader(tmp_path / "m.wav", 44100, 2)
    assert reader.length == 2 * 44100
    ref = resample(torch.from_numpy(x)[None], sr, 44100)
    part = reader(30000, 5000)
    assert part.shape == (2, 5000)
    torch.testing.assert_close(part[0], part[1])
    assert (part[0] - ref[0, 30000:35000]).abs().max() < 1e-3
    tail = reader(reader.length - 100, 400)
    assert tail.shape == (2, 400) and tail[:, 150:].abs().max() == 0


def test_file_reader_errors(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        FileReader(tmp_path / "nope.wav", 44100, 2)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav file")
    with pytest.raises(AudioError, match="cannot read"):
        FileReader(tmp_path / "bad.wav", 44100, 2)
