"""InversionNet throughput on the CPU core: training steps and predictions.

    python benchmarks/inversionnet.py [--config paper|small] [--batch 64] [--repeat 2] [--threads N]

One training step = forward (batch statistics) + L1/MSE loss + backward +
AdamW over all parameters, one C call. Prediction = eval-mode forward.
FLOP counts are the convolutions' multiply-adds x 2 (forward; a training step
counts 3x forward). Prints a Markdown table (median of repeats after one
warm-up). Random normalised inputs; the numbers do not depend on the data.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, median_time, table  # noqa: E402

import ubdiff  # noqa: E402
from ubdiff.models import InversionNet  # noqa: E402
from ubdiff.models.inversionnet import layout  # noqa: E402


def forward_flops(config) -> float:
    """FLOPs of one sample's forward pass (convolutions only)."""
    total = 0
    for (_, transposed, C, OC, H, W, KH, KW, _, _, _, _, OH, OW, _, _) in layout(config)[2]:
        total += 2 * C * OC * KH * KW * (H * W if transposed else OH * OW)
    return float(total)


def run(config="paper", batch=64, repeat=2, threads=None):
    if threads:
        ubdiff.set_num_threads(threads)
    m = InversionNet(config, seed=0, max_batch=batch)
    c = m.config
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c["in_channels"], c["nt"], c["nx"]), dtype=np.float32)
    v = np.tanh(rng.standard_normal((batch, 1, 70, 70), dtype=np.float32))
    out = np.empty((batch, 1, 70, 70), np.float32)
    from ubdiff._native import lib
    t_train = median_time(lambda: m.train_step(x, v), repeat=repeat, warmup=1)
    t_pred = median_time(lambda: lib.invnet_forward(m._h, out, x, False), repeat=repeat, warmup=1)
    f = forward_flops(config) * batch
    rows = [(config, f"{m.num_parameters():,}", batch, "train step", f"{t_train:.2f}", f"{batch / t_train:.2f}",
             f"{3 * f / t_train / 1e9:.1f}"),
            (config, f"{m.num_parameters():,}", batch, "predict", f"{t_pred:.2f}", f"{batch / t_pred:.2f}",
             f"{f / t_pred / 1e9:.1f}")]
    print(f"machine: {machine()}")
    print(table(rows, ["config", "parameters", "batch", "call", "s / call", "samples / s", "GFLOP/s"]))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="paper", choices=["paper", "small"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    run(a.config, a.batch, a.repeat, a.threads)
