"""booster.TorchBackbone: the backbone contract around a user's torch module (shapes over lengths, the
resampling path, identity and its fingerprint, a module output that is not hidden states, the declared
frame rate checked against the frames the module returns)."""
import types

import pytest
import torch
import toy_backbone
from toy_backbone import DEPTH, DIM, HOP, SAMPLE_RATE, ToyEncoder, wrap

import booster
from booster.audio import resample
from booster.backbone import CONTRACT, Backbone, check_backbone
from booster.errors import AudioError, ConfigError


def test_contract(toy):
    check_backbone(toy)
    assert isinstance(toy, Backbone) and all(hasattr(toy, n) for n in CONTRACT)
    assert (toy.sample_rate, toy.frame_rate, toy.hidden_size, toy.num_layers) == (SAMPLE_RATE, 25.0, DIM, DEPTH)
    ident = toy.identity
    assert ident["name"] == "toy-seed0" and len(ident["fingerprint"]) == 16
    assert ident["architecture"]["class"] == "toy_backbone.ToyEncoder"
    wav = torch.randn(2, 1, SAMPLE_RATE)
    f = toy.extract(wav, SAMPLE_RATE)
    assert isinstance(f, booster.Features) and f.layers == tuple(range(DEPTH + 1)) and f.frame_rate == 25.0
    assert f.hidden.shape == (2, DEPTH + 1, 25, DIM) and f.hidden.dtype == torch.float32
    with torch.no_grad():
        direct = toy.module(wav[:, 0])
    for k in range(DEPTH + 1):   # the module's own hidden states, in order
        assert torch.equal(f.layer(k), direct[k])
    sel = toy.extract(wav, SAMPLE_RATE, layers="3,1")
    assert sel.layers == (3, 1) and torch.equal(sel.hidden, f.hidden[:, [3, 1]])
    with pytest.raises(ConfigError, match="out of range"):
        toy.extract(wav, SAMPLE_RATE, layers=[DEPTH + 1])


