"""An MSST BS-RoFormer / Mel-Band-RoFormer (config + checkpoint) loads into the kit's host exactly: its output
on a chunk equals the original module's (BS-RoFormer 0.4.1, the layout MSST trains: see reference.py), for
vocals-only and 4-stem models, stereo and mono, in both key spellings; MSST's options that 0.4.1 lacks equal
hand-checked expectations built from the reference's own modules. Shapes: [B, C, S] in, [B, N, C, S] out."""
import pytest
import torch
from msst_helpers import (CHUNK, FOUR, HOP, SR, VOCALS, model_section, msst_names, reference_model,
                          run_reference, write_config)
from reference import reference

from booster.msst import build_msst
from booster.training.msst import load_msst

KINDS = ["bs_roformer", "mel_band_roformer"]


def _pair(tmp_path, kind, stems=VOCALS, stereo=True, rename=False, **extra):
    cfg = write_config(tmp_path / "config.yaml", kind, stems, stereo, **extra)
    from booster.msst import read_config
    ref = reference_model(kind, read_config(cfg)["model"])
    state = ref.state_dict()
    torch.save(msst_names(state) if rename else state, tmp_path / "model.ckpt")
    return cfg, tmp_path / "model.ckpt", ref


def _mix(channels, samples=CHUNK, batch=2, seed=0):
    return 0.3 * torch.randn(batch, channels, samples, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stems", [VOCALS, FOUR], ids=["vocals", "four_stems"])
@pytest.mark.parametrize("stereo", [True, False], ids=["stereo", "mono"])
def test_converted_host_equals_the_original_module(tmp_path, kind, stems, stereo):
    cfg, ckpt, ref = _pair(tmp_path, kind, stems, stereo)
    model, meta = load_msst(cfg, ckpt)
    sources = [stems["target"]] if stems["target"] else stems["instruments"]
    assert (meta["host"]["name"], meta["sources"], meta["channels"], meta["sample_rate"]) == \
        (kind, sources, 2 if stereo else 1, SR)
    assert meta["segment"] == CHUNK / SR and meta["overlap"] == 0.75 and not meta["boost"]
    x = _mix(2 if stereo else 1)
    want = run_reference(ref, x)
    with torch.no_grad():
        got = model(x)
    assert got.shape == want.shape == (2, len(sources), 2 if stereo else 1, CHUNK)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert want.abs().max() > 0.05                       # a real signal, not two zeros


def test_mel_band_keys_load_in_msst_and_in_0_4_spelling(tmp_path):
    """MSST's class names a block without linear attention layers.i.{0,1}; 0.4.1 layers.i.{1,2}."""
    cfg, ckpt, ref = _pair(tmp_path, "mel_band_roformer", rename=True)
    assert any(k.startswith("layers.0.0.") for k in torch.load(ckpt, weights_only=True))
    model, _ = load_msst(cfg, ckpt)
    x = _mix(2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), run_reference(ref, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_linear_attention_blocks(tmp_path, kind):
    """linear_transformer_depth: 1. Mel-Band: 0.4.1 has it. BS: 0.4.1 lacks it; the expectation runs 0.4.1's
    own linear-attention transformer over each block's (T x F) tokens before the time transformer."""
    if kind == "mel_band_roformer":
        cfg, ckpt, ref = _pair(tmp_path, kind, linear_transformer_depth=1)
        assert any(k.startswith("layers.1.0.layers.0.0.temperature") for k in ref.state_dict())
        expect = ref
    else:
        bs, mel = reference()
        cfg = write_config(tmp_path / "config.yaml", kind, linear_transformer_depth=1)
        expect = reference_model(kind, model_section(kind, 1, True))
        bands = len(expect.band_split.to_features)
        state = {}
        for i, block in enumerate(expect.layers):
            lin = mel.Transformer(dim=16, depth=1, heads=2, dim_head=8, linear_attn=True, flash_attn=False,
                                  norm_output=False)       # MSST's BS transformers end without a norm
            with torch.no_grad():
                for p in lin.parameters():
                    p.add_(0.2 * torch.randn_like(p))
            state.update({f"layers.{i}.0.{k}": v for k, v in lin.state_dict().items()})
            state.update({f"layers.{i}.{j + 1}.{k}": v for j in range(2) for k, v in block[j].state_dict().items()})
            block[0] = _Before(lin.eval(), block[0], bands)
        state.update({k: v for k, v in expect.state_dict().items() if not k.startswith("layers.")})
        torch.save(state, tmp_path / "model.ckpt")
        ckpt = tmp_path / "model.ckpt"
    model, _ = load_msst(cfg, ckpt)
    x = _mix(2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), run_reference(expect, x), rtol=1e-4, atol=1e-5)


class _Before(torch.nn.Module):
    """``inner`` after ``first`` applied to the same tokens regrouped per item: ``[(B F), T, D]`` seen as
    ``[B, F * T, D]`` (linear attention has no positions: token order does not matter)."""

    def __init__(self, first, inner, bands: int, scale: float = 1.0):
        super().__init__()
        self.first, self.inner, self.bands, self.scale = first, inner, bands, scale

    def forward(self, x):
        if self.first is not None:
            bf, t, d = x.shape
            x = self.first(x.reshape(bf // self.bands, self.bands * t, d)).reshape(bf, t, d)
        return self.inner(self.scale * x)


@pytest.mark.parametrize("kind", KINDS)
def test_skip_connection_and_mlp_expansion(tmp_path, kind):
    """skip_connection: true (MSST adds every earlier block's output to a block's input: with two blocks the
    second one's input is doubled); mlp_expansion_factor: 2 (0.4.1's MaskEstimator takes it, its models do not
    pass it)."""
    bs, mel = reference()
    cfg, ckpt, expect = _pair(tmp_path, kind, skip_connection=True, mlp_expansion_factor=2)
    expect.layers[1][-2] = _Before(None, expect.layers[1][-2], 1, scale=2.0)
    estimator = (bs if kind == "bs_roformer" else mel).MaskEstimator
    dims = expect.band_split.dim_inputs
    heads = torch.nn.ModuleList(estimator(dim=16, dim_inputs=dims, depth=2, mlp_expansion_factor=2)
                                for _ in expect.mask_estimators)
    with torch.no_grad():
        for p in heads.parameters():
            p.add_(0.2 * torch.randn_like(p))
    expect.mask_estimators = heads.eval()
    state = {k: v for k, v in expect.state_dict().items()}
    state = {k.replace(".inner.", "."): v for k, v in state.items()}
    torch.save(state, ckpt)
    model, meta = load_msst(cfg, ckpt)
    assert meta["host"]["kwargs"]["skip_connection"] and meta["host"]["kwargs"]["mlp_expansion_factor"] == 2
    x = _mix(2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), run_reference(expect, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_dc_removes_exactly_the_masked_dc_bin(tmp_path, kind):
    """zero_dc (MSST's default): the output equals the reference's minus the inverse STFT of its masked
    spectrum's 0 Hz bin alone (the inverse STFT is linear), the masks taken from the reference's estimators."""
    cfg = write_config(tmp_path / "c.yaml", kind, FOUR, zero_dc=True)
    from booster.msst import read_config
    ref = reference_model(kind, {**read_config(cfg)["model"], "zero_dc": False})
    torch.save(ref.state_dict(), tmp_path / "m.ckpt")
    _, model, _ = build_msst(cfg, tmp_path / "m.ckpt")
    masks = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: masks.append(out)) for m in ref.mask_estimators]
    x = _mix(2, batch=1)
    want = run_reference(ref, x)
    for h in hooks:
        h.remove()
    window = torch.hann_window(512)
    spec = torch.stft(x[0], 512, HOP, 512, window=window, return_complex=True)      # [C, Q, T]
    dc = torch.zeros(len(masks), 2, spec.shape[1], spec.shape[2], dtype=spec.dtype)
    for n, m in enumerate(masks):                  # [1, T, bins * 2]; bin 0 of both channels comes first
        # (mel bands: bin 0 belongs to the first band only, forced there, so its mask is not averaged)
        first = torch.view_as_complex(m[0, :, :4].reshape(-1, 2, 2).contiguous())   # [T, C]
        dc[n, :, 0] = spec[:, 0] * first.T
    removed = torch.istft(dc.flatten(0, 1), 512, HOP, 512, window=window, length=CHUNK).reshape(len(masks), 2, -1)
    with torch.no_grad():
        got = model(x)[0]
    assert removed.abs().max() > 1e-4
    torch.testing.assert_close(got, want[0] - removed, rtol=1e-4, atol=2e-5)
