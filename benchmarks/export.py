"""ONNX export (issue 23): ONNX Runtime CPU vs PyTorch eager, measured in one run (run by hand, not a test).

For a separator (default HTDemucs), plain and boosted, at ``--size debug`` or ``full`` (full: demucs' default
HTDemucs and, boosted, the MuQ-large architecture with random weights -- ``MuQ(MuQConfig.large())`` written
once in the official layout, as benchmarks/muq_large_costs.py does -- on its default layers):

* export: ``booster.export.export_model`` wall time and the folder's size on disk;
* real-time factor (seconds of compute per second of audio, lower is faster) of ``Separator.separate_tensor``
  (PyTorch eager, what ``booster separate`` runs) and of ``runner_separation.separate`` (ONNX Runtime CPU,
  numpy pre/post) on the same ``--seconds`` of stereo noise, same chunks, same ``--threads``; ``ratio`` =
  onnx / torch; and the stems' difference in dB.

    python benchmarks/export.py --size debug --threads 1
    python benchmarks/export.py --size full --threads 1 --seconds 20     # once: minutes, ~6 GB RAM
    python benchmarks/export.py --task transcription --size debug --threads 1 --seconds 30   # the transcriber

Prints one JSON line per variant.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SOURCES = ["drums", "bass", "other", "vocals"]


def folder_mb(p: Path) -> float:
    return sum(f.stat().st_size for f in p.iterdir() if f.is_file()) / 2 ** 20


def run(a, boosted: bool, work: Path, backbone: str) -> dict:
    import numpy as np
    import torch

    from booster.export import export_model
    from booster.export.runner import load
    from booster.export.runner_separation import separate
    from booster.recipes.separation.inference import Separator
    from booster.recipes.separation.module import SeparationModule

    torch.manual_seed(0)
    sep = SeparationModule(host=a.host, sources=SOURCES, segment=a.segment, size=a.size, boost=boosted,
                           backbone=backbone, eval_bsseval=False).separator()
    src = sep.save(work / f"{a.host}_{a.size}_{int(boosted)}.safetensors")
    del sep
    t0 = time.perf_counter()
    out = export_model(src, work / f"onnx_{int(boosted)}").parent
    export_s = time.perf_counter() - t0
    x = (0.1 * np.random.default_rng(0).standard_normal((2, int(a.seconds * 44100)))).astype(np.float32)
    sep = Separator.load(src, batch_size=1)
    t0 = time.perf_counter()
    want = sep.separate_tensor(torch.from_numpy(x)).numpy()
    torch_s = time.perf_counter() - t0
    del sep
    manifest, sessions = load(out, threads=a.threads)
    t0 = time.perf_counter()
    got = separate(x, manifest, sessions, batch_size=1)
    onnx_s = time.perf_counter() - t0
    err = 20 * np.log10(np.linalg.norm(got - want) / np.linalg.norm(want))
    return {"host": a.host, "size": a.size, "boosted": boosted, "backbone": backbone if boosted else None,
            "threads": a.threads, "seconds": a.seconds, "chunk_s": manifest["chunk"] / 44100,
            "exporter": manifest["graphs"][0]["exporter"], "export_s": round(export_s, 1),
            "onnx_mb": round(folder_mb(out), 1), "rtf_torch": round(torch_s / a.seconds, 3),
            "rtf_onnx": round(onnx_s / a.seconds, 3), "ratio": round(onnx_s / torch_s, 3),
            "stems_error_db": round(float(err), 1), "load1": round(os.getloadavg()[0], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="htdemucs")
    p.add_argument("--size", choices=["debug", "full"], default="debug")
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--segment", type=float, default=6.0, help="training segment = export chunk (seconds)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default="plain,boosted")
    p.add_argument("--task", choices=["separation", "transcription"], default="separation",
                   help="transcription: the transcriber's cases, benchmarks/export_transcription.py")
    a = p.parse_args()
    if a.task == "transcription":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from export_transcription import main as transcription
        sys.exit(transcription(["--sizes", a.size, "--variants", a.variants, "--threads", str(a.threads),
                                "--seconds", str(a.seconds)]))
    import torch
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backbone = "debug"
        if a.size == "full" and "boosted" in a.variants:
            from booster import MuQ, MuQConfig
            backbone = str(work / "muq-large-random")
            MuQ(MuQConfig.large()).save_pretrained(backbone)
        for v in a.variants.split(","):
            print(json.dumps(run(a, v == "boosted", work, backbone)), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
