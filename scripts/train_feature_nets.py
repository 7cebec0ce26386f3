#!/usr/bin/env python
"""Rebuilds ubdiff's reference FID/KID feature networks (fixed recipe, fixed seed).

    PYTHONPATH=. python scripts/train_feature_nets.py [--out-dir ubdiff/weights] [--modality both]

For each modality a small CNN (ubdiff.metrics.featnet.FeatureNet) learns to
tell the ten OpenFWI families apart (softmax cross-entropy) and to regress the
mean and standard deviation of the normalised velocity map (MSE), from data
made here:

  velocity  VELOCITY["train_per_family"] maps per family from
            ubdiff.data.generate_velocity, normalised to [-1, 1] (1500..4500 m/s);
            random left-right flips.
  seismic   SEISMIC["train_per_family"] maps per family simulated with
            ubdiff.physics.forward_model at OpenFWI's geometry (nt = 1000,
            dt = 1 ms), subsampled ::4 in time (nt = 250), normalised as
            OpenFWI with each family's published data_min / data_max.

Held-out maps (other seeds) give the classification accuracy recorded in the
weights' metadata. Runs in about 10 minutes on 2 idle CPU cores (most of it
the seismic simulation). The simulation uses every thread; the training steps
use --train-threads (default 1: on a shared, loaded machine the many short
parallel regions of a small-batch step ran up to 10x slower with 2 threads
than with 1). The result depends on the thread counts only through float
rounding; the recipe (everything in RECIPE) is stored in the metadata.

The networks are ubdiff's own: FID/KID computed with them are NOT comparable
with the paper's Inception-based numbers, only with numbers computed with the
same network version.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from ubdiff.data import FAMILIES, generate_velocity, info, normalize_seismic, normalize_velocity  # noqa: E402
from ubdiff.metrics import featnet as fn  # noqa: E402

VERSION = fn.REFERENCE_VERSION
SEED = 20250101

_BLOCKS = [(32, 3, 3, 2, 2, 1, 1), (64, 3, 3, 2, 2, 1, 1), (128, 3, 3, 2, 2, 1, 1)]
VELOCITY = {
    "net": {"in_shape": [1, 70, 70], "blocks": [[16, 3, 3, 1, 1, 1, 1]] + [list(b) for b in _BLOCKS],
            "n_classes": len(FAMILIES), "n_reg": 2, "max_batch": 32},
    "train_per_family": 800, "test_per_family": 200,
    "steps": 1500, "batch": 32, "lr": 2e-3, "weight_decay": 1e-4, "w_reg": 1.0, "flip": True,
}
SEISMIC = {
    # first block: a (7, 1) kernel with stride (4, 1) shrinks time 250 -> 63
    "net": {"in_shape": [5, 250, 70], "blocks": [[16, 7, 1, 4, 1, 3, 0]] + [list(b) for b in _BLOCKS],
            "n_classes": len(FAMILIES), "n_reg": 2, "max_batch": 32},
    "train_per_family": 160, "test_per_family": 40, "nt": 1000, "subsample": 4,
    "steps": 1500, "batch": 32, "lr": 2e-3, "weight_decay": 1e-4, "w_reg": 1.0, "flip": False,
}
RECIPE = {"seed": SEED, "families": list(FAMILIES), "velocity": VELOCITY, "seismic": SEISMIC,
          "schedule": "AdamW betas (0.9, 0.999), linear warm-up over 50 steps then cosine decay to 0"}


def velocity_maps(split: int, per_family: int):
    """(maps (N,1,70,70) m/s, labels (N,)) of every family; split 0 train, 1 test (disjoint seeds)."""
    maps, labels = [], []
    for k, fam in enumerate(FAMILIES):
        maps.append(generate_velocity(fam, per_family, seed=np.random.SeedSequence([SEED, split, k])))
        labels.append(np.full(per_family, k))
    return np.concatenate(maps), np.concatenate(labels)


def reg_targets(vel_norm):
    """Mean and standard deviation of each normalised velocity map: (N, 2)."""
    flat = vel_norm.reshape(len(vel_norm), -1)
    return np.stack([flat.mean(1), flat.std(1)], 1).astype(np.float32)


def seismic_inputs(vel, labels, recipe):
    from ubdiff.physics import forward_model

    seis = forward_model(vel, nt=recipe["nt"], progress=True, batch_size=16)[:, :, ::recipe["subsample"]]
    out = np.empty_like(seis)
    for k, fam in enumerate(FAMILIES):
        sel = labels == k
        inf = info(fam)
        out[sel] = normalize_seismic(seis[sel], inf.data_min, inf.data_max)
    return np.ascontiguousarray(out)


def lr_at(step, recipe):
    warm = 50
    if step < warm:
        return recipe["lr"] * (step + 1) / warm
    t = (step - warm) / max(1, recipe["steps"] - warm)
    return recipe["lr"] * 0.5 * (1.0 + math.cos(math.pi * t))


def train(name, recipe, x_tr, y_tr, r_tr, x_te, y_te, threads, log_every=100):
    import ubdiff
    ubdiff.set_num_threads(threads)
    net = fn.FeatureNet(recipe["net"], seed=SEED)
    rng = np.random.default_rng([SEED, 7])
    n, B = len(x_tr), recipe["batch"]
    order, pos = rng.permutation(n), 0
    t0 = time.time()
    hist = []
    for step in range(recipe["steps"]):
        if pos + B > n:
            order, pos = rng.permutation(n), 0
        idx = np.sort(order[pos:pos + B])
        pos += B
        xb = x_tr[idx]
        if recipe["flip"]:
            flip = rng.random(B) < 0.5
            xb[flip] = xb[flip][..., ::-1]
        r = net.train_step(xb, y_tr[idx], r_tr[idx], lr=lr_at(step, recipe), weight_decay=recipe["weight_decay"],
                           w_reg=recipe["w_reg"])
        hist.append(r)
        if (step + 1) % log_every == 0 or step + 1 == recipe["steps"]:
            last = hist[-log_every:]
            print(f"[{name}] step {step + 1}/{recipe['steps']}  loss {np.mean([h['loss'] for h in last]):.4f}  "
                  f"xent {np.mean([h['xent'] for h in last]):.4f}  "
                  f"train acc {np.mean([h['accuracy'] for h in last]):.3f}  ({time.time() - t0:.0f} s)", flush=True)
    pred = np.argmax(net.predict(x_te), 1)
    acc = float(np.mean(pred == y_te))
    per_family = {fam: float(np.mean(pred[y_te == k] == k)) for k, fam in enumerate(FAMILIES)}
    print(f"[{name}] held-out accuracy {acc:.4f} over {len(y_te)} maps; per family "
          + ", ".join(f"{f} {a:.2f}" for f, a in per_family.items()), flush=True)
    return net, acc, per_family, time.time() - t0


def meta_for(modality, recipe, acc, per_family, n_train, n_test, seconds):
    return {"modality": modality, "version": VERSION, "name": fn.reference_name(modality, VERSION),
            "heldout_accuracy": acc, "heldout_accuracy_per_family": per_family, "heldout_maps": n_test,
            "train_maps": n_train, "train_seconds": round(seconds, 1), "recipe": json.loads(json.dumps(RECIPE)),
            "classes": list(FAMILIES), "input": (
                "velocity normalised to [-1, 1] from 1500..4500 m/s" if modality == "velocity" else
                "seismic (5 shots, nt = 250 = 1000 samples at 1 ms subsampled ::4, 70 receivers), "
                "OpenFWI-normalised to [-1, 1]"),
            "note": "ubdiff's own FID/KID feature network trained by scripts/train_feature_nets.py; "
                    "not the paper's Inception network, so values are not comparable with the paper's"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=fn.WEIGHTS_DIR)
    ap.add_argument("--modality", choices=("both", "velocity", "seismic"), default="both")
    ap.add_argument("--train-threads", type=int, default=1, help="threads of the training steps (default 1)")
    args = ap.parse_args(argv)
    import ubdiff
    sim_threads = ubdiff.get_num_threads()
    os.makedirs(args.out_dir, exist_ok=True)
    t_all = time.time()
    if args.modality in ("both", "velocity"):
        R = VELOCITY
        v_tr, y_tr = velocity_maps(0, R["train_per_family"])
        v_te, y_te = velocity_maps(1, R["test_per_family"])
        x_tr, x_te = normalize_velocity(v_tr), normalize_velocity(v_te)
        net, acc, per, sec = train("velocity", R, x_tr, y_tr, reg_targets(x_tr), x_te, y_te, args.train_threads)
        path = os.path.join(args.out_dir, os.path.basename(fn.reference_path("velocity", VERSION)))
        net.save(path, meta_for("velocity", R, acc, per, len(y_tr), len(y_te), sec))
        print(f"wrote {path}")
    if args.modality in ("both", "seismic"):
        R = SEISMIC
        # maps of their own seeds (splits 2 and 3), so no seismic map is a velocity training map
        v_tr, y_tr = velocity_maps(2, R["train_per_family"])
        v_te, y_te = velocity_maps(3, R["test_per_family"])
        t = time.time()
        ubdiff.set_num_threads(sim_threads)
        s_tr, s_te = seismic_inputs(v_tr, y_tr, R), seismic_inputs(v_te, y_te, R)
        print(f"[seismic] simulated {len(v_tr) + len(v_te)} maps in {time.time() - t:.0f} s", flush=True)
        net, acc, per, sec = train("seismic", R, s_tr, y_tr, reg_targets(normalize_velocity(v_tr)), s_te, y_te,
                                   args.train_threads)
        path = os.path.join(args.out_dir, os.path.basename(fn.reference_path("seismic", VERSION)))
        net.save(path, meta_for("seismic", R, acc, per, len(y_tr), len(y_te), sec))
        print(f"wrote {path}")
    print(f"total {time.time() - t_all:.0f} s")


if __name__ == "__main__":
    main()
