"""Tiny MSST models for the import tests: configs shaped like MSST's published ones (configs/
config_vocals_bs_roformer.yaml, config_vocals_mel_band_roformer.yaml, config_musdb18_*.yaml: the same sections,
keys and ``!!python/tuple`` tags) at debug sizes, checkpoints of random weights saved from the reference module
(:mod:`reference`), and an independent re-statement of MSST's chunked inference (``utils/model_utils.demix``).

Shapes: C channels, S samples, N sources.
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from reference import reference

SR = 16000
HOP = 128
CHUNK = 48 * HOP            # audio.chunk_size: 6144 samples, 0.384 s
VOCALS = dict(instruments=["vocals", "other"], target="vocals")
FOUR = dict(instruments=["bass", "drums", "other", "vocals"], target=None)
BANDS = [16] * 15 + [17]   # 257 bins of a 512-point STFT


def model_section(kind: str, stems: int, stereo: bool, **extra) -> dict:
    m = dict(dim=16, depth=2, stereo=stereo, num_stems=stems, time_transformer_depth=1, freq_transformer_depth=1,
             linear_transformer_depth=0, dim_head=8, heads=2, attn_dropout=0.1, ff_dropout=0.1, flash_attn=True,
             dim_freqs_in=257, stft_n_fft=512, stft_hop_length=HOP, stft_win_length=512, stft_normalized=False,
             mask_estimator_depth=2, multi_stft_resolution_loss_weight=1.0,
             multi_stft_resolutions_window_sizes=(512, 256), multi_stft_hop_size=147, multi_stft_normalized=False,
             mlp_expansion_factor=4, use_torch_checkpoint=False, skip_connection=False, zero_dc=False)
    if kind == "bs_roformer":
        m["freqs_per_bands"] = tuple(BANDS)
    else:
        m.update(num_bands=16, sample_rate=SR)
    m.update(extra)
    return m


def _yaml_value(v) -> str:
    if isinstance(v, tuple):
        return "!!python/tuple\n" + "".join(f"    - {x}\n" for x in v).rstrip("\n")
    if isinstance(v, bool):
        return "true" if v else "false"
    return "null" if v is None else str(v)


def write_config(path: Path, kind: str, stems: dict = VOCALS, stereo: bool = True, num_overlap: int = 4,
                 chunk: int = CHUNK, model: dict | None = None, **extra) -> Path:
    """An MSST config file (YAML written the way MSST's configs are, tuples tagged)."""
    m = model if model is not None else model_section(kind, 1 if stems["target"] else len(stems["instruments"]),
                                                      stereo, **extra)
    lines = ["audio:", f"  chunk_size: {chunk}", "  dim_f: 256", "  dim_t: 49", f"  hop_length: {HOP}",
             "  n_fft: 512", f"  num_channels: {2 if m.get('stereo') else 1}", f"  sample_rate: {SR}",
             "  min_mean_abs: 0.001", "", "model:"]
    lines += [f"  {k}: {_yaml_value(v)}" for k, v in m.items()]
    lines += ["", "training:", "  batch_size: 2", "  instruments:"] + [f"  - {s}" for s in stems["instruments"]]
    lines += [f"  target_instrument: {stems['target'] or 'null'}", "  use_amp: true", "",
              "inference:", "  batch_size: 1", "  dim_t: 49", f"  num_overlap: {num_overlap}", ""]
    path.write_text("\n".join(lines))
    return path


# what BS-RoFormer 0.4.1 lacks of MSST's keywords (tested against hand-checked expectations instead)
NOT_IN_REFERENCE = ("mlp_expansion_factor", "use_torch_checkpoint", "skip_connection", "zero_dc", "sage_attention")


def reference_model(kind: str, model: dict, seed: int = 0) -> torch.nn.Module:
    """The 0.4.1 module of an MSST ``model:`` section, random weights (every parameter perturbed)."""
    bs, mel = reference()
    kw = {k: v for k, v in model.items() if k not in NOT_IN_REFERENCE}
    kw["flash_attn"] = False
    if kind == "bs_roformer":
        assert kw.pop("linear_transformer_depth", 0) == 0
        ref = bs.BSRoformer(**kw)
    else:
        ref = mel.MelBandRoformer(**kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return ref.eval()


def msst_names(state: dict) -> dict:
    """0.4.1 Mel-Band-RoFormer names -> MSST's class names for blocks without linear attention
    (``layers.i.{1,2}`` -> ``layers.i.{0,1}``)."""
    def rename(k):
        p = k.split(".", 3)
        return f"layers.{p[1]}.{int(p[2]) - 1}.{p[3]}" if p[0] == "layers" else k
    return {rename(k): v for k, v in state.items()}


def run_reference(ref, x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, C, S]`` -> ``[B, N, C, S']`` (0.4.1 drops the source axis of one-stem models)."""
    with torch.no_grad():
        out = ref(x)
    return out[:, None] if out.dim() == 3 else out


def msst_demix(model_fn, mix: torch.Tensor, chunk: int, num_overlap: int) -> torch.Tensor:
    """MSST's generic ``demix`` (batch size 1) restated: ``mix`` ``[C, S]`` -> ``[N, C, S]``.

    Step ``chunk // N``; border ``chunk - step``: the track is reflect-padded by it at both ends when longer
    than two borders; every chunk start below the padded length; a chunk running past the end is padded, by
    reflection when more than half of it is audio, else with zeros; weights a linear fade over ``chunk // 10``
    samples at both ends (from 0 and to 0), none at the start of the first chunk, else none at the end of
    the last;
    weighted sum / weight sum (0/0 -> 0); the border is cut off again.

    Checked against MSST's code (ZFTurbo/Music-Source-Separation-Training at ccc011a, utils/model_utils.py
    ``demix``, generic mode): its first / last tests are made per batch (``i - step == 0``, ``i >= length``),
    so with ``inference.batch_size`` 1 they are this per-chunk rule; larger MSST batches drop the fades of
    every chunk of the first / last batch. The older ``utils.demix_track`` differed: reflection only when
    more than ``chunk // 2 + 1`` samples are audio, and a window edited in place (after the first chunk no
    chunk fades in), fixed by MSST since."""
    step, fade = chunk // num_overlap, chunk // 10
    border, length = chunk - step, mix.shape[-1]
    padded = length > 2 * border and border > 0
    if padded:
        mix = F.pad(mix[None], (border, border), mode="reflect")[0]
    total = mix.shape[-1]
    window = torch.ones(chunk)
    window[:fade], window[-fade:] = torch.linspace(0, 1, fade), torch.linspace(1, 0, fade)
    result = counter = None
    starts = list(range(0, total, step))
    for i in starts:
        part = mix[:, i:i + chunk]
        n = part.shape[-1]
        mode = "reflect" if n > chunk // 2 else "constant"
        part = F.pad(part[None], (0, chunk - n), mode=mode)
        out = model_fn(part)[0]                                   # [N, C, chunk]
        w = window.clone()
        if i == 0:                                                # (MSST: if / elif)
            w[:fade] = 1
        elif i == starts[-1]:
            w[-fade:] = 1
        if result is None:
            result = torch.zeros(out.shape[0], mix.shape[0], total)
            counter = torch.zeros_like(result)
        result[..., i:i + n] += out[..., :n] * w[:n]
        counter[..., i:i + n] += w[:n]
    est = torch.nan_to_num(result / counter, nan=0.0)
    return est[..., border:-border] if padded else est


def error_db(got: torch.Tensor, want: torch.Tensor) -> float:
    """Error energy over signal energy, in dB."""
    return float(10 * torch.log10(((got - want) ** 2).sum() / (want ** 2).sum()))
