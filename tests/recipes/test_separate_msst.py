"""`booster separate --model CONFIG.yaml --checkpoint MODEL.ckpt`: an MSST config + checkpoint pair (BS-RoFormer,
Mel-Band-RoFormer) works directly (booster.training.msst.load_msst), with the chunk and overlap its config
records; a half pair is one line. Shapes: mixture [C, S], estimates [N, C, S]."""
import numpy as np
import pytest
import soundfile as sf
import torch

from booster.cli import main
from booster.msst import host_arguments, read_config
from booster.plugins import load_plugin
from booster.recipes.separation.inference import Separator
from booster.training.checkpoint import save_model
from booster.training.msst import load_msst

SR = 44100
CHUNK = 22050   # audio.chunk_size: 0.5 s
CONFIG = """\
audio:
  chunk_size: {chunk}
  num_channels: 2
  sample_rate: {sr}
model:
  dim: 16
  depth: 1
  stereo: true
  num_stems: 1
  time_transformer_depth: 1
  freq_transformer_depth: 1
  {bands}
  dim_head: 8
  heads: 2
  dim_freqs_in: 129
  stft_n_fft: 256
  stft_hop_length: 64
  stft_win_length: 256
  mask_estimator_depth: 1
  multi_stft_resolutions_window_sizes: !!python/tuple [256]
training:
  instruments: [vocals, other]
  target_instrument: vocals
inference:
  num_overlap: 2
"""
BANDS = {"bs_roformer": "freqs_per_bands: !!python/tuple [32, 32, 65]", "mel_band_roformer": "num_bands: 8"}
FAMILY = {"bs_roformer": "BS-RoFormer", "mel_band_roformer": "Mel-Band-RoFormer"}


@pytest.fixture(scope="module", params=list(BANDS))
def pair(request, tmp_path_factory):
    """A tiny MSST config (its type told by its band key) and a checkpoint of random weights in MSST's layout."""
    kind = request.param
    d = tmp_path_factory.mktemp(kind)
    (d / "config.yaml").write_text(CONFIG.format(chunk=CHUNK, sr=SR, bands=BANDS[kind]))
    kw, _ = host_arguments(read_config(d / "config.yaml"), kind)
    torch.manual_seed(0)
    torch.save(load_plugin(kind).from_architecture(**kw).state_dict(), d / "model.ckpt")
    return d / "config.yaml", d / "model.ckpt"


def _sep(*args):
    return main(["separate", *map(str, args), "--no-progress"])


def _one_line(capsys, *words):
    c = capsys.readouterr()
    assert "Traceback" not in c.err + c.out
    err = [l for l in c.err.strip().splitlines() if "error: " in l]
    assert len(err) == 1, c.err
    for w in words:
        assert w in err[0], err[0]


def _song(path, samples):
    x = 0.1 * np.random.default_rng(3).standard_normal((samples, 2)).astype(np.float32)
    sf.write(path, x, SR, subtype="FLOAT")
    return torch.from_numpy(x.T.copy())


def test_a_config_and_checkpoint_pair_separates_with_its_chunk_and_overlap(pair, tmp_path, capsys):
    config, ckpt = pair
    x = _song(tmp_path / "one.wav", CHUNK)
    sep = Separator.load(config, checkpoint=ckpt)
    assert (sep.sources, sep.segment, sep.overlap) == (["vocals"], CHUNK, 0.5)   # 1 - 1/num_overlap
    capsys.readouterr()
    assert _sep(tmp_path / "one.wav", "-o", tmp_path / "out", "--model", config, "--checkpoint", ckpt,
                "--overlap", "0") == 0
    assert "chunks of 0.5 s overlapping 0," in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out" / "one").iterdir()) == ["vocals.wav"]
    got = sf.read(tmp_path / "out" / "one" / "vocals.wav", dtype="float32")[0].T
    model, _ = load_msst(config, ckpt)
    with torch.no_grad():
        want = model(x[None])[0, 0]                 # one chunk: the module's own output
    np.testing.assert_allclose(got, want.numpy(), atol=1e-6)
    # a one-source model's --two-stems complement is the rest of the mix (MSST's extract_instrumental)
    assert _sep(tmp_path / "one.wav", "-o", tmp_path / "inst", "--model", config, "--checkpoint", ckpt,
                "--overlap", "0", "--two-stems", "vocals", "--stems", "no_vocals") == 0
    assert sorted(p.name for p in (tmp_path / "inst" / "one").iterdir()) == ["no_vocals.wav"]
    rest = sf.read(tmp_path / "inst" / "one" / "no_vocals.wav", dtype="float32")[0].T
    np.testing.assert_allclose(rest, (x - want).numpy(), atol=1e-6)


def test_the_pair_equals_its_converted_file(pair, tmp_path, capsys):
    config, ckpt = pair
    _song(tmp_path / "song.wav", int(1.3 * SR))
    converted = save_model(tmp_path / "host.safetensors", *load_msst(config, ckpt))
    assert _sep(tmp_path / "song.wav", "-o", tmp_path / "a", "--model", converted, "--tta") == 0
    capsys.readouterr()
    assert _sep(tmp_path / "song.wav", "-o", tmp_path / "b", "--model", config, "--checkpoint", ckpt, "--tta") == 0
    assert "chunks of 0.5 s overlapping 0.5, tta" in capsys.readouterr().err
    a, b = (sf.read(tmp_path / d / "song" / "vocals.wav")[0] for d in "ab")
    assert a.shape == (int(1.3 * SR), 2) and np.array_equal(a, b)
    assert _sep(tmp_path / "song.wav", "-o", tmp_path / "c", "--model", converted, "--two-stems", "vocals") == 0
    vocals, rest = (sf.read(tmp_path / "c" / "song" / f"{s}.wav")[0] for s in ("vocals", "no_vocals"))
    assert not np.allclose(vocals, 0, atol=1e-3)
    np.testing.assert_allclose(vocals + rest, sf.read(tmp_path / "song.wav")[0], atol=1e-6)   # block by block


def test_half_a_pair_is_one_line(pair, tmp_path, capsys):
    config, ckpt = pair
    kind = load_msst(config, ckpt)[1]["host"]["name"]
    other = next(k for k in BANDS if k != kind)
    _song(tmp_path / "song.wav", CHUNK)
    converted = save_model(tmp_path / "host.safetensors", *load_msst(config, ckpt))
    for args, words in ((["--model", config], ["--checkpoint", "config.yaml"]),
                        (["--model", converted, "--checkpoint", ckpt], ["--checkpoint", "host.safetensors"]),
                        (["--model", converted, "--type", "bs_roformer"], ["--type"]),
                        (["--model", config, "--checkpoint", ckpt, "--type", other],
                         [FAMILY[other], BANDS[kind].split(":")[0]]),      # --type reaches the loader
                        (["--model", tmp_path / "missing.yaml", "--checkpoint", ckpt], ["missing.yaml"]),
                        (["--model", config, "--checkpoint", tmp_path / "missing.ckpt"], ["missing.ckpt"])):
        capsys.readouterr()
        assert _sep(tmp_path / "song.wav", "-o", tmp_path / "out", *args) == 1, args
        _one_line(capsys, *words)
    assert not (tmp_path / "out").exists()
