"""Boost BS-RoFormer (band-split RoFormer, PyPI ``bs-roformer``) with backbone features; its host plug-in.

Shape glossary: B batch, C channels, F bands, T STFT frames, S samples, N sources, D model dim.

The host is :class:`RoformerSeparator`, a ``bs_roformer.BSRoformer`` with the separation interface:
``forward(mix [B, C, S]) -> [B, N, C, S]`` (always the source axis, always the input length: the tail
that the inverse STFT drops is zero-padded), ``sources`` / ``samplerate`` / ``audio_channels``.

Default site: the output of the band-split embedding, ``band_split`` (``[B, T, F, D]``, layout
``"B T F C"``), i.e. right before the first time transformer. Features are aligned to the STFT frame
rate: ``torch.stft(center=True)`` frame ``j`` is centred at sample ``j * hop`` (``1 + S // hop`` frames),
and broadcast over the bands. Training loss (:func:`loss`): BS-RoFormer's own, L1 on the waveform plus the
multi-resolution STFT L1, per source.

Two weight layouts (``layout`` in the architecture): ``"pypi"`` (default), today's PyPI ``bs-roformer``
class; ``"msst"``, :class:`MSSTRoformerSeparator`, the older class layout that ZFTurbo's
Music-Source-Separation-Training trains (gated attention, plain residuals, MSST's options; our
implementation in :mod:`booster.adapters._roformer_msst`), which ``booster convert msst`` builds so that an
MSST checkpoint loads exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from bs_roformer import BSRoformer
from torch import nn

from booster.errors import CheckpointError, ConfigError
from booster.injection import Boosted, Site

from booster.msst import load_exact

from ._roformer_msst import AxialRoformer, io_functions, msst_arguments, per_source_loss, transformer_linears

PRESET = NAME = "bs_roformer"
# Tiny BS-RoFormer: 512-point STFT (257 bins in 16 bands), D=16, one time + one frequency transformer.
DEBUG = dict(dim=16, depth=1, time_transformer_depth=1, freq_transformer_depth=1, dim_head=8, heads=2,
             stft_n_fft=512, stft_hop_length=128, stft_win_length=512, dim_freqs_in=257,
             freqs_per_bands=[16] * 15 + [17], num_residual_streams=1, mask_estimator_depth=1,
             multi_stft_resolutions_window_sizes=[512, 256])
# The size the fine-tuning repositories train (D=512, 12 blocks, 2048-point STFT with hop 441 at 44.1 kHz).
FULL = dict(dim=512, depth=12, time_transformer_depth=1, freq_transformer_depth=1, dim_head=64, heads=8,
            stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048)
TUPLE_KEYS = ("freqs_per_bands", "multi_stft_resolutions_window_sizes", "freq_range")


class RoformerSeparator(BSRoformer):
    """BS-RoFormer separating ``sources`` from a mixture, built from JSON-safe keyword arguments."""

    def __init__(self, *, sources, sample_rate: int = 44100, channels: int = 2, **kwargs):
        if channels not in (1, 2):
            raise ConfigError(f"BS-RoFormer handles mono or stereo audio, got channels={channels}")
        kw = {k: (tuple(v) if k in TUPLE_KEYS and v is not None else v) for k, v in kwargs.items()}
        kw.setdefault("flash_attn", False)
        try:
            super().__init__(stereo=channels == 2, num_stems=len(sources), **kw)
        except (AssertionError, TypeError) as e:
            raise ConfigError(f"invalid BS-RoFormer arguments {kwargs}: {type(e).__name__}: {e}") from None
        self.init_kwargs = dict(sources=list(sources), sample_rate=int(sample_rate), channels=int(channels),
                                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()})
        self.sources, self.samplerate, self.audio_channels = list(sources), int(sample_rate), int(channels)

    @property
    def hop(self) -> int:
        return int(self.stft_kwargs["hop_length"])

    def forward(self, mix: torch.Tensor, target=None, return_loss_breakdown: bool = False):
        """``mix`` ``[B, C, S]`` → ``[B, N, C, S]`` (with ``target``: BS-RoFormer's own loss, a scalar)."""
        if target is not None:
            return super().forward(mix, target, return_loss_breakdown)
        out = super().forward(mix)
        if out.dim() == 3:                                  # one stem: BS-RoFormer drops the N axis
            out = out[:, None]
        return F.pad(out, (0, mix.shape[-1] - out.shape[-1])) if out.shape[-1] < mix.shape[-1] else out


# MSST's BSRoformer keywords and their defaults there (models/bs_roformer/bs_roformer.py). ``flash_attn`` and
# ``sage_attention`` choose attention kernels (the host computes exact softmax attention); ``dim_freqs_in`` is
# unused there too. ``use_pope`` (PoPE positions) is refused.
MSST_DEFAULTS = dict(
    dim=512, depth=12, time_transformer_depth=2, freq_transformer_depth=2, linear_transformer_depth=0,
    freqs_per_bands=None, dim_head=64, heads=8, attn_dropout=0.0, ff_dropout=0.0, flash_attn=True,
    sage_attention=False, dim_freqs_in=1025, stft_n_fft=2048, stft_hop_length=512, stft_win_length=2048,
    stft_normalized=False, zero_dc=True, mask_estimator_depth=2, multi_stft_resolution_loss_weight=1.0,
    multi_stft_resolutions_window_sizes=[4096, 2048, 1024, 512, 256], multi_stft_hop_size=147,
    multi_stft_normalized=False, mlp_expansion_factor=4, use_torch_checkpoint=False, skip_connection=False,
    use_pope=False)
MSST_FREQS_PER_BANDS = [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]


class MSSTRoformerSeparator(AxialRoformer):
    """BS-RoFormer in MSST's class layout with the separation interface (``layout="msst"``)."""

    def __init__(self, *, sources, sample_rate: int = 44100, channels: int = 2, layout: str = "msst", **kwargs):
        if channels not in (1, 2):
            raise ConfigError(f"BS-RoFormer handles mono or stereo audio, got channels={channels}")
        super().__init__()
        kw = msst_arguments(kwargs, "BS-RoFormer", MSST_DEFAULTS)
        kw["freqs_per_bands"] = list(kw["freqs_per_bands"] or MSST_FREQS_PER_BANDS)
        bins = kw["stft_n_fft"] // 2 + 1
        if len(kw["freqs_per_bands"]) < 2 or sum(kw["freqs_per_bands"]) != bins:
            raise ConfigError(f"freqs_per_bands must hold at least 2 bands summing to the STFT's {bins} bins "
                              f"(stft_n_fft={kw['stft_n_fft']}), got {len(kw['freqs_per_bands'])} bands summing "
                              f"to {sum(kw['freqs_per_bands'])}")
        skip = {"freqs_per_bands", "flash_attn", "sage_attention", "dim_freqs_in", "use_pope", "mask_estimator_depth"}
        self.build(**{k: v for k, v in kw.items() if k not in skip}, stereo=channels == 2, num_stems=len(sources),
                   mask_hidden_layers=kw["mask_estimator_depth"] - 1,   # BS-RoFormer's depth counts linear maps
                   band_dims=tuple(2 * f * channels for f in kw["freqs_per_bands"]), transformer_norm=False,
                   final_norm=True, istft_length=True)
        self.init_kwargs = dict(sources=list(sources), sample_rate=int(sample_rate), channels=int(channels),
                                layout="msst", **{k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()})
        self.sources, self.samplerate, self.audio_channels = list(sources), int(sample_rate), int(channels)

    @property
    def hop(self) -> int:
        return int(self.stft_kwargs["hop_length"])

    def gather_bands(self, spec: torch.Tensor) -> torch.Tensor:
        return spec.transpose(1, 2).flatten(2)              # [B, Q * C, T, 2] -> [B, T, Q * C * 2]

    def apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return spec[:, None] * masks

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``mix`` ``[B, C, S]`` -> ``[B, N, C, S]``."""
        return self.separate(mix)


HOST_CLASSES = (RoformerSeparator, MSSTRoformerSeparator)


# ---- injection preset ----------------------------------------------------------------------------
def default_sites(model: nn.Module, *, fusion: str = "add") -> list[Site]:
    """The band-split embedding's output (before the first time transformer), ``[B, T, F, D]``."""
    return [Site(path="band_split", layout="B T F C", channels=_dim(model), fusion=fusion)]


def _dim(model: nn.Module) -> int:
    return int(model.init_kwargs["dim"])


def site_channels(model: nn.Module, site: Site) -> int | None:
    return _dim(model) if site.path == "band_split" else None


def prepare(model: nn.Module) -> tuple[nn.Module, dict]:
    if isinstance(model, Boosted):
        raise ConfigError("this model is already boosted; boost its .host or load adapters onto a fresh model")
    if not isinstance(model, HOST_CLASSES):
        raise ConfigError(f"booster.adapters.bs_roformer boosts {__name__}.RoformerSeparator (build it with "
                          f"booster.adapters.bs_roformer.build), got {type(model).__name__}")
    return model, io_functions(model)


def boost(model: nn.Module, backbone, *, layers=None, sites: list[Site] | None = None, fusion: str = "add",
          train_host: bool = True) -> Boosted:
    """Boost a :class:`RoformerSeparator` at its band-split output (or ``sites``)."""
    host, kw = prepare(model)
    sites = sites if sites is not None else default_sites(host, fusion=fusion)
    return Boosted(host, backbone, sites, layers=layers, train_host=train_host, preset=PRESET, **kw)


# ---- host plug-in --------------------------------------------------------------------------------
def build(*, size: str = "full", pretrained: str | None = None, pretrained_repo: str | None = None,
          overrides: dict | None = None, sources: list[str], sample_rate: int = 44100, channels: int = 2,
          segment: float | None = None) -> nn.Module:
    """A :class:`RoformerSeparator` (``"debug"`` or ``"full"`` size, ``overrides`` on top). ``pretrained``:
    a state-dict file (``.safetensors``, or ``.ckpt``/``.pth`` read with ``weights_only=True``) of the same
    architecture, e.g. from a BS-RoFormer fine-tuning repository (pass its architecture in ``host_kwargs``)."""
    overrides = dict(overrides or {})
    if overrides.get("layout", "pypi") == "msst":   # MSST's own defaults underneath (its size names differ)
        kw = {k: v for k, v in (DEBUG if size == "debug" else FULL).items() if k in MSST_DEFAULTS}
    else:
        kw = dict(DEBUG if size == "debug" else FULL)
    kw.update(overrides)
    model = from_architecture(sources=list(sources), sample_rate=sample_rate, channels=channels, **kw)
    if pretrained:
        _load_weights(model, pretrained)
    return model


def _load_weights(model: nn.Module, path: str) -> None:
    from pathlib import Path
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"BS-RoFormer weights {str(p)!r} do not exist (pass a state-dict file)")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read BS-RoFormer weights {str(p)!r}: {type(e).__name__}: {e}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if isinstance(model, MSSTRoformerSeparator):
        load_exact(model, state, f"BS-RoFormer weights {str(p)!r}")
        return
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:   # shape mismatches
        missing, unexpected = [str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)], []
    if missing or unexpected:
        raise CheckpointError(f"BS-RoFormer weights {str(p)!r} do not fit this architecture: missing "
                              f"{missing[:6]}, unexpected {unexpected[:6]}; set host_kwargs to the "
                              "checkpoint's architecture")


