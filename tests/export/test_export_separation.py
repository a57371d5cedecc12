"""ONNX Runtime vs PyTorch on random chunks, per separation host, plain and boosted (issue 23, item 4): the
graph + the manifest's pre/post steps give the model's forward to a relative error <= 1e-4 (fp32), at another
batch size than the export's; the manifest says what a host program needs."""
import json

import numpy as np
import pytest
import torch

from booster.errors import ConfigError
from booster.export.runner import graph_runner, load
from booster.training import boosting
from booster.training.checkpoint import load_model

from conftest import HOSTS, SOURCES, SR, noise


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("boosted", [False, True], ids=["plain", "boosted"])
@pytest.mark.parametrize("host", HOSTS)
def test_onnx_equals_torch(exported, host, boosted):
    src, folder = exported(host, boosted)
    manifest, sessions = load(folder)
    model, meta = load_model(src)
    chunks = noise((3, 2, manifest["chunk"]))
    got = graph_runner(manifest, sessions)(chunks)[manifest["output"]]
    with torch.no_grad():
        want = model(torch.from_numpy(chunks)).numpy()
        host_only = boosting.host_of(model)(torch.from_numpy(chunks)).numpy()
    assert got.shape == want.shape == (3, len(SOURCES), 2, manifest["chunk"])
    assert _rel(got, want) <= 1e-4
    if boosted:   # the graph holds MuQ and the adapters: without them the result is another one
        assert _rel(host_only, want) > 1e-2
        assert _rel(got, host_only) > 1e-2


@pytest.mark.parametrize("host", HOSTS)
def test_manifest_fields(exported, host):
    src, folder = exported(host, True)
    m = json.loads((folder / "manifest.json").read_text())
    assert (m["format"], m["format_version"], m["task"], m["host"], m["boosted"]) == \
        ("muq-booster-onnx", 1, "separation", host, True)
    assert (m["sample_rate"], m["channels"], m["chunk"], m["sources"]) == (SR, 2, SR, SOURCES)
    assert m["hop"] == int(0.75 * m["chunk"]) and m["overlap"] == 0.25 and m["latency"] == m["chunk"]
    assert m["window"]["kind"] == "triangle"
    assert m["backbone"]["identity"]["name"] == "muq-debug-seed0" and "random weights" in m["backbone"]["licence"]
    (graph,) = m["graphs"]
    assert (folder / graph["file"]).is_file() and graph["exporter"] == "torchscript"
    assert graph["inputs"][0]["shape"][0] == (1 if host == "openunmix" else "B")   # Open-Unmix: batch 1
    assert [i["name"] for i in graph["inputs"]][0] == "mix"          # boosted: MuQ hears the chunk's audio
    assert [s["op"] for s in m["pre"]] == ["stft"] and m["post"][-1]["out"] == m["output"] == "stems"
    plain = json.loads((exported(host, False)[1] / "manifest.json").read_text())
    assert plain["backbone"] is None and plain["boosted"] is False


def test_fp16_weights(exported, tmp_path):
    """--fp16: weights stored as float16 (half the bytes), inputs/outputs float32, the result within 1e-2."""
    import onnx
    from booster.export import export_model
    src, folder = exported("bs_roformer", False)
    half = export_model(src, tmp_path / "half", fp16=True).parent
    m16, s16 = load(half)
    m32, s32 = load(folder)
    x = noise((2, 2, m32["chunk"]))
    a, b = graph_runner(m16, s16)(x)["stems"], graph_runner(m32, s32)(x)["stems"]
    assert m16["graphs"][0]["fp16"] is True
    kinds = lambda f: {onnx.TensorProto.DataType.Name(t.data_type): len(t.raw_data)       # noqa: E731
                       for t in onnx.load(str(f / "model.onnx")).graph.initializer}
    assert set(kinds(half)) == {"FLOAT16"} and set(kinds(folder)) == {"FLOAT"}
    assert 0 < _rel(a, b) <= 1e-2


def test_unexportable_host_is_one_line(tmp_path):
    """A separator whose plug-in refuses (Open-Unmix with EM Wiener filtering): ConfigError saying why."""
    from booster.export.separation import form_of
    from booster.recipes.separation.module import SeparationModule
    sep = SeparationModule(host="openunmix", sources=SOURCES, segment=1.0, size="debug",
                           host_kwargs={"niter": 1}).separator()
    with pytest.raises(ConfigError, match="niter > 0") as e:
        form_of(sep.model, sep.meta, SR)
    assert "\n" not in str(e.value)
