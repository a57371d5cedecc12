"""ONNX export of the transcriber (``booster export`` for ``task: transcription``).

Shape glossary: B batch (chunks), C channels, S samples, F frequency bins, T frames, P pitches.

The graph is the whole transcriber on one chunk: ``audio`` ``[B, 1, S]`` mono at the host's rate in,
``onset`` / ``offset`` / ``frame`` / ``velocity`` ``[B, P, T]`` out (``T = S // frame_hop + 1``, time last so
that the runner cross-fades them as ``booster transcribe`` does: the logits and the raw velocity, the
sigmoid and the clamp come after the overlap-add). **The front end is in the graph**: the log-mel
spectrogram with ``torch.stft`` written as a convolution by the windowed DFT basis (:class:`GraphMel`; an
ONNX graph holds no complex numbers), the CQT as nnAudio computes it (already a pair of convolutions).
Equal to float32 rounding (relative error ~1e-7, checked on every export: ``graphs[0]["check"]``).

A boosted transcriber is **one graph** too: the chunk's audio through the traceable MuQ up to the deepest
layer used, the adapters and the host (:class:`booster.export.graph.BoostedGraph`): the features are the
chunk's own, as ``booster transcribe`` computes them (the kit's ``context="chunk"``).

Exporter: the TorchScript one (``torch.onnx.export(dynamo=False)``), for two reasons measured here: it keeps
the plain graph's time axis dynamic (the BiLSTMs become ONNX ``LSTM`` ops over any length; the dynamo
exporter specialised the frame count), and it exports the debug transcriber in ~2 s where dynamo took
50-150 s. A plain graph therefore takes any ``S >= frame_hop`` (the runner shortens the chunk of a short
file as ``booster transcribe`` does); a boosted graph takes exactly ``chunk`` samples (the adapters' time
alignment is fixed at export), so a file shorter than one chunk is zero-padded to one chunk there.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from booster.errors import ConfigError
from booster.training import boosting
from booster.training.hosts import chunk_seconds
from booster.training.inference import inference_segment

from .graph import TWO_GB, _no_fused_attention, _quiet, graph_module, to_fp16, weight_bytes
from .manifest import common_fields, stride
from .separation import backbone_entry

TASK = "transcription"
HEADS = ("onset", "offset", "frame", "velocity")
OVERLAP = 0.25                      # booster transcribe's defaults
ONSET_THRESHOLD = FRAME_THRESHOLD = 0.5
MEANINGS = {"onset": "onset logits (sigmoid: probability that a note of this pitch starts in this frame)",
            "offset": "offset logits (sigmoid: probability that a note ends here; not used by the decoding)",
            "frame": "frame logits (sigmoid: probability that a note of this pitch sounds in this frame)",
            "velocity": "velocity / 127 regressed at onsets, raw (clamp to [0, 1] after the overlap-add)"}


class GraphMel(nn.Module):
    """The transcriber's :class:`booster.models.frontends.LogMel` with ``torch.stft`` as a convolution by
    the windowed DFT basis: ``wav`` ``[B, S]`` → ``log(max(mel power, floor))`` ``[B, T, n_bins]``."""

    def __init__(self, frontend: nn.Module):
        super().__init__()
        from booster.models.frontends import LOG_FLOOR
        spec, mel = frontend.mel.spectrogram, frontend.mel.mel_scale
        if spec.power != 2.0 or spec.normalized or not spec.center or not spec.onesided or spec.pad:
            raise ConfigError("this transcriber's mel front end is not the toolkit's (power 2, centred, onesided)")
        n_fft, win = spec.n_fft, spec.window.double()
        w = torch.zeros(n_fft, dtype=torch.float64)
        left = (n_fft - win.numel()) // 2
        w[left:left + win.numel()] = win
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        ang = 2 * math.pi * k * torch.arange(n_fft, dtype=torch.float64)[None] / n_fft
        basis = torch.cat([torch.cos(ang), -torch.sin(ang)]) * w                  # [2F, n_fft]
        self.register_buffer("basis", basis.float()[:, None], persistent=False)
        self.register_buffer("fb", mel.fb.float().clone(), persistent=False)      # [F, n_bins]
        self.n_fft, self.hop, self.pad_mode, self.floor = n_fft, spec.hop_length, spec.pad_mode, LOG_FLOOR
        self.hop_length, self.n_bins = frontend.hop_length, frontend.n_bins

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(wav.float()[:, None], (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
        z = nn.functional.conv1d(x, self.basis, stride=self.hop)                  # [B, 2F, T]
        half = z.shape[1] // 2
        power = z[:, :half] ** 2 + z[:, half:] ** 2                               # [B, F, T]
        return torch.log(torch.matmul(power.transpose(1, 2), self.fb).clamp(min=self.floor))   # [B, T, n_bins]


@contextlib.contextmanager
def graph_frontend(host: nn.Module):
    """Inside the block ``host``'s log-mel front end is a :class:`GraphMel` (the CQT is left as it is)."""
    from booster.models.frontends import LogCQT, LogMel
    old = host.frontend
    if isinstance(old, LogMel):
        host.frontend = GraphMel(old)
    elif not isinstance(old, LogCQT):
        raise ConfigError(f"transcriber front end {type(old).__name__} cannot be exported (mel or cqt only)")
    try:
        yield
    finally:
        host.frontend = old


