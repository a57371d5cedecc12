"""Fake CUDA on a CPU-only machine: ``torch._subclasses.fake_tensor.FakeTensorMode`` gives tensors on
``cuda:0`` that hold no data and raise on any cuda/cpu mix ("found two different devices cuda:0, cpu"),
so device hygiene is checked without a GPU. Real-device runs stay in the ``device`` fixture
(tests/conftest.py).

Shape glossary: B batch, C channels, N sources/stems, S samples, T frames, P pitches.

How modules get there: built on the CPU as a user builds them, then ``.to(FAKE)`` inside the mode
(``allow_non_fake_inputs``: the real CPU parameters become fake cuda ones; a real CPU tensor that was
*not* moved, e.g. a plain tensor attribute, becomes a fake CPU tensor and still raises on a mix). Building
inside the mode and then calling ``.to("cuda")`` is refused by torch (``_apply(): Couldn't swap``).

Work-arounds for what FakeTensorMode cannot run (no values, no CUDA driver), none of them a device check:

1. cuDNN off: the LSTM kernel asks the CUDA driver whether cuDNN applies ("driver version is
   insufficient"); without cuDNN the fake kernel only propagates shapes and devices.
2. ``torch.istft`` → ``torch._refs.istft`` (torch's own reference implementation, equal on CPU to the last
   bit, see ``test_istft_reference_matches``): the C++ kernel's window-envelope check reads values
   (``aten.equal``); the reference skips it and still checks that input and window share a device.
3. demucs' ``pad1d`` without its value self-check ``assert (out[..] == x).all()`` (reads values).
4. ``torch.inference_mode`` → ``torch.no_grad``: inside inference mode FakeTensorMode creates constants
   such as ``torch.tensor(1.0).to(cuda_tensor)`` (torchaudio's resampling kernel) with the real CUDA
   driver ("Found no NVIDIA driver"); gradients are off either way, and devices propagate the same.

Not possible here: backward. The autograd engine needs a CUDA context for cuda tensors
("hasPrimaryContext expects a valid device index", pytorch/pytorch#92627), so backward runs on the real
devices of the ``device`` fixture instead (CPU here, CUDA on a GPU machine).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

FAKE = torch.device("cuda:0")
SEP = dict(sources=["drums", "bass"], sample_rate=8000, channels=2, segment=1.0)
MIX = dict(stems=["drums", "bass", "other", "vocals"], sample_rate=16000, channels=2)
TASK = {"htdemucs": SEP, "openunmix": SEP, "bs_roformer": SEP, "mel_band_roformer": SEP, "onsets_frames": {},
        "mix_wave_unet": MIX, "crafx2": MIX}
WORKAROUNDS = 4  # the numbered list above; the report counts them


def _pad1d_unchecked(x: torch.Tensor, paddings, mode: str = "constant", value: float = 0.0) -> torch.Tensor:
    """demucs.hdemucs.pad1d (demucs 4) without its value assert: reflect padding of short inputs."""
    length = x.shape[-1]
    left, right = paddings
    if mode == "reflect" and length <= max(left, right):
        extra = max(left, right) - length + 1
        extra_right = min(right, extra)
        extra_left = extra - extra_right
        paddings = (left - extra_left, right - extra_right)
        x = F.pad(x, (extra_left, extra_right))
    return F.pad(x, paddings, mode, value)


def _no_grad_inference(mode: bool = True):
    """``torch.inference_mode(mode)`` as ``torch.no_grad()`` (context manager and decorator)."""
    return torch.no_grad() if mode else contextlib.nullcontext()


@contextlib.contextmanager
def fake_cuda_mode(monkeypatch):
    """Enter fake CUDA with the work-arounds above (undone on exit)."""
    import demucs.htdemucs
    with monkeypatch.context() as m:
        m.setattr(torch, "istft", torch._refs.istft)
        m.setattr(demucs.htdemucs, "pad1d", _pad1d_unchecked)
        m.setattr(torch, "inference_mode", _no_grad_inference)
        with FakeTensorMode(allow_non_fake_inputs=True) as mode, torch.backends.cudnn.flags(enabled=False):
            yield mode


def boosted_host(name: str, seed: int = 0):
    """A debug-size boosted host (debug MuQ backbone) of plug-in ``name``, on the CPU."""
    from booster import MuQ
    from booster.training.hosts import boost_host, build_host
    torch.manual_seed(seed)
    model, _ = build_host(name, size="debug", **TASK[name])
    return boost_host(name, model, MuQ.debug(seed=0))


def host_batch(name: str, device, batch: int = 2):
    """``(inputs, targets)`` of a training batch for host ``name`` on ``device``."""
    if name in ("htdemucs", "openunmix", "bs_roformer", "mel_band_roformer"):
        s = SEP["sample_rate"]
        return torch.randn(batch, 2, s, device=device), torch.randn(batch, 2, 2, s, device=device)
    if name == "onsets_frames":
        rolls = {k: torch.rand(batch, 32, 88, device=device) for k in ("onset", "offset", "frame", "velocity")}
        return torch.randn(batch, 16000, device=device), rolls
    return torch.randn(batch, 4, 2, 16000, device=device), torch.randn(batch, 2, 16000, device=device)


def training_loss(name: str):
    """``loss(model, inputs, targets)``: the plug-in's loss hook, else the recipe's (mixing: MixLoss)."""
    from booster.training.hosts import host_loss
    fn = host_loss(name)
    if fn is not None:
        return fn
    from recipes.mixing.metrics import MixLoss
    mix_loss = MixLoss()
    return lambda model, x, y: mix_loss(model(x), y)
