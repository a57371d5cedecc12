"""Cost of boosting a separator, as ratios measured in one run (run by hand, not a test).

1. Training step (forward + backward + AdamW), boosted / baseline, with cached MuQ features (precomputed,
   as for fixed data) and with live features (MuQ runs inside the step, as for random remixes).
   Target: ratio <= 1.15 with cached features.
2. Full-track separation (chunked, MuQ once per track): real-time factor of the boosted separator vs
   the same host un-boosted, and the share of the boosted time spent in MuQ.
   Target: boosted - plain <= MuQ's own time + 5 % of plain.
3. Peak memory (RSS of a fresh process separating a file from disk) against track length.
4. Real-time factor of a debug-size boosted separator (``--parts rtf``): chunks one at a time vs batched
   (``--chunk-batch``), on ``--threads`` CPU threads (target: faster than real time on 2 CPU cores).

    python benchmarks/separation.py                           # debug HTDemucs + debug MuQ (quick)
    python benchmarks/separation.py --host openunmix --host-size full --backbone large
    python benchmarks/separation.py --parts rtf --threads 2 --track-seconds 60
    python benchmarks/separation.py --device cuda --host-size full --backbone large   # on a GPU
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from timing import best, interleaved

SOURCES = ["drums", "bass", "other", "vocals"]


def backbone(kind: str, seed: int = 0):
    from booster import MuQ
    if kind == "debug":
        return MuQ.debug(seed)
    from booster.muq.config import MuQConfig
    torch.manual_seed(seed)
    m = MuQ(MuQConfig())  # MuQ-large architecture, random weights (no download)
    m.requires_grad_(False)
    return m


def modules(args):
    from booster.recipes.separation.module import SeparationModule
    from booster.training.hosts import boost_host
    torch.manual_seed(0)
    kw = dict(host=args.host, sources=SOURCES, segment=args.segment, size=args.host_size)
    base = SeparationModule(**kw)
    torch.manual_seed(0)
    boosted = SeparationModule(**kw)  # same host weights, then boosted with the chosen backbone
    boosted.model = boost_host(args.host, boosted.model, backbone(args.backbone), train_host=True)
    return base.to(args.device), boosted.to(args.device)


def sync(args):
    if str(args.device).startswith("cuda"):
        torch.cuda.synchronize()


def train_steps(args) -> dict:
    base, boosted = modules(args)
    g = torch.Generator().manual_seed(0)
    srcs = 0.1 * torch.randn(args.batch, len(SOURCES), 2, int(args.segment * 44100), generator=g).to(args.device)
    mix = srcs.sum(1)
    cached = boosted.live_features(mix)
    opts = {id(m): torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for m in (base, boosted)}

    def step(m, feats=None, live=False):
        def run():
            opt = opts[id(m)]
            opt.zero_grad()
            loss, _ = m.compute_loss(mix, srcs, m.live_features(mix) if live else feats)
            loss.backward()
            opt.step()
            sync(args)
        return run

    base.train(), boosted.train()
    t_base, t_cached, t_live = interleaved([step(base), step(boosted, cached), step(boosted, live=True)],
                                           args.repeats)
    return {"baseline_s": t_base, "boosted_cached_s": t_cached, "boosted_live_s": t_live,
            "ratio_cached": t_cached / t_base, "ratio_live": t_live / t_base}


def separation(args) -> dict:
    from booster.recipes.separation.inference import Separator
    base, boosted = modules(args)
    mix = 0.1 * torch.randn(2, int(args.track_seconds * 44100), generator=torch.Generator().manual_seed(1))
    mix = mix.to(args.device)
    plain = Separator(base.model, base.description(), batch_size=args.chunk_batch)
    sep = Separator(boosted.model, boosted.description(), batch_size=args.chunk_batch)
    layers = sep.model.layers
    synced = lambda fn: (lambda: (fn(), sync(args)))
    t_plain = best(synced(lambda: plain.separate_tensor(mix)), args.repeats)
    t_boost = best(synced(lambda: sep.separate_tensor(mix)), args.repeats)
    t_muq = best(synced(lambda: sep.backbone.extract(mix, 44100, layers)), args.repeats)
    feats = sep.track_features(mix)
    t_given = best(synced(lambda: sep.separate_tensor(mix, features=feats)), args.repeats)  # all but MuQ
    overhead = t_boost - t_plain
    return {"track_s": args.track_seconds, "plain_s": t_plain, "boosted_s": t_boost, "muq_s": t_muq,
            "boosted_given_features_s": t_given,
            "adapters_overhead_pct_of_plain": 100 * (t_given - t_plain) / t_plain,
            "rtf_plain": t_plain / args.track_seconds, "rtf_boosted": t_boost / args.track_seconds,
            "ratio": t_boost / t_plain, "muq_share_of_boosted": t_muq / t_boost,
            "overhead_minus_muq_pct_of_plain": 100 * (overhead - t_muq) / t_plain}


def rtf(args) -> dict:
    """Debug-size boosted separator: seconds of compute per second of music, chunks one by one vs batched."""
    from booster.recipes.separation.inference import Separator
    _, boosted = modules(args)
    mix = 0.1 * torch.randn(2, int(args.track_seconds * 44100), generator=torch.Generator().manual_seed(1))
    mix = mix.to(args.device)
    one = Separator(boosted.model, boosted.description(), batch_size=1)
    many = Separator(boosted.model, boosted.description(), batch_size=args.chunk_batch)
    t_one, t_many = interleaved([lambda: (one.separate_tensor(mix), sync(args)),
                                 lambda: (many.separate_tensor(mix), sync(args))], args.repeats)
    return {"track_s": args.track_seconds, "threads": args.threads, "chunk_s": one.segment_seconds,
            "batch": args.chunk_batch, "one_by_one_s": t_one, "batched_s": t_many,
            "speed_one_by_one_x_realtime": args.track_seconds / t_one,
            "speed_batched_x_realtime": args.track_seconds / t_many}


def _memory_child(seconds: float, model_file: str) -> None:
    import threading

    import numpy as np
    import psutil
    import soundfile as sf
    from booster.recipes.separation.inference import Separator
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "long.wav"
        with sf.SoundFile(str(path), "w", 44100, 2, subtype="FLOAT") as f:  # written in blocks, not held
            rng = np.random.default_rng(0)
            for _ in range(int(np.ceil(seconds / 10))):
                f.write((0.1 * rng.standard_normal((441000, 2))).astype(np.float32))
        sep = Separator.load(model_file)
        sep.separate_tensor(torch.zeros(2, 44100))  # warm-up: one-off allocations are not per-track cost
        proc = psutil.Process()
        before = proc.memory_info().rss
        peak, stop = [before], threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.01)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t = time.perf_counter()
        sep.separate_file(path, Path(d) / "out")
        dt = time.perf_counter() - t
        stop.set()
        th.join()
    print(json.dumps({"seconds": seconds, "rss_before_mb": before / 2**20,
                      "peak_increase_mb": (peak[0] - before) / 2**20, "time_s": dt}))


def memory(args) -> list[dict]:
    if args.backbone != "debug":
        print("memory: uses the debug backbone (a saved separator names its backbone source)", file=sys.stderr)
    from booster.recipes.separation.module import SeparationModule
    torch.manual_seed(0)
    m = SeparationModule(host=args.host, sources=SOURCES, segment=args.segment, size=args.host_size, boost=True)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        model_file = str(m.separator().save(Path(d) / "sep.safetensors"))
        for seconds in args.memory_seconds:
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(seconds), model_file],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="htdemucs", choices=["htdemucs", "openunmix", "bs_roformer"])
    p.add_argument("--device", default="cpu", help="cpu or cuda (timings synchronise CUDA)")
    p.add_argument("--chunk-batch", type=int, default=4, help="chunks separated together")
    p.add_argument("--host-size", default="debug", choices=["debug", "full"])
    p.add_argument("--backbone", default="debug", choices=["debug", "large"])
    p.add_argument("--segment", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--track-seconds", type=float, default=30.0)
    p.add_argument("--memory-seconds", type=float, nargs="*", default=[30, 120, 480])
    p.add_argument("--parts", default="train,separation,memory,rtf", help="comma-separated subset to run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        _memory_child(float(args.memory_child[0]), args.memory_child[1])
        return
    report = {"config": {k: v for k, v in vars(args).items() if k != "memory_child"}}
    parts = set(args.parts.split(","))
    for name, fn in (("train_step", train_steps), ("separation", separation), ("memory", memory), ("rtf", rtf)):
        if name.split("_")[0] in parts:
            report[name] = fn(args)
            print(json.dumps({name: report[name]}, indent=2), flush=True)
    if not {"train_step", "separation"} <= set(report):
        return
    t, s = report["train_step"], report["separation"]
    print(f"\nstep ratio cached {t['ratio_cached']:.3f} (target <= 1.15), live {t['ratio_live']:.3f}; "
          f"separation x{s['ratio']:.3f} (RTF {s['rtf_plain']:.3f} -> {s['rtf_boosted']:.3f}), MuQ share "
          f"{100 * s['muq_share_of_boosted']:.1f} %, overhead beyond MuQ {s['overhead_minus_muq_pct_of_plain']:+.1f} % "
          f"of plain (target <= 5 %); with the track's features given: {s['adapters_overhead_pct_of_plain']:+.1f} % "
          "of plain")


if __name__ == "__main__":
    main()