def architecture(model: nn.Module) -> dict:
    if not isinstance(model, HOST_CLASSES):
        raise ConfigError(f"the bs_roformer plug-in describes RoformerSeparator models, got {type(model).__name__}")
    return dict(model.init_kwargs)


def from_architecture(**kwargs) -> nn.Module:
    """The host of a recorded architecture: ``layout`` "pypi" (absent in older files) or "msst"."""
    layout = kwargs.pop("layout", "pypi")
    if layout == "msst":
        return MSSTRoformerSeparator(**kwargs)
    if layout != "pypi":
        raise ConfigError(f"BS-RoFormer layout must be 'pypi' or 'msst', got {layout!r}")
    return RoformerSeparator(**kwargs)


def lora_targets(model: nn.Module) -> list[str]:
    """Qualified names (in the host) of the ``nn.Linear`` modules to wrap with LoRA: attention q/k/v (fused
    ``to_qkv``) and output (``to_out``), the feed-forward projections (``net``)."""
    return transformer_linears(model.host if isinstance(model, Boosted) else model)


def chunk_seconds(model: nn.Module) -> None:
    return None   # the recipe's segment (the kit rounds chunks to whole samples)


def loss(model: nn.Module, mix: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Per-source BS-RoFormer loss ``[N]``: waveform L1 + ``multi_stft_resolution_loss_weight`` x the
    multi-resolution STFT L1 (the package's own loss, whose value is the mean of these over sources)."""
    return per_source_loss(model, model.host if isinstance(model, Boosted) else model, mix, sources)


def onnx_form(model: nn.Module, chunk: int, *, boosted: bool = False) -> dict:
    """How ``booster export`` makes this BS-RoFormer an ONNX graph (STFT, complex masking and iSTFT in the
    runner): :mod:`booster.adapters._onnx_bs_roformer`."""
    from ._onnx_bs_roformer import onnx_form as form
    return form(model, chunk, boosted=boosted)
