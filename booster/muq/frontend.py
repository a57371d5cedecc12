"""MuQ's mel front end: 24 kHz mono → normalised dB mel spectrogram at 100 Hz.

Same transform as the official ``MelSTFT``: torchaudio ``MelSpectrogram(n_fft=2048, hop=240, 128 mels)``
(centred, reflect padding, power 2, HTK mel scale), ``AmplitudeToDB`` (power, no top_db), the last frame
dropped, then ``(x - mean) / std`` with the checkpoint's ``stat``.
"""
from __future__ import annotations

import torch
from torch import nn

try:
    import torchaudio
except (OSError, RuntimeError) as e:  # a torchaudio built for another torch (undefined symbol, other CUDA)
    from importlib.metadata import version as _version
    raise ImportError(f"torchaudio {_version('torchaudio')} does not load with torch {torch.__version__} "
                      f"({str(e).splitlines()[0][:160]}); install a tested pair, e.g. pip install torch==2.14.1 "
                      "torchaudio==2.11.0 (muq-booster's constraints.txt)") from None

from .config import N_FFT, SAMPLE_RATE, MuQConfig


class MelFrontend(nn.Module):
    """``wav`` ``[B, S]`` (24 kHz) → ``[B, n_mels, S // hop]``. Always computed in float32."""

    def __init__(self, config: MuQConfig):
        super().__init__()
        self.hop_length = config.hop_length
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=config.hop_length, n_mels=config.n_mels)
        self.to_db = torchaudio.transforms.AmplitudeToDB()
        self.mean = config.mel_mean
        self.std = config.mel_std
        # The window and filterbank are constants, not checkpoint state.
        for name, buf in list(self.mel.named_buffers()):
            module_name, _, leaf = name.rpartition(".")
            owner = self.mel.get_submodule(module_name) if module_name else self.mel
            owner._buffers.pop(leaf)
            owner.register_buffer(leaf, buf, persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wav.device.type, enabled=False):
            x = self.to_db(self.mel(wav.float()))[..., :-1]
            return (x - self.mean) / self.std
