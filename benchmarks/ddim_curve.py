"""DDIM quality/speed curve: FID of generated velocity maps vs sampler steps.

    python benchmarks/ddim_curve.py [--maps 1024] [--epochs 12] [--diffusion-steps 2000] [--n 256]
                                    [--steps 16,32,64,128,256] [--threads 1]

Trains a small UB-Diff (config "small": step 1 autoencoder on FlatVel-A-like
maps from ubdiff.data.families, then the latent diffusion on z = E(velocity)),
samples --n latents with DDIM (eta = 0) at each step count and with ancestral
DDPM (256 steps), decodes them, and prints FID (ubdiff.metrics.fid with the
shipped velocity feature network) against --n held-out real maps, with the
sampling time. FID of two disjoint sets of real maps is printed as the floor.
The seismic side is not trained (step 2 is not needed for the velocity FID).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, table  # noqa: E402

import ubdiff  # noqa: E402
from ubdiff import metrics  # noqa: E402
from ubdiff.data import families  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--maps", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--diffusion-steps", type=int, default=2000)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", default="16,32,64,128,256")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.threads:
        ubdiff.set_num_threads(a.threads)
    t0 = time.perf_counter()
    train = families.generate_velocity("flatvel-a", a.maps, seed=a.seed)
    real = families.generate_velocity("flatvel-a", 2 * a.n, seed=a.seed + 1)
    m = ubdiff.UBDiff("small", seed=a.seed)
    m.fit_autoencoder(train, a.epochs, lr=5e-4, lr_decay=0.95, progress=False)  # m/s in, normalised inside
    m.fit_diffusion(train, a.diffusion_steps, progress=False)
    t_train = time.perf_counter() - t0
    ref, floor_set = real[:a.n], real[a.n:]
    rows = [("real vs real (floor)", "-", "-", f"{metrics.fid(ref, floor_set):.2f}")]
    runs = [("ddim", int(s)) for s in a.steps.split(",")] + [("ddpm", 256)]
    for sampler, steps in runs:
        t1 = time.perf_counter()
        z = m.sample_latents(a.n, seed=a.seed + 7, sampler=sampler, steps=None if sampler == "ddpm" else steps)
        ts = time.perf_counter() - t1
        mb = m.autoencoder.config["max_batch"]
        v = np.concatenate([m.autoencoder.decode(z[i:i + mb, 0], seismic=False)[0] for i in range(0, a.n, mb)])
        gen = m._norm().velocity_inverse(v)  # m/s
        rows.append((f"{sampler} {steps} steps", f"{ts:.1f}", f"{a.n / ts:.1f}", f"{metrics.fid(ref, gen):.2f}"))
    print(f"DDIM curve, config 'small' ({a.maps} maps, {a.epochs} AE epochs, {a.diffusion_steps} diffusion "
          f"steps, trained in {t_train:.0f} s); {a.n} samples vs {a.n} real maps; {machine()}\n")
    print(table(rows, ["sampler", "sampling s", "latents / s", "FID (velocity)"]))


if __name__ == "__main__":
    main()
