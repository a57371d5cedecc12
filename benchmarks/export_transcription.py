"""The exported transcriber against PyTorch eager (issue 23): real-time factor of ONNX Runtime (CPU) vs eager
in one run, export time and file size, for the plain and boosted transcriber at debug and full size.

Shape glossary: S samples, T frames, P pitches.

Per case: the model (random weights; ``full`` boosted: the MuQ-large architecture, ``MuQConfig.large()``,
written once in the official layout and loaded as ``backbone: <dir>``, layers 6, 9, 12 as
``transcription/boosted``; ``debug`` boosted: ``MuQ.debug``, layer 1) is saved as a ``.safetensors``
transcriber file, exported with ``booster.export.export_model`` (timed; the folder's size), then one
synthetic ``--seconds`` long 16-kHz file is transcribed to MIDI by both, interleaved, best of ``--repeats``:

* eager: ``Transcriber.transcribe_file`` (what ``booster transcribe`` runs), ``torch.set_num_threads(--threads)``;
* onnx: ``booster.export.runner_transcription.process_file`` (what ``python -m booster.export.runner`` runs),
  onnxruntime's CPU provider with ``--threads`` intra-op threads.

Both chunk as ``booster transcribe`` does (plain: 20-s chunks; boosted: the training segment, 10 s here),
one chunk per batch. RTF = wall time / audio seconds; ``ratio`` = onnx / eager (below 1: ONNX faster).
``notes`` counts what each found (they should agree). Run by hand::

    python benchmarks/export_transcription.py --threads 1                       # all four cases
    python benchmarks/export_transcription.py --sizes debug --seconds 20        # quick look

Prints one JSON line per case, then one with all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 16000
FULL_LAYERS = [6, 9, 12]


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2 ** 20


def model_file(workdir: Path, size: str, boosted: bool) -> Path:
    """The transcriber of ``size`` (boosted or not) saved as one ``.safetensors`` file (made once)."""
    import torch

    from booster import MuQ, MuQConfig
    from booster.adapters import onsets_frames as plugin
    from booster.recipes.transcription.inference import Transcriber
    from booster.training.checkpoint import describe
    from booster.training.hosts import HostSpec

    path = workdir / f"transcriber-{size}-{'boosted' if boosted else 'plain'}.safetensors"
    if path.is_file():
        return path
    torch.manual_seed(0)
    model = plugin.build(size=size)
    backbone, layers = None, None
    if boosted:
        if size == "full":
            backbone = workdir / "muq-large-random"
            if not (backbone / "config.json").is_file():
                MuQ(MuQConfig.large()).randomise_(0).save_pretrained(backbone)
            muq, layers = MuQ.from_pretrained(str(backbone)), FULL_LAYERS
        else:
            backbone, muq, layers = "debug", MuQ.debug(seed=0), [1]
        model = plugin.boost(model, muq, layers=layers)
    meta = describe("transcription", HostSpec("onsets_frames", plugin.architecture(model)), model,
                    backbone=str(backbone) if backbone else None, boost_kwargs={"layers": layers} if layers else {},
                    sample_rate=SR, hop_length=512, pitch_range=list(model.pitch_range), segment=10.0)
    return Transcriber(model.eval(), meta).save(path)


def synthetic_file(workdir: Path, seconds: float) -> Path:
    """A piano-like test signal: random chords of decaying harmonics over noise, ``seconds`` at 16 kHz."""
    import soundfile as sf
    path = workdir / f"song-{seconds:g}s.wav"
    if path.is_file():
        return path
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.01 * rng.standard_normal(n)
    for start in np.arange(0, seconds, 0.25):
        for pitch in rng.integers(40, 90, 2):
            f0, a = 440 * 2 ** ((pitch - 69) / 12), int(start * SR)
            tt = t[a:a + SR] - start
            x[a:a + SR] += sum(0.1 / k * np.sin(2 * np.pi * k * f0 * tt) for k in (1, 2, 3)) * np.exp(-3 * tt)
    sf.write(path, (0.5 * x / np.abs(x).max()).astype(np.float32), SR)
    return path


def run_case(workdir: Path, size: str, boosted: bool, song: Path, *, threads: int, repeats: int) -> dict:
    import pretty_midi
    import torch

    from booster.export import export_model, runner, runner_transcription
    from booster.recipes.transcription.inference import Transcriber

    torch.set_num_threads(threads)
    src = model_file(workdir, size, boosted)
    out = workdir / f"onnx-{src.stem}"
    t0 = time.perf_counter()
    manifest = json.loads(export_model(src, out).read_text())
    export_s = time.perf_counter() - t0
    eager = Transcriber.load(src, batch_size=1)
    manifest, sessions = runner.load(out, threads=threads)
    seconds = runner.read_audio(song, manifest).shape[-1] / SR
    times, notes = {"eager": [], "onnx": []}, {}
    for _ in range(repeats):                    # interleaved: load hits both alike
        t0 = time.perf_counter()
        notes["eager"] = len(eager.transcribe_file(song, workdir / "eager")["notes"])
        times["eager"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        midi = runner_transcription.process_file(manifest, sessions, song, workdir / "onnx")["midi"]
        times["onnx"].append(time.perf_counter() - t0)
        notes["onnx"] = sum(len(i.notes) for i in pretty_midi.PrettyMIDI(str(midi)).instruments)
    best = {k: min(v) for k, v in times.items()}
    return {"size": size, "boosted": boosted, "audio_s": round(seconds, 2), "chunk_s": manifest["chunk"] / SR,
            "threads": threads, "rtf_eager": round(best["eager"] / seconds, 4),
            "rtf_onnx": round(best["onnx"] / seconds, 4), "ratio": round(best["onnx"] / best["eager"], 3),
            "export_s": round(export_s, 1), "onnx_mb": round(folder_mb(out), 1),
            "check_max_rel_error": manifest["graphs"][0]["check"]["max_relative_error"],
            "notes_eager": notes["eager"], "notes_onnx": notes["onnx"], "load1": round(os.getloadavg()[0], 2),
            "times": {k: [round(x, 2) for x in v] for k, v in times.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="debug,full")
    p.add_argument("--variants", default="plain,boosted")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workdir", default=None, help="where models, exports and the test file go (kept)")
    a = p.parse_args(argv)
    workdir = Path(a.workdir or Path(tempfile.gettempdir()) / "export_transcription_bench")
    workdir.mkdir(parents=True, exist_ok=True)
    song = synthetic_file(workdir, a.seconds)
    results = []
    for size in a.sizes.split(","):
        for variant in a.variants.split(","):
            r = run_case(workdir, size, variant == "boosted", song, threads=a.threads, repeats=a.repeats)
            print(json.dumps(r), flush=True)
            results.append(r)
    print(json.dumps({"benchmark": "export_transcription", "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
