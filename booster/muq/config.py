"""MuQ configuration: the official ``config.json`` fields, and a debug size built in code."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckpointError

SAMPLE_RATE = 24_000  # MuQ's mel front end is fixed at 24 kHz (official MelSTFT default)
N_FFT = 2048

# Official MuQ-large-msd-iter normalisation statistics of the dB mel spectrogram.
OFFICIAL_STAT = {
    "melspec_2048_cnt": 14282760192,
    "melspec_2048_mean": 6.768444971712967,
    "melspec_2048_std": 18.417922652295623,
}

# Conformer settings read from ``w2v2_config`` (transformers' Wav2Vec2ConformerConfig names) and the
# values of the released checkpoint. hidden_size / num_hidden_layers come from encoder_dim / encoder_depth.
CONFORMER_DEFAULTS = {
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "conv_depthwise_kernel_size": 31,
    "hidden_act": "swish",
    "layer_norm_eps": 1e-5,
    "position_embeddings_type": "rotary",
    "rotary_embedding_base": 10000,
}

SUPPORTED_ACTIVATIONS = ("swish", "silu", "gelu", "relu")


@dataclass
class MuQConfig:
    """Fields of the official ``MuQConfig`` (``config.json`` of a MuQ checkpoint).

    Only the fields that shape the audio encoder matter here; training-only fields (quantiser, masking,
    RVQ) are kept so that a config round-trips, and unknown fields are preserved in ``extra``.
    """

    label_rate: int = 25
    num_codebooks: int = 1
    codebook_dim: int = 16
    codebook_size: int = 4096
    features: list = field(default_factory=lambda: ["melspec_2048"])
    hop_length: int = 240
    n_mels: int = 128
    conv_dim: int = 512
    encoder_dim: int = 1024
    encoder_depth: int = 12
    mask_hop: float = 0.4
    mask_prob: float = 0.6
    is_flash: bool = False
    stat: dict = field(default_factory=lambda: dict(OFFICIAL_STAT))
    w2v2_config: dict = field(default_factory=lambda: dict(CONFORMER_DEFAULTS))
    use_rvq_target: bool = False
    use_vq_target: bool = False
    use_encodec_target: bool = False
    rvq_ckpt_path: Any = None
    recon_loss_ratio: Any = None
    resume_checkpoint: Any = None
    rvq_n_codebooks: int = 8
    rvq_multi_layer_num: int = 1
    extra: dict = field(default_factory=dict)

    # ---- derived architecture -------------------------------------------------------------
    def conformer(self, key: str):
        return self.w2v2_config.get(key, CONFORMER_DEFAULTS[key])

    @property
    def num_heads(self) -> int:
        return int(self.conformer("num_attention_heads"))

    @property
    def ffn_dim(self) -> int:
        return int(self.conformer("intermediate_size"))

    @property
    def kernel_size(self) -> int:
        return int(self.conformer("conv_depthwise_kernel_size"))

    @property
    def activation(self) -> str:
        return str(self.conformer("hidden_act"))

    @property
    def layer_norm_eps(self) -> float:
        return float(self.conformer("layer_norm_eps"))

    @property
    def rotary_base(self) -> float:
        return float(self.conformer("rotary_embedding_base"))

    @property
    def n_fold(self) -> int:
        """Mel frames per output frame (4 at the official 25 Hz label rate)."""
        return int(100 // self.label_rate)

    @property
    def time_strides(self) -> tuple[int, int]:
        return {4: (2, 2), 2: (2, 1)}[self.n_fold]

    @property
    def frame_rate(self) -> float:
        return SAMPLE_RATE / self.hop_length / self.n_fold

    @property
    def samples_per_frame(self) -> int:
        return self.hop_length * self.n_fold

    @property
    def mel_mean(self) -> float:
        return float(self.stat["melspec_2048_mean"])

    @property
    def mel_std(self) -> float:
        return float(self.stat["melspec_2048_std"])

    def architecture(self) -> dict:
        """The numbers that decide parameter shapes and numerics (compared against the registry)."""
        return {
            "n_mels": self.n_mels, "hop_length": self.hop_length, "label_rate": self.label_rate,
            "conv_dim": self.conv_dim, "encoder_dim": self.encoder_dim, "encoder_depth": self.encoder_depth,
            "num_attention_heads": self.num_heads, "intermediate_size": self.ffn_dim,
            "conv_depthwise_kernel_size": self.kernel_size, "hidden_act": self.activation,
            "position_embeddings_type": self.conformer("position_embeddings_type"),
        }

    def validate(self) -> "MuQConfig":
        problems = []
        if self.n_fold not in (2, 4):
            problems.append(f"label_rate={self.label_rate} (supported: 25 or 50)")
        if self.features != ["melspec_2048"]:
            problems.append(f"features={self.features} (only ['melspec_2048'] exists in MuQ)")
        if self.conformer("position_embeddings_type") != "rotary":
            problems.append(f"w2v2_config.position_embeddings_type="
                            f"{self.conformer('position_embeddings_type')!r} (MuQ uses 'rotary')")
        if self.encoder_dim % self.num_heads:
            problems.append(f"encoder_dim={self.encoder_dim} not divisible by "
                            f"num_attention_heads={self.num_heads}")
        elif (self.encoder_dim // self.num_heads) % 2:
            problems.append("head size must be even for rotary embeddings")
        if self.kernel_size % 2 == 0:
            problems.append(f"conv_depthwise_kernel_size={self.kernel_size} must be odd")
        if self.activation not in SUPPORTED_ACTIVATIONS:
            problems.append(f"hidden_act={self.activation!r} (supported: {SUPPORTED_ACTIVATIONS})")
        if self.n_mels % 4:
            problems.append(f"n_mels={self.n_mels} must be divisible by 4")
        for key in ("melspec_2048_mean", "melspec_2048_std"):
            if key not in self.stat:
                problems.append(f"stat is missing {key!r}")
        if self.encoder_depth < 1:
            problems.append(f"encoder_depth={self.encoder_depth} must be >= 1")
        if problems:
            raise CheckpointError("unsupported MuQ configuration: " + "; ".join(problems))
        return self

    # ---- (de)serialisation ----------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "MuQConfig":
        if not isinstance(d, dict):
            raise CheckpointError(f"a MuQ config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        extra.update(d.get("extra", {}) if isinstance(d.get("extra"), dict) else {})
        cfg = cls(**known, extra=extra)
        if not isinstance(cfg.stat, dict) or not isinstance(cfg.w2v2_config, dict):
            raise CheckpointError("config.json fields 'stat' and 'w2v2_config' must be JSON objects")
        return cfg.validate()

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "MuQConfig":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{os.fspath(path)!r} is not valid JSON: {e}") from None
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d

    def save_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)

    @classmethod
    def debug(cls, depth: int = 12) -> "MuQConfig":
        """A tiny architecture with the official front end and layer count (for tests and demos)."""
        w2v2 = dict(CONFORMER_DEFAULTS, num_attention_heads=4, intermediate_size=128,
                    conv_depthwise_kernel_size=7)
        return cls(conv_dim=8, encoder_dim=32, encoder_depth=depth, w2v2_config=w2v2).validate()

    @classmethod
    def large(cls) -> "MuQConfig":
        """The architecture of ``OpenMuQ/MuQ-large-msd-iter`` (~300M parameters)."""
        return cls().validate()
