"""``booster demo``: the main job on the embedded default — no downloads.

1. Generates a short synthetic song (FluidSynth when available, else the numpy synthesiser).
2. Extracts MuQ features from its mixture with ``--backbone`` (default: ``muq-mini``, the small MuQ pretrained
   by this project and shipped in checkpoints/muq-mini) and writes them to a feature file.
3. Unless ``--features-only``, runs the separation demo (booster.recipes.separation.demo): trains a
   baseline and a boosted debug-size separator with the same budget, evaluates both with museval,
   separates one mixture into stems and prints the comparison.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the embedded default (no downloads)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--seconds", type=float, default=8.0, help="length of the generated song")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=float, default=120.0,
                   help="training seconds per separator in the separation demo (default 120)")
    p.add_argument("--backbone", default="muq-mini",
                   help="backbone the features and the boosted separator use: 'muq-mini' (default; shipped, "
                        "pretrained by this project), 'debug' (tiny built-in MuQ, random weights), a local MuQ "
                        "directory or a hub id")
    p.add_argument("--features-only", action="store_true", help="stop after the feature extraction step")
    p.set_defaults(func=run, backbone_option="--backbone DIR")


def features_step(out: Path, seconds: float, seed: int, backbone: str = "debug") -> dict:
    import torch

    from ..audio import load
    from ..cache import save_features
    from ..data.synth import generate_dataset
    from ..backbone import load_backbone

    t0 = time.perf_counter()
    report = generate_dataset(out / "song", tracks=1, seconds=seconds, seed=seed, split="demo")
    track = out / "song" / report["tracks"][0]["path"]
    print(f"[1/2] generated a {seconds:.0f} s song with {report['renderer']} ({report['renderer_reason']}): "
          f"{track}  ({time.perf_counter() - t0:.1f} s)")
    wav, sr = load(track / "mixture.wav")
    muq = load_backbone(backbone, seed)
    layers = [n * muq.num_layers // 3 for n in (1, 2, 3)]
    t0 = time.perf_counter()
    feats = muq.extract(wav, sr, layers=layers)
    dt = time.perf_counter() - t0
    path = save_features(out / "features" / "mixture.safetensors", feats,
                         meta={"backbone": muq.identity, "source": str(track / "mixture.wav")})
    weights = ", random weights" if backbone == "debug" else ""
    print(f"[2/2] MuQ {muq.identity.get('name')} (D={muq.hidden_size}, {muq.num_layers} layers{weights}): "
          f"{wav.shape[0]} ch x {wav.shape[1]} samples @ {sr} Hz -> mono 24 kHz -> hidden "
          f"{list(feats.hidden.shape)} [B, L, T, D] at {feats.frame_rate:g} Hz in {dt:.2f} s "
          f"({wav.shape[1] / sr / dt:.0f}x real time)")
    for j, layer in enumerate(feats.layers):
        h = feats.hidden[0, j]
        cos = torch.nn.functional.cosine_similarity(h[1:], h[:-1], dim=-1).mean().item()
        print(f"      layer {layer:2d}: mean {h.mean():+.3f}  std {h.std():.3f}  "
              f"frame-to-frame cosine {cos:.3f}")
    print(f"      features written to {path}")
    return {"track": str(track), "features": str(path), "shape": list(feats.hidden.shape)}


def run(args: argparse.Namespace) -> int:
    from ..fsutil import check_finite_option, output_dir

    check_finite_option(args.seconds, "--seconds", positive=True)
    check_finite_option(args.budget, "--budget", positive=True)
    with output_dir(args.output) as out:   # an existing file / read-only place: one line; left empty: removed
        print(f"muq-booster demo -> {out.resolve()}")
        features_step(out, args.seconds, args.seed, args.backbone)
        if args.features_only:
            return 0
        try:
            from ..recipes.separation import demo as separation_demo
        except ImportError as e:
            print(f"separation demo unavailable: {e}")
            return 1
        separation_demo.run(out / "separation", seconds_budget=args.budget, seed=args.seed, backbone=args.backbone)
    return 0