@pytest.mark.parametrize("shape", [(), (1,), (2,), (3, 2)])   # [S], [C, S] mono/stereo, [B, C, S]
def test_shapes_over_lengths(toy, shape):
    gen = torch.Generator().manual_seed(len(shape))
    for n in torch.randint(HOP, 4 * SAMPLE_RATE, (4,), generator=gen).tolist():
        f = toy.extract(torch.randn(*shape, n, generator=gen), SAMPLE_RATE)
        batch = shape[0] if len(shape) == 2 else 1
        assert f.hidden.shape == (batch, DEPTH + 1, n // HOP, DIM)


def test_resampling_path_and_mono_mix(toy):
    """At another rate the module hears the channel mean resampled to its own rate by booster.audio."""
    stereo = torch.randn(2, 44100, generator=torch.Generator().manual_seed(0))
    f = toy.extract(stereo, 44100)
    ref = resample(stereo.mean(0, keepdim=True), 44100, SAMPLE_RATE)
    assert f.hidden.shape[2] == ref.shape[-1] // HOP
    with torch.no_grad():
        direct = toy.module(ref)
    assert torch.allclose(f.layer(DEPTH), direct[DEPTH], atol=1e-6)
    assert torch.allclose(toy.extract(stereo.mean(0), 44100).hidden, f.hidden, atol=1e-6)
    with pytest.raises(AudioError, match="NaN|Inf|finite"):
        toy.extract(torch.full((SAMPLE_RATE,), float("nan")), SAMPLE_RATE)


def test_eval_mode_no_grad_and_placement(toy):
    toy.train()
    wav = torch.randn(1, SAMPLE_RATE)
    buffers = {k: v.clone() for k, v in toy.module.named_buffers()}
    f = toy.extract(wav, SAMPLE_RATE, out_dtype="float16")
    assert not toy.training and not toy.module.training     # put back in eval mode
    assert all(torch.equal(v, buffers[k]) for k, v in toy.module.named_buffers())   # no BatchNorm update
    assert f.hidden.dtype == torch.float16 and not f.hidden.requires_grad


def test_fingerprint_once_per_weights_stable_over_modes(hash_count):
    bb = toy_backbone.make(seed=0)
    first = bb.fingerprint
    for _ in range(20):
        bb.train()
        bb.eval()
        assert bb.identity["fingerprint"] == first
    assert hash_count[0] == 1
    with torch.no_grad():
        bb.module.front.weight.add_(1)
    assert bb.fingerprint != first and hash_count[0] == 2


def test_fingerprint_follows_the_weights():
    a, b = toy_backbone.make(seed=0), toy_backbone.make(seed=1)
    assert a.fingerprint != b.fingerprint
    assert toy_backbone.make(seed=0).fingerprint == a.fingerprint      # same weights, fresh objects
    fresh = wrap(ToyEncoder(seed=1), name="toy-seed0")
    fresh.module.load_state_dict(a.module.state_dict())
    assert fresh.fingerprint == a.fingerprint
    before = a.fingerprint
    a.module.train()
    with torch.no_grad():
        a.module(torch.randn(2, SAMPLE_RATE))   # BatchNorm statistics update in train mode
    assert a.fingerprint != before


class _Returns(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, wav):
        return self.fn(wav)


def _frames(wav, dim=DIM, hop=HOP):
    return torch.zeros(wav.shape[0], wav.shape[-1] // hop, dim)


@pytest.mark.parametrize("fn, says", [
    (lambda w: _frames(w)[:, :, 0], "a tensor of shape [1, 25]"),
    (lambda w: "features", "a str"),
    (lambda w: [_frames(w)] * 2, f"2 hidden states, but num_layers={DEPTH} needs {DEPTH + 1}"),
    (lambda w: [_frames(w, dim=8)] * (DEPTH + 1), f"D={DIM}"),
    (lambda w: [_frames(w), _frames(w)[:, :3]] * 2, "with one T"),
])
def test_bad_module_output_is_one_line(fn, says):
    with pytest.raises(ConfigError) as e:
        wrap(_Returns(fn), name="mine")
    msg = str(e.value)
    assert "\n" not in msg and says in msg and "backbone 'mine': the module returned" in msg
    assert "[B, L, T, D]" in msg


def test_hidden_states_attribute_and_tensor_outputs():
    """A Hugging Face style output (``.hidden_states``) and one tensor [B, L, T, D] are accepted."""
    enc = ToyEncoder()
    as_object = wrap(enc, forward=lambda m, w: types.SimpleNamespace(hidden_states=m(w), last=None))
    as_tensor = wrap(enc, forward=lambda m, w: torch.stack(m(w), dim=1))
    wav = torch.randn(1, SAMPLE_RATE)
    ref = toy_backbone.wrap(enc).extract(wav, SAMPLE_RATE).hidden
    assert torch.equal(as_object.extract(wav, SAMPLE_RATE).hidden, ref)
    assert torch.equal(as_tensor.extract(wav, SAMPLE_RATE).hidden, ref)
    assert as_object.identity["architecture"]["forward"].endswith("<lambda>")


def test_declared_frame_rate_checked_against_the_module():
    with pytest.raises(ConfigError) as e:
        booster.TorchBackbone(ToyEncoder(), sample_rate=SAMPLE_RATE, frame_rate=50.0, num_layers=DEPTH,
                              hidden_size=DIM, name="toy")
    msg = str(e.value)
    assert "\n" not in msg and "declares frame_rate=50" in msg and "25 frames per second" in msg
    assert "25 frames for 1 s and 75 for 3 s" in msg
    # the same module declared at a wrong sample rate: its frames per second of audio change too
    with pytest.raises(ConfigError, match="frame_rate=25"):
        booster.TorchBackbone(ToyEncoder(), sample_rate=32000, frame_rate=25.0, num_layers=DEPTH,
                              hidden_size=DIM, name="toy")
    assert wrap(ToyEncoder()).check_frame_rate() == 25.0


def test_module_failing_on_the_probe_and_bad_arguments_are_one_line():
    def fails(m, w):
        raise RuntimeError("expected input[1, 2, S]")
    with pytest.raises(ConfigError, match=r"failed on a 1 s probe \(\[1, 16000\] at 16000 Hz\): RuntimeError"):
        wrap(ToyEncoder(), forward=fails)
    with pytest.raises(ConfigError, match="wraps a torch.nn.Module"):
        booster.TorchBackbone(lambda w: w, sample_rate=1, frame_rate=1, num_layers=1, hidden_size=1, name="x")
    with pytest.raises(ConfigError, match="frame_rate must be a positive number"):
        booster.TorchBackbone(ToyEncoder(), sample_rate=SAMPLE_RATE, frame_rate=0, num_layers=DEPTH,
                              hidden_size=DIM, name="toy")


def test_single_output_module_is_num_layers_zero():
    enc = torch.nn.Conv1d(1, 8, kernel_size=HOP, stride=HOP)
    bb = booster.TorchBackbone(enc, sample_rate=SAMPLE_RATE, frame_rate=25, num_layers=0, hidden_size=8,
                               name="one", forward=lambda m, w: [m(w[:, None]).transpose(1, 2)])
    f = bb.extract(torch.randn(2, 3, 2 * SAMPLE_RATE), SAMPLE_RATE)
    assert f.layers == (0,) and f.hidden.shape == (2, 1, 50, 8)
    with pytest.raises(ConfigError, match="num_layers must be a non-negative number"):
        booster.TorchBackbone(enc, sample_rate=SAMPLE_RATE, frame_rate=25, num_layers=-1, hidden_size=8, name="x")
