"""Forward / backward GFLOP/s of every conv and linear layer of the paper models.

    python benchmarks/layers.py [--threads N] [--quick] [--only SUBSTRING]

Shapes are the paper configuration (shared/specs/paper_config.md): batch 64
for the autoencoder (encoder E, velocity decoder D_v, seismic transformer D_s
linears) and InversionNet, batch 16 for the 1-D U-Net (L = 128, 64, 32, 16).
Layers with the same shape are listed once ("x n" = how many the model has).
FLOPs count 2 per multiply-add of the convolution itself: forward 2*B*OC*C*KH*KW*OH*OW,
backward twice that (input and weight gradients; bias gradients are not counted).
Times are the fastest of several runs spread over the whole run (the machine
may be shared; see run()).
Every rate is also shown as a fraction of the sgemm rate measured in the same
run (a 1024^3 product, re-measured before every layer; the best is used), the
practical ceiling for im2col + GEMM.
--quick divides batches by 4, skips the 224M-parameter output layer and times
fewer repeats.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, table  # noqa: E402

import ubdiff  # noqa: E402
from ubdiff._native import lib  # noqa: E402

# (model, kind, count, args): conv2d/convt2d args (C, OC, H, W, (KH, KW), (SH, SW), (PH, PW)),
# conv1d (C, OC, L, K, S, P), linear (M_per_sample, C, OC)
AE = "E/D_v (B=64)"
DS = "D_s (B=64)"
INV = "InversionNet (B=64)"
UNET = "U-Net (B=16)"
LAYERS = [
    # encoder E, input 1x70x70
    (AE, "conv2d", 1, (1, 32, 70, 70, (1, 1), (1, 1), (0, 0))),
    (AE, "conv2d", 1, (32, 32, 70, 70, (3, 3), (1, 1), (1, 1))),
    (AE, "conv2d", 1, (32, 64, 70, 70, (3, 3), (2, 2), (1, 1))),
    (AE, "conv2d", 3, (64, 64, 35, 35, (1, 1), (1, 1), (0, 0))),
    (AE, "conv2d", 1, (64, 64, 35, 35, (3, 3), (1, 1), (1, 1))),
    (AE, "conv2d", 1, (64, 128, 35, 35, (3, 3), (2, 2), (1, 1))),
    (AE, "conv2d", 1, (128, 128, 18, 18, (1, 1), (1, 1), (0, 0))),
    (AE, "conv2d", 1, (128, 128, 18, 18, (3, 3), (1, 1), (0, 0))),
    (AE, "conv2d", 1, (128, 128, 16, 16, (1, 1), (1, 1), (0, 0))),
    (AE, "conv2d", 1, (128, 256, 16, 16, (3, 3), (2, 2), (1, 1))),
    (AE, "conv2d", 1, (256, 256, 8, 8, (1, 1), (1, 1), (0, 0))),
    (AE, "conv2d", 1, (256, 256, 8, 8, (3, 3), (2, 2), (1, 1))),
    (AE, "conv2d", 1, (256, 256, 4, 4, (3, 3), (2, 2), (1, 1))),
    (AE, "conv2d", 1, (256, 128, 2, 2, (3, 3), (2, 2), (1, 1))),
    (AE, "linear", 1, (1, 128, 128)),
    (AE, "linear", 1, (1, 128, 640)),
    # velocity decoder D_v
    (AE, "convt2d", 1, (128, 128, 1, 1, (5, 5), (2, 2), (0, 0))),
    (AE, "conv2d", 1, (128, 128, 5, 5, (3, 3), (1, 1), (1, 1))),
    (AE, "convt2d", 1, (128, 256, 5, 5, (4, 4), (2, 2), (1, 1))),
    (AE, "conv2d", 1, (256, 256, 10, 10, (3, 3), (1, 1), (1, 1))),
    (AE, "convt2d", 1, (256, 128, 10, 10, (4, 4), (2, 2), (1, 1))),
    (AE, "conv2d", 1, (128, 128, 20, 20, (3, 3), (1, 1), (1, 1))),
    (AE, "convt2d", 1, (128, 64, 20, 20, (4, 4), (2, 2), (1, 1))),
    (AE, "conv2d", 1, (64, 64, 40, 40, (3, 3), (1, 1), (1, 1))),
    (AE, "convt2d", 1, (64, 32, 40, 40, (4, 4), (2, 2), (1, 1))),
    (AE, "conv2d", 1, (32, 32, 80, 80, (3, 3), (1, 1), (1, 1))),
    (AE, "conv2d", 1, (32, 1, 70, 70, (3, 3), (1, 1), (1, 1))),
    # seismic decoder D_s (2 tokens per sample in the transformer)
    (DS, "linear", 1, (1, 640, 640)),
    (DS, "linear", 2, (2, 640, 1920)),
    (DS, "linear", 2, (2, 640, 640)),
    (DS, "linear", 2, (2, 640, 3200)),
    (DS, "linear", 2, (2, 3200, 640)),
    (DS, "linear", 1, (1, 640, 350_000)),
    # InversionNet, input 5x1000x70
    (INV, "conv2d", 1, (5, 32, 1000, 70, (7, 1), (2, 1), (3, 0))),
    (INV, "conv2d", 1, (32, 64, 500, 70, (3, 1), (2, 1), (1, 0))),
    (INV, "conv2d", 1, (64, 64, 250, 70, (3, 1), (1, 1), (1, 0))),
    (INV, "conv2d", 1, (64, 64, 250, 70, (3, 1), (2, 1), (1, 0))),
    (INV, "conv2d", 1, (64, 64, 125, 70, (3, 1), (1, 1), (1, 0))),
    (INV, "conv2d", 1, (64, 128, 125, 70, (3, 1), (2, 1), (1, 0))),
    (INV, "conv2d", 1, (128, 128, 63, 70, (3, 1), (1, 1), (1, 0))),
    (INV, "conv2d", 1, (128, 128, 63, 70, (3, 3), (2, 2), (1, 1))),
    (INV, "conv2d", 1, (128, 128, 32, 35, (3, 3), (1, 1), (1, 1))),
    (INV, "conv2d", 1, (128, 256, 32, 35, (3, 3), (2, 2), (1, 1))),
    (INV, "conv2d", 1, (256, 256, 16, 18, (3, 3), (1, 1), (1, 1))),
    (INV, "conv2d", 1, (256, 256, 16, 18, (3, 3), (2, 2), (1, 1))),
    (INV, "conv2d", 1, (256, 256, 8, 9, (3, 3), (1, 1), (1, 1))),
    (INV, "conv2d", 1, (256, 512, 8, 9, (8, 9), (1, 1), (0, 0))),
    (INV, "convt2d", 1, (512, 512, 1, 1, (5, 5), (2, 2), (0, 0))),
    (INV, "conv2d", 1, (512, 512, 5, 5, (3, 3), (1, 1), (1, 1))),
    (INV, "convt2d", 1, (512, 256, 5, 5, (4, 4), (2, 2), (1, 1))),
    (INV, "conv2d", 1, (256, 256, 10, 10, (3, 3), (1, 1), (1, 1))),
    (INV, "convt2d", 1, (256, 128, 10, 10, (4, 4), (2, 2), (1, 1))),
    (INV, "conv2d", 1, (128, 128, 20, 20, (3, 3), (1, 1), (1, 1))),
    (INV, "convt2d", 1, (128, 64, 20, 20, (4, 4), (2, 2), (1, 1))),
    (INV, "conv2d", 1, (64, 64, 40, 40, (3, 3), (1, 1), (1, 1))),
    (INV, "convt2d", 1, (64, 32, 40, 40, (4, 4), (2, 2), (1, 1))),
    (INV, "conv2d", 1, (32, 32, 80, 80, (3, 3), (1, 1), (1, 1))),
    (INV, "conv2d", 1, (32, 1, 70, 70, (3, 3), (1, 1), (1, 1))),
    # 1-D U-Net
    (UNET, "conv1d", 1, (1, 128, 128, 7, 1, 3)),
    (UNET, "conv1d", 11, (128, 128, 128, 3, 1, 1)),
    (UNET, "conv1d", 4, (128, 384, 128, 1, 1, 0)),
    (UNET, "conv1d", 4, (128, 128, 128, 1, 1, 0)),
    (UNET, "conv1d", 1, (128, 128, 128, 4, 2, 1)),
    (UNET, "conv1d", 2, (256, 128, 128, 3, 1, 1)),
    (UNET, "conv1d", 2, (256, 128, 128, 1, 1, 0)),
    (UNET, "conv1d", 1, (128, 1, 128, 1, 1, 0)),
    (UNET, "conv1d", 4, (128, 128, 64, 3, 1, 1)),
    (UNET, "conv1d", 2, (128, 384, 64, 1, 1, 0)),
    (UNET, "conv1d", 2, (128, 128, 64, 1, 1, 0)),
    (UNET, "conv1d", 1, (128, 256, 64, 4, 2, 1)),
    (UNET, "conv1d", 1, (384, 256, 64, 3, 1, 1)),
    (UNET, "conv1d", 1, (256, 256, 64, 3, 1, 1)),
    (UNET, "conv1d", 1, (384, 256, 64, 1, 1, 0)),
    (UNET, "conv1d", 1, (256, 128, 128, 3, 1, 1)),
    (UNET, "conv1d", 6, (256, 256, 32, 3, 1, 1)),
    (UNET, "conv1d", 3, (256, 384, 32, 1, 1, 0)),
    (UNET, "conv1d", 3, (128, 256, 32, 1, 1, 0)),
    (UNET, "conv1d", 1, (256, 256, 32, 4, 2, 1)),
    (UNET, "conv1d", 1, (512, 256, 32, 3, 1, 1)),
    (UNET, "conv1d", 1, (512, 256, 32, 1, 1, 0)),
    (UNET, "conv1d", 1, (256, 256, 64, 3, 1, 1)),
    (UNET, "conv1d", 4, (256, 256, 16, 3, 1, 1)),
    (UNET, "conv1d", 2, (256, 384, 16, 1, 1, 0)),
    (UNET, "conv1d", 2, (128, 256, 16, 1, 1, 0)),
    (UNET, "conv1d", 1, (256, 512, 16, 3, 1, 1)),
    (UNET, "conv1d", 5, (512, 512, 16, 3, 1, 1)),
    (UNET, "conv1d", 2, (512, 384, 16, 1, 1, 0)),
    (UNET, "conv1d", 2, (128, 512, 16, 1, 1, 0)),
    (UNET, "conv1d", 1, (768, 512, 16, 3, 1, 1)),
    (UNET, "conv1d", 1, (768, 512, 16, 1, 1, 0)),
    (UNET, "conv1d", 1, (512, 256, 32, 3, 1, 1)),
    (UNET, "linear", 1, (1, 128, 512)),
    (UNET, "linear", 1, (1, 512, 512)),
    (UNET, "linear", 4, (1, 512, 256)),
    (UNET, "linear", 10, (1, 512, 512)),
    (UNET, "linear", 9, (1, 512, 1024)),
]


def best_time(fn, repeat=5, warmup=1):
    """Fastest of `repeat` runs: on a shared machine the minimum is the least
    disturbed estimate (the median is reported by gemm.py/common.py instead)."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def _rand(rng, shape):
    return rng.standard_normal(shape, dtype=np.float32)


