"""Chunked inference, its accumulation, feature slicing and time alignment on fake CUDA.

Shape glossary: B batch, C channels, N sources, S samples, T frames, L layers, D feature dim, K chunks.
"""
import torch
from fake_cuda import FAKE, SEP, boosted_host, fake_cuda_mode

from booster.features import Features, align_frames
from booster.training.chunking import chunk_features, chunked_apply, tensor_reader
from booster.training.inference import ChunkedInference


def test_align_frames_and_feature_slices_stay_on_cuda(fake_cuda):
    x = torch.randn(3, 40, 8, device=FAKE)                               # [B, T_in, C]
    assert align_frames(x, num_frames=17, frame_rate=25.0, span=1.2).device == FAKE
    starts = torch.tensor([0.0, 0.3, 0.5], dtype=torch.float64, device=FAKE)   # one start per item, on cuda
    out = align_frames(x, num_frames=17, frame_rate=25.0, start=0.1, span_start=starts, span=0.8)
    assert out.shape == (3, 17, 8) and out.device == FAKE
    feats = Features(torch.randn(1, 3, 50, 8, device=FAKE), (0, 2, 4))  # [B, L, T, D]
    picked = feats.select((4, 0)).slice_time(0.4, 1.2, margin=2)
    assert picked.hidden.device == FAKE and picked.layers == (4, 0)
    assert picked.layer(4).device == FAKE


def test_chunk_features_on_cuda(fake_cuda):
    track = Features(torch.randn(1, 2, 100, 8, device=FAKE), (0, 1))
    hidden, input_start = chunk_features(track, [0.0, 0.75, 1.5], 1.0)
    assert hidden.hidden.shape[:2] == (3, 2) and hidden.hidden.device == FAKE
    assert input_start.shape == (3,) and input_start.device.type == "cpu"   # per-chunk starts stay on the host


def test_chunked_apply_cross_fade_on_cuda(fake_cuda):
    x = torch.randn(2, 1000, device=FAKE)                                # [C, S]
    seen = []

    def run(chunks, starts):                                            # [K, C, 256] -> [K, 3, C, 256]
        seen.append(len(starts))
        return chunks[:, None].expand(-1, 3, -1, -1) * 2
    out = chunked_apply(tensor_reader(x), 1000, 256, run, overlap=0.25, batch_size=3)
    assert out.shape == (3, 2, 1000) and out.device == FAKE
    assert max(seen) == 3 and len(seen) > 1                              # batches of chunks, several batches
    blocks = []
    chunked_apply(tensor_reader(x), 1000, 256, run, overlap=0.5, batch_size=2, emit=blocks.append)
    assert blocks and all(b.device == FAKE for b in blocks)
    assert sum(b.shape[-1] for b in blocks) == 1000


def test_chunked_inference_of_a_boosted_host_on_cuda(monkeypatch):
    """Track features once, sliced per chunk, batches of overlapping chunks, on cuda end to end."""
    model = boosted_host("htdemucs").eval()
    sr = SEP["sample_rate"]
    infer = ChunkedInference(model, sample_rate=sr, channels=2, segment=SEP["segment"], overlap=0.25,
                             batch_size=2)
    with fake_cuda_mode(monkeypatch):
        model.to(FAKE)
        x = torch.randn(2, int(2.6 * sr), device=FAKE)                  # [C, S]: 4 chunks, 2 batches
        out = infer(x)
        assert out.shape == (2, 2, x.shape[-1]) and out.device == FAKE  # [N, C, S]
        feats = infer.track_features(x)
        out2 = infer(x, features=feats)
        assert out2.shape == out.shape and out2.device == FAKE
