"""What every backbone's ``extract`` shares: the input turned into mono at the backbone's rate, the precision
context, where the returned features live. Generic (MuQ and :class:`booster.TorchBackbone` use it); imports only
audio, errors and features.

Shape glossary: B batch, C channels, S samples.
"""
from __future__ import annotations

import numpy as np
import torch

from .audio import check_finite, resample
from .errors import AudioError, ConfigError

PRECISIONS = ("fp32", "bf16")
OUT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def as_batch_mono(wav, sample_rate: int, target_rate: int = 24000) -> torch.Tensor:
    """``[S]``, ``[C, S]`` or ``[B, C, S]`` (tensor or array, float or integer PCM) → float32 ``[B, S]``
    mono at ``target_rate`` (default 24 kHz, MuQ's; other backbones pass their own). Raises
    :class:`AudioError` on NaN/Inf, empty input or a bad shape."""
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    if not isinstance(wav, torch.Tensor):
        raise AudioError(f"expected a waveform tensor or numpy array, got {type(wav).__name__}")
    if wav.dtype in (torch.int16, torch.int32, torch.int8, torch.uint8):
        scale = {torch.int16: 2 ** 15, torch.int32: 2 ** 31, torch.int8: 2 ** 7, torch.uint8: 2 ** 7}[wav.dtype]
        wav = (wav.float() - (128 if wav.dtype == torch.uint8 else 0)) / scale
    elif not wav.is_floating_point():
        raise AudioError(f"unsupported sample dtype {wav.dtype}")
    wav = wav.float()
    if wav.dim() == 1:
        wav = wav[None]
    elif wav.dim() == 2:
        wav = wav.mean(0, keepdim=True)
    elif wav.dim() == 3:
        wav = wav.mean(1)
    else:
        raise AudioError(f"expected audio of shape [S], [C, S] or [B, C, S], got {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise AudioError("audio is empty (0 samples)")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    check_finite(wav, "input audio")
    return resample(wav, int(sample_rate), int(target_rate))


def autocast_for(precision: str, device: torch.device):
    """fp32: autocast disabled (also inside an outer ``torch.autocast``); bf16: bfloat16 autocast."""
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def output_placement(module, out_device=None, out_dtype=None) -> tuple[torch.device, torch.dtype]:
    """``(device, dtype)`` of the returned features: ``out_device`` (default: the model's device) and
    ``out_dtype`` (default float32; float16 halves host memory), given as torch objects or names."""
    device = torch.device(out_device) if out_device is not None else next(module.parameters()).device
    if out_dtype is None:
        return device, torch.float32
    dtype = OUT_DTYPES.get(out_dtype) if isinstance(out_dtype, str) else out_dtype
    if dtype not in OUT_DTYPES.values():
        raise ConfigError(f"out_dtype must be one of {list(OUT_DTYPES)} (or torch.float32 / torch.float16), "
                          f"got {out_dtype!r}")
    return device, dtype
