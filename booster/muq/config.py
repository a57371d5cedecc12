"""MuQ configuration: the official ``config.json`` fields, and a debug size built in code."""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
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

    def validate(self, source: str = "MuQ configuration") -> "MuQConfig":
        """Check every field; raise one :class:`CheckpointError` naming each bad field and its value
        (``source`` names the file in the message)."""
        problems = _type_problems(self)
        if not problems:  # the derived checks below need the right types
            problems = self._value_problems()
        if problems:
            raise CheckpointError(f"{source}: invalid field(s): " + "; ".join(problems))
        return self

    def _value_problems(self) -> list[str]:
        problems = []
        if self.n_fold not in (2, 4) or 100 % self.label_rate:
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
            problems.append(f"w2v2_config.conv_depthwise_kernel_size={self.kernel_size} must be odd")
        if self.activation not in SUPPORTED_ACTIVATIONS:
            problems.append(f"w2v2_config.hidden_act={self.activation!r} (supported: {SUPPORTED_ACTIVATIONS})")
        if self.n_mels % 4:
            problems.append(f"n_mels={self.n_mels} must be divisible by 4")
        return problems

    # ---- (de)serialisation ----------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict, source: str = "MuQ configuration") -> "MuQConfig":
        if not isinstance(d, dict):
            raise CheckpointError(f"{source}: a MuQ config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        extra.update(d.get("extra", {}) if isinstance(d.get("extra"), dict) else {})
        return cls(**known, extra=extra).validate(source)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "MuQConfig":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{os.fspath(path)!r} is not valid JSON: {e}") from None
        except UnicodeDecodeError:
            raise CheckpointError(f"{os.fspath(path)!r} is not a UTF-8 text file") from None
        return cls.from_dict(d, source=repr(os.fspath(path)))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d

    def save_json(self, path: str | os.PathLike) -> None:
        from ..fsutil import write_text
        write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))

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


# ---- field types --------------------------------------------------------------------------------------
_POSITIVE_INTS = ("label_rate", "num_codebooks", "codebook_dim", "codebook_size", "hop_length", "n_mels",
                  "conv_dim", "encoder_dim", "encoder_depth", "rvq_n_codebooks", "rvq_multi_layer_num")
_BOOLS = ("is_flash", "use_rvq_target", "use_vq_target", "use_encodec_target")
_W2V2_POSITIVE_INTS = ("num_attention_heads", "intermediate_size", "conv_depthwise_kernel_size")
_W2V2_POSITIVE_FLOATS = ("layer_norm_eps", "rotary_embedding_base")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _type_problems(cfg: MuQConfig) -> list[str]:
    """One entry per field of the wrong type or out of range (the checks that must pass before any
    arithmetic on the config)."""
    problems = []
    for name in _POSITIVE_INTS:
        v = getattr(cfg, name)
        if not _is_int(v) or v < 1:
            problems.append(f"{name}={v!r} must be a positive integer")
    for name in _BOOLS:
        if not isinstance(getattr(cfg, name), bool):
            problems.append(f"{name}={getattr(cfg, name)!r} must be true or false")
    for name in ("mask_hop", "mask_prob"):
        if not _is_number(getattr(cfg, name)):
            problems.append(f"{name}={getattr(cfg, name)!r} must be a finite number")
    if not isinstance(cfg.features, list):
        problems.append(f"features={cfg.features!r} must be a list")
    if not isinstance(cfg.stat, dict):
        problems.append(f"stat={cfg.stat!r} must be a JSON object")
    else:
        for key, positive in (("melspec_2048_mean", False), ("melspec_2048_std", True)):
            v = cfg.stat.get(key)
            if key not in cfg.stat:
                problems.append(f"stat is missing {key!r}")
            elif not _is_number(v) or (positive and v <= 0):
                problems.append(f"stat.{key}={v!r} must be a finite number" + (" > 0" if positive else ""))
    if not isinstance(cfg.w2v2_config, dict):
        problems.append(f"w2v2_config={cfg.w2v2_config!r} must be a JSON object")
    else:
        for key in _W2V2_POSITIVE_INTS:
            v = cfg.conformer(key)
            if not _is_int(v) or v < 1:
                problems.append(f"w2v2_config.{key}={v!r} must be a positive integer")
        for key in _W2V2_POSITIVE_FLOATS:
            v = cfg.conformer(key)
            if not _is_number(v) or v <= 0:
                problems.append(f"w2v2_config.{key}={v!r} must be a finite number > 0")
        for key in ("hidden_act", "position_embeddings_type"):
            if not isinstance(cfg.conformer(key), str):
                problems.append(f"w2v2_config.{key}={cfg.conformer(key)!r} must be a string")
    return problems