class HeadsGraph(nn.Module):
    """``audio`` ``[B, 1, S]`` → the four heads ``[B, P, T]`` (time last), of a plain or boosted transcriber."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = graph_module(model)

    def forward(self, audio: torch.Tensor):
        out = self.model(audio)
        return tuple(out[k].transpose(1, 2) for k in HEADS)


def default_chunk_seconds(model, meta: dict) -> float:
    """What ``booster transcribe`` chunks this model by (a boosted model: its training segment)."""
    host = boosting.host_of(model)
    return inference_segment(model, meta, chunk_seconds(meta["host"]["name"], host, 20.0))


def frame_chunk(chunk: int, frame_hop: int) -> int:
    """The chunk rounded to whole frames, as :class:`booster.training.inference.ChunkedInference` rounds it."""
    return max(frame_hop, int(round(chunk / frame_hop)) * frame_hop)


def _export(module: nn.Module, audio: torch.Tensor, path: Path, *, dynamic_length: bool, opset: int,
            fp16: bool, extra_bytes: int) -> dict:
    """:func:`booster.export.graph.to_onnx` with the TorchScript exporter only and, for a plain graph, the time
    axes dynamic too (``S`` in, ``T`` out)."""
    big = weight_bytes(module) + extra_bytes > TWO_GB
    axes = {"audio": {0: "B", 2: "S"} if dynamic_length else {0: "B"}}
    axes.update({h: {0: "B", 2: "T"} if dynamic_length else {0: "B"} for h in HEADS})
    try:
        with _quiet(), _no_fused_attention(), torch.no_grad():
            torch.onnx.export(module, (audio,), str(path), input_names=["audio"], output_names=list(HEADS),
                              opset_version=opset, dynamo=False, dynamic_axes=axes, do_constant_folding=True,
                              external_data=big)
    except Exception as e:      # the exporter raises many kinds; its first line says what failed
        for f in path.parent.glob(path.name + "*"):
            f.unlink()
        raise ConfigError(f"the transcriber cannot be exported to ONNX: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:300] if str(e) else ''}") from None
    if fp16:
        to_fp16(path, big)
    return {"file": path.name, "exporter": "torchscript", "external_data": big, "fp16": bool(fp16)}


def check_graph(model: nn.Module, path: Path, audio: torch.Tensor) -> float:
    """Largest relative error (max |onnx - torch| / max |torch|, over the heads) on ``audio`` of the graph at
    ``path`` against ``model`` itself (the transcriber's own front end; a boosted one's live backbone path)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3          # errors only (fp16 folding warnings)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = sess.run(list(HEADS), {"audio": audio.numpy()})
    with torch.no_grad():
        out = model(audio)
    want = [out[h].transpose(1, 2).numpy() for h in HEADS]
    return max(float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-12)) for g, w in zip(got, want))


