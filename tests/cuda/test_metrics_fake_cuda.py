"""The recipes' metrics and losses on fake CUDA, up to their final ``.cpu()`` / Python number.

Shape glossary: B batch, C channels, N sources, S samples, T frames, P pitches.
Values (``float(...)``, numpy, museval, pyloudnorm) need data, which fake tensors do not hold: each test
stops where the recipe leaves the device.
"""
import torch
from fake_cuda import FAKE

from booster.adapters.onsets_frames import transcription_loss


def test_separation_global_sdr(fake_cuda):
    from recipes.separation.evaluation import global_sdr
    ref, est = torch.randn(2, 2, 4000, device=FAKE), torch.randn(2, 2, 4000, device=FAKE)   # [N, C, S]
    sdr = global_sdr(ref, est)
    assert sdr.shape == (2,) and sdr.device == FAKE
    sdr.cpu()                                               # the report's final copy: must not raise


def test_mixing_loss_and_spectral_metrics(fake_cuda):
    from recipes.mixing.metrics import MixLoss, spectral_shape
    est, ref = torch.randn(2, 2, 4096, device=FAKE), torch.randn(2, 2, 4096, device=FAKE)   # [B, 2, S]
    loss_fn = MixLoss()
    loss = loss_fn(est, ref)
    assert loss.dim() == 0 and loss.device == FAKE
    assert loss_fn.stereo(est, ref).device == FAKE          # mix_metrics' "mrstft" module
    centroid, bandwidth = spectral_shape(est[0], 16000)     # [T], [T]
    assert centroid.device == FAKE and bandwidth.device == FAKE
    diff = (centroid - spectral_shape(ref[0], 16000)[0]).abs().mean()
    assert diff.device == FAKE


def test_transcription_validation_loss_with_targets_from_the_cpu(fake_cuda):
    """Validation: outputs on the device, frame targets made on the CPU and moved (module.validation_step)."""
    outputs = {k: torch.randn(1, 33, 88, device=FAKE) for k in ("onset", "offset", "frame", "velocity")}
    targets = {k: torch.rand(1, 32, 88) for k in outputs}
    loss, parts = transcription_loss(outputs, {k: v.to(FAKE) for k, v in targets.items()})
    assert loss.device == FAKE and all(p.device == FAKE for p in parts.values())
