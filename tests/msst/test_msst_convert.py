"""`booster convert msst`: the separator file it writes, and one clear line for each bad input (a bad config, a
checkpoint that does not match its config, an option the host cannot honour). Shapes: [C, S] audio."""
import pytest
import soundfile as sf
import torch
from cli_helpers import one_line_error
from msst_helpers import CHUNK, FOUR, SR, VOCALS, error_db, reference_model, run_reference, write_config

from booster.cli import main
from booster.msst import read_config
from booster.training.checkpoint import load_model


def _pair(tmp_path, kind="bs_roformer", stems=VOCALS, **extra):
    cfg = write_config(tmp_path / "config.yaml", kind, stems, **extra)
    ref = reference_model(kind, read_config(cfg)["model"])
    torch.save(ref.state_dict(), tmp_path / "model.ckpt")
    return cfg, tmp_path / "model.ckpt", ref


def _convert(*args):
    return main(["convert", "msst", *map(str, args)])


@pytest.mark.parametrize("kind", ["bs_roformer", "mel_band_roformer"])
def test_convert_writes_a_separator_file_that_separate_takes(tmp_path, kind, capsys):
    cfg, ckpt, ref = _pair(tmp_path, kind, FOUR)
    assert _convert("--config", cfg, "--checkpoint", ckpt, "-o", tmp_path / "host.safetensors") == 0
    assert "chunk 0.38 s, overlap 0.75" in capsys.readouterr().err
    model, meta = load_model(tmp_path / "host.safetensors", task="separation")
    assert meta["host"]["kwargs"]["layout"] == "msst" and meta["sources"] == FOUR["instruments"]
    x = 0.3 * torch.randn(2, CHUNK, generator=torch.Generator().manual_seed(4))
    sf.write(tmp_path / "one.wav", x.T.numpy(), SR, subtype="FLOAT")
    assert main(["separate", str(tmp_path / "one.wav"), "-o", str(tmp_path / "out"), "--model",
                 str(tmp_path / "host.safetensors"), "--overlap", "0", "--no-progress"]) == 0
    want = run_reference(ref, x[None])[0]                  # the original module on the one chunk
    for n, source in enumerate(FOUR["instruments"]):
        got = torch.from_numpy(sf.read(tmp_path / "out" / "one" / f"{source}.wav", dtype="float32")[0].T)
        assert error_db(got, want[n]) < -60


def test_type_flag_and_detection(tmp_path, capsys):
    cfg, ckpt, _ = _pair(tmp_path)
    assert _convert("--config", cfg, "--checkpoint", ckpt, "-o", tmp_path / "a.safetensors", "--type",
                    "bs_roformer") == 0
    capsys.readouterr()
    assert _convert("--config", cfg, "--checkpoint", ckpt, "-o", tmp_path / "b.safetensors", "--type",
                    "mel_band_roformer") == 1
    one_line_error(capsys, "convert", "freqs_per_bands", "not known")
    text = cfg.read_text().replace("  use_amp: true", "  use_amp: true\n  model_type: mel_band_roformer")
    (tmp_path / "typed.yaml").write_text(text)
    assert _convert("--config", tmp_path / "typed.yaml", "--checkpoint", ckpt, "-o", tmp_path / "c.safetensors",
                    "--type", "bs_roformer") == 1
    one_line_error(capsys, "convert", "contradicts", "training.model_type")


BAD_CONFIGS = {
    "not yaml": ("model: [dim: 1\n", ["not valid YAML"]),
    "python object": ("model: !!python/object:os.system {}\n", ["safe loader refuses"]),
    "no model": ("audio: {sample_rate: 16000}\n", ["no 'model:' section"]),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_a_bad_config_is_one_line(tmp_path, capsys, name):
    text, words = BAD_CONFIGS[name]
    (tmp_path / "bad.yaml").write_text(text)
    _, ckpt, _ = _pair(tmp_path)
    assert _convert("--config", tmp_path / "bad.yaml", "--checkpoint", ckpt, "-o", tmp_path / "h.safetensors") == 1
    one_line_error(capsys, "convert", *words)
    assert not (tmp_path / "h.safetensors").exists()


@pytest.mark.parametrize("change,words", [
    ({"use_pope": True}, ["use_pope", "not supported"]),
    ({"hyper_connections": 4}, ["hyper_connections", "not known"]),
    ({"num_stems": 2}, ["num_stems is 2", "vocals"]),
    ({"stereo": "maybe"}, ["model.stereo"]),
])
def test_an_option_the_host_cannot_honour_is_one_line(tmp_path, capsys, change, words):
    cfg, ckpt, _ = _pair(tmp_path)
    from msst_helpers import model_section
    write_config(cfg, "bs_roformer", model={**model_section("bs_roformer", 1, True), **change})
    assert _convert("--config", cfg, "--checkpoint", ckpt, "-o", tmp_path / "h.safetensors") == 1
    one_line_error(capsys, "convert", *words)


def test_a_checkpoint_not_matching_its_config_is_one_line(tmp_path, capsys):
    cfg, ckpt, ref = _pair(tmp_path)
    state = ref.state_dict()
    cases = {"missing": {k: v for k, v in state.items() if not k.startswith("final_norm")},
             "extra": {**state, "stray.weight": torch.zeros(1)},
             "shape": {**state, "final_norm.gamma": torch.ones(24)}}
    words = {"missing": ["missing 1", "final_norm.gamma"], "extra": ["unexpected 1", "stray.weight"],
             "shape": ["shape mismatches 1", "final_norm.gamma (24,) vs (16,)"]}
    for name, bad in cases.items():
        torch.save(bad, tmp_path / f"{name}.ckpt")
        assert _convert("--config", cfg, "--checkpoint", tmp_path / f"{name}.ckpt", "-o",
                        tmp_path / "h.safetensors") == 1
        one_line_error(capsys, "convert", "does not match its architecture", *words[name])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert _convert("--config", cfg, "--checkpoint", tmp_path / "junk.ckpt", "-o", tmp_path / "h.safetensors") == 1
    one_line_error(capsys, "convert", "junk.ckpt")
    assert not (tmp_path / "h.safetensors").exists()


def test_msst_wrappers_and_prefixes_are_unwrapped(tmp_path):
    """MSST's full checkpoints keep the weights under model_state_dict; DataParallel adds module."""
    cfg, ckpt, ref = _pair(tmp_path)
    wrapped = {"model_state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "full.ckpt")
    assert _convert("--config", cfg, "--checkpoint", tmp_path / "full.ckpt", "-o", tmp_path / "h.safetensors") == 0
    model, _ = load_model(tmp_path / "h.safetensors", task="separation")
    x = 0.3 * torch.randn(1, 2, CHUNK)
    with torch.no_grad():
        torch.testing.assert_close(model(x), run_reference(ref, x), rtol=1e-4, atol=1e-5)
