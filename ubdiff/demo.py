"""`python -m ubdiff demo`: UB-Diff end to end on the small configuration, on a CPU, in minutes.

1. data: FlatVel-A-like velocity maps (ubdiff.data.families), a few of them with
   seismic records simulated by ubdiff.physics (OpenFWI's acquisition, nt = 1000,
   read subsampled ::4 to the small config's nt = 250): the unbalanced setting;
2. step 1: encoder + velocity decoder on all maps;
3. step 2 (F = 1): seismic head + decoder on the pairs;
4. step 3: latent diffusion on z = E(velocity);
5. generation: new (velocity, seismic) pairs by DDPM, written as OpenFWI files, a
   figure of the pairs, and a physics check (generated seismic vs the simulation
   of the generated velocity map, ubdiff.metrics.physics_consistency).

The sizes are a demo's, far from the paper's (24,000 maps, 150,000 diffusion
steps): expect blurry layered maps and rough gathers, not publication quality.
``scale`` multiplies data sizes and training lengths (e.g. 0.2 for a smoke run).
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import build_info


def _stage(name, t0, losses, key="total"):
    first, last = losses[0][key] if isinstance(losses[0], dict) else losses[0], \
        losses[-1][key] if isinstance(losses[-1], dict) else losses[-1]
    return dict(stage=name, seconds=time.perf_counter() - t0, first=float(first), last=float(last))


def run_demo(out_dir: str = "demo_out", seed: int = 0, scale: float = 1.0, threads: int | None = None) -> int:
    import ubdiff
    from .data import unbalanced_split
    from .data import make_dataset
    from .pipeline_figure import save_pairs_figure

    if threads:
        ubdiff.set_num_threads(threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        # On an oversubscribed machine OpenMP threads spend most of their time waiting at
        # barriers for a descheduled sibling (measured here: 2 threads 10-25x slower than 1
        # at load 5 on 2 cores); one thread degrades gracefully.
        load, cores = os.getloadavg()[0], ubdiff.available_cores()
        if cores > 1 and load > cores:
            ubdiff.set_num_threads(1)
            print(f"machine busy (load {load:.1f} on {cores} cores): using 1 thread (--threads N or OMP_NUM_THREADS to override)")
    info = build_info()
    print(f"ubdiff {info['version']} | BLAS: {info['blas'].split(' DYNAMIC')[0]} | threads: {info['num_threads']} | "
          f"CUDA compiled: {info['cuda_compiled']} | GPU: {info['gpu_present']}")
    s = float(scale)
    maps, paired = max(32, int(512 * s)), max(8, int(64 * s))
    ep1, ep2, dsteps = max(2, int(12 * s)), max(2, int(30 * s)), max(20, int(1000 * s))
    n_gen, n_check = 16, 8
    os.makedirs(out_dir, exist_ok=True)
    t_all = time.perf_counter()
    rows = []

    # 1. data ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    data_dir = os.path.join(out_dir, "data")
    print(f"\n[1/5] data: {maps} flatvel-a maps, {paired} with simulated seismic (nt = 1000) -> {data_dir}")
    make_dataset("flatvel-a", maps, paired, data_dir, seed=seed, preview=False)
    split = unbalanced_split(data_dir, n_paired=paired, seed=seed)
    rows.append(dict(stage="data", seconds=time.perf_counter() - t0, first=float("nan"), last=float("nan")))

    model = ubdiff.UBDiff("small", seed=seed)
    print(f"model: {model!r}")

    # 2. step 1 -------------------------------------------------------------------------------
    t0 = time.perf_counter()
    print(f"\n[2/5] step 1: encoder + velocity decoder, {ep1} epochs on {len(split.velocity)} maps")
    h = model.fit_autoencoder(split.velocity, ep1, lr=5e-4, lr_decay=0.95)
    rows.append(_stage("step 1 (velocity AE)", t0, h))
    print(f"      loss {h[0]['total']:.4f} -> {h[-1]['total']:.4f}")

    # 3. step 2 ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    print(f"\n[3/5] step 2 (F = 1): seismic decoder, {ep2} epochs on {len(split.paired)} pairs")
    h = model.finetune(split.paired, epochs=ep2, freeze=True, lr=5e-4, lr_decay=0.97)
    rows.append(_stage("step 2 (seismic decoder)", t0, h))
    print(f"      loss {h[0]['total']:.4f} -> {h[-1]['total']:.4f}")

    # 4. diffusion ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    print(f"\n[4/5] step 3: latent diffusion, {dsteps} steps (batch 16 x 2) on z of {len(split.velocity)} maps")
    # a short run at a high lr: sample with a fast fixed-decay EMA (the defaults are the authors': the
    # ema-pytorch warm-up, online weights sampling)
    losses = model.fit_diffusion(split.velocity, dsteps, lr=1e-3, ema="fixed", ema_every=1, ema_decay=0.99)
    k = max(1, len(losses) // 10)
    rows.append(dict(stage="step 3 (diffusion)", seconds=time.perf_counter() - t0,
                     first=float(np.mean(losses[:k])), last=float(np.mean(losses[-k:]))))
    print(f"      loss (mean of first / last {k} steps) {rows[-1]['first']:.4f} -> {rows[-1]['last']:.4f}")
    model.save(os.path.join(out_dir, "run"))

    # 5. generation -----------------------------------------------------------------------------
    t0 = time.perf_counter()
    gen_dir = os.path.join(out_dir, "generated")
    print(f"\n[5/5] generating {n_gen} pairs (ancestral DDPM, {model.diffusion.timesteps} steps) -> {gen_dir}")
    model.generate(n_gen, gen_dir, seed=seed + 1, weights="ema")
    from .data import open_npy
    vel = np.array(open_npy(os.path.join(gen_dir, "model1.npy"), what="velocity"))
    seis = np.array(open_npy(os.path.join(gen_dir, "data1.npy"), what="seismic"))
    fig = save_pairs_figure(os.path.join(out_dir, "generated_pairs.png"), vel, seis,
                            title=f"UB-Diff demo (small config): generated velocity maps and their "
                                  f"seismic shot gathers (seed {seed + 1})")
    t_gen = time.perf_counter() - t0
    rows.append(dict(stage="generation", seconds=t_gen, first=float("nan"), last=float("nan")))

    t0 = time.perf_counter()
    from .metrics import physics_consistency
    pc = physics_consistency(vel[:n_check], seis[:n_check])
    corr, rel = float(np.mean(pc["corr_mean"])), float(np.median(pc["rel_l2"]))
    rows.append(dict(stage="physics check", seconds=time.perf_counter() - t0, first=float("nan"),
                     last=float("nan")))

    total = time.perf_counter() - t_all
    print("\nsummary")
    print(f"  {'stage':<26} {'seconds':>8}   loss first -> last")
    for r in rows:
        loss = "" if np.isnan(r["first"]) else f"{r['first']:.4f} -> {r['last']:.4f}"
        print(f"  {r['stage']:<26} {r['seconds']:8.1f}   {loss}")
    print(f"  {'total':<26} {total:8.1f}")
    print(f"generated velocity: {vel.min():.0f} .. {vel.max():.0f} m/s; seismic {seis.shape[1:]} "
          f"amplitudes {seis.min():.3g} .. {seis.max():.3g}")
    print(f"physics consistency of {n_check} generated pairs (generated seismic vs simulating the generated map): "
          f"mean trace correlation {corr:.3f}, median relative L2 {rel:.3f}")
    print(f"figure: {os.path.abspath(fig)}")
    print(f"files: {os.path.abspath(gen_dir)} (OpenFWI layout), checkpoints: {os.path.abspath(os.path.join(out_dir, 'run'))}")
    ok = all(np.isnan(r["first"]) or r["last"] < r["first"] for r in rows) and np.isfinite(seis).all()
    return 0 if ok else 1
