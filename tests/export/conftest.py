"""Exported debug separators, built once per session: every host plain and boosted (adapters perturbed, so the
boosted output is not the host's), saved as .safetensors and exported with ``booster.export.export_model``."""
import numpy as np
import pytest
import torch

HOSTS = ["htdemucs", "openunmix", "bs_roformer"]
SOURCES = ["drums", "vocals"]
SR = 44100


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def build(host: str, boosted: bool, folder, segment: float = 1.0):
    from booster.recipes.separation.module import SeparationModule
    torch.manual_seed(0)
    sep = SeparationModule(host=host, sources=SOURCES, segment=segment, size="debug", boost=boosted).separator()
    if boosted:
        with torch.no_grad():   # zero-initialised gates would make the boosted output the host's
            for p in sep.model.adapters.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return sep.save(folder / f"{host}{'_boosted' if boosted else ''}.safetensors")


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``get(host, boosted) -> (model file, export folder)``, exported on first use."""
    from booster.export import export_model
    done = {}

    def get(host: str, boosted: bool):
        key = (host, boosted)
        if key not in done:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            folder = tmp_path_factory.mktemp(f"{host}_{int(boosted)}")
            src = build(host, boosted, folder)
            done[key] = (src, export_model(src, folder / "onnx").parent)
            torch.set_num_threads(before)
        return done[key]
    return get


def noise(shape, seed=1):
    return (0.1 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
