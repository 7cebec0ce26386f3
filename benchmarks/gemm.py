"""sgemm GFLOP/s reached through ubdiff's core (linear layer = one sgemm).

    python benchmarks/gemm.py [--threads N] [--quick]

Shapes (M x K x N): batch x in-features x out-features of linear layers of the
paper models; 64 x 640 x 350000 is the seismic decoder's last layer, the
largest product of UB-Diff. Prints a Markdown table (median of repeats).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, median_time, table  # noqa: E402

import ubdiff  # noqa: E402
from ubdiff._native import lib  # noqa: E402

SHAPES = [  # (M, K, N, what)
    (64, 640, 350_000, "seismic decoder output layer (fwd)"),
    (64, 640, 3200, "transformer MLP up (fwd)"),
    (64, 3200, 640, "transformer MLP down (fwd)"),
    (4900 * 16, 288, 32, "conv-as-gemm, im2col 3x3x32 -> 32 (B=16, 70x70)"),
    (1024, 1024, 1024, "square 1024"),
]


def run(threads=None, quick=False):
    if threads:
        ubdiff.set_num_threads(threads)
    rows = []
    rng = np.random.default_rng(0)
    for M, K, N, what in SHAPES:
        if quick and M * K * N > 4e9:
            continue
        x = rng.standard_normal((M, K), dtype=np.float32)
        w = rng.standard_normal((N, K), dtype=np.float32) * 0.01
        out = np.empty((M, N), np.float32)
        flops = 2.0 * M * K * N
        t = median_time(lambda: lib.linear_forward(out, x, w, None), repeat=3 if flops > 1e10 else 7)
        # backward weight gradient: dW (N,K) += dout^T (N,M) @ x (M,K)
        dw = np.zeros_like(w)
        tb = median_time(lambda: lib.linear_backward(None, dw, None, out, x, w), repeat=3 if flops > 1e10 else 7)
        rows.append((f"{M}x{K}x{N}", what, f"{t * 1e3:.2f}", f"{flops / t / 1e9:.1f}", f"{flops / tb / 1e9:.1f}"))
    print(f"machine: {machine()}")
    print(table(rows, ["M x K x N", "product", "fwd ms", "fwd GFLOP/s", "dW GFLOP/s"]))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="skip the largest product")
    a = ap.parse_args()
    run(a.threads, a.quick)
