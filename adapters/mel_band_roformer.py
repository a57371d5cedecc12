"""Boost Mel-Band-RoFormer (mel-band RoFormer, PyPI ``bs-roformer``) with backbone features; its host plug-in.

Shape glossary: B batch, C channels, F bands, Q STFT bins, T STFT frames, S samples, N sources, D model dim.

The host separates ``sources`` from a mixture: ``forward(mix [B, C, S]) -> [B, N, C, S]`` (always the source
axis, always the input length: the tail that the inverse STFT drops is zero-padded), ``sources`` /
``samplerate`` / ``audio_channels``. The STFT bins are grouped into overlapping mel bands (librosa's mel filter
bank, binarised); each band is embedded, the band features go through time and frequency transformers and per
band mask estimators, and bins that several bands share get the average of their masks.

Two weight layouts (``layout`` in the architecture): ``"pypi"`` (default), :class:`MelRoformerSeparator`, today's
PyPI ``bs_roformer.MelBandRoformer`` (hyper-connections, value residuals); ``"msst"``,
:class:`MSSTMelRoformerSeparator`, the class layout ZFTurbo's Music-Source-Separation-Training trains (our
implementation, :mod:`booster.adapters._roformer_msst`), which ``booster convert msst`` builds. Their mel bands
differ at the two corner bins (MSST forces them into the first and last band, the package scales them).

Default site: the output of the band-split embedding, ``band_split`` (``[B, T, F, D]``, layout ``"B T F C"``),
right before the first time transformer; features are aligned to the STFT frame rate (frame ``j`` centred at
sample ``j * hop``, ``1 + S // hop`` frames) and broadcast over the bands. Training loss (:func:`loss`): the
package's own, waveform L1 plus the multi-resolution STFT L1, per source.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from bs_roformer import MelBandRoformer
from torch import nn

from booster.errors import CheckpointError, ConfigError
from booster.injection import Boosted, Site
from booster.msst import load_exact

from ._roformer_msst import AxialRoformer, io_functions, msst_arguments, per_source_loss, transformer_linears

PRESET = NAME = "mel_band_roformer"
# Tiny Mel-Band-RoFormer: 512-point STFT in 16 mel bands, D=16, one time + one frequency transformer.
DEBUG = dict(dim=16, depth=1, time_transformer_depth=1, freq_transformer_depth=1, linear_transformer_depth=0,
             num_bands=16, dim_head=8, heads=2, stft_n_fft=512, stft_hop_length=128, stft_win_length=512,
             dim_freqs_in=257, num_residual_streams=1, mask_estimator_depth=1, attn_dropout=0.0, ff_dropout=0.0,
             multi_stft_resolutions_window_sizes=[512, 256])
# The size of MSST's published vocal models (D=384, 60 mel bands, 2048-point STFT with hop 441 at 44.1 kHz).
FULL = dict(dim=384, depth=6, time_transformer_depth=1, freq_transformer_depth=1, linear_transformer_depth=0,
            num_bands=60, dim_head=64, heads=8, stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048,
            mask_estimator_depth=2)
TUPLE_KEYS = ("multi_stft_resolutions_window_sizes",)
# MSST's MelBandRoformer keywords and their defaults there (models/bs_roformer/mel_band_roformer.py);
# ``sample_rate`` is the separator's. ``flash_attn``/``sage_attention`` choose kernels; ``use_pope`` is refused.
MSST_DEFAULTS = dict(
    dim=384, depth=6, time_transformer_depth=2, freq_transformer_depth=2, linear_transformer_depth=0,
    num_bands=60, dim_head=64, heads=8, attn_dropout=0.1, ff_dropout=0.1, flash_attn=True, sage_attention=False,
    dim_freqs_in=1025, stft_n_fft=2048, stft_hop_length=512, stft_win_length=2048, stft_normalized=False,
    zero_dc=True, mask_estimator_depth=1, multi_stft_resolution_loss_weight=1.0,
    multi_stft_resolutions_window_sizes=[4096, 2048, 1024, 512, 256], multi_stft_hop_size=147,
    multi_stft_normalized=False, match_input_audio_length=False, mlp_expansion_factor=4,
    use_torch_checkpoint=False, skip_connection=False, use_pope=False)


def _check_channels(channels: int) -> None:
    if channels not in (1, 2):
        raise ConfigError(f"Mel-Band-RoFormer handles mono or stereo audio, got channels={channels}")


def _pad_to(out: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    return F.pad(out, (0, mix.shape[-1] - out.shape[-1])) if out.shape[-1] < mix.shape[-1] else out


class MelRoformerSeparator(MelBandRoformer):
    """PyPI ``MelBandRoformer`` separating ``sources`` from a mixture, built from JSON-safe keyword arguments."""

    def __init__(self, *, sources, sample_rate: int = 44100, channels: int = 2, **kwargs):
        _check_channels(channels)
        kw = {k: (tuple(v) if k in TUPLE_KEYS and v is not None else v) for k, v in kwargs.items()}
        kw.setdefault("flash_attn", False)
        try:
            super().__init__(stereo=channels == 2, num_stems=len(sources), sample_rate=int(sample_rate), **kw)
        except (AssertionError, TypeError) as e:
            raise ConfigError(f"invalid Mel-Band-RoFormer arguments {kwargs}: {type(e).__name__}: {e}") from None
        self.init_kwargs = dict(sources=list(sources), sample_rate=int(sample_rate), channels=int(channels),
                                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()})
        self.sources, self.samplerate, self.audio_channels = list(sources), int(sample_rate), int(channels)

    def forward(self, mix: torch.Tensor, target=None, return_loss_breakdown: bool = False):
        """``mix`` ``[B, C, S]`` -> ``[B, N, C, S]`` (with ``target``: the package's own loss, a scalar)."""
        if target is not None:
            return super().forward(mix, target, return_loss_breakdown)
        out = super().forward(mix)
        return _pad_to(out[:, None] if out.dim() == 3 else out, mix)


def mel_bands(sample_rate: int, n_fft: int, num_bands: int) -> torch.Tensor:
    """``[F, Q]`` booleans: bin ``q`` in band ``f`` (librosa's mel filter bank > 0, the first bin forced into
    the first band and the last bin into the last, as MSST does)."""
    from librosa import filters
    bank = torch.from_numpy(filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=num_bands))
    bank[0, 0] = bank[-1, -1] = 1.0
    return bank > 0


