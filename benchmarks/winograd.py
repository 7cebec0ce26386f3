"""Winograd against im2col + sgemm on the paper layers it covers (csrc/cpu/winograd.c).

    python benchmarks/winograd.py [--threads 1,2] [--quick] [--rounds 5]

Every conv layer of benchmarks/layers.py that takes the Winograd path (stride 1,
a (3, 3), (1, 3) or (3, 1) kernel, >= 16 channels in and out, >= 128 for the
1-D forms, >= 128 tiles in the call), at the paper batches (64 for the
autoencoder and InversionNet, 16 for the U-Net; --quick divides them by 4).
Forward and backward (input + weight gradients) are timed with each algorithm
in alternation (A B B A ...), medians of `rounds`; "speed-up" is im2col time
over Winograd time. Both go through the same binding, which allocates its
scratch on every call (the models use a preallocated arena instead).
Before timing, the two outputs are compared (relative max error printed).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, table  # noqa: E402
from layers import LAYERS, make_case  # noqa: E402

import ubdiff  # noqa: E402
from ubdiff.conv_ops import using_conv_algorithm  # noqa: E402


def candidate(kind, args):
    """Stride 1 and a 3-tap kernel; whether the channel and tile counts are enough is
    csrc/cpu/winograd.c's to say (make_plan): run() keeps the layers whose output the
    setting changes, rather than restating that rule here."""
    if kind == "conv2d":
        k, s = args[4], args[5]
    elif kind == "conv1d":
        k, s = (1, args[3]), (1, args[4])
    else:
        return False
    return tuple(s) == (1, 1) and tuple(k) in ((3, 3), (1, 3), (3, 1))


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(threads, quick, rounds):
    div = 4 if quick else 1
    rows = []
    for n in threads:
        ubdiff.set_num_threads(n)
        rng = np.random.default_rng(0)
        for model, kind, count, args in LAYERS:
            B = (16 if "U-Net" in model else 64) // div
            if not candidate(kind, args):
                continue
            label, flops, fwd, bwd = make_case(kind, args, B, rng)
            res = {}
            for algo in ("im2col", "auto"):  # correctness first: the two outputs, then the timings
                with using_conv_algorithm(algo):
                    fwd()
                    res[algo] = fwd.out.copy()
            ref = res["im2col"]
            if np.array_equal(res["auto"], ref):  # the same bits: this layer stays on im2col
                continue
            err = float(np.abs(res["auto"] - ref).max() / max(np.abs(ref).max(), 1e-30))
            t = {a: ([], []) for a in ("im2col", "auto")}
            for r in range(rounds):
                for algo in (("im2col", "auto") if r % 2 == 0 else ("auto", "im2col")):
                    with using_conv_algorithm(algo):
                        t[algo][0].append(timed(fwd))
                        t[algo][1].append(timed(bwd))
            med = {a: (statistics.median(v[0]), statistics.median(v[1])) for a, v in t.items()}
            (fi, bi), (fw, bw) = med["im2col"], med["auto"]
            rows.append((n, model.split(" (")[0], label, f"x{count}", f"{fi * 1e3:.2f}", f"{fw * 1e3:.2f}",
                         f"{fi / fw:.2f}", f"{bi * 1e3:.2f}", f"{bw * 1e3:.2f}", f"{bi / bw:.2f}",
                         f"{flops / fw / 1e9:.0f}", f"{err:.1e}"))
    print(f"machine: {machine()}; quick={quick}; rounds={rounds}; load average {os.getloadavg()[0]:.2f}")
    print(table(rows, ["threads", "model", "layer", "n", "fwd im2col ms", "fwd wino ms", "fwd speed-up",
                       "bwd im2col ms", "bwd wino ms", "bwd speed-up", "wino eff. GFLOP/s", "max rel diff"]))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--quick", action="store_true", help="batches / 4")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    run([int(v) for v in a.threads.split(",")], a.quick, a.rounds)
