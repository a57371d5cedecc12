"""The transcriber: shapes over random lengths, front ends, sizes, variants (boosted and probe identical
to their host at step 0), loss, plug-in architecture round trip and adapter files."""
from __future__ import annotations

import random

import pytest
import torch
from transcription_helpers import known_notes

from booster.adapters import onsets_frames as plugin
from booster.data.pairs import frame_targets
from booster.errors import AudioError, ConfigError
from booster.adapter_io import load_adapters, save_adapters
from booster.models.transcriber import OnsetsAndFrames, ShallowTranscriber, build_transcriber


@pytest.mark.parametrize("frontend", ["mel", "cqt"])
@pytest.mark.parametrize("backend", ["onsets_frames", "shallow"])
def test_shapes_over_random_lengths(frontend, backend, device):
    torch.manual_seed(0)
    m = build_transcriber("debug", backend=backend, frontend=frontend).to(device).eval()
    rng = random.Random(0)
    for _ in range(3):
        s = rng.randint(600, 20000)
        for wav in (torch.randn(2, s, device=device), torch.randn(1, 2, s, device=device)):
            out = m(wav)
            assert set(out) == {"onset", "offset", "frame", "velocity"}
            for v in out.values():
                assert v.shape == (wav.shape[0], s // 512 + 1, 88) and v.device.type == device.type
                assert torch.isfinite(v).all()


def test_sizes_pitch_range_and_errors():
    full = build_transcriber("full")
    assert full.model_size == 768 and full.n_bins == 229 and full.frame_rate == 31.25
    assert sum(p.numel() for p in full.parameters()) > 20e6
    small = build_transcriber("debug", pitch_range=(36, 47), hop_length=256, model_size=24)
    assert small(torch.randn(1, 4000))["frame"].shape == (1, 4000 // 256 + 1, 12)
    with pytest.raises(ConfigError, match="size"):
        build_transcriber("huge")
    with pytest.raises(ConfigError, match="front end"):
        build_transcriber("debug", frontend="stft")
    with pytest.raises(ConfigError, match="lstm_size"):
        build_transcriber("debug", backend="shallow", lstm_size=3)
    with pytest.raises(ConfigError, match="pitch_range"):
        build_transcriber("debug", pitch_range=(60, 20))
    with pytest.raises(ConfigError, match="Nyquist"):
        build_transcriber("debug", frontend="cqt", frontend_kwargs={"n_bins": 200})
    with pytest.raises(AudioError, match="too short"):
        small(torch.randn(1, 100))
    with pytest.raises(AudioError, match=r"\[B, S\]"):
        small(torch.randn(100))


def test_trainable_cqt_kernels_get_gradients():
    m = build_transcriber("debug", backend="shallow", frontend="cqt", frontend_kwargs={"trainable": True})
    fixed = build_transcriber("debug", backend="shallow", frontend="cqt")
    assert any(p.requires_grad for p in m.frontend.parameters())
    assert not any(p.requires_grad for p in fixed.frontend.parameters())
    m(torch.randn(1, 8000))["frame"].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.frontend.parameters())


@pytest.mark.parametrize("backend", ["onsets_frames", "shallow"])
def test_boosted_and_probe_equal_their_host_at_step_zero(backend, device):
    from booster import MuQ
    debug_muq = MuQ.debug(0)  # its own copy: moved to `device` with the boosted model
    torch.manual_seed(0)
    host = plugin.build(size="debug", backend=backend).to(device).eval()
    wav = torch.randn(2, 16000, device=device)
    with torch.no_grad():
        ref = host(wav)
    boosted = plugin.boost(host, debug_muq, layers=[1, 3]).to(device).eval()
    expect = ["input_proj"] if backend == "shallow" else [f"{h}_acoustic" for h in plugin.ACOUSTIC]
    assert [s.path for s in boosted.sites] == expect
    with torch.no_grad():
        out = boosted(wav)
    assert all(torch.equal(ref[k], out[k]) for k in ref)
    # and the adapters learn: one gradient step changes the output
    boosted.train()
    targets = frame_targets(known_notes(), frame_rate=31.25, n_frames=31)
    targets = {k: v[None].expand(2, -1, -1).to(device) for k, v in targets.items()}
    loss = plugin.loss(boosted, wav, targets)
    loss.backward()
    gates = [a.fusion.gate.grad for a in boosted.adapters]
    assert all(g is not None and g.abs().sum() > 0 for g in gates)


def test_features_align_to_spectrogram_frames(debug_muq):
    host = plugin.build(size="debug", backend="shallow")
    fns = plugin.io_functions(host)
    wav = torch.randn(1, 16000)
    offset, span = fns["span_fn"](wav)
    # frame t centred at t * hop / sr: (j + 0.5) * span / T + offset == j * hop / sr
    t = host.num_frames(wav.shape[-1])
    for j in (0, 7, t - 1):
        assert offset + (j + 0.5) * span / t == pytest.approx(j * 512 / 16000)
    assert fns["input_fn"](wav) == (wav, 16000)


def test_loss_parts_and_perfect_velocity():
    notes = known_notes()
    t = frame_targets(notes, frame_rate=31.25, n_frames=70)
    targets = {k: v[None] for k, v in t.items()}
    perfect = {k: (targets[k] * 40 - 20) for k in ("onset", "offset", "frame")}
    perfect["velocity"] = targets["velocity"].clone()
    # one extra output frame (S // hop + 1) is cropped
    perfect = {k: torch.cat([v, v[:, -1:]], 1) for k, v in perfect.items()}
    total, parts = plugin.transcription_loss(perfect, targets)
    assert total < 1e-6 and parts["velocity"] == 0
    wrong = dict(perfect, velocity=perfect["velocity"] + 0.5)
    assert plugin.transcription_loss(wrong, targets)[1]["velocity"] == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="pitch_range"):
        plugin.transcription_loss({k: v[..., :10] for k, v in perfect.items()}, targets)


