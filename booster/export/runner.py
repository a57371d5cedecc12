"""Run an exported model folder with numpy, soundfile and onnxruntime only (torch is never imported).

Shape glossary: B batch (chunks run together), C channels, S samples, T output frames, K chunks.

``python -m booster.export.runner DIR IN... -o OUT [--batch K] [--threads N]`` processes audio files with the
graph(s) and ``manifest.json`` that ``booster export`` wrote into DIR, the way the manifest says: the input is
cut into chunks of ``chunk`` samples every ``hop`` samples (zero-padded past the end), the ``pre`` steps
(:mod:`booster.export.dsp`) and the graph run on each batch of chunks, then the ``post`` steps, and the chunk
outputs are cross-faded with the kit's triangle weights (:func:`chunked`, the same result as
``booster.training.chunking.chunked_apply``; a manifest whose ``chunking.mode`` is "msst", a model converted
from Music-Source-Separation-Training, is chunked as MSST's ``demix``: :func:`msst_chunked`). What is done
per task (files written) lives in ``booster.export.runner_<task>.process_file``. This file is the reference a
C++ plug-in developer ports.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from booster.errors import AudioError, BoosterError, CheckpointError, ConfigError

from .manifest import read_manifest


def load(folder: str | os.PathLike, *, threads: int | None = None, providers=None) -> tuple[dict, dict]:
    """``(manifest, {graph file: onnxruntime.InferenceSession})`` of an exported folder."""
    import onnxruntime as ort

    manifest = read_manifest(folder)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    sessions = {}
    for g in manifest["graphs"]:
        path = Path(folder).expanduser() / g["file"]
        if not path.is_file():
            raise CheckpointError(f"{str(folder)!r} lacks the graph file {g['file']!r} that its manifest names")
        try:
            sessions[g["file"]] = ort.InferenceSession(str(path), opts, providers=providers or
                                                       ["CPUExecutionProvider"])
        except Exception as e:   # onnxruntime's own exceptions (InvalidGraph, Fail...)
            raise CheckpointError(f"onnxruntime cannot load {str(path)!r}: {str(e).splitlines()[0][:300]}") from None
    return manifest, sessions


def read_audio(path: str | os.PathLike, manifest: dict) -> np.ndarray:
    """An audio file as float32 ``[C, S]`` with the manifest's channel count (averaged to mono, mono repeated,
    or the mean in every channel, as ``booster.audio.convert_channels``). The file must be at the manifest's
    sample rate (this runner does not resample): another rate is one line."""
    import soundfile as sf

    p = Path(path).expanduser()
    if not p.is_file():
        raise AudioError(f"input {str(p)!r} does not exist" if not p.exists() else f"input {str(p)!r} is not a file")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)   # [S, C]
    except Exception as e:   # soundfile.LibsndfileError and friends
        raise AudioError(f"cannot read {str(p)!r} as audio ({type(e).__name__}: {e})") from None
    want = int(manifest["sample_rate"])
    if rate != want:
        raise AudioError(f"{str(p)!r} is at {rate} Hz but the model runs at {want} Hz; resample it first "
                         f"(e.g. ffmpeg -i IN -ar {want} OUT.wav)")
    if data.shape[0] == 0:
        raise AudioError(f"{str(p)!r} holds no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{str(p)!r} holds NaN or infinite samples")
    return convert_channels(np.ascontiguousarray(data.T), int(manifest["channels"]))


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """``[C, S]`` -> ``[channels, S]`` as ``booster.audio.convert_channels``."""
    c = x.shape[0]
    if c == channels:
        return x
    mean = x.mean(0, keepdims=True)
    return mean if channels == 1 else np.repeat(mean if c > 1 else x, channels, 0)


def triangle(n: int, power: float = 1.0) -> np.ndarray:
    """``[n]`` weights of the kit's cross-fade (``booster.training.chunking.triangle``)."""
    w = np.concatenate([np.arange(1, n // 2 + 1), np.arange(n - n // 2, 0, -1)]).astype(np.float32)
    return (w / w.max()) ** np.float32(power)


def chunk_starts(length: int, chunk: int, hop: int) -> list[int]:
    """Chunk starts covering ``[0, length)``: ``0, hop, 2 hop, ...`` up to the first chunk that reaches
    ``length`` (an input no longer than ``chunk`` is one chunk), as ``booster.training.chunking.chunk_starts``."""
    return [k * hop for k in range(1 + max(0, -(-(length - chunk) // hop)))]


def chunked(x: np.ndarray, manifest: dict, run_batch: Callable[[np.ndarray], np.ndarray], *,
            out_hop: int = 1, out_frames: int | None = None, batch_size: int = 1) -> np.ndarray:
    """``x`` ``[C, S]`` -> ``[..., T]``: ``run_batch(chunks [K, C, chunk]) -> [K, ..., T_chunk]`` over the
    manifest's chunks, cross-faded with its triangle window. ``out_hop``: input samples per output frame
    (1: the output is audio; chunk starts are multiples of it); ``out_frames``: output length (default
    ``ceil(S / out_hop)``). Equal to ``booster.training.chunking.chunked_apply`` to float rounding."""
    if manifest.get("chunking", {}).get("mode", "kit") == "msst":
        if out_hop != 1:
            raise CheckpointError(f"MSST chunking is for waveform outputs, not frames of {out_hop} samples")
        return msst_chunked(x, manifest, run_batch, batch_size=batch_size)
    chunk, hop, length = int(manifest["chunk"]), int(manifest["hop"]), x.shape[-1]
    if hop % out_hop or chunk % out_hop:
        raise CheckpointError(f"manifest chunk {chunk} / hop {hop} are not multiples of the output hop {out_hop}")
    starts = chunk_starts(length, chunk, hop)
    total = int(out_frames) if out_frames is not None else -(-length // out_hop)
    acc = wsum = weight = None
    for b in range(0, len(starts), batch_size):
        group = starts[b:b + batch_size]
        parts = np.zeros((len(group), x.shape[0], chunk), np.float32)
        for k, s in enumerate(group):
            piece = x[:, s:s + chunk]
            parts[k, :, :piece.shape[-1]] = piece
        outs = np.asarray(run_batch(parts), np.float32)
        for k, s in enumerate(group):
            out, f0 = outs[k], s // out_hop
            if acc is None:
                t_chunk = out.shape[-1]
                weight = triangle(t_chunk, manifest.get("window", {}).get("power", 1.0))
                size = max(total, (starts[-1] // out_hop) + t_chunk)
                acc = np.zeros(out.shape[:-1] + (size,), np.float32)
                wsum = np.zeros(size, np.float32)
            n = out.shape[-1]
            acc[..., f0:f0 + n] += out * weight
            wsum[f0:f0 + n] += weight
    return acc[..., :total] / wsum[:total]


def msst_window(n: int, first: bool, last: bool) -> np.ndarray:
    """``[n]`` weights of MSST's ``demix`` (``booster.training.chunking.msst_window``): ones, a linear fade-in
    over ``n // 10`` samples except on the first chunk, a fade-out except on the last (the first keeps it)."""
    fade, w = n // 10, np.ones(n, np.float32)
    if fade:
        if not first:
            w[:fade] = np.linspace(0, 1, fade, dtype=np.float32)
        if first or not last:
            w[-fade:] = np.linspace(1, 0, fade, dtype=np.float32)
    return w


def reflect_index(idx: np.ndarray, length: int) -> np.ndarray:
    """Indices on a signal reflect-padded at both ends (no edge repeat) -> indices into ``[0, length)``."""
    if length == 1:
        return np.zeros_like(idx)
    period = 2 * (length - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= length, period - idx, idx)


def msst_chunked(x: np.ndarray, manifest: dict, run_batch: Callable[[np.ndarray], np.ndarray], *,
                 batch_size: int = 1) -> np.ndarray:
    """``x`` ``[C, S]`` -> ``[..., S]`` by MSST's ``demix`` (manifest ``chunking.mode`` "msst", step
    ``chunking.step``), as ``booster.training.chunking.msst_apply``: an input no longer than a chunk is one
    chunk; else the input is reflect-padded by ``border = chunk - step`` at both ends (when longer than two
    borders), chunks start every ``step`` samples below the padded length, a chunk past the end is
    reflect-padded when more than half of it is audio (else zeros), outputs are weighted by
    :func:`msst_window` over their audio part, summed and divided by the weight sum (0/0 -> 0)."""
    chunk, step, length = int(manifest["chunk"]), int(manifest["chunking"]["step"]), x.shape[-1]
    if not 1 <= step <= chunk:
        raise CheckpointError(f"manifest chunking step {step} must be in [1, {chunk}] samples")
    border = chunk - step
    off = border if (length > 2 * border and border > 0 and length > chunk) else 0
    total = length + 2 * off
    padded = x[:, reflect_index(np.arange(-off, length + off), length)]           # [C, total]
    starts = [0] if length <= chunk else list(range(0, total, step))
    acc = wsum = None
    for b in range(0, len(starts), batch_size):
        group = starts[b:b + batch_size]
        parts = np.zeros((len(group), x.shape[0], chunk), np.float32)
        for k, i in enumerate(group):
            piece = padded[:, i:i + chunk]
            n = piece.shape[-1]
            mode = "reflect" if n < chunk and n > chunk // 2 else "constant"
            parts[k] = np.pad(piece, [(0, 0), (0, chunk - n)], mode=mode) if n < chunk else piece
        outs = np.asarray(run_batch(parts), np.float32)
        for k, i in enumerate(group):
            if acc is None:
                acc = np.zeros(outs.shape[1:-1] + (total,), np.float32)
                wsum = np.zeros(total, np.float32)
            n = min(chunk, total - i)
            last = b + k == len(starts) - 1
            w = (np.ones(chunk, np.float32) if len(starts) == 1 else msst_window(chunk, i == 0, last))[:n]
            acc[..., i:i + n] += outs[k][..., :n] * w
            wsum[i:i + n] += w
    out = np.where(wsum > 0, acc / np.maximum(wsum, 1e-30), 0).astype(np.float32)
    return out[..., off:off + length]


def graph_runner(manifest: dict, sessions: dict) -> Callable[[np.ndarray], dict]:
    """``run(chunks [K, C, chunk]) -> {name: array}``: the ``pre`` steps, every graph in order (each fed the
    named arrays its inputs name; a graph whose batch axis is a number, not "B", is fed that many chunks
    per call), the ``post`` steps."""
    from .dsp import run_steps

    def run(chunks: np.ndarray) -> dict:
        table = run_steps(manifest["pre"], {"mix": np.ascontiguousarray(chunks, np.float32)})
        for g in manifest["graphs"]:
            sess = sessions[g["file"]]
            names = [o["name"] for o in g["outputs"]]
            fixed = g["inputs"][0]["shape"][0]       # "B", or a graph made for a fixed batch (e.g. 1)
            step = len(chunks) if fixed == "B" else int(fixed)
            parts = [sess.run(names, {i["name"]: table[i["name"]][a:a + step] for i in g["inputs"]})
                     for a in range(0, len(chunks), step)]
            table.update({n: np.concatenate([p[k] for p in parts]) for k, n in enumerate(names)})
        return run_steps(manifest["post"], table)
    return run


def task_module(manifest: dict):
    task = manifest["task"]
    try:
        return importlib.import_module(f"booster.export.runner_{task}")
    except ModuleNotFoundError as e:
        if e.name != f"booster.export.runner_{task}":
            raise
        raise CheckpointError(f"this runner cannot run {task!r} models (no booster.export.runner_{task})") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m booster.export.runner", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="folder written by `booster export` (manifest.json + .onnx)")
    p.add_argument("inputs", nargs="+", help="audio files at the model's sample rate")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--batch", type=int, default=1, help="chunks run together (default 1)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: its own)")
    args = p.parse_args(argv)
    try:
        if args.batch < 1:
            raise ConfigError(f"--batch must be positive, got {args.batch}")
        out = Path(args.output).expanduser()
        if out.exists() and not out.is_dir():
            raise ConfigError(f"-o {str(out)!r} is an existing file, not a folder; choose a folder path")
        manifest, sessions = load(args.model, threads=args.threads)
        mod = task_module(manifest)
        for f in args.inputs:
            paths = mod.process_file(manifest, sessions, f, out, batch_size=args.batch)
            print(f"{f} -> {', '.join(str(v) for v in paths.values())}")
    except BoosterError as e:
        print(f"runner: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