def _case(label, flops, fwd, bwd, out):
    fwd.out = out  # the array forward() writes (benchmarks/winograd.py compares it)
    return label, flops, fwd, bwd


def make_case(kind, args, B, rng):
    """(label, flops_forward, forward(), backward()); forward.out is its output array."""
    if kind == "linear":
        m, c, oc = args
        x, w, b = _rand(rng, (B * m, c)), _rand(rng, (oc, c)) * 0.01, _rand(rng, oc)
        out, dx, dw, db = np.empty((B * m, oc), np.float32), np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
        return _case(f"linear {c}->{oc} (M={B * m})", 2.0 * B * m * c * oc,
                     lambda: lib.linear_forward(out, x, w, b), lambda: lib.linear_backward(dx, dw, db, out, x, w), out)
    if kind == "conv1d":
        c, oc, L, k, s, p = args
        ol = (L + 2 * p - k) // s + 1
        x, w, b = _rand(rng, (B, c, L)), _rand(rng, (oc, c, k)) * 0.01, _rand(rng, oc)
        out, dx, dw, db = np.empty((B, oc, ol), np.float32), np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
        return _case(f"conv1d {c}->{oc} k{k} s{s} L{L}", 2.0 * B * oc * c * k * ol,
                     lambda: lib.conv1d_forward(out, x, w, b, stride=s, padding=p),
                     lambda: lib.conv1d_backward(dx, dw, db, out, x, w, stride=s, padding=p), out)
    c, oc, H, W, k, s, p = args
    x, b = _rand(rng, (B, c, H, W)), _rand(rng, oc)
    ks = f"{k[0]}" if k[0] == k[1] else f"({k[0]},{k[1]})"
    ss = f"{s[0]}" if s[0] == s[1] else f"({s[0]},{s[1]})"
    if kind == "conv2d":
        oh, ow = (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1
        w = _rand(rng, (oc, c, *k)) * 0.01
        out = np.empty((B, oc, oh, ow), np.float32)
        dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
        return _case(f"conv {c}->{oc} k{ks} s{ss} {H}x{W}", 2.0 * B * oc * c * k[0] * k[1] * oh * ow,
                     lambda: lib.conv2d_forward(out, x, w, b, stride=s, padding=p),
                     lambda: lib.conv2d_backward(dx, dw, db, out, x, w, stride=s, padding=p), out)
    oh, ow = (H - 1) * s[0] - 2 * p[0] + k[0], (W - 1) * s[1] - 2 * p[1] + k[1]
    w = _rand(rng, (c, oc, *k)) * 0.01
    out = np.empty((B, oc, oh, ow), np.float32)
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
    return _case(f"convT {c}->{oc} k{ks} s{ss} {H}x{W}", 2.0 * B * oc * c * k[0] * k[1] * H * W,
                 lambda: lib.convt2d_forward(out, x, w, b, stride=s, padding=p),
                 lambda: lib.convt2d_backward(dx, dw, db, out, x, w, stride=s, padding=p), out)


def sgemm_rate(repeat):
    rng = np.random.default_rng(1)
    a, w = _rand(rng, (1024, 1024)), _rand(rng, (1024, 1024))
    out = np.empty((1024, 1024), np.float32)
    t = best_time(lambda: lib.linear_forward(out, a, w, None), repeat=repeat)
    return 2.0 * 1024**3 / t / 1e9


def run(threads=None, quick=False, only=None, passes=None):
    if threads:
        ubdiff.set_num_threads(threads)
    div = 4 if quick else 1
    passes = passes or (1 if quick else 2)
    # On a shared machine the load changes from second to second: every layer is
    # timed in rounds that interleave the reference sgemm, its forward and its
    # backward, over `passes` sweeps of the whole list (minutes apart), and the
    # fastest of everything is kept. Ratios use the best reference of the run.
    refs, best = [], {}
    for _ in range(passes):
        rng = np.random.default_rng(0)
        for i, (model, kind, count, args) in enumerate(LAYERS):
            if quick and kind == "linear" and args[2] >= 100_000:
                continue
            B = (16 if "U-Net" in model else 64) // div
            label, flops, fwd, bwd = make_case(kind, args, B, rng)
            if only and only not in label and only not in model:
                continue
            fwd(), bwd()  # warm-up (page faults, BLAS buffers)
            rounds = 3 if quick or flops > 5e9 else 5
            tf = tb = float("inf")
            for _ in range(rounds):
                refs.append(sgemm_rate(1))
                tf = min(tf, best_time(fwd, repeat=1, warmup=0))
                tb = min(tb, best_time(bwd, repeat=1, warmup=0))
            old = best.get(i, (model, label, count, flops, tf, tb))
            best[i] = (model, label, count, flops, min(tf, old[4]), min(tb, old[5]))
    ref = max(refs)
    rows, slow = [], []
    for i in sorted(best):
        model, label, count, flops, tf, tb = best[i]
        gf, gb = flops / tf / 1e9, 2 * flops / tb / 1e9
        rows.append((model.split(" (")[0], label, f"x{count}", f"{flops / 1e9:.2f}", f"{tf * 1e3:.2f}",
                     f"{gf:.0f}", f"{gf / ref:.2f}", f"{tb * 1e3:.2f}", f"{gb:.0f}", f"{gb / ref:.2f}"))
        if min(gf, gb) < 0.5 * ref:
            slow.append(label)
    print(f"machine: {machine()}; quick={quick}; {passes} pass(es)")
    print(f"reference sgemm 1024^3: best {ref:.1f} GFLOP/s, median {np.median(refs):.1f}, worst {min(refs):.1f} "
          f"over {len(refs)} measurements (interleaved with the layers)")
    print(table(rows, ["model", "layer", "n", "fwd GFLOP", "fwd ms", "fwd GFLOP/s", "fwd/sgemm",
                       "bwd ms", "bwd GFLOP/s", "bwd/sgemm"]))
    print(f"{len(slow)} of {len(rows)} layers below half the best sgemm rate in fwd or bwd")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None, help="only layers whose label or model contains this")
    ap.add_argument("--passes", type=int, default=None, help="sweeps over the layer list (default 2, quick 1)")
    a = ap.parse_args()
    run(a.threads, a.quick, a.only, a.passes)
