"""Stage 1 (Mel-RVQ tokenizer): shapes, a known-answer frame stacking, learning, usage, dead codes, files."""
import pytest
import torch

from booster.errors import CheckpointError
from booster.recipes.pretraining.tokenizer import MelRVQ, TokenizerConfig, stack_frames


def test_stack_frames_known_answer():
    mel = torch.arange(2 * 3 * 9, dtype=torch.float32).reshape(2, 3, 9)  # [B, F, T_mel]
    x = stack_frames(mel, 4)                                              # [B, 2, 12]
    assert x.shape == (2, 2, 12)
    # token frame 1 of batch 0 = mel frames 4..7, each frame's 3 bands in order
    expected = torch.stack([mel[0, :, t] for t in range(4, 8)]).reshape(-1)
    assert torch.equal(x[0, 1], expected)


def clustered(n_clusters=6, per=200, dim=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, dim, generator=g) * 3
    x = centres.repeat_interleave(per, 0) + 0.1 * torch.randn(n_clusters * per, dim, generator=g)
    return x[torch.randperm(len(x), generator=g)].reshape(4, -1, dim)     # [B, T, D_in]


def test_rvq_training_reduces_reconstruction_error_and_uses_codes():
    torch.manual_seed(0)
    x = clustered()
    rvq = MelRVQ(TokenizerConfig(input_dim=24, num_levels=3, codebook_size=16, code_dim=4, dead_after=5))
    rvq.set_statistics(x)
    rvq.init_codebooks(x)
    opt = torch.optim.Adam(rvq.parameters(), lr=1e-2)
    first = rvq(x)["relative_error"].item()
    for _ in range(80):
        out = rvq(x)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    last = rvq.eval()(x)["relative_error"].item()
    assert last < 0.5 * first, (first, last)
    codes = rvq.tokenize(x)
    assert codes.shape == (4, 300, 3) and codes.dtype == torch.long
    assert int(codes.max()) < 16 and int(codes.min()) >= 0
    # six well-separated clusters: the first level must tell them apart with at least 6 codes
    assert len(torch.unique(codes[..., 0])) >= 6
    assert (rvq.usage_fraction() > 0).all()
    assert (rvq.perplexity() >= 1).all()


def test_dead_codes_are_replaced_by_recent_inputs():
    torch.manual_seed(0)
    rvq = MelRVQ(TokenizerConfig(input_dim=8, num_levels=1, codebook_size=32, code_dim=4, dead_after=2))
    rvq.codebooks.data[0, 1:] = 1e3                                        # codes 1.. can never win
    x = torch.randn(2, 50, 8)
    rvq.train()
    for _ in range(2):
        rvq(x)
    far = (rvq.codebooks.data[0].abs() > 100).all(-1)
    assert not far.any(), "dead codes were not replaced"
    usage_before = (rvq.usage > 0).sum().item()
    rvq(x)
    assert (rvq.usage > 0).sum().item() > usage_before


def test_save_load_round_trip(tmp_path):
    rvq = MelRVQ(TokenizerConfig(input_dim=16, num_levels=2, codebook_size=8, code_dim=4))
    x = torch.randn(2, 10, 16)
    rvq.set_statistics(x)
    rvq.init_codebooks(x)
    path = rvq.save(tmp_path / "tok")
    assert path.name == "tok.safetensors" and (tmp_path / "tok.json").is_file()
    again = MelRVQ.load(path)
    assert torch.equal(again.tokenize(x), rvq.tokenize(x))
    (tmp_path / "tok.json").write_text('{"format_version": 99, "class": "MelRVQ", "config": {}}')
    with pytest.raises(CheckpointError, match="unknown tokenizer format"):
        MelRVQ.load(path)
