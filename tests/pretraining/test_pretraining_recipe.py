"""The pretraining recipe end to end: data folders, both stages through the kit CLI, resume, export."""
import json
import subprocess
import sys

import torch

from booster import MuQ
from booster.recipes.pretraining.data import CropDataset, build_cache, scan


def test_audio_folders_any_format_and_rate_are_cached_once(music_dir, tmp_path):
    files = scan([music_dir])
    assert sorted(p.suffix for p in files) == [".flac", ".ogg", ".wav", ".wav"]   # notes.txt is not audio
    entries = build_cache([music_dir], tmp_path)
    assert len(entries) == 4 and all(abs(e["seconds"] - 4.0) < 0.01 for e in entries)
    assert build_cache([music_dir], tmp_path) == entries                         # the cached list
    train = CropDataset(entries, tmp_path, seconds=1.5, length=6, split="train", holdout=4)
    val = CropDataset(entries, tmp_path, seconds=1.5, length=3, split="val", holdout=4)
    assert len(train.entries) == 3 and len(val.entries) == 1
    crop = train[0]
    assert crop.shape == (36000,) and crop.dtype == torch.float32 and crop.abs().max() > 0.05
    assert torch.equal(val[1], val[1])                                            # fixed validation crops


def test_booster_fit_pretraining_runs_both_stages_and_exports(music_dir, tmp_path):
    root = tmp_path / "run"
    cmd = [sys.executable, "-m", "booster.cli", "fit", "--config", "pretraining/debug",
           "--trainer.max_steps", "2", "--trainer.val_check_interval", "1",
           "--trainer.default_root_dir", str(root), "--model.tokenizer_steps", "2",
           "--data.folders", f"[{music_dir}]", "--data.synth", "null", "--data.cache_dir", str(tmp_path / "c"),
           "--data.seconds", "1.0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (root / "tokenizer.safetensors").is_file() and (root / "tokenizer_stat.json").is_file()
    meta = json.loads((root / "export" / "training.json").read_text())
    assert meta["global_step"] == 2
    from booster.fsutil import current_umask
    for p in [*root.glob("tokenizer*"), *(root / "export").iterdir()]:  # written atomically, umask honoured
        assert p.stat().st_mode & 0o777 == 0o666 & ~current_umask(), p.name
    model = MuQ.from_pretrained(root / "export")
    assert model.num_layers == 2 and model.hidden_size == 32
    stat = json.loads((root / "tokenizer_stat.json").read_text())
    assert model.config.mel_mean == stat["melspec_2048_mean"]                   # data statistics travel
    with torch.no_grad():
        out = model(0.1 * torch.randn(1, 24000))
    assert out.last_hidden_state.shape == (1, 25, 32) and torch.isfinite(out.last_hidden_state).all()
