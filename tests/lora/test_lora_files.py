"""LoRA in files: the adapter file (onto a fresh host with the published weights), model files and recipe
checkpoints, merge on export, and `booster fit --model.lora_rank` -> `booster separate` from the CLI."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

import booster
from booster.errors import CheckpointError
from booster.lora import lora_config, merge_lora, remove_lora
from booster.training.checkpoint import describe, load_model, read_model_file, save_model

from lora_helpers import HOSTS, SOURCES, boosted_lora, fresh_host, mix, moved, randomise


@pytest.mark.parametrize("name", HOSTS)
def test_adapter_file_round_trip_onto_a_fresh_host(name, debug_muq, tmp_path):
    b, spec, published, plain = boosted_lora(name, debug_muq)
    randomise(b)
    st, js = booster.save_adapters(b, tmp_path / "a")
    meta = json.loads(js.read_text())
    assert meta["lora"] == lora_config(b) and meta["lora"]["rank"] == 4
    keys = set(load_file(str(st)))
    lora_keys = {k for k in keys if k.startswith("lora.")}
    assert lora_keys == {f"lora.{t}.lora_{m}" for t in meta["lora"]["targets"] for m in "AB"}
    assert not any(".parametrizations." in k or "original" in k for k in keys)    # no host weights
    again = booster.load_adapters(fresh_host(name, spec, published), debug_muq, st)
    x = mix()
    with torch.no_grad():
        assert torch.equal(again(x), b(x)) and moved(again(x), plain(x))
    assert all(not p.requires_grad for n, p in again.host.named_parameters() if "lora_" not in n)


def test_adapter_file_that_does_not_fit_leaves_the_host_alone(debug_muq, tmp_path):
    b, spec, published, _ = boosted_lora("bs_roformer", debug_muq)
    booster.save_adapters(b, tmp_path / "a")
    st = tmp_path / "a.safetensors"
    state = load_file(str(st))
    from safetensors.torch import save_file
    save_file({k: v for k, v in state.items() if not k.endswith("lora_B")}, str(st))   # a damaged LoRA part
    host = fresh_host("bs_roformer", spec, published)
    with pytest.raises(CheckpointError, match="LoRA weights in .* do not fit this model's LoRA: missing"):
        booster.load_adapters(host, debug_muq, st)
    assert lora_config(host) is None and set(host.state_dict()) == set(published)


@pytest.mark.parametrize("merge", [False, True])
def test_model_file_keeps_lora_or_merges_it(merge, debug_muq, tmp_path):
    b, spec, published, plain = boosted_lora("htdemucs", debug_muq)
    randomise(b)
    x = mix()
    with torch.no_grad():
        ref = b(x)
    meta = describe("separation", spec, b, backbone="debug", sources=SOURCES, sample_rate=44100, channels=2,
                    segment=1.0)
    assert meta["lora"] == lora_config(b)
    if merge:
        merge_lora(b)
    path = save_model(tmp_path / "m.safetensors", b, meta)   # the meta says what the model has now
    saved_meta, state = read_model_file(path)
    assert ("lora" in saved_meta) != merge
    assert any(".parametrizations." in k for k in state) != merge
    model, _ = load_model(path, task="separation")
    assert (lora_config(model) is None) == merge
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-6)
        assert moved(model(x), plain(x))


def test_fit_with_lora_then_separate_and_export_merged(stems_root, tmp_path, monkeypatch, capsys):
    from booster.cli import main
    monkeypatch.chdir(tmp_path)
    ckpt_dir = tmp_path / "ckpt"
    common = ["--config", "separation/bs_roformer_debug", "--data.root", str(stems_root),
              "--data.sources", "[drums, vocals]", "--data.segment", "0.5", "--data.valid_segment", "0.5",
              "--data.batch_size", "1", "--data.samples_per_epoch", "4", "--data.test_seconds", "0.5",
              "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp_path),
              "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--model.feature_cache", "null"]
    assert main(["fit", *common, "--model.lora_rank", "4", "--trainer.max_steps", "3", "--model.lr", "0.01",
                 "--trainer.val_check_interval", "3", "--trainer.callbacks+=ModelCheckpoint",
                 f"--trainer.callbacks.dirpath={ckpt_dir}", "--trainer.callbacks.save_last=true"]) == 0
    last = ckpt_dir / "last.ckpt"
    assert main(["validate", *common, "--ckpt_path", str(last)]) == 0    # the checkpoint's hparams bring LoRA back
    capsys.readouterr()
    assert main(["validate", *common, "--ckpt_path", str(last), "--model.lora_rank", "8"]) == 1
    captured = capsys.readouterr()
    last_line = captured.err.strip().splitlines()[-1]          # after Lightning's INFO lines: one line, no traceback
    assert "Traceback" not in captured.err + captured.out
    assert "checkpoint's LoRA (rank 4, alpha 4" in last_line and "not this model's (rank 8" in last_line
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    lora = ckpt["booster"]["lora"]
    assert ckpt["global_step"] == 3 and lora["rank"] == 4 and lora["alpha"] == 4.0 and lora["targets"]
    model, _ = load_model(last, task="separation")
    x = mix()
    with torch.no_grad():                                   # the trained LoRA changes the host's output
        assert moved(model(x), remove_lora(model)(x))
    song = tmp_path / "song.wav"
    sf.write(song, 0.1 * np.random.default_rng(0).standard_normal((22050, 2)).astype(np.float32), 44100,
             subtype="FLOAT")
    export = tmp_path / "merged.safetensors"
    assert main(["separate", str(song), "-o", str(tmp_path / "a"), "--model", str(last), "--no-progress"]) == 0
    assert main(["separate", str(song), "-o", str(tmp_path / "b"), "--model", str(last), "--no-progress",
                 "--export", str(export), "--merge-lora"]) == 0
    meta, state = read_model_file(export)
    assert "lora" not in meta and not any("lora_" in k or ".parametrizations." in k for k in state)
    assert main(["separate", str(song), "-o", str(tmp_path / "c"), "--model", str(export), "--no-progress"]) == 0
    for s in SOURCES:
        a, b, c = (sf.read(tmp_path / d / "song" / f"{s}.wav", dtype="float32")[0] for d in "abc")
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
        np.testing.assert_allclose(c, a, rtol=0, atol=1e-5)


def test_a_lora_host_file_as_pretrained_starts_from_its_merged_weights(tmp_path):
    """Plain-host LoRA fine-tuning, then `--model.pretrained that_file`: the next run's host is the tuned one."""
    from booster.recipes.separation.module import SeparationModule
    torch.manual_seed(0)
    tuned = SeparationModule(host="bs_roformer", sources=SOURCES, segment=1.0, size="debug", lora_rank=4)
    randomise(tuned.model)
    path = tuned.separator().save(tmp_path / "tuned.safetensors")
    assert "lora" in read_model_file(path)[0]
    again = SeparationModule(host="bs_roformer", sources=SOURCES, segment=1.0, size="debug", pretrained=str(path),
                             lora_rank=2)                              # a new LoRA on the merged host
    assert lora_config(again.model)["rank"] == 2
    x = mix()
    with torch.no_grad():
        tuned.model.eval(), again.model.eval()
        torch.testing.assert_close(again.model(x), tuned.model(x), rtol=1e-5, atol=1e-6)
        assert moved(tuned.model(x), remove_lora(tuned.model)(x))
