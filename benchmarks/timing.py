"""Timing helpers shared by the benchmarks: best-of-N, interleaved so machine load hits all alike."""
from __future__ import annotations

import time


def best(fn, repeats: int) -> float:
    """Best wall time of ``fn`` over ``repeats`` runs, after one warm-up run."""
    return interleaved([fn], repeats)[0]


def interleaved(fns, repeats: int) -> list[float]:
    """Best time of each function over ``repeats`` rounds, the functions alternating within a round
    (load from other processes then hits all of them alike). Each function is warmed up once."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [min(t) for t in times]
