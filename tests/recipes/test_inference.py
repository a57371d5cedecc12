"""Full-track separation: MuQ once per track, files at any rate / channel count, saved separators, CLI."""
import numpy as np
import pytest
import soundfile as sf
import torch

from booster.cli import main
from booster.recipes.separation.inference import Separator
from booster.recipes.separation.module import SeparationModule

from recipe_helpers import SOURCES


def _boosted(host="htdemucs", perturb=True):
    torch.manual_seed(0)
    m = SeparationModule(host=host, sources=SOURCES, segment=1.0, size="debug", boost=True)
    if perturb:  # zero-initialised adapters would hide whether the features arrive
        with torch.no_grad():
            for p in m.model.adapter_parameters():
                p.add_(0.5 * torch.randn_like(p))
    return m


def _count_muq_calls(backbone):
    calls = []
    handle = backbone.frontend.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("host", ["htdemucs", "openunmix"])
def test_muq_runs_once_per_track_and_features_reach_the_host(host, tmp_path):
    m = _boosted(host)
    assert m.separator().context == "chunk"        # the default: per chunk batch, as in training
    sep = Separator(m.model, m.description(), context="track")
    assert sep.boosted and sep.segment == 44100
    mix = 0.1 * torch.randn(2, int(3.7 * 44100))
    calls, handle = _count_muq_calls(sep.backbone)
    try:
        per_chunk = m.separator().separate_tensor(mix)
        assert len(calls) == 2                     # 5 chunks in 2 batches of up to 4
        del calls[:]
        out = sep.separate_tensor(mix)             # 5 overlapping chunks
        assert len(calls) == 1
        sf.write(tmp_path / "x.wav", mix.T.numpy(), 44100, subtype="FLOAT")
        paths = sep.separate_file(tmp_path / "x.wav", tmp_path / "out")
        assert len(calls) == 2                     # once more for the file, not once per chunk
    finally:
        handle.remove()
    assert out.shape == (2, 2, mix.shape[-1]) and torch.isfinite(out).all()
    from_file = torch.stack([torch.from_numpy(sf.read(paths[s], dtype="float32")[0].T) for s in SOURCES])
    assert (from_file - out).abs().max() < 1e-3    # streaming file path == in-memory path
    plain = Separator(m.model.host, m.description()).separate_tensor(mix)
    assert (plain - out).abs().max() > 1e-4        # the adapters changed the output: features arrived
    assert (plain - per_chunk).abs().max() > 1e-4


def test_separate_cli_any_rate_and_channels(tmp_path, capsys):
    m = _boosted("htdemucs")
    model_file = m.separator().save(tmp_path / "sep.safetensors")
    loaded = Separator.load(model_file)
    mix = 0.1 * torch.randn(2, 50000)
    torch.testing.assert_close(loaded.separate_tensor(mix), m.separator().separate_tensor(mix))

    sr, n = 22050, 30000
    x = (0.1 * np.random.default_rng(1).standard_normal(n)).astype(np.float32)
    sf.write(tmp_path / "mono22k.wav", x, sr)
    assert main(["separate", str(tmp_path / "mono22k.wav"), "-o", str(tmp_path / "stems"),
                 "--model", str(model_file), "--no-progress"]) == 0
    for s in SOURCES:
        data, rate = sf.read(tmp_path / "stems" / "mono22k" / f"{s}.wav")
        assert rate == 44100 and data.shape == (2 * n, 2) and np.isfinite(data).all()


def test_separate_cli_errors(tmp_path, capsys):
    m = SeparationModule(host="openunmix", sources=SOURCES, segment=1.0, size="debug")
    model_file = m.separator().save(tmp_path / "sep.safetensors")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    cases = [([str(tmp_path / "missing.wav")], str(model_file), "does not exist"),
             ([str(tmp_path / "corrupt.wav")], str(model_file), "cannot read"),
             ([str(tmp_path / "corrupt.wav")], "no/such/model.ckpt", "does not exist"),
             ([str(tmp_path / "corrupt.wav")], "not a model!", "unknown model")]
    for inputs, model, message in cases:
        assert main(["separate", *inputs, "-o", str(tmp_path / "o"), "--model", model, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    (tmp_path / "fake.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert main(["separate", str(tmp_path / "corrupt.wav"), "-o", str(tmp_path / "o"),
                 "--model", str(tmp_path / "fake.safetensors")]) == 1
    assert "not a muq-booster model file" in capsys.readouterr().err


def test_refuses_unknown_format_version(tmp_path):
    from safetensors.torch import load_file, save_file
    from booster.errors import CheckpointError
    m = SeparationModule(host="openunmix", sources=SOURCES, segment=1.0, size="debug")
    sep = m.separator()
    sep.meta = {**sep.meta, "format_version": 7}
    path = sep.save(tmp_path / "v7.safetensors")
    with pytest.raises(CheckpointError, match="version 7"):
        Separator.load(path)


@pytest.mark.parametrize("boost", [False, True])
def test_bs_roformer_fits_and_separates_a_file(boost, stems_root, tmp_path):
    import lightning as L
    from booster.recipes.separation.data import StemsDataModule
    from recipe_helpers import trainer_kwargs
    torch.manual_seed(0)
    m = SeparationModule(host="bs_roformer", sources=SOURCES, segment=1.0, size="debug", boost=boost)
    dm = StemsDataModule(str(stems_root), sources=SOURCES, segment=1.0, samples_per_epoch=4, batch_size=2)
    before = {k: v.clone() for k, v in m.model.state_dict().items()}
    L.Trainer(**trainer_kwargs(tmp_path, max_steps=2, limit_val_batches=1)).fit(m, dm)
    assert any(not torch.equal(before[k], v) for k, v in m.model.state_dict().items())
    model_file = m.separator().save(tmp_path / "bsr.safetensors")
    assert main(["separate", str(stems_root / "test" / "t0" / "drums.wav"), "-o", str(tmp_path / "out"),
                 "--model", str(model_file), "--no-progress", "--device", "cpu"]) == 0
    for s in SOURCES:
        data, rate = sf.read(tmp_path / "out" / "drums" / f"{s}.wav")
        assert rate == 44100 and data.shape == (2 * 44100, 2) and np.isfinite(data).all()


def test_separate_tensor_stays_on_its_device_and_batches_equal_single(device):
    m = _boosted("htdemucs").to(device)
    mix = 0.1 * torch.randn(2, int(2.6 * 44100), device=device)
    one = Separator(m.model, m.description(), batch_size=1).separate_tensor(mix)
    many = Separator(m.model, m.description(), batch_size=4).separate_tensor(mix)
    assert one.device == mix.device and many.device == mix.device
    torch.testing.assert_close(many, one, rtol=1e-4, atol=1e-5)


def test_separate_cli_device_errors(tmp_path, capsys):
    m = SeparationModule(host="openunmix", sources=SOURCES, segment=1.0, size="debug")
    model_file = m.separator().save(tmp_path / "sep.safetensors")
    sf.write(tmp_path / "x.wav", np.zeros((4410, 2), np.float32), 44100)
    for dev, message in (("foo", "not a device name"), ("cuda:99", "CUDA")):
        assert main(["separate", str(tmp_path / "x.wav"), "-o", str(tmp_path / "o"), "--model", str(model_file),
                     "--device", dev]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
