"""booster export --model CKPT -o DIR: a trained model as ONNX graph(s) + manifest.json, for a DAW or plug-in.

Writes DIR/model.onnx (weights in DIR/model.onnx.data when over 2 GB) and DIR/manifest.json: sample rate,
channels, chunk / hop / latency in samples, the overlap window, each graph's inputs and outputs, what runs
outside the graph per chunk (STFT / iSTFT, with all their settings), the sources or heads, the backbone and
its licence. A boosted model is one graph: MuQ up to the deepest layer used, the adapters and the host.
Run it without PyTorch: python -m booster.export.runner DIR IN... -o OUT (numpy, soundfile, onnxruntime).
"""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (+ manifest) for a torch-free runner",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a .ckpt from `booster fit` or a .safetensors model file")
    p.add_argument("-o", "--output", required=True, help="output folder: model.onnx + manifest.json")
    p.add_argument("--chunk-seconds", type=float, default=None,
                   help="chunk length (default: what booster separate / transcribe use for this model)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (inputs/outputs stay float32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..export import export_model
    from ..export.manifest import read_manifest

    t0 = time.perf_counter()
    path = export_model(args.model, args.output, chunk_seconds=args.chunk_seconds, opset=args.opset, fp16=args.fp16)
    m = read_manifest(path.parent)
    size = sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file()) / 2 ** 20
    kind = "boosted " if m["boosted"] else ""
    print(f"exported {kind}{m['host']} ({m['task']}) to {path.parent}: {len(m['graphs'])} graph(s), chunk "
          f"{m['chunk']} samples at {m['sample_rate']} Hz, {size:.1f} MB, {time.perf_counter() - t0:.1f} s")
    return 0