class MSSTMelRoformerSeparator(AxialRoformer):
    """Mel-Band-RoFormer in MSST's class layout with the separation interface (``layout="msst"``)."""

    def __init__(self, *, sources, sample_rate: int = 44100, channels: int = 2, layout: str = "msst", **kwargs):
        _check_channels(channels)
        super().__init__()
        kw = msst_arguments(kwargs, "Mel-Band-RoFormer", MSST_DEFAULTS)
        bands = mel_bands(int(sample_rate), kw["stft_n_fft"], kw["num_bands"])         # [F, Q]
        if not bands.any(dim=0).all():
            raise ConfigError(f"num_bands={kw['num_bands']} mel bands leave STFT bins uncovered at "
                              f"{sample_rate} Hz with stft_n_fft={kw['stft_n_fft']}; use fewer bands")
        bins = torch.nonzero(bands)[:, 1]                     # band-major list of (band, bin) memberships
        if channels == 2:                                     # rows of the spectrum: bin-major, channel-minor
            bins = (2 * bins[:, None] + torch.arange(2)).flatten()
        self.register_buffer("freq_indices", bins, persistent=False)
        self.register_buffer("num_bands_per_freq", bands.sum(0), persistent=False)
        skip = {"num_bands", "flash_attn", "sage_attention", "dim_freqs_in", "use_pope", "match_input_audio_length",
                "mask_estimator_depth"}
        self.build(**{k: v for k, v in kw.items() if k not in skip}, stereo=channels == 2, num_stems=len(sources),
                   mask_hidden_layers=kw["mask_estimator_depth"],      # Mel-Band-RoFormer's depth counts hidden layers
                   band_dims=tuple(2 * channels * int(n) for n in bands.sum(1)), transformer_norm=True,
                   final_norm=False, istft_length=bool(kw["match_input_audio_length"]))
        self.init_kwargs = dict(sources=list(sources), sample_rate=int(sample_rate), channels=int(channels),
                                layout="msst", **{k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()})
        self.sources, self.samplerate, self.audio_channels = list(sources), int(sample_rate), int(channels)

    def gather_bands(self, spec: torch.Tensor) -> torch.Tensor:
        return spec[:, self.freq_indices].transpose(1, 2).flatten(2)   # [B, T, bins in bands * 2]

    def apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        b, n, _, t = masks.shape
        index = self.freq_indices.view(1, 1, -1, 1).expand(b, n, -1, t)
        summed = torch.zeros(b, n, *spec.shape[1:], dtype=masks.dtype, device=masks.device)
        summed = summed.scatter_add(2, index, masks)
        denom = self.num_bands_per_freq.repeat_interleave(self.audio_channels).clamp(min=1e-8)
        return spec[:, None] * (summed / denom[:, None])

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``mix`` ``[B, C, S]`` -> ``[B, N, C, S]``."""
        return _pad_to(self.separate(mix), mix)


HOST_CLASSES = (MelRoformerSeparator, MSSTMelRoformerSeparator)


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
        raise ConfigError(f"booster.adapters.mel_band_roformer boosts {__name__}.MelRoformerSeparator (build it "
                          f"with booster.adapters.mel_band_roformer.build), got {type(model).__name__}")
    return model, io_functions(model)


def boost(model: nn.Module, backbone, *, layers=None, sites: list[Site] | None = None, fusion: str = "add",
          train_host: bool = True) -> Boosted:
    """Boost a Mel-Band-RoFormer separator at its band-split output (or ``sites``)."""
    host, kw = prepare(model)
    sites = sites if sites is not None else default_sites(host, fusion=fusion)
    return Boosted(host, backbone, sites, layers=layers, train_host=train_host, preset=PRESET, **kw)


# ---- host plug-in --------------------------------------------------------------------------------
def build(*, size: str = "full", pretrained: str | None = None, pretrained_repo: str | None = None,
          overrides: dict | None = None, sources: list[str], sample_rate: int = 44100, channels: int = 2,
          segment: float | None = None) -> nn.Module:
    """A Mel-Band-RoFormer separator (``"debug"`` or ``"full"`` size, ``overrides`` on top; ``layout: msst``
    among them builds MSST's layout). ``pretrained``: a state-dict file (``.safetensors``, or ``.ckpt``/
    ``.pth`` read with ``weights_only=True``) of exactly that architecture."""
    overrides = dict(overrides or {})
    base = DEBUG if size == "debug" else FULL
    if overrides.get("layout", "pypi") == "msst":
        base = {k: v for k, v in base.items() if k in MSST_DEFAULTS}
    model = from_architecture(sources=list(sources), sample_rate=sample_rate, channels=channels,
                              **{**base, **overrides})
    if pretrained:
        load_exact(model, _read_state(pretrained), f"Mel-Band-RoFormer weights {pretrained!r}")
    return model


def _read_state(path: str) -> dict:
    from pathlib import Path
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"Mel-Band-RoFormer weights {str(p)!r} do not exist (pass a state-dict file)")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read Mel-Band-RoFormer weights {str(p)!r}: {type(e).__name__}: {e}") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def msst_state(model: nn.Module, state: dict) -> dict:
    """BS-RoFormer 0.4.x spells a block without linear attention ``layers.i.{1,2}`` (an empty first slot);
    MSST's class, like 0.3.x, ``layers.i.{0,1}``. The former is renamed to the latter when the model has no
    linear-attention transformer and the checkpoint has no ``layers.i.0``."""
    if not isinstance(model, MSSTMelRoformerSeparator) or model.init_kwargs["linear_transformer_depth"]:
        return state
    parts = [k.split(".", 3) for k in state if k.startswith("layers.")]
    if not parts or any(p[2] == "0" for p in parts if len(p) > 2) or not any(p[2] == "2" for p in parts):
        return state

    def rename(k: str) -> str:
        p = k.split(".", 3)
        return ".".join([p[0], p[1], str(int(p[2]) - 1), p[3]]) if k.startswith("layers.") and len(p) == 4 else k
    return {rename(k): v for k, v in state.items()}


def architecture(model: nn.Module) -> dict:
    if not isinstance(model, HOST_CLASSES):
        raise ConfigError(f"the mel_band_roformer plug-in describes its separators, got {type(model).__name__}")
    return dict(model.init_kwargs)


def from_architecture(**kwargs) -> nn.Module:
    """The host of a recorded architecture: ``layout`` "pypi" (default) or "msst"."""
    layout = kwargs.pop("layout", "pypi")
    if layout == "msst":
        return MSSTMelRoformerSeparator(**kwargs)
    if layout != "pypi":
        raise ConfigError(f"Mel-Band-RoFormer layout must be 'pypi' or 'msst', got {layout!r}")
    return MelRoformerSeparator(**kwargs)


def lora_targets(model: nn.Module) -> list[str]:
    """Qualified names (in the host) of the ``nn.Linear`` modules to wrap with LoRA: attention q/k/v (fused
    ``to_qkv``) and output (``to_out``), the feed-forward projections (``net``)."""
    return transformer_linears(model.host if isinstance(model, Boosted) else model)


def chunk_seconds(model: nn.Module) -> None:
    return None   # the recipe's segment (a converted MSST model records its training chunk)


def loss(model: nn.Module, mix: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Per-source Mel-Band-RoFormer loss ``[N]``: waveform L1 + ``multi_stft_resolution_loss_weight`` x the
    multi-resolution STFT L1 (the package's own loss, whose value is the mean of these over sources)."""
    return per_source_loss(model, model.host if isinstance(model, Boosted) else model, mix, sources)


def onnx_form(model: nn.Module, chunk: int, *, boosted: bool = False) -> dict:
    """How ``booster export`` makes this Mel-Band-RoFormer an ONNX graph (STFT, complex masking and iSTFT in
    the runner, the mel bands' mask averaging in the graph): :mod:`booster.adapters._onnx_mel_band_roformer`."""
    from ._onnx_mel_band_roformer import onnx_form as form
    return form(model, chunk, boosted=boosted)
