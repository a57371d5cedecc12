"""MuQ-large costs before vs after (issue 17, item 3), as ratios measured in one run (run by hand, not a test).

Both variants run the same worker in a subprocess on the same inputs: a debug-size HTDemucs separator boosted
with the MuQ-large architecture (``MuQConfig.large()``, random weights: no download, written once in the
official layout and loaded as ``backbone: <dir>`` by both), on the CPU.

(a) Validation: ``trainer.validate`` (Lightning, the separation recipe's own validation path) over ``--items``
    fixed items of ``--item-seconds``: wall time and the number of backbone fingerprint computations
    (sha256 objects made by ``booster.muq.model``).
(b) Separation: ``Separator.separate_file`` (what ``booster separate`` runs) of a synthetic ``--minutes`` long
    stereo track: wall time, peak RSS sampled during the separation (and the process's ``ru_maxrss``), and
    fingerprint computations.

"Before" is the code at commit ef2aa81 in a git worktree (``git worktree add /tmp/before ef2aa81``); the
script links the worktree's ``booster/{recipes,adapters,checkpoints}`` to its own folders so that the
editable install does not resolve them to this checkout. "After" is this checkout. Full run (the default
settings; ~10-20 min on 2 CPU cores)::

    git worktree add /tmp/before ef2aa81
    python benchmarks/muq_large_costs.py --before /tmp/before --minutes 10 --items 8 --threads 2

Quick check of the script itself: ``--minutes 0.3 --items 2``. Prints one JSON line: per variant the numbers,
and ``ratio`` = after / before for each.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = ["drums", "bass", "other", "vocals"]
SR = 44100


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


class PeakRSS:
    """Samples this process's resident memory every ``every`` seconds while in the ``with`` block."""

    def __init__(self, every: float = 0.05):
        self.every, self.peak, self._stop = every, _rss_mb(), threading.Event()

    def __enter__(self):
        def run():
            while not self._stop.wait(self.every):
                self.peak = max(self.peak, _rss_mb())
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def count_fingerprints() -> list[int]:
    """Counter of sha256 objects made by the weight hash (one per fingerprint computation): in
    booster/fingerprint.py where it exists (this checkout), else in booster.muq.model (older code)."""
    import importlib.util
    if importlib.util.find_spec("booster.fingerprint") is not None:
        import booster.fingerprint as model
    else:
        import booster.muq.model as model
    count, real = [0], hashlib.sha256

    def sha256(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    model.hashlib = types.SimpleNamespace(sha256=sha256)
    return count


def worker(a) -> dict:
    import resource

    import torch
    torch.set_num_threads(a.threads)
    import booster
    import booster.recipes
    root = Path(a.root).resolve()
    for mod in (booster, booster.recipes):   # the variant really is the code under test
        assert Path(list(mod.__path__)[0]).resolve().is_relative_to(root), (mod.__name__, mod.__path__, root)
    count = count_fingerprints()
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from booster.recipes.separation.module import SeparationModule

    out = {"root": str(root)}
    t = time.perf_counter()
    torch.manual_seed(0)
    module = SeparationModule(host="htdemucs", sources=SOURCES, sample_rate=SR, channels=2, segment=a.segment,
                              size="debug", boost=True, backbone=a.backbone_dir, eval_bsseval=False,
                              print_report=False)
    out["build_seconds"] = round(time.perf_counter() - t, 2)
    out["build_fingerprints"] = count[0]

    gen = torch.Generator().manual_seed(1)
    n = int(a.item_seconds * SR)
    sources = torch.randn(a.items, len(SOURCES), 2, n, generator=gen) * 0.1
    data = DataLoader(TensorDataset(sources.sum(1), sources), batch_size=1)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    c0, t = count[0], time.perf_counter()
    trainer.validate(module, data, verbose=False)
    out["validation"] = {"seconds": round(time.perf_counter() - t, 2), "fingerprints": count[0] - c0,
                         "items": a.items, "item_seconds": a.item_seconds}

    import gc
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        c0, t, rss0 = count[0], time.perf_counter(), _rss_mb()
        with PeakRSS() as peak:
            module.separator().separate_file(a.track, tmp)   # the separator as the command builds it
        out["separation"] = {"seconds": round(time.perf_counter() - t, 2), "fingerprints": count[0] - c0,
                             "rss_before_mb": round(rss0), "peak_rss_mb": round(peak.peak),
                             "peak_rss_increase_mb": round(peak.peak - rss0), "minutes": a.minutes}
    out["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def link_recipes(root: Path) -> None:
    """A worktree of another commit: make ``booster.recipes`` & co. resolve inside it (the editable
    install maps them to this checkout otherwise)."""
    for name in ("recipes", "adapters", "checkpoints"):
        link = root / "booster" / name
        if (root / name).is_dir() and not link.exists():
            link.symlink_to(Path("..") / name)


def make_inputs(workdir: Path, minutes: float) -> tuple[Path, Path]:
    """The MuQ-large random-weight checkpoint (official layout) and the synthetic track, made once."""
    import numpy as np
    import soundfile as sf
    import torch

    from booster import MuQ
    from booster.muq.config import MuQConfig
    ckpt = workdir / "muq-large-random"
    if not (ckpt / "config.json").is_file():
        torch.manual_seed(0)
        MuQ(MuQConfig.large()).save_pretrained(ckpt)
    track = workdir / f"track_{minutes:g}min.wav"
    if not track.is_file():
        rng = np.random.default_rng(0)
        with sf.SoundFile(str(track), "w", SR, 2, subtype="FLOAT") as f:
            total, block = int(minutes * 60 * SR), 10 * SR
            for start in range(0, total, block):
                k = min(block, total - start)
                t = (start + np.arange(k)) / SR
                tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
                f.write((tone[:, None] + 0.05 * rng.standard_normal((k, 2))).astype(np.float32))
    return ckpt, track


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default="/tmp/before", help="worktree of the reference commit (ef2aa81)")
    p.add_argument("--after", default=str(HERE.parent), help="checkout of the code under test")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the separated track")
    p.add_argument("--items", type=int, default=8, help="validation items")
    p.add_argument("--item-seconds", type=float, default=4.0)
    p.add_argument("--segment", type=float, default=4.0, help="the separator's training segment (s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", default=None, help="where the checkpoint and track are kept (default: tmp)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--backbone-dir", help=argparse.SUPPRESS)
    p.add_argument("--track", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a)), flush=True)
        return
    workdir = Path(a.workdir or Path(tempfile.gettempdir()) / "muq_large_costs")
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt, track = make_inputs(workdir, a.minutes)
    results = {}
    for name, root in (("before", Path(a.before).resolve()), ("after", Path(a.after).resolve())):
        if root != HERE.parent:
            link_recipes(root)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--root", str(root), "--backbone-dir",
               str(ckpt), "--track", str(track), "--minutes", str(a.minutes), "--items", str(a.items),
               "--item-seconds", str(a.item_seconds), "--segment", str(a.segment), "--threads", str(a.threads)]
        env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS=str(a.threads), HF_HUB_OFFLINE="1")
        proc = subprocess.run(cmd, cwd=str(root), env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{name} worker failed:\n{proc.stderr[-4000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    b, f = results["before"], results["after"]

    def ratio(x, y):
        return round(y / x, 3) if x else None

    results["ratio"] = {
        "validation_seconds": ratio(b["validation"]["seconds"], f["validation"]["seconds"]),
        "validation_fingerprints": ratio(b["validation"]["fingerprints"], f["validation"]["fingerprints"]),
        "separation_seconds": ratio(b["separation"]["seconds"], f["separation"]["seconds"]),
        "separation_peak_rss_increase": ratio(b["separation"]["peak_rss_increase_mb"],
                                              f["separation"]["peak_rss_increase_mb"]),
        "separation_peak_rss": ratio(b["separation"]["peak_rss_mb"], f["separation"]["peak_rss_mb"]),
    }
    results["settings"] = {k: getattr(a, k) for k in ("minutes", "items", "item_seconds", "segment", "threads")}
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
