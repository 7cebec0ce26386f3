"""Acoustic forward modelling throughput: cell updates per second and
seconds per velocity map at OpenFWI size (70x70 padded to 310x310, 5 shots,
1000 steps = 4.8e8 cell updates per map).

    python benchmarks/forward_modeling.py [--maps N] [--threads 1 2 ...] [--repeat R]

Prints a Markdown table: one row per thread count (default 1 and all
available cores), plus the GPU (host copies included) when one is present.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, median_time, table  # noqa: E402

import ubdiff  # noqa: E402
from ubdiff import physics  # noqa: E402

NBC, NT, SHOTS = 120, 1000, 5


def velocity_maps(n, seed=0):
    """Layered maps of OpenFWI's range (1500 .. 4500 m/s)."""
    rng = np.random.default_rng(seed)
    z = np.linspace(0, 1, 70)[None, :, None]
    v = 1500 + 3000 * z * rng.uniform(0.6, 1.0, (n, 1, 1)) + rng.uniform(-50, 50, (n, 70, 70))
    return np.clip(v, 1500, 4500).astype(np.float32)[:, None]


def run(maps=4, threads=None, repeat=3):
    v = velocity_maps(maps)
    cells = (70 + 2 * NBC) ** 2 * NT * SHOTS * maps
    threads = threads or sorted({1, ubdiff.available_cores()})
    old = ubdiff.get_num_threads()
    rows = []
    try:
        for th in threads:
            ubdiff.set_num_threads(th)
            t = median_time(lambda: physics.forward_model(v, batch_size=maps), repeat=repeat, warmup=0)
            rows.append((f"CPU, {th} thread{'s' if th > 1 else ''}", maps, f"{t / maps:.3f}", f"{cells / t / 1e9:.2f}"))
    finally:
        ubdiff.set_num_threads(old)
    if ubdiff.gpu_count() > 0:
        big = velocity_maps(max(maps, 64))
        gcells = cells / maps * len(big)
        t = median_time(lambda: physics.forward_model(big, batch_size=len(big), device="cuda"), repeat=repeat)
        rows.append((f"GPU {ubdiff.build_info()['gpus'][0]}", len(big), f"{t / len(big):.4f}", f"{gcells / t / 1e9:.2f}"))
    print(f"machine: {machine()}")
    print(table(rows, ["backend", "maps", "s / map", "Gcell updates / s"]))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--maps", type=int, default=4, help="velocity maps per call (5 shots each)")
    ap.add_argument("--threads", type=int, nargs="*", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    run(a.maps, a.threads, a.repeat)
