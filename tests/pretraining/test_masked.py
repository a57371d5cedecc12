"""Stage 2 (masked token prediction): masks, one step, learning, export = trained module, trainable MuQ."""
import pytest
import torch

from booster import MuQ
from booster.recipes.pretraining.masked import MaskedPredictor, apply_mask, block_mask
from booster.recipes.pretraining.module import encoder_config, export, init_encoder
from booster.recipes.pretraining.tokenizer import MelRVQ, TokenizerConfig, stack_frames


def test_block_mask_masks_whole_blocks_at_the_asked_rate():
    g = torch.Generator().manual_seed(0)
    mask = block_mask(64, 95, 10, 0.6, generator=g)                       # [B, T]
    assert mask.shape == (64, 95) and mask.dtype == torch.bool
    blocks = mask[:, :90].reshape(64, 9, 10)
    assert ((blocks.all(-1)) | (~blocks.any(-1))).all(), "a block is partly masked"
    assert 0.5 < mask.float().mean().item() < 0.7
    assert mask.any(1).all(), "a row without masked frames"
    assert mask.any(1).all() and block_mask(8, 30, 10, 0.0).any(1).all()


def test_apply_mask_replaces_only_masked_frames():
    wav = torch.ones(2, 1000)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 2] = True
    out = apply_mask(wav, mask, samples_per_frame=100, noise_std=0.1)
    assert torch.equal(out[1], wav[1])
    assert torch.equal(out[0, :200], wav[0, :200]) and torch.equal(out[0, 300:], wav[0, 300:])
    assert (out[0, 200:300] != 1).all() and out[0, 200:300].abs().max() < 1.0


def tiny_predictor(seed=0):
    torch.manual_seed(seed)
    enc = init_encoder(None, "debug", None, seed)
    rvq = MelRVQ(TokenizerConfig(num_levels=2, codebook_size=16))
    wav = 0.1 * torch.randn(2, 24000)
    x = stack_frames(enc.frontend(wav), 4)
    rvq.set_statistics(x)
    rvq.init_codebooks(x)
    return MaskedPredictor(enc, rvq), wav


def test_muq_trains_when_asked():
    enc = MuQ(encoder_config("debug"))
    assert not enc.training                      # built in eval mode
    enc.train()
    assert enc.training and enc.conv.training and enc.conformer.layers[0].conv_module.batch_norm.training
    enc.eval()
    assert not enc.conv.training


def test_one_step_and_a_few_steps_reduce_the_loss():
    model, wav = tiny_predictor()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(12):
        out = model(wav, generator=torch.Generator().manual_seed(0))     # same mask every step
        assert out["acc"].shape == (2,) and 0 < out["masked_fraction"] < 1
        opt.zero_grad()
        out["loss"].backward()
        if step == 0:  # gradients reach the encoder and the heads, never the tokenizer
            assert model.encoder.conformer.layers[0].ffn1.intermediate_dense.weight.grad is not None
            assert model.heads[0].weight.grad is not None
            assert all(p.grad is None for p in model.tokenizer.parameters())
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_cqt_target_adds_a_loss():
    pytest.importorskip("nnAudio")
    torch.manual_seed(0)
    enc = init_encoder(None, "debug", None, 0)
    model = MaskedPredictor(enc, MelRVQ(TokenizerConfig(num_levels=1, codebook_size=8)), cqt_weight=0.5)
    out = model(0.1 * torch.randn(1, 24000))
    assert out["cqt_loss"] > 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.cqt_head.weight.grad is not None


class _Holder(torch.nn.Module):  # what export reads: .encoder, .model, .global_step, .hparams
    def __init__(self, model):
        super().__init__()
        self.model, self.global_step, self.hparams = model, 7, {"size": "debug"}

    @property
    def encoder(self):
        return self.model.encoder


def test_export_loads_unchanged_and_matches_the_trained_module(tmp_path):
    model, wav = tiny_predictor()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):                           # BatchNorm statistics and weights move away from init
        out = model(wav)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    export(_Holder(model), tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"config.json", "model.safetensors",
                                                              "training_parts.safetensors", "training.json"}
    loaded = MuQ.from_pretrained(tmp_path / "out")
    enc = model.encoder.eval()
    for k, v in enc.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    with torch.no_grad():
        a = enc(wav).hidden_states
        b = loaded(wav).hidden_states
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert loaded.config.to_dict() == enc.config.to_dict()


def test_iteration_targets_come_from_a_previous_models_layer():
    torch.manual_seed(0)
    teacher = MuQ.debug(seed=1, depth=2)
    wav = 0.1 * torch.randn(2, 24000)
    with torch.no_grad():
        hidden = teacher.encode(wav, upto=1, keep=[1])[1]                 # [B, T, 32]
    rvq = MelRVQ(TokenizerConfig(input_dim=32, num_levels=2, codebook_size=8, source="layer:1"))
    rvq.set_statistics(hidden)
    rvq.init_codebooks(hidden)
    model = MaskedPredictor(init_encoder(None, "debug", None, 0), rvq, teacher=teacher, teacher_layer=1)
    assert torch.equal(model.targets(wav), rvq.tokenize(hidden))
    out = model(wav)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and all(p.grad is None for p in teacher.parameters())
