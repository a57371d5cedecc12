"""EMA of BoosterModule on fake CUDA: update, swap in / restore, and a resume whose EMA tensors come from a
checkpoint on the CPU while the module is on cuda (Lightning restores checkpoints before moving the module).

Shape glossary: B batch, C channels, N sources, S samples.
"""
import torch
from fake_cuda import FAKE, fake_cuda_mode

from booster.training import boosting
from booster.training.checkpoint import EMA_KEY


def _module(**kw):
    from recipes.separation.module import SeparationModule
    torch.manual_seed(0)
    return SeparationModule(host="openunmix", sources=["drums", "bass"],
                            sample_rate=8000, channels=2, segment=1.0, size="debug", boost=True,
                            ema_decay=0.5, print_report=False, **kw)


def _step(module):
    """One optimiser-free 'training step': change every weight, then the EMA hook."""
    with torch.no_grad():
        for p in module.model.parameters():
            p.add_(1.0)
    module.on_train_batch_end(None, None, 0)


def _devices(state: dict) -> set:
    return {v.device for v in state.values()}


def test_ema_update_swap_and_restore_on_fake_cuda(monkeypatch):
    m = _module()
    with fake_cuda_mode(monkeypatch):
        m.to(FAKE)
        _step(m)
        _step(m)
        assert m._ema and _devices(m._ema) == {FAKE}
        m.use_ema_weights()
        assert _devices(boosting.trainable_state(m.model)) == {FAKE}
        m.restore_weights()
        assert _devices(boosting.trainable_state(m.model)) == {FAKE}


def test_ema_restored_from_cpu_checkpoint_follows_the_module_to_cuda(monkeypatch):
    """Old code: the restored EMA stays on the CPU and the first EMA update mixes cpu and cuda."""
    src = _module()
    _step(src)                                   # a real run on the CPU, saved
    ckpt = {"state_dict": {"model." + k: v.clone() for k, v in boosting.trainable_state(src.model).items()}}
    src.on_save_checkpoint(ckpt)
    assert _devices(ckpt[EMA_KEY]) == {torch.device("cpu")}
    resumed = _module()
    resumed.on_load_checkpoint(ckpt)              # Lightning: restore first, then move to the device
    with fake_cuda_mode(monkeypatch):
        resumed.to(FAKE)
        _step(resumed)
        assert _devices(resumed._ema) == {FAKE}
        resumed.use_ema_weights()
        assert _devices(boosting.trainable_state(resumed.model)) == {FAKE}
        resumed.restore_weights()
    validated = _module()                         # first use is validation with EMA weights (no step yet)
    validated.on_load_checkpoint(ckpt)
    with fake_cuda_mode(monkeypatch):
        validated.to(FAKE)
        validated.use_ema_weights()
        assert _devices(validated._ema) == {FAKE}
        validated.restore_weights()
        _step(validated)
        assert _devices(validated._ema) == {FAKE}


def test_ema_values_on_cpu_after_a_resume():
    """The device move keeps the values: EMA after resume = decay * restored EMA + (1 - decay) * weights."""
    src = _module()
    _step(src)
    ckpt = {"state_dict": {"model." + k: v.clone() for k, v in boosting.trainable_state(src.model).items()}}
    src.on_save_checkpoint(ckpt)
    resumed = _module()
    resumed.on_load_checkpoint(ckpt)
    k = next(k for k, v in ckpt[EMA_KEY].items() if v.dtype.is_floating_point)
    before = ckpt[EMA_KEY][k].clone()
    _step(resumed)
    weight = boosting.trainable_state(resumed.model)[k]
    assert torch.allclose(resumed._ema[k], 0.5 * before + 0.5 * weight)
