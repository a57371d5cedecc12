"""ONNX export of Mel-Band-RoFormer (PyPI and MSST layouts) and BS-RoFormer in the MSST layout (issue 23):
ONNX Runtime + the manifest's steps equal the PyTorch model on random chunks (relative error <= 1e-4, at
another batch size than the export's), plain and boosted (debug MuQ, adapters perturbed); ``zero_dc`` (MSST's
default) exports; the runner's stems on a file equal `booster separate`'s (below -60 dB)."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from booster.cli import main
from booster.export.runner import graph_runner, load
from booster.export.runner import main as runner_main
from booster.training import boosting
from booster.training.checkpoint import load_model

from conftest import SOURCES, SR, noise

CASES = {   # name: (host, host_kwargs)
    "mel_pypi": ("mel_band_roformer", {}),
    "mel_msst": ("mel_band_roformer", {"layout": "msst"}),
    "bs_msst": ("bs_roformer", {"layout": "msst"}),
}
EXTRA = {   # plain only: options the three cases above leave out
    "mel_pypi_linear_zero_dc": ("mel_band_roformer", {"linear_transformer_depth": 1, "zero_dc": True,
                                                      "num_residual_streams": 2}),   # hyper-connections too
    "mel_msst_linear": ("mel_band_roformer", {"layout": "msst", "linear_transformer_depth": 1}),
    "bs_pypi_zero_dc": ("bs_roformer", {"zero_dc": True}),
}


@pytest.fixture(scope="module")
def roformer(tmp_path_factory):
    """``get(name, boosted) -> (model file, export folder)``, built and exported on first use."""
    from booster.export import export_model
    from booster.recipes.separation.module import SeparationModule
    done = {}

    def get(name: str, boosted: bool):
        if (name, boosted) not in done:
            host, kwargs = {**CASES, **EXTRA}[name]
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            torch.manual_seed(0)
            sep = SeparationModule(host=host, sources=SOURCES, segment=1.0, size="debug", boost=boosted,
                                   host_kwargs=kwargs).separator()
            if boosted:
                with torch.no_grad():   # zero-initialised gates would make the boosted output the host's
                    for p in sep.model.adapters.parameters():
                        p.add_(0.3 * torch.randn_like(p))
            folder = tmp_path_factory.mktemp(f"{name}_{int(boosted)}")
            src = sep.save(folder / "model.safetensors")
            done[name, boosted] = (src, export_model(src, folder / "onnx").parent)
            torch.set_num_threads(before)
        return done[name, boosted]
    return get


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _compare(roformer, name, boosted):
    src, folder = roformer(name, boosted)
    manifest, sessions = load(folder)
    model, _ = load_model(src)
    chunks = noise((3, 2, manifest["chunk"]))                # exported at batch 2, run at 3
    got = graph_runner(manifest, sessions)(chunks)[manifest["output"]]
    with torch.no_grad():
        want = model(torch.from_numpy(chunks)).numpy()
        host_only = boosting.host_of(model)(torch.from_numpy(chunks)).numpy()
    assert got.shape == want.shape == (3, len(SOURCES), 2, manifest["chunk"])
    assert _rel(got, want) <= 1e-4
    return model, manifest, got, want, host_only


@pytest.mark.parametrize("boosted", [False, True], ids=["plain", "boosted"])
@pytest.mark.parametrize("name", list(CASES))
def test_onnx_equals_torch(roformer, name, boosted):
    model, manifest, got, want, host_only = _compare(roformer, name, boosted)
    host = boosting.host_of(model)
    assert manifest["host"] == CASES[name][0] and manifest["boosted"] is boosted
    assert host.zero_dc is (CASES[name][1].get("layout") == "msst")        # MSST's default is exported
    (graph,) = manifest["graphs"]
    assert [i["name"] for i in graph["inputs"]] == (["mix", "spec"] if boosted else ["spec"])
    assert graph["inputs"][-1]["shape"][2] == host.stft_kwargs["n_fft"] // 2 + 1   # every bin
    assert [s["op"] for s in manifest["pre"]] == ["stft"]
    assert [s["op"] for s in manifest["post"]] == ["complex_mul", "istft"]
    if boosted:   # the graph holds MuQ and the adapters: without them the result is another one
        assert _rel(host_only, want) > 1e-2 and _rel(got, host_only) > 1e-2


@pytest.mark.parametrize("name", list(EXTRA))
def test_onnx_equals_torch_options(roformer, name):
    """Linear attention, zero_dc on the PyPI layouts (BS-RoFormer's zero_dc was refused before), the PyPI
    Mel-Band-RoFormer's residual streams (its full size has 4)."""
    model, *_ = _compare(roformer, name, False)
    host = boosting.host_of(model)
    assert host.zero_dc is True and all(host.init_kwargs[k] == v for k, v in EXTRA[name][1].items())


def test_mel_bands_overlap_and_are_averaged(roformer):
    """The debug mel bands share bins, so the equality tests above exercise the graph's mask averaging."""
    src, _ = roformer("mel_pypi", False)
    model, _ = load_model(src)
    counts = model.num_bands_per_freq
    assert int(counts.max()) >= 2 and int(counts.min()) >= 1


@pytest.mark.parametrize("name,boosted", [("mel_pypi", True), ("mel_msst", False), ("bs_msst", True)])
def test_runner_stems_equal_booster_separate(roformer, tmp_path, name, boosted):
    src, folder = roformer(name, boosted)
    song = tmp_path / "song.wav"
    sf.write(song, noise((int(2.3 * SR), 2), seed=3), SR, subtype="FLOAT")
    assert runner_main([str(folder), str(song), "-o", str(tmp_path / "onnx"), "--batch", "2"]) == 0
    assert main(["separate", str(song), "-o", str(tmp_path / "torch"), "--model", str(src), "--no-progress"]) == 0
    assert json.loads((folder / "manifest.json").read_text())["chunking"] == {"mode": "kit"}
    for s in SOURCES:
        a, _ = sf.read(tmp_path / "onnx" / "song" / f"{s}.wav")
        b, _ = sf.read(tmp_path / "torch" / "song" / f"{s}.wav")
        assert a.shape == b.shape == (int(2.3 * SR), 2)
        assert 20 * np.log10(np.linalg.norm(a - b) / np.linalg.norm(b)) < -60


def test_fp16_mel_band(roformer, tmp_path):
    """--fp16 on a Mel-Band-RoFormer: the mask averaging's ScatterElements (no float16 CPU kernel for an add
    reduction) stays float32 inside a float16 graph, and the stems stay within 1e-2 of the float32 graph's."""
    import onnx
    from booster.export import export_model
    src, folder = roformer("mel_msst", False)
    half = export_model(src, tmp_path / "half", fp16=True).parent
    m16, s16 = load(half)
    m32, s32 = load(folder)
    x = noise((2, 2, m32["chunk"]))
    a, b = graph_runner(m16, s16)(x)["stems"], graph_runner(m32, s32)(x)["stems"]
    graph = onnx.load(str(half / "model.onnx")).graph
    assert "ScatterElements" in {n.op_type for n in graph.node}
    assert {onnx.TensorProto.DataType.Name(t.data_type) for t in graph.initializer} >= {"FLOAT16"}
    assert 0 < _rel(a, b) <= 1e-2
