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
Diagnostics: the share of latent entries at |z| > 0.99 (the encoder ends in
tanh; sampling clamps to [-1, 1]), the mean distance of each sampler's latents
from DDPM's (same seed), and the spread of the decoded maps (per-pixel standard
deviation across samples, averaged; m/s). --save / --load keep the trained model.
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
    ap.add_argument("--save", default=None, help="folder to save the trained model in (UBDiff.save)")
    ap.add_argument("--load", default=None, help="folder of a model saved with --save: skip training")
    a = ap.parse_args(argv)
    if a.threads:
        ubdiff.set_num_threads(a.threads)
    t0 = time.perf_counter()
    train = families.generate_velocity("flatvel-a", a.maps, seed=a.seed)
    real = families.generate_velocity("flatvel-a", 2 * a.n, seed=a.seed + 1)
    if a.load:
        m = ubdiff.UBDiff.load(a.load)
    else:
        m = ubdiff.UBDiff("small", seed=a.seed)
        m.fit_autoencoder(train, a.epochs, lr=5e-4, lr_decay=0.95, progress=False)  # m/s in, normalised inside
        m.fit_diffusion(train, a.diffusion_steps, progress=False)
        if a.save:
            m.save(a.save)
    t_train = time.perf_counter() - t0
    z_real = m.encode(train[:a.n])  # the latents the diffusion learnt, for the diagnostics below
    ref, floor_set = real[:a.n], real[a.n:]
    sat = lambda z: f"{np.mean(np.abs(z) > 0.99):.2f}"  # noqa: E731  (share of clamped / saturated entries)
    spread = lambda v: f"{v.std(axis=0).mean():.0f}"  # noqa: E731  (m/s: how different the maps are from each other)
    rows = [("real vs real (floor)", "-", "-", f"{metrics.fid(ref, floor_set):.2f}", sat(z_real), "-", spread(ref))]
    runs = [("ddim", int(s)) for s in a.steps.split(",")] + [("ddpm", 256)]
    zs = []
    for sampler, steps in runs:
        t1 = time.perf_counter()
        z = m.sample_latents(a.n, seed=a.seed + 7, sampler=sampler, steps=None if sampler == "ddpm" else steps)
        ts = time.perf_counter() - t1
        mb = m.autoencoder.config["max_batch"]
        v = np.concatenate([m.autoencoder.decode(z[i:i + mb, 0], seismic=False)[0] for i in range(0, a.n, mb)])
        gen = m._norm().velocity_inverse(v)  # m/s
        zs.append(z)
        rows.append([f"{sampler} {steps} steps", f"{ts:.1f}", f"{a.n / ts:.1f}", f"{metrics.fid(ref, gen):.2f}",
                     sat(z), None, spread(gen)])
    for r, z in zip(rows[1:], zs):  # mean |z - z_ddpm|: how far each sampler's latents are from DDPM's
        r[5] = f"{np.abs(z - zs[-1]).mean():.3f}"
    print(f"DDIM curve, config 'small' ({a.maps} maps, {a.epochs} AE epochs, {a.diffusion_steps} diffusion "
          f"steps, trained in {t_train:.0f} s); {a.n} samples vs {a.n} real maps; {machine()}\n")
    print(table(rows, ["sampler", "sampling s", "latents / s", "FID (velocity)", "abs z > 0.99", "mean abs(z - z_ddpm)",
                       "map spread m/s"]))


if __name__ == "__main__":
    main()
