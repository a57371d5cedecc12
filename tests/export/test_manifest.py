"""The manifest (booster/export/manifest.py) and the runner's numpy pieces against the kit's torch ones:
known answers for the chunking (booster.training.chunking.chunked_apply) and the STFT / iSTFT steps."""
import json

import numpy as np
import pytest
import torch

from booster.errors import CheckpointError, ConfigError
from booster.export import dsp
from booster.export.manifest import FORMAT, FORMAT_VERSION, common_fields, read_manifest, write_manifest
from booster.export.runner import chunked
from booster.training.chunking import chunked_apply, tensor_reader


def _fields(**kw):
    base = dict(task="separation", host="htdemucs", boosted=False, sample_rate=44100, channels=2, chunk=1000,
                overlap=0.25, graphs=[], pre=[], post=[], backbone=None)
    return common_fields(**{**base, **kw})


def test_roundtrip_and_refusals(tmp_path):
    write_manifest(tmp_path, dict(_fields(), sources=["a"]))
    m = read_manifest(tmp_path)
    assert (m["format"], m["format_version"], m["hop"], m["sources"]) == (FORMAT, FORMAT_VERSION, 750, ["a"])
    for bad, words in [(dict(m, format_version=2), "format version 2"), (dict(m, format="other"), "not a muq-booster"),
                       ({k: v for k, v in m.items() if k != "chunk"}, "lacks the manifest fields ['chunk']")]:
        (tmp_path / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=words.replace("[", r"\[").replace("]", r"\]")) as e:
            read_manifest(tmp_path)
        assert "\n" not in str(e.value)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable manifest"):
        read_manifest(tmp_path)
    with pytest.raises(ConfigError, match="lacks the fields"):
        write_manifest(tmp_path, {"format": FORMAT})


@pytest.mark.parametrize("length,chunk,overlap,hop,batch", [(10_000, 1000, 0.25, 1, 3), (777, 1000, 0.5, 1, 1),
                                                             (9_001, 1024, 0.25, 256, 2)])
def test_chunked_equals_the_kits_chunked_apply(length, chunk, overlap, hop, batch):
    g = torch.Generator().manual_seed(length)
    x = torch.randn(2, length, generator=g)
    w = torch.randn(3, 2, generator=g)

    def model(chunks):   # a position-dependent "model": [K, C, chunk] -> [K, 3, chunk // hop]
        y = torch.einsum("nc,kcs->kns", w, chunks)
        y = y.reshape(*y.shape[:2], -1, hop).mean(-1)
        return y * torch.linspace(0.5, 1.5, y.shape[-1])

    want = chunked_apply(tensor_reader(x), length, chunk, lambda c, s: model(c), overlap=overlap, hop=hop,
                         batch_size=batch)
    manifest = dict(chunk=chunk, hop=max(hop, int((1 - overlap) * chunk) // hop * hop), window={"power": 1.0})
    got = chunked(x.numpy(), manifest, lambda c: model(torch.from_numpy(c)).numpy(), out_hop=hop,
                  batch_size=batch)
    assert got.shape == tuple(want.shape)
    assert np.abs(got - want.numpy()).max() <= 1e-5 * np.abs(want.numpy()).max()


@pytest.mark.parametrize("n_fft,hop,win,normalized", [(512, 128, 512, True), (256, 64, 200, False)])
def test_stft_istft_steps_equal_torch(n_fft, hop, win, normalized):
    x = torch.randn(2, 3, 5000)
    kw = dict(win_length=win, window=torch.hann_window(win), normalized=normalized, center=True)
    z = torch.stft(x.reshape(6, -1), n_fft, hop, return_complex=True, **kw)
    want = torch.view_as_real(z).reshape(2, 3, *z.shape[1:], 2).numpy()
    got = dsp.stft(x.numpy(), n_fft=n_fft, hop=hop, win_length=win, normalized=normalized)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    y = torch.istft(z, n_fft, hop, length=4900, **kw).reshape(2, 3, -1).numpy()
    back = dsp.istft(want, n_fft=n_fft, hop=hop, win_length=win, normalized=normalized, length=4900)
    assert back.shape == y.shape and np.abs(back - y).max() <= 1e-5


def test_unknown_step_is_one_line():
    with pytest.raises(CheckpointError, match="unknown step 'fft3d'"):
        dsp.run_steps([{"op": "fft3d", "in": "mix", "out": "y"}], {"mix": np.zeros((1, 1, 4), np.float32)})
