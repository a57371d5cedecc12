"""Our MuQ against the reference (transformers' Wav2Vec2ConformerEncoder + torchaudio front end)."""
import pytest
import torch

from booster import MuQ
from booster.muq.reference import ReferenceMuQ
from audio_helpers import music_like
from official_layout import official_state_dict, reduced_config, write_checkpoint

TOL = 1e-5


def reference_states(config, sd, wav, **kw):
    """The reference's hidden states for ``wav`` with the official state dict ``sd``."""
    ref = ReferenceMuQ(config)
    ref.load_official(sd)
    with torch.no_grad():
        return ref(wav, **kw)


def worst_relative_error(ours, ref) -> float:
    assert len(ours) == len(ref)
    worst = 0.0
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        worst = max(worst, ((a - b).abs().max() / b.abs().max()).item())
    return worst


@pytest.mark.parametrize("seconds", [1.3, 4.0])
def test_random_weights_reduced_config(seconds):
    cfg = reduced_config(depth=3)
    sd = official_state_dict(cfg, seed=1)
    ours = MuQ(cfg)
    from booster.muq.loading import load_state_dict
    load_state_dict(ours, sd)
    wav = torch.cat([music_like(seconds, seed=2), 0.3 * torch.randn(1, int(seconds * 24000))])  # [2, S]
    with torch.no_grad():
        got = ours(wav, output_hidden_states=True)
    expected = reference_states(cfg, sd, wav)
    assert len(got.hidden_states) == cfg.encoder_depth + 1 == len(expected)
    assert torch.equal(got.last_hidden_state, got.hidden_states[-1])
    assert worst_relative_error(got.hidden_states, expected) <= TOL


@pytest.mark.parametrize("weight_norm,fmt,rvq", [("parametrizations", "safetensors", True),
                                                 ("weight_g", "bin", False)])
def test_official_layout_checkpoint(tmp_path, weight_norm, fmt, rvq):
    """A checkpoint written in the official layout loads with from_pretrained and matches the reference."""
    cfg = reduced_config(depth=4, dim=32, heads=2, ffn=64)
    sd = official_state_dict(cfg, seed=3, weight_norm=weight_norm, rvq=rvq)
    path = write_checkpoint(tmp_path / "ckpt", cfg, sd, fmt=fmt)
    ours = MuQ.from_pretrained(path)
    wav = music_like(2.5, seed=4)
    with torch.no_grad():
        got = ours(wav).hidden_states
    expected = reference_states(cfg, sd, wav)
    assert len(got) == 5
    assert worst_relative_error(got, expected) <= TOL
    assert not any(p.requires_grad for p in ours.parameters())
    assert ours.name == "ckpt"


def test_debug_model_matches_reference_all_13_states(debug_muq):
    sd = {f"model.{k}": v for k, v in debug_muq.state_dict().items()}
    wav = music_like(3.0, seed=5)
    with torch.no_grad():
        got = debug_muq(wav).hidden_states
    expected = reference_states(debug_muq.config, sd, wav)
    assert len(got) == 13
    assert worst_relative_error(got, expected) <= TOL


def test_padding_mask_matches_reference():
    cfg = reduced_config(depth=2)
    sd = official_state_dict(cfg, seed=6)
    ours = MuQ(cfg)
    from booster.muq.loading import load_state_dict
    load_state_dict(ours, sd)
    wav = torch.randn(2, 48000) * 0.1
    mask = torch.ones(2, 48000, dtype=torch.bool)
    mask[1, 30000:] = False
    with torch.no_grad():
        got = ours(wav, attention_mask=mask).hidden_states
    expected = reference_states(cfg, sd, wav, attention_mask=mask)
    assert worst_relative_error(got, expected) <= TOL


def test_forward_rejects_wrong_shape(debug_muq):
    from booster.errors import AudioError
    with pytest.raises(AudioError, match=r"\[B, S\]"):
        debug_muq(torch.zeros(1, 2, 24000))
    with pytest.raises(AudioError, match="too short"):
        debug_muq(torch.zeros(1, 1000))
    with pytest.raises(AudioError, match="NaN/Inf"):
        debug_muq(torch.full((1, 24000), float("nan")))
