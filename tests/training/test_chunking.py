"""Chunked inference over time: exact reconstruction, frame outputs, batches, streaming, features per chunk."""
import numpy as np
import pytest
import soundfile as sf
import torch

from booster.audio import FileReader, resample
from booster.errors import AudioError, ConfigError
from booster.features import Features
from booster.training.chunking import chunk_features, chunked_apply, tensor_reader, triangle


def _pointwise(chunks, starts):                     # [K, C, S] -> [K, N=2, C, S]
    return torch.stack([chunks, 2 * chunks], dim=1)


@pytest.mark.parametrize("length", [1, 999, 1000, 4321])
@pytest.mark.parametrize("batch", [1, 3])
def test_reconstructs_a_pointwise_model(length, batch, device):
    torch.manual_seed(length)
    mix = torch.randn(2, length, device=device)
    out = chunked_apply(tensor_reader(mix), length, 300, _pointwise, overlap=0.25, batch_size=batch)
    assert out.shape == (2, 2, length) and out.device == mix.device
    torch.testing.assert_close(out[0], mix)
    torch.testing.assert_close(out[1], 2 * mix)


def test_crossfades_chunk_dependent_outputs():
    # each chunk outputs its own offset: the result is a weighted mean of overlapping offsets, monotone
    length, seg = 2000, 400
    run = lambda chunks, starts: torch.tensor(starts, dtype=torch.float32)[:, None, None, None].expand(-1, 1, 1, seg)
    out = chunked_apply(tensor_reader(torch.zeros(1, length)), length, seg, run, overlap=0.5, batch_size=2)[0, 0]
    assert out[0] == 0 and torch.all(out[1:] >= out[:-1] - 1e-4)
    assert triangle(seg).min() > 0


@pytest.mark.parametrize("hop", [4, 64])
def test_frame_rate_output_equals_a_single_pass(hop, device):
    """Known answer: a model whose frames depend only on their own ``hop`` samples (context inside the
    frame) gives, chunked with overlap and batches, exactly the frames of one pass over the whole input."""
    torch.manual_seed(hop)
    length, seg = 20 * 64 * 3 + 17, 64 * 10
    x = torch.randn(1, length, device=device)

    def frames(chunks, starts=None):                  # [K, 1, S] -> [K, 2, S // hop]: mean and energy per frame
        f = chunks[:, 0, :chunks.shape[-1] // hop * hop].reshape(chunks.shape[0], -1, hop)
        return torch.stack([f.mean(-1), (f ** 2).mean(-1)], dim=1)

    n = -(-length // hop)
    single = frames(torch.nn.functional.pad(x, (0, n * hop - length))[None])[0]   # [2, n]
    for batch in (1, 4):
        out = chunked_apply(tensor_reader(x), length, seg, frames, overlap=0.3, hop=hop, batch_size=batch)
        assert out.shape == (2, n) and out.device == x.device
        torch.testing.assert_close(out, single)


def test_streaming_emits_the_same_samples():
    torch.manual_seed(0)
    mix = torch.randn(2, 5000)
    w = torch.randn(2, 2)
    run = lambda chunks, starts: (torch.einsum("nc,bcs->bncs", w, chunks)
                                  + torch.tensor(starts, dtype=torch.float32)[:, None, None, None] * 1e-4)
    whole = chunked_apply(tensor_reader(mix), 5000, 700, run, overlap=0.3)
    blocks = []
    assert chunked_apply(tensor_reader(mix), 5000, 700, run, overlap=0.3, emit=blocks.append, batch_size=3) is None
    assert max(b.shape[-1] for b in blocks) <= 700
    torch.testing.assert_close(torch.cat(blocks, -1), whole)


def test_bad_settings_are_config_errors():
    read = tensor_reader(torch.zeros(1, 100))
    with pytest.raises(ConfigError, match="overlap"):
        chunked_apply(read, 100, 10, _pointwise, overlap=1.0)
    with pytest.raises(ConfigError, match="multiple of the output hop"):
        chunked_apply(read, 100, 10, _pointwise, hop=3)


def test_chunk_features_match_per_chunk_slices():
    """Batched per-chunk features (one start per item) align exactly like slice_time + input_start."""
    from booster.features import align_frames
    torch.manual_seed(0)
    track = Features(torch.randn(1, 2, 40, 3), (4, 8), 25.0)
    starts, dur = [0.0, 0.37, 0.74, 1.11], 0.5
    batch, input_start = chunk_features(track, starts, dur)
    assert batch.hidden.shape[0] == 4 and input_start.shape == (4,)
    x = batch.hidden[:, 0]                                                   # [K, n, D]
    got = align_frames(x, num_frames=11, frame_rate=25.0, start=batch.start, span_start=input_start, span=dur)
    for k, t0 in enumerate(starts):
        s = track.slice_time(t0, t0 + dur, margin=2)
        ref = align_frames(s.hidden[:, 0], num_frames=11, frame_rate=25.0, start=s.start, span_start=t0, span=dur)
        torch.testing.assert_close(got[k], ref[0])


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
