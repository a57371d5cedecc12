"""The shipped muq-mini: registered, verified, resolvable offline by name, usable from the CLI."""
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from booster import MuQ
from booster.muq.registry import lookup, sha256_file


def test_muq_mini_is_registered_and_shipped():
    entry = lookup("muq-mini")
    assert entry is not None and entry.local == "muq-mini"
    folder = Path(str(resources.files("booster.checkpoints").joinpath("muq-mini")))
    for name in entry.files:
        assert sha256_file(folder / name) == entry.sha256[name], name
    assert (folder / "model.safetensors").stat().st_size <= 25 * 2 ** 20
    assert (folder / "README.md").is_file()


def test_from_pretrained_muq_mini_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)                  # no folder named muq-mini here: the shipped one is used
    model = MuQ.from_pretrained("muq-mini")
    assert model.name == "muq-mini" and not model.training
    assert (model.num_layers, model.hidden_size, model.frame_rate) == (4, 256, 25.0)
    assert all(not p.requires_grad for p in model.parameters())
    with torch.no_grad():
        out = model(0.1 * torch.randn(1, 48000))
    assert out.last_hidden_state.shape == (1, 50, 256) and torch.isfinite(out.last_hidden_state).all()


def test_booster_features_checkpoint_muq_mini(tmp_path):
    sr = 22050
    t = np.arange(sr * 2) / sr
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "booster.cli", "features", str(tmp_path / "tone.wav"), "-o",
                           str(tmp_path / "out"), "--checkpoint", "muq-mini", "--layers", "2,4",
                           "--no-progress"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from safetensors import safe_open
    with safe_open(str(tmp_path / "out" / "tone.safetensors"), "pt") as f:
        hidden = f.get_tensor("hidden")
        meta = f.metadata()
    assert hidden.shape[0] == 2 and hidden.shape[2] == 256 and abs(hidden.shape[1] - 50) <= 1
    assert "muq-mini" in json.dumps(meta)
