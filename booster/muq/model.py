"""The frozen MuQ audio encoder: official numerics, chunked extraction, checkpoint loading."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ..features import Features
from ..fingerprint import Fingerprint
from .config import SAMPLE_RATE, MuQConfig
from .conformer import ConformerEncoder
from .conv import Conv2dSubsampling, subsampled_length
from .frontend import MelFrontend


@dataclass
class MuQOutput:
    """``last_hidden_state`` ``[B, T, D]``; ``hidden_states``: tuple of depth+1 ``[B, T, D]`` or None."""

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


class MuQ(nn.Module):
    """MuQ audio encoder (tencent-ailab, arXiv 2501.01108) with the official parameter names.

    ``muq(wav)`` takes ``[B, S]`` mono 24 kHz audio like the official package; :meth:`extract` takes
    any shape, sample rate and length. Build with :meth:`from_pretrained` or :meth:`debug`.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, config: MuQConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = MuQConfig.large()
        if isinstance(config, dict):
            config = MuQConfig.from_dict(config)
        self.config = config.validate()
        self.frontend = MelFrontend(config)
        self.conv = Conv2dSubsampling(1, config.conv_dim, config.encoder_dim, strides=config.time_strides,
                                      n_bands=config.n_mels)
        self.conformer = ConformerEncoder(config)
        self.name = "muq-custom"
        self._fingerprint = Fingerprint()  # the hash, cached on a cheap state signature
        self.eval()

    # ---- the backbone contract (probed once by adapters) ------------------------------------
    @property
    def num_layers(self) -> int:
        """Conformer depth; valid hidden-state indices are ``0..num_layers``."""
        return self.config.encoder_depth

    @property
    def hidden_size(self) -> int:
        return self.config.encoder_dim

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def samples_per_frame(self) -> int:
        return self.config.samples_per_frame

    @property
    def min_samples(self) -> int:
        """Shortest 24 kHz input accepted: one 25 Hz frame, and more than the STFT's reflect padding."""
        return max(self.samples_per_frame, 2048 // 2 + 1)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples at 24 kHz: ``ceil(ceil((S // 240) / 2) / 2)``."""
        return subsampled_length(num_samples // self.config.hop_length, self.config.time_strides)

    @property
    def identity(self) -> dict:
        """What identifies the features this backbone produces (used in caches and adapter files)."""
        return {"name": self.name, "architecture": self.config.architecture(),
                "fingerprint": self.fingerprint}

    @property
    def fingerprint(self) -> str:
        """sha256 (first 16 hex digits) over the encoder's parameters, buffers and mel statistics.

        Computed once per set of weights (:class:`booster.fingerprint.Fingerprint`): the hash (MuQ-large:
        1.2 GB read) is cached under a cheap signature of the state and recomputed only when a parameter or
        buffer changed (an optimiser step, a BatchNorm update in train mode, ``load_state_dict``,
        ``.to(...)``), never because of a ``train()`` / ``eval()`` switch."""
        return self._fingerprint(self, (self.config.mel_mean, self.config.mel_std, self.config.architecture()))

    # ---- forward -----------------------------------------------------------------------------
    def encode(self, wav: torch.Tensor, upto: int | None = None, keep=None,
               attention_mask: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        """``wav`` ``[B, S]`` 24 kHz → ``{hidden index: [B, T, D]}`` up to index ``upto``."""
        mel = self.frontend(wav)
        x = self.conv(mel)
        frame_mask = None
        if attention_mask is not None:  # same down-sampling of the sample mask as the official code
            attention_mask = attention_mask.bool()
            skip = int(attention_mask.shape[-1] / x.shape[1])
            frame_mask = attention_mask[:, ::skip][:, :x.shape[1]]
        return self.conformer(x, upto=upto, keep=keep, frame_mask=frame_mask)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = True) -> MuQOutput:
        """Official interface: ``x`` ``[B, S]`` mono at 24 kHz → :class:`MuQOutput`."""
        from ..audio import check_finite
        from ..errors import AudioError
        if x.dim() != 2:
            raise AudioError(f"MuQ.forward expects [B, S] mono 24 kHz audio, got shape {tuple(x.shape)}; "
                             "use MuQ.extract for other shapes and sample rates")
        if x.shape[-1] < self.min_samples:
            raise AudioError(f"audio too short: {x.shape[-1]} samples at 24 kHz; MuQ needs at least "
                             f"{self.min_samples} (~43 ms: one 25 Hz frame plus the STFT padding)")
        check_finite(x, "input audio")
        hs = self.encode(x, attention_mask=attention_mask)
        states = tuple(hs[i] for i in range(self.num_layers + 1))
        return MuQOutput(states[-1], states if output_hidden_states else None)

    def extract(self, wav, sample_rate: int = SAMPLE_RATE, layers=None, *, window: float = 30.0,
                overlap: float = 5.0, precision: str = "fp32", window_batch: int = 1,
                progress: bool = False, out_device=None, out_dtype=None) -> Features:
        """Features of arbitrary audio (``hidden`` ``[B, L, T, D]`` on ``out_device``, default the model's,
        as ``out_dtype``, default float32); see :func:`booster.muq.extract.extract_features`."""
        from .extract import extract_features
        return extract_features(self, wav, sample_rate, layers, window=window, overlap=overlap,
                                precision=precision, window_batch=window_batch, progress=progress,
                                out_device=out_device, out_dtype=out_dtype)

    def extract_file(self, path: str | os.PathLike, layers=None, *, read_rate: int | None = None,
                     window: float = 30.0, overlap: float = 5.0, precision: str = "fp32",
                     progress: bool = False, out_device=None, out_dtype=None) -> Features:
        """Features of an audio file read window by window (bounded memory); ``read_rate``: the rate the
        host hears (the file is read at it, then resampled to 24 kHz per window, as in training). See
        :func:`booster.muq.extract.extract_file`."""
        from .extract import extract_file
        return extract_file(self, path, layers, read_rate=read_rate, window=window, overlap=overlap,
                            precision=precision, progress=progress, out_device=out_device,
                            out_dtype=out_dtype)

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def debug(cls, seed: int = 0, depth: int = 12) -> "MuQ":
        """Tiny MuQ (D=32, 12 layers, official front end) with deterministic random weights.

        Random weights carry no musical knowledge: use it to exercise the mechanics (shapes, training
        loops, files), not to expect better models."""
        model = cls(MuQConfig.debug(depth=depth)).randomise_(seed)
        model.name = f"muq-debug-seed{seed}"
        model.requires_grad_(False)
        return model

    def randomise_(self, seed: int = 0) -> "MuQ":
        """Replace every weight in place by deterministic random values from ``seed`` (the recipe of
        :meth:`debug`, for any architecture): the random-backbone control of a study (``random:NAME``), whose
        gain is capacity, not knowledge. Returns ``self``."""
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
                elif p.dim() == 1:  # norm scales
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
            for name, b in self.named_buffers():
                if name.endswith("running_mean"):
                    b.copy_(0.1 * torch.randn(b.shape, generator=gen))
                elif name.endswith("running_var"):
                    b.copy_(1.0 + 0.2 * torch.rand(b.shape, generator=gen))
            # Random attention averages all frames; at full scale, 12 such layers smooth every frame into
            # the same vector. Scaled down, the features keep following the input over time.
            for layer in self.conformer.layers:
                layer.self_attn.linear_out.weight.mul_(0.1)
        return self

    @classmethod
    def from_pretrained(cls, src: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | None = None, verify_sha256: bool = True) -> "MuQ":
        """Load a checkpoint: a local directory in the official layout (config.json + model.safetensors
        or pytorch_model.bin) or a hub id such as ``OpenMuQ/MuQ-large-msd-iter``."""
        from .loading import load_pretrained
        return load_pretrained(cls, src, revision=revision, cache_dir=cache_dir, verify_sha256=verify_sha256)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` + ``model.safetensors`` in the official layout (``model.`` prefix)."""
        from .loading import save_pretrained
        save_pretrained(self, directory)


RANDOM_PREFIX = "random:"


def load_backbone(src: str | os.PathLike, seed: int = 0) -> MuQ:
    """What a ``--checkpoint`` / ``backbone:`` value names: ``"debug"`` (the tiny built-in MuQ, random
    weights from ``seed``), a local directory in the official layout, a hub id, or ``"random:SRC"``: the
    architecture of SRC with random weights from ``seed`` (:meth:`MuQ.randomise_`), the control that tells
    a backbone's knowledge from its capacity."""
    text = str(src)
    if text.startswith(RANDOM_PREFIX):
        base = load_backbone(text[len(RANDOM_PREFIX):], seed)
        base.randomise_(seed)
        base.name = f"random-{base.name}-seed{seed}"
        return base
    return MuQ.debug(seed) if text == "debug" else MuQ.from_pretrained(src)
