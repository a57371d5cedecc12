"""`booster separate`'s inference options an MSST user expects (docs/separation.md, "Inference options"):
--tta (MSST's test-time augmentation), --stems (a subset), --chunk-seconds / --overlap defaulting to the
model's training chunk and recorded overlap. Shapes: mixture [C, S], estimates [N, C, S]."""
import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from booster.cli import main
from booster.recipes.separation.inference import Separator
from booster.recipes.separation.module import SeparationModule
from booster.training.checkpoint import save_model

from recipe_helpers import SOURCES

SR = 44100


class Pointwise(nn.Module):
    """A real separator [K, C, S] -> [K, 2, C, S] whose sources are ``x`` (linear, polarity- and
    channel-symmetric) and ``x * x`` (even in x): TTA's result can be written down by hand."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x, x * x], 1)


def _pointwise(channels: int) -> Separator:
    meta = {"host": {"name": "bs_roformer", "kwargs": {}}, "sources": ["linear", "square"],
            "sample_rate": SR, "channels": channels, "segment": 0.25}
    return Separator(Pointwise(), meta, tta=True)


def _debug(host="htdemucs", boost=False, segment=1.0):
    torch.manual_seed(0)
    return SeparationModule(host=host, sources=SOURCES, segment=segment, size="debug", boost=boost)


@pytest.mark.parametrize("boost", [False, True])
def test_tta_is_the_average_of_three_whole_track_passes(boost):
    m = _debug(boost=boost)
    plain = Separator(m.model, m.description())
    tta = Separator(m.model, m.description(), tta=True)
    x = 0.1 * torch.randn(2, int(1.7 * SR), generator=torch.Generator().manual_seed(1))
    x[0] *= 2.0   # the channels differ, so the swap is seen
    by_hand = (plain.separate_tensor(x) + plain.separate_tensor(x.flip(0)).flip(1)
               - plain.separate_tensor(-x)) / 3
    got = tta.separate_tensor(x)
    assert got.shape == by_hand.shape == (len(SOURCES), 2, x.shape[-1])
    torch.testing.assert_close(got, by_hand, atol=2e-6, rtol=1e-4)
    assert (got - plain.separate_tensor(x)).abs().max() > 1e-4   # the debug model is not symmetric


@pytest.mark.parametrize("channels", [1, 2])
def test_tta_of_a_symmetric_model_is_the_plain_output_and_passes_are_counted(channels):
    x = torch.randn(channels, 30000, generator=torch.Generator().manual_seed(2))
    if channels == 2:
        x[1] = 0.5 * x[1] + 0.3
    out = _pointwise(channels).separate_tensor(x)
    torch.testing.assert_close(out[0], x, atol=1e-6, rtol=1e-5)   # linear + channel-symmetric: tta == plain
    # x*x is even: polarity inversion flips its un-augmented estimate; stereo has a third (swap) pass
    expected = torch.zeros_like(x) if channels == 1 else x * x / 3
    torch.testing.assert_close(out[1], expected, atol=1e-6, rtol=1e-5)


def _wav(path, seconds=1.3):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(0).standard_normal((int(seconds * SR), 2)).astype(np.float32)
    sf.write(path, x, SR, subtype="FLOAT")
    return path


def _sep(*args):
    return main(["separate", *map(str, args), "--no-progress"])


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _one_line(capsys, *words):
    c = capsys.readouterr()
    assert "Traceback" not in c.err + c.out
    err = [l for l in c.err.strip().splitlines() if "error: " in l]
    assert len(err) == 1, c.err
    for w in words:
        assert w in err[0], err[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    m = _debug()
    return m.separator().save(tmp_path_factory.mktemp("model") / "sep.safetensors")


def test_stems_writes_exactly_those_files(model_file, tmp_path, capsys):
    song, out = _wav(tmp_path / "song.wav"), tmp_path / "out"
    assert _sep(song, "-o", out / "all", "--model", model_file) == 0
    assert _sep(song, "-o", out / "one", "--model", model_file, "--stems", "vocals") == 0
    assert _tree(out / "one") == ["song/vocals.wav"]
    assert np.array_equal(sf.read(out / "one/song/vocals.wav")[0], sf.read(out / "all/song/vocals.wav")[0])
    assert _sep(song, "-o", out / "both", "--model", model_file, "--stems", "vocals, drums") == 0
    assert _tree(out / "both") == ["song/drums.wav", "song/vocals.wav"]
    assert _sep(song, "-o", out / "inst", "--model", model_file, "--two-stems", "vocals", "--stems", "no_vocals") == 0
    assert _tree(out / "inst") == ["song/no_vocals.wav"]
    assert np.allclose(sf.read(out / "inst/song/no_vocals.wav")[0], sf.read(out / "all/song/drums.wav")[0])
    for bad, words in ((["--stems", "piano"], ["piano", "drums, vocals"]),
                       (["--stems", "vocals,bass"], ["bass", "drums, vocals"]),
                       (["--two-stems", "vocals", "--stems", "drums"], ["drums", "vocals, no_vocals"]),
                       (["--stems", ","], ["--stems"])):
        capsys.readouterr()
        assert _sep(song, "-o", out / "bad", "--model", model_file, *bad) == 1, bad
        _one_line(capsys, *words)
    assert not (out / "bad").exists()


def test_tta_on_the_command_line(model_file, tmp_path, capsys):
    song, out = _wav(tmp_path / "song.wav"), tmp_path / "out"
    assert _sep(song, "-o", out / "plain", "--model", model_file) == 0
    assert _sep(song, "-o", out / "tta", "--model", model_file, "--tta", "--stems", "drums") == 0
    assert "tta" in capsys.readouterr().err
    sep = Separator.load(model_file, tta=True)
    x = torch.from_numpy(sf.read(song, dtype="float32")[0].T.copy())
    want = sep.separate_tensor(x)[SOURCES.index("drums")].T.numpy()
    got = sf.read(out / "tta/song/drums.wav", dtype="float32")[0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert not np.allclose(got, sf.read(out / "plain/song/drums.wav", dtype="float32")[0], atol=1e-4)


@pytest.mark.parametrize("host,boost", [("bs_roformer", False), ("htdemucs", False), ("htdemucs", True)])
def test_chunk_and_overlap_default_to_the_models(host, boost, tmp_path):
    m = _debug(host, boost, segment=1.5)
    path = save_model(tmp_path / "m.safetensors", m.model, m.description())
    sep = Separator.load(path)
    assert (sep.segment, sep.segment_seconds, sep.overlap) == (int(1.5 * SR), 1.5, 0.25)
    recorded = save_model(tmp_path / "r.safetensors", m.model, {**m.description(), "overlap": 0.75})
    sep = Separator.load(recorded)
    assert (sep.segment, sep.overlap) == (int(1.5 * SR), 0.75)
    sep = Separator.load(recorded, overlap=0.1, segment=0.5)
    assert (sep.segment, sep.overlap) == (int(0.5 * SR), 0.1)


def test_chunk_options_on_the_command_line(tmp_path, capsys):
    m = _debug(segment=1.5)
    model = save_model(tmp_path / "m.safetensors", m.model, {**m.description(), "overlap": 0.5})
    song, out = _wav(tmp_path / "song.wav"), tmp_path / "out"
    capsys.readouterr()
    assert _sep(song, "-o", out / "default", "--model", model) == 0
    assert "chunks of 1.5 s overlapping 0.5" in capsys.readouterr().err
    assert _sep(song, "-o", out / "new", "--model", model, "--chunk-seconds", "0.5", "--overlap", "0.1") == 0
    assert "chunks of 0.5 s overlapping 0.1" in capsys.readouterr().err
    assert _sep(song, "-o", out / "old", "--model", model, "--segment", "0.5", "--overlap", "0.1") == 0
    new, old = (sf.read(out / d / "song/drums.wav")[0] for d in ("new", "old"))
    assert np.array_equal(new, old)
    assert not np.allclose(new, sf.read(out / "default/song/drums.wav")[0])
    for bad in (["--chunk-seconds", "nan"], ["--chunk-seconds", "0"], ["--chunk-seconds", "-1"],
                ["--chunk-seconds", "inf"], ["--segment", "0"], ["--overlap", "1"], ["--overlap", "-0.1"],
                ["--chunk-seconds", "1", "--segment", "1"]):
        capsys.readouterr()
        assert _sep(song, "-o", out / "bad", "--model", model, *bad) == 1, bad
        _one_line(capsys, bad[0])
    broken = save_model(tmp_path / "b.safetensors", m.model, {**m.description(), "overlap": 1.5})
    assert _sep(song, "-o", out / "bad", "--model", broken) == 1
    _one_line(capsys, "overlap", "1.5")
    assert not (out / "bad").exists()
