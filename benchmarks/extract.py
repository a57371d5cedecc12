"""Speed and memory of ``MuQ.extract`` against the transformers-based reference, in one run.

Both models hold identical random weights of the full MuQ-large architecture (~300M parameters). Times are
the best of ``--repeats`` interleaved runs on ``--seconds`` of audio; ratios are reference time / our time.
Memory: peak RSS of a fresh subprocess extracting ``--memory-minutes`` of audio (ours windowed; the
reference in a single pass under an address-space limit, reported as "does not fit" when it fails).

    python benchmarks/extract.py                 # 30 s, fp32 + bf16, memory on 10 minutes
    python benchmarks/extract.py --small         # reduced architecture, seconds (smoke check)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

from timing import interleaved

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build(small: bool):
    from booster import MuQ
    from booster.muq.config import MuQConfig
    from booster.muq.loading import load_state_dict
    from booster.muq.reference import ReferenceMuQ
    from official_layout import official_state_dict, reduced_config

    cfg = reduced_config(depth=12, dim=128, heads=4, ffn=512, conv_dim=32) if small else MuQConfig.large()
    sd = official_state_dict(cfg, seed=0, rvq=False)
    ref = ReferenceMuQ(cfg)
    ref.load_official(sd)
    ours = MuQ(cfg)
    load_state_dict(ours, sd)
    del sd
    return ours, ref


def speed(args) -> dict:
    ours, ref = build(args.small)
    torch.manual_seed(0)
    wav = torch.randn(1, int(args.seconds * 24000)) * 0.1
    runs = {
        "reference_fp32_all": lambda: ref(wav),
        "ours_fp32_all": lambda: ours.extract(wav, 24000, layers=None),
        "ours_fp32_upto4": lambda: ours.extract(wav, 24000, layers=[1, 2, 3, 4]),
        "ours_bf16_all": lambda: ours.extract(wav, 24000, layers=None, precision="bf16"),
        "ours_bf16_upto4": lambda: ours.extract(wav, 24000, layers=[1, 2, 3, 4], precision="bf16"),
    }
    with torch.inference_mode():
        times = dict(zip(runs, interleaved(list(runs.values()), args.repeats)))
        fp32 = ours.extract(wav, 24000, layers=None).hidden[0]
        bf16 = ours.extract(wav, 24000, layers=None, precision="bf16").hidden[0]
        ref_states = ref(wav)
    cos = torch.nn.functional.cosine_similarity(fp32, bf16, dim=-1).mean(-1)  # per layer, mean over frames
    rel = max(((fp32[i] - ref_states[i][0]).abs().max() / ref_states[i][0].abs().max()).item()
              for i in range(len(ref_states)))
    base = times["reference_fp32_all"]
    return {
        "seconds_of_audio": args.seconds, "threads": torch.get_num_threads(),
        "times_s": {k: round(v, 3) for k, v in times.items()},
        "speedup_vs_reference": {k: round(base / v, 2) for k, v in times.items() if k != "reference_fp32_all"},
        "bf16_cosine_per_layer": [round(c, 4) for c in cos.tolist()],
        "fp32_worst_relative_error_vs_reference": rel,
    }


def memory_child(which: str, minutes: float, small: bool, layers: str = "all") -> None:
    """Peak RSS of one model alone (random weights: memory does not depend on their values)."""
    from booster import MuQ
    from booster.muq.config import MuQConfig

    if small:
        from official_layout import reduced_config
        cfg = reduced_config(depth=12, dim=128, heads=4, ffn=512, conv_dim=32)
    else:
        cfg = MuQConfig.large()
    if which == "reference":  # imports transformers only here: its import alone costs RSS
        from booster.muq.reference import ReferenceMuQ
        limit = 16 * 2**30  # leave the machine usable: above this the reference "does not fit"
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        model = ReferenceMuQ(cfg)
    else:
        model = MuQ(cfg)
    wav = torch.randn(1, int(minutes * 60 * 24000)) * 0.1
    try:
        with torch.inference_mode():
            if which == "ours":
                asked = None if layers == "all" else [int(i) for i in layers.split(",")]
                shape = list(model.extract(wav, 24000, layers=asked).hidden.shape)
            else:
                shape = list(model(wav)[-1].shape)
        status = "ok"
    except (RuntimeError, MemoryError) as e:
        status, shape = f"does not fit: {type(e).__name__}: {str(e).splitlines()[0][:120]}", None
    peak = _vm_hwm_gib()
    print(json.dumps({"which": which, "layers": layers, "status": status, "peak_rss_gib": round(peak, 2),
                      "shape": shape}))


def _vm_hwm_gib() -> float:
    """This process's peak RSS. (ru_maxrss would include the parent's peak: Linux keeps it across exec.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20  # kB -> GiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def memory(args) -> list:
    results = []
    for which, layers in (("ours", "all"), ("ours", "4,8,12"), ("reference", "all")):
        cmd = [sys.executable, __file__, "--memory-child", which, "--memory-minutes", str(args.memory_minutes),
               "--memory-layers", layers]
        if args.small:
            cmd.append("--small")
        r = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        results.append(json.loads(line[-1]) if line else
                       {"which": which, "status": f"process died (exit {r.returncode}): "
                                                  f"{r.stderr.strip().splitlines()[-1:] }"})
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory-minutes", type=float, default=10.0)
    p.add_argument("--small", action="store_true", help="reduced architecture (smoke check)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--memory-layers", default="all", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.memory_minutes, args.small, args.memory_layers)
    result = {"speed": speed(args)}
    if not args.skip_memory:
        result["memory"] = memory(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
