"""Evaluation of one method's samples against the held-out real data, the same
for every method:

- ``fid`` / ``kid`` per modality it produces (Tables 2, 4, 5): ubdiff's
  reference feature networks (ubdiff.metrics; NOT the paper's Inception net, so
  the values compare across methods here, not with the paper's numbers), N
  generated samples against the held-out real maps / records;
- ``inversionnet`` (Table 3, paired methods): InversionNet trained on the N
  generated pairs, tested on the held-out real pairs (MAE, MSE on velocity in
  [-1, 1], SSIM on [0, 1] maps);
- ``physics`` (paired methods): generated seismic against the forward-modelled
  seismic of the generated map (ubdiff.metrics.physics_consistency);
- ``reconstruction`` (methods with an autoencoder): real velocity maps through
  E and both decoders, compared with the real records and maps, on the held-out
  pairs and on the n training pairs (in- vs out-of-sample).

The reference row ("real") evaluates the real training data the same way:
velocity FID of N real training maps (FID's floor at this N), seismic FID of
the n real training records, InversionNet trained on the n real pairs.
"""
from __future__ import annotations

import time

import numpy as np

from .. import metrics as M
from ..data import Normalizer


class _View:
    """Slices of one modality of a dataset, in physical units, for extract_features."""

    def __init__(self, ds, modality, limit=None):
        self.ds, self.modality = ds, modality
        self.n = len(ds) if limit is None else min(len(ds), int(limit))

    def __len__(self):
        return self.n

    def __getitem__(self, sl):
        idx = np.arange(self.n)[sl]
        return self.ds.velocity(idx) if self.modality == "velocity" else self.ds.seismic(idx)


def features(ds, modality, split, plan, limit=None, desc="features", progress=False) -> np.ndarray:
    return M.extract_features(_View(ds, modality, limit), modality=modality, batch_size=plan["fid_batch"],
                              data_range=split.seismic_range if modality == "seismic" else split.velocity_range,
                              progress=progress, desc=desc, name=desc)


def real_features(split, plan, progress=False) -> dict:
    """Features of the held-out real data (the reference of every FID / KID)."""
    return {"velocity": features(split.test_velocity, "velocity", split, plan, desc="real velocity features",
                                 progress=progress),
            "seismic": features(split.test_pairs, "seismic", split, plan, desc="real seismic features",
                                progress=progress)}


def distance(f_real, f_gen, seed) -> dict:
    k = M.kid_from_features(f_real, f_gen, subsets=100, subset_size=min(1000, len(f_real), len(f_gen)), seed=seed)
    return {"fid": float(M.fid_from_features(f_real, f_gen)), "kid_mean": float(k.mean), "kid_std": float(k.std),
            "n_generated": int(len(f_gen)), "n_real": int(len(f_real))}


def inversionnet(train_pairs, split, plan, seed, progress) -> dict:
    inv = plan["inversionnet"]
    r = M.inversion_usefulness(train_pairs, split.test_pairs, config=inv["config"], epochs=inv["epochs"],
                               batch_size=min(inv["batch_size"], len(train_pairs)), lr=inv["lr"], seed=seed,
                               data_range=split.seismic_range, velocity_range=split.velocity_range,
                               progress=progress)
    g = r["generated"]
    return {"mae": g["mae"], "mse": g["mse"], "ssim": g["ssim"], "n_train": g["n_train"], "n_test": len(split.test_pairs),
            "train_loss": g["train_loss"], "seconds": g["seconds"]}


def physics(pairs, split, plan, progress) -> dict:
    k = min(plan["physics_pairs"], len(pairs))
    if k == 0:
        return {"skipped": "physics_pairs is 0"}
    idx = np.arange(k)
    v, s = pairs.velocity(idx), pairs.seismic(idx)
    lo, hi = split.velocity_range
    r = M.physics_consistency(v, s, vmin=lo, vmax=hi, batch_size=min(8, k), progress=progress)
    sm = r["summary"]
    return {"pairs": k, "rel_l2_median": sm["rel_l2"]["median"], "rel_l2_mean": sm["rel_l2"]["mean"],
            "rel_l1_median": sm["rel_l1"]["median"], "corr_mean": float(np.nanmean(r["corr_mean"])),
            "rel_l2": r["rel_l2"], "time_subsample": r["subsample"]}


def reconstruction(f, split, plan) -> dict:
    """Errors of f's reconstructions of real pairs (normalised units), held-out and training pairs."""
    norm = Normalizer(split.constants)
    out = {}
    for name, ds in (("heldout", split.test_pairs), ("train", split.train_pairs)):
        acc = {"seismic_mae": [], "seismic_mse": [], "velocity_mae": [], "velocity_mse": [], "velocity_ssim": []}
        bs = plan["fid_batch"]
        for s0 in range(0, len(ds), bs):
            idx = np.arange(s0, min(len(ds), s0 + bs))
            v = norm.velocity(ds.velocity(idx))
            s = ds.seismic(idx)
            k = s.shape[2] // f.nt
            s = norm.seismic(np.ascontiguousarray(s[:, :, ::k]))
            rv, rs = f(v)
            acc["seismic_mae"].append(np.abs(rs - s).reshape(len(idx), -1).mean(1))
            acc["seismic_mse"].append(((rs - s) ** 2).reshape(len(idx), -1).mean(1))
            acc["velocity_mae"].append(M.mae(rv, v, reduction="none"))
            acc["velocity_mse"].append(M.mse(rv, v, reduction="none"))
            acc["velocity_ssim"].append(M.ssim(rv, v, reduction="none"))
        out[name] = {k: float(np.concatenate(a).mean()) for k, a in acc.items()}
        out[name]["pairs"] = len(ds)
    return out


def evaluate_samples(method, ctx, samples: dict, refs: dict, progress: bool) -> dict:
    """Every evaluation that applies to the method (see the module docstring)."""
    split, plan = ctx.data, ctx.plan
    out = {"method": method.name, "title": method.title, "produces": list(method.produces), "paired": method.paired,
           "samples": int(samples["meta"]["maps"])}
    t0 = time.perf_counter()
    for mod in method.produces:
        ds = samples["velocity"] if mod == "velocity" else samples["pairs"]
        fg = features(ds, mod, split, plan, desc=f"{method.name} {mod} features", progress=progress)
        out[mod] = distance(refs[mod], fg, ctx.seed)
    if method.paired:
        out["inversionnet"] = inversionnet(samples["pairs"], split, plan, ctx.seed, progress)
        out["physics"] = physics(samples["pairs"], split, plan, progress)
    if method.reconstruct is not None:
        out["reconstruction"] = reconstruction(method.reconstruct(ctx), split, plan)
    out["seconds"] = time.perf_counter() - t0
    return out


def evaluate_real(split, plan, refs: dict, seed: int, progress: bool) -> dict:
    """The reference row: the real training data evaluated as if it were a method's samples."""
    n = min(plan["samples"], len(split.train_velocity))
    out = {"method": "real", "title": "real data (training split)", "paired": True,
           "velocity": distance(refs["velocity"], features(split.train_velocity, "velocity", split, plan, limit=n,
                                                           desc="real training velocity features"), seed),
           "seismic": distance(refs["seismic"], features(split.train_pairs, "seismic", split, plan,
                                                         desc="real training seismic features"), seed),
           "inversionnet": inversionnet(split.train_pairs, split, plan, seed, progress)}
    out["note"] = (f"velocity FID of {n} real training maps (FID's floor at this sample size); seismic FID of the "
                   f"{len(split.train_pairs)} real training records; InversionNet trained on the "
                   f"{len(split.train_pairs)} real pairs")
    return out
