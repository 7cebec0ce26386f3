"""Training and sampling throughput of the models (samples per second).

    python benchmarks/train_sample.py --part ae [--config paper] [--batch 64] [--repeat 3] [--threads N]

Part ``ae`` (co-latent autoencoder): one training step of step 1 (E + velocity
head + D_v), step 2 with F = 1 (seismic head + D_s; E frozen) and with F = 0
(everything), and eval-mode decoding of z into a (velocity, seismic) pair.
Random normalised data of the real shapes; the paper configuration needs about
4 GB for parameters, gradients and Adam moments plus the activations of one
batch. Prints a Markdown table (median of `repeat` steps after one warm-up).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, median_time, table  # noqa: E402

import ubdiff  # noqa: E402
from ubdiff.models.autoencoder import CoLatentAutoencoder  # noqa: E402


def bench_autoencoder(config="paper", batch=64, repeat=3):
    m = CoLatentAutoencoder(config, max_batch=batch)
    c = m.config
    rng = np.random.default_rng(0)
    vel = np.tanh(rng.standard_normal((batch, 1, 70, 70))).astype(np.float32)
    seis = np.tanh(rng.standard_normal((batch, c["shots"], c["nt"], c["nr"]))).astype(np.float32)
    z = rng.uniform(-1, 1, (batch, c["latent"])).astype(np.float32)
    cases = [
        ("step 1 (E + head_v + D_v)", lambda: m.train_step(vel, mode="step1")),
        ("step 2, F = 1 (head_s + D_s)", lambda: m.train_step(vel, seis, mode="step2", freeze=True)),
        ("step 2, F = 0 / w/o opt (all)", lambda: m.train_step(vel, seis, mode="step2", freeze=False)),
        ("decode z -> (velocity, seismic)", lambda: m.decode(z)),
    ]
    rows = []
    for what, fn in cases:
        t = median_time(fn, repeat=repeat, warmup=1)
        rows.append((what, batch, f"{t:.3f}", f"{batch / t:.1f}"))
    print(f"autoencoder config {config!r} ({m.num_parameters():,} parameters), batch {batch}")
    print(f"machine: {machine()}")
    print(table(rows, ["call", "batch", "s / call", "samples / s"]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["ae"], default="ae")
    ap.add_argument("--config", default="paper")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        ubdiff.set_num_threads(a.threads)
    if a.part == "ae":
        bench_autoencoder(a.config, a.batch, a.repeat)


if __name__ == "__main__":
    main()
