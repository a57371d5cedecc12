"""What MuQ context costs: features of a training crop computed alone vs sliced from whole-track features.

Training computes backbone features on the training crop alone (the host's input at the host's rate); the
old inference path computed them once per track (MuQ's 30-s windows) and sliced each chunk's frames out.
This script compares the two, per layer, on a synthetic song (:mod:`booster.data`, numpy renderer):
relative L2 error ``|a - b| / |b|`` (b: the crop alone) and mean per-frame cosine. It also measures the
band limit of the transcriber's old train/inference gap: the crop at 16 kHz (upsampled by MuQ: nothing
above 8 kHz) vs the same crop at 44.1 kHz (full band).

Shapes: L layers, T frames, D feature dim.

    python benchmarks/context_policy.py                        # muq-mini and the debug MuQ, crops 1/2/6/10 s
    python benchmarks/context_policy.py --backbones debug --crops 2
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from booster.audio import resample


def song(seconds: float, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """A synthetic song's mono mixture ``[1, S]`` at ``sample_rate``."""
    from booster.data.numpy_synth import render_numpy
    from booster.data.songs import compose_song
    s = compose_song(np.random.default_rng(seed), seconds=seconds)
    stems = render_numpy(s, frames=int(seconds * sample_rate), sample_rate=sample_rate, seed=seed)
    return torch.from_numpy(sum(stems.values()).mean(0, keepdims=True))


def compare(a: torch.Tensor, b: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per layer ``(relative L2 of a vs b, mean cosine over frames)``; ``a``, ``b`` ``[L, T, D]``."""
    rel = ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1).clamp_min(1e-12)).tolist()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).mean(-1).tolist()
    return rel, cos


def measure(bb, name: str, crops: list[float], track_seconds: float, sr: int = 44100) -> dict:
    x = song(track_seconds, sr)
    fr = bb.frame_rate
    track = bb.extract(x, sr).hidden[0]                              # [L, T, D], 30-s windows
    out = {"backbone": name, "track_seconds": track_seconds, "crops": {}}
    for crop in crops:
        rows = []
        for t0 in np.linspace(track_seconds * 0.2, track_seconds * 0.7, 4):
            t0 = round(float(t0) * fr) / fr                          # on a frame boundary
            a, n = int(round(t0 * sr)), int(round(crop * sr))
            alone = bb.extract(x[:, a:a + n], sr).hidden[0]          # [L, T_crop, D]
            f0 = int(round(t0 * fr))
            sliced = track[:, f0:f0 + alone.shape[1]]
            rows.append(compare(sliced, alone))
        rel = np.mean([r[0] for r in rows], 0)
        cos = np.mean([r[1] for r in rows], 0)
        out["crops"][crop] = {"rel_l2": [round(float(v), 4) for v in rel], "cosine": [round(float(v), 4) for v in cos]}
    # band limit: a 2-s crop at 16 kHz (what the transcriber's MuQ saw in training) vs at 44.1 kHz
    a, n = int(5 * sr), int(2 * sr)
    full = bb.extract(x[:, a:a + n], sr).hidden[0]
    low = bb.extract(resample(x[:, a:a + n], sr, 16000), 16000).hidden[0]
    t = min(full.shape[1], low.shape[1])
    rel, cos = compare(low[:, :t], full[:, :t])
    out["band_16k_vs_44k"] = {"rel_l2": [round(float(v), 4) for v in rel], "cosine": [round(float(v), 4) for v in cos]}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="muq-mini,debug")
    p.add_argument("--crops", default="1,2,6,10")
    p.add_argument("--track-seconds", type=float, default=40.0)
    args = p.parse_args(argv)
    from booster.backbone import load_backbone
    torch.manual_seed(0)
    results = []
    for name in args.backbones.split(","):
        bb = load_backbone(name)                # outside inference mode (its weights stay normal tensors)
        with torch.no_grad():
            r = measure(bb, name, [float(c) for c in args.crops.split(",")], args.track_seconds)
        results.append(r)
        for crop, v in r["crops"].items():
            print(f"{name:9s} crop {crop:4.1f} s  rel L2 per layer {v['rel_l2']}\n"
                  f"{'':9s}              cosine per layer {v['cosine']}")
        b = r["band_16k_vs_44k"]
        print(f"{name:9s} 16 kHz vs 44.1 kHz (2-s crop)  rel L2 {b['rel_l2']}\n{'':9s}  cosine {b['cosine']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