def export_graphs(model, meta: dict, out_dir: Path, *, chunk: int, opset: int = 18, fp16: bool = False) -> dict:
    """Write ``out_dir/model.onnx``; return the manifest (common fields + the transcription fields)."""
    model = model.cpu().eval()
    host, boosted = boosting.host_of(model), boosting.is_boosted(model)
    hop, p = int(host.hop_length), host.num_pitches
    chunk = frame_chunk(int(chunk), hop)
    if boosted:
        limit = 30 * int(host.sample_rate)
        if chunk > limit:
            raise ConfigError(f"a boosted transcriber's chunk ({chunk / host.sample_rate:.1f} s) must fit MuQ's "
                              "30-s window; export with --chunk-seconds 30 or less")
    module = HeadsGraph(model).eval()
    audio = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal((2, 1, chunk))).astype(np.float32))
    path = Path(out_dir) / "model.onnx"
    extra = weight_bytes(boosting.backbone_of(model)) if boosted else 0
    with graph_frontend(host):
        info = _export(module, audio, path, dynamic_length=not boosted, opset=opset, fp16=fp16, extra_bytes=extra)
    info["check"] = {"max_relative_error": check_graph(model, path, audio), "against": "the PyTorch model (float32) "
                     f"on a random chunk [2, 1, {chunk}]" + (", the graph's weights float16" if fp16 else "")}
    s, t = ("S", "T") if not boosted else (chunk, chunk // hop + 1)
    info["inputs"] = [{"name": "audio", "shape": ["B", 1, s], "dtype": "float32",
                       "meaning": f"mono audio at {host.sample_rate} Hz, one chunk per row"
                                  + ("" if boosted else f" (any length >= {hop} samples)")}]
    info["outputs"] = [{"name": h, "shape": ["B", p, t], "dtype": "float32", "meaning": MEANINGS[h]} for h in HEADS]
    out = common_fields(task=TASK, host=meta["host"]["name"], boosted=boosted, sample_rate=int(host.sample_rate),
                        channels=1, chunk=chunk, overlap=OVERLAP, graphs=[info], pre=[], post=[],
                        backbone=backbone_entry(model, meta))
    out["hop"] = stride(chunk, OVERLAP, hop)        # chunk starts on whole frames, as booster transcribe's
    out.update(transcription_fields(host, boosted=boosted, frames=t))
    return out


def transcription_fields(host, *, boosted: bool, frames="T") -> dict:
    """The manifest's transcription part: heads, frame grid, pitch range, decoding, short inputs. ``frames``:
    the heads' T (a number for a fixed-length graph)."""
    hop, (low, high) = int(host.hop_length), host.pitch_range
    return {
        "heads": {h: {"output": h, "shape": ["B", host.num_pitches, frames], "meaning": MEANINGS[h]} for h in HEADS},
        "frame_rate": host.sample_rate / hop, "frame_hop": hop,
        "frames": f"T = S // {hop} + 1 frames per S samples; frame t is centred on sample t * {hop} "
                  f"(t / frame_rate s); chunk outputs cross-fade on this grid (chunk starts are multiples of {hop})",
        "pitch_range": [int(low), int(high)],
        "pitches": f"row p of every head is MIDI pitch {low} + p",
        "dynamic_length": not boosted,
        "short_input": ("a file shorter than one chunk runs as one chunk of its length rounded up to whole frames, "
                        "as booster transcribe does" if not boosted else
                        "the graph takes exactly one chunk: a shorter file is zero-padded to one chunk (booster "
                        "transcribe runs it at its own length, so notes near its end may differ)"),
        "decoding": {
            "onset_threshold": ONSET_THRESHOLD, "frame_threshold": FRAME_THRESHOLD, "min_note_frames": 1,
            "after_overlap_add": "onset, frame: sigmoid; velocity: clamp to [0, 1]; all three rounded to float16 "
                                 "(what booster transcribe keeps) before the thresholds",
            "rule": "a note starts at the first frame of every run of onset >= onset_threshold; it lasts through "
                    "its onset run, then while frame >= frame_threshold, and stops at the next onset start of the "
                    "same pitch (so at least min_note_frames = 1 frame); start = t / frame_rate, end = end frame "
                    "/ frame_rate seconds",
            "velocity": "round(127 * mean(velocity over the onset run)), clipped to 1..127",
            "reference": "booster/recipes/transcription/decoding.py: decode_notes",
        },
    }