def test_architecture_round_trip_and_adapter_files(tmp_path, debug_muq):
    for host in (plugin.build(size="debug", frontend="cqt", pitch_range=[40, 80]),
                 plugin.build(size="debug", backend="shallow", hidden_size=20)):
        again = plugin.from_architecture(**plugin.architecture(host))
        assert type(again) is type(host) and again.architecture() == host.architecture()
        assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in host.state_dict().items()}
    host = plugin.build(size="debug").eval()
    boosted = plugin.boost(host, debug_muq, layers=[2], heads=("onset", "frame"))
    with torch.no_grad():
        for a in boosted.adapters:
            a.fusion.gate.fill_(0.5)
    save_adapters(boosted, tmp_path / "ad")
    fresh = plugin.from_architecture(**plugin.architecture(host))
    fresh.load_state_dict(host.state_dict())
    loaded = load_adapters(fresh.eval(), debug_muq, tmp_path / "ad")
    wav = torch.randn(1, 12000)
    with torch.no_grad():
        a, b = boosted(wav), loaded(wav)
        plain = fresh(wav)  # the host alone, outside the boosted call: its hooks are inert
    assert all(torch.allclose(a[k], b[k]) for k in a)
    assert not torch.allclose(a["onset"], plain["onset"])  # the opened gates change the output


def test_plugin_rejects_published_weights_and_foreign_models(debug_muq):
    with pytest.raises(ConfigError, match="no published weights"):
        plugin.build(size="debug", pretrained="maestro")
    with pytest.raises(ConfigError, match="transcriber"):
        plugin.boost(torch.nn.Linear(3, 3), debug_muq)
    with pytest.raises(ConfigError, match="heads"):
        plugin.boost(plugin.build(size="debug"), debug_muq, heads=("pedal",))
    assert isinstance(plugin.build(size="debug"), OnsetsAndFrames)
    assert isinstance(plugin.build(size="debug", backend="shallow"), ShallowTranscriber)


def test_recipe_module_boosted_equals_baseline_at_step_zero():
    from booster.recipes.transcription.module import TranscriptionModule
    torch.manual_seed(0)
    base = TranscriptionModule(size="debug").eval()
    torch.manual_seed(0)
    boosted = TranscriptionModule(size="debug", boost=True, backbone="debug").eval()
    assert boosted.boosted and not base.boosted
    wav = torch.randn(2, 1, 12000)
    with torch.no_grad():
        a, b = base.model(wav), boosted.model(wav)
    assert all(torch.equal(a[k], b[k]) for k in a)
    groups = {g["name"]: len(g["params"]) for g in boosted.configure_optimizers().param_groups}
    assert groups["adapters"] == sum(1 for _ in boosted.model.adapter_parameters()) and groups["host"] > 0
