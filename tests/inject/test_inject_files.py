import json
import re
from pathlib import Path

import pytest
import torch
from inject_helpers import TinyHost, randomise

import booster
from booster import MuQ, Site
from booster.errors import CheckpointError
from booster.features import LayerMix, align_frames
from booster.muq import MuQConfig

SITES = [Site(path="frames", layout="B C T"), Site(path="lin", layout="B T C", fusion="film")]


def test_round_trip(tmp_path, tiny_host, debug_muq):
    b = randomise(booster.inject(tiny_host, debug_muq, SITES, layers=[3, 12]))
    st, js = booster.save_adapters(b, tmp_path / "a")
    meta = json.loads(js.read_text())
    assert meta["format_version"] == 1 and meta["layers"] == [3, 12]
    assert meta["host_class"].endswith("TinyHost") and meta["backbone"]["hidden_size"] == 32
    from safetensors.torch import load_file
    assert all(k.startswith(("0.", "1.")) for k in load_file(str(st)))  # adapters only
    fresh = TinyHost()
    fresh.load_state_dict(tiny_host.state_dict())
    again = booster.load_adapters(fresh, debug_muq, st)
    x = torch.randn(1, 2, 16000)
    with torch.no_grad():
        assert torch.equal(again(x), b(x))
        assert not torch.allclose(again(x), again.host(x), atol=1e-4)


def test_refuses_mismatches(tmp_path, tiny_host, debug_muq):
    b = booster.inject(tiny_host, debug_muq, SITES)
    path = tmp_path / "a"
    booster.save_adapters(b, path)
    with pytest.raises(CheckpointError, match="made for .*TinyHost"):
        booster.load_adapters(torch.nn.Sequential(torch.nn.Conv1d(2, 8, 3)), debug_muq, path)
    with pytest.raises(CheckpointError, match="4 layers"):
        booster.load_adapters(TinyHost(), MuQ.debug(depth=4), path)
    cfg = MuQConfig.debug()
    cfg.encoder_dim = 64
    with pytest.raises(CheckpointError, match="hidden size 32"):
        booster.load_adapters(TinyHost(), MuQ(cfg), path)
    js = tmp_path / "a.json"
    js.write_text(js.read_text().replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(CheckpointError, match="version 99"):
        booster.load_adapters(TinyHost(), debug_muq, path)
    with pytest.raises(CheckpointError, match="incomplete"):
        booster.load_adapters(TinyHost(), debug_muq, tmp_path / "missing")
    js.write_text(js.read_text().replace('"format_version": 99', '"format_version": 1'))
    with pytest.raises(CheckpointError, match="fingerprint"):       # one policy: other weights refused
        booster.load_adapters(TinyHost(), MuQ.debug(seed=5), path)
    from booster.injection import Boosted
    assert isinstance(booster.load_adapters(TinyHost(), MuQ.debug(seed=5), path, allow_other_weights=True), Boosted)


def test_align_frames_known_answers():
    x = torch.arange(10.0).reshape(1, 10, 1)                        # frame k = value k, at k / 25 s
    same = align_frames(x, num_frames=10, frame_rate=25, span=10 / 25, span_start=-0.5 / 25)
    assert torch.allclose(same, x)                                  # grids coincide: identity
    up = align_frames(x, num_frames=20, frame_rate=25, span=10 / 25)
    assert torch.allclose(up[0, :, 0], ((torch.arange(20) + 0.5) / 2).clamp(max=9))   # linear ramp kept
    shifted = align_frames(x, num_frames=4, frame_rate=25, start=1.0, span_start=1.0 + 2 / 25, span=4 / 25)
    assert torch.allclose(shifted[0, :, 0], torch.tensor([2.5, 3.5, 4.5, 5.5]))
    edge = align_frames(x, num_frames=3, frame_rate=25, span_start=-1.0, span=3.0)
    assert edge[0, 0, 0] == 0 and edge[0, -1, 0] == 9                # edges clamp


def test_layer_mix_is_mean_at_init():
    h = torch.randn(2, 3, 5, 4)
    assert torch.allclose(LayerMix(3)(h), h.mean(1), atol=1e-6)


def test_readme_section_runs():
    """Every snippet of docs/api.md's "Boost your own model" section, in order (the ten-line model first)."""
    md = Path(__file__).parents[2] / "docs" / "api.md"
    section = md.read_text().split("\n## Boost your own model\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 5 and "class TinyMasker" in blocks[0]
    ns: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{md.name}[{i}]", "exec"), ns)
    assert ns["stems"].shape == (1, 4, 2, 8000 * 3) and ns["estimates"].shape == (1, 2, 2, 8000)
    if "rof_stems" in ns:  # the BS-RoFormer example of the same section
        assert ns["rof_stems"].shape == (1, 4, 2, 44100)
