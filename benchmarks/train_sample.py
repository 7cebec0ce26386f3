"""Training and sampling throughput of the models (samples per second).

    python benchmarks/train_sample.py --part ae [--config paper] [--batch 64] [--repeat 3] [--threads N]
    python benchmarks/train_sample.py --part diffusion [--quick] [--threads N]

Part ``ae`` (co-latent autoencoder): one training step of step 1 (E + velocity
head + D_v), step 2 with F = 1 (seismic head + D_s; E frozen) and with F = 0
(everything), and eval-mode decoding of z into a (velocity, seismic) pair.
Random normalised data of the real shapes; the paper configuration needs about
4 GB for parameters, gradients and Adam moments plus the activations of one
batch. Prints a Markdown table (median of `repeat` steps after one warm-up).

Part ``diffusion``: the paper's latent diffusion (1-D U-Net, 21.3 M parameters,
latents 1 x 128): training latents/s at batch 16 x accumulation 2 (one
optimiser step = 32 latents), and the time of 256 ancestral DDPM steps at
batch 16 (= sampling 16 latents). --quick times fewer steps (DDPM time then
extrapolated from the measured per-step time).
"""
import argparse
import os
import sys
import time

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


def bench_diffusion(quick: bool) -> str:
    from ubdiff.models import LatentDiffusion

    m = LatentDiffusion("paper", seed=0, max_batch=16)
    rng = np.random.default_rng(0)
    z0 = rng.uniform(-1, 1, (32, 1, 128)).astype(np.float32)
    t_step = median_time(lambda: m.train_step(z0, accum=2), repeat=2 if quick else 5, warmup=1)
    x = rng.normal(size=(16, 1, 128)).astype(np.float32)
    t_fwd = median_time(lambda: m.forward(x, np.full(16, 100), use_ema=True), repeat=3 if quick else 10)
    if quick:
        k = 8
        t0 = time.perf_counter()
        m.sample(16, seed=0, sampler="ddim", steps=k)
        t_sample = (time.perf_counter() - t0) / k * 256
        how = f"extrapolated from {k} DDIM steps"
    else:
        t0 = time.perf_counter()
        m.sample(16, seed=0, sampler="ddpm")
        t_sample = time.perf_counter() - t0
        how = "measured"
    rows = [
        ("train step, batch 16 x accum 2", f"{t_step * 1e3:.0f} ms", f"{32 / t_step:.1f} latents/s"),
        ("U-Net forward, batch 16 (EMA)", f"{t_fwd * 1e3:.1f} ms", f"{16 / t_fwd:.0f} latents/s"),
        (f"DDPM 256 steps, batch 16 ({how})", f"{t_sample:.1f} s", f"{16 / t_sample:.2f} latents/s"),
    ]
    return (f"Latent diffusion, paper config ({m.num_parameters():,} parameters); {machine()}\n\n"
            + table(rows, ["what", "time", "throughput"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["ae", "diffusion"], default="ae")
    ap.add_argument("--quick", action="store_true", help="diffusion: extrapolate DDPM time from 8 steps")
    ap.add_argument("--config", default="paper")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        ubdiff.set_num_threads(a.threads)
    if a.part == "ae":
        bench_autoencoder(a.config, a.batch, a.repeat)
    elif a.part == "diffusion":
        print(bench_diffusion(a.quick))


if __name__ == "__main__":
    main()
