"""Training and sampling throughput of the models (CPU core).

    python benchmarks/train_sample.py diffusion [--quick]

diffusion: the paper's latent diffusion (1-D U-Net, 21.3 M parameters,
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, median_time, table  # noqa: E402


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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["diffusion"])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.part == "diffusion":
        print(bench_diffusion(a.quick))


if __name__ == "__main__":
    main()
