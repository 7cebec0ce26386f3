"""The heavy parts of ``evaluate`` on a Dask cluster: feature extraction (FID/KID),
forward-model consistency and InversionNet prediction, split into shards of
whole batches.

A shard is a contiguous range of samples that starts at a multiple of the
batch size, so every batch -- the unit the networks and the simulator see --
is the batch a single-process run forms: per-sample results are the same bits
on the same machine and thread count, whatever the number of workers, and the
client joins them in index order. Inputs travel to the workers as arrays
(scattered, not embedded in the task graph).
"""
from __future__ import annotations

import math

import numpy as np

from .dask_jobs import run_shards


def shard_ranges(n: int, batch_size: int, client, per_worker: int = 4) -> list:
    """[start, stop) ranges of whole batches, about ``per_worker`` shards per worker thread."""
    try:
        slots = sum(int(w["nthreads"]) for w in client.scheduler_info(n_workers=-1)["workers"].values())
    except Exception:   # noqa: BLE001 -- only a size hint
        slots = 1
    batches = math.ceil(n / batch_size)
    per = batch_size * max(1, math.ceil(batches / max(1, per_worker * slots)))
    return [(a, min(a + per, n)) for a in range(0, n, per)]


# ---- FID / KID features ---------------------------------------------------------------------
def features_shard(x, start: int, stop: int, features, kw: dict) -> np.ndarray:
    from ..metrics.generative import extract_features
    return extract_features(x, features, name=f"{kw.pop('name', 'x')}[{start}:{stop}]", **kw)


def features_sharded(client, x, features, kw: dict, threads=None, progress: bool = False, desc: str = "features"):
    """extract_features(x, features, **kw) with the batches spread over ``client``'s workers."""
    ranges = shard_ranges(len(x), kw["batch_size"], client)
    out = run_shards(client, features_shard, [(np.asarray(x[a:b]), a, b, features, dict(kw)) for a, b in ranges],
                     name="features", threads=threads, progress=progress, desc=desc)
    return np.concatenate(out, axis=0)


# ---- physics consistency ---------------------------------------------------------------------
def physics_shard(velocity, seismic, kw: dict) -> dict:
    from ..metrics.physics import physics_consistency
    r = physics_consistency(velocity, seismic, **kw)
    del r["summary"]   # recomputed over all shards by the client
    return r


def physics_sharded(client, velocity, seismic, kw: dict, worst_k: int, threads=None, progress: bool = False) -> dict:
    """physics_consistency(velocity, seismic, **kw) with its batches spread over the workers;
    the worst pairs are chosen among all shards' worst with the single-process rule."""
    from ..metrics.physics import summarize, worst_order
    n = len(velocity)
    ranges = shard_ranges(n, kw["batch_size"], client)
    parts = run_shards(client, physics_shard,
                       [(np.asarray(velocity[a:b]), np.asarray(seismic[a:b]), dict(kw, worst_k=worst_k))
                        for a, b in ranges],
                       name="physics", threads=threads, progress=progress, desc="physics consistency")
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("rel_l1", "rel_l2", "corr", "corr_mean")}
    subs = {p["subsample"] for p in parts}
    if len(subs) != 1:
        raise ValueError(f"generated seismic records of different lengths across the set (subsampling {subs})")
    cand = {}
    for (a, _), p in zip(ranges, parts):
        for j, sim in zip(p["worst"], p["worst_simulated"] if p["worst_simulated"] is not None else []):
            cand[a + int(j)] = sim
    order = worst_order(out["rel_l2"], list(cand))[:worst_k]
    out.update(summary={"rel_l1": summarize(out["rel_l1"]), "rel_l2": summarize(out["rel_l2"]),
                        "corr": summarize(out["corr"])},
               worst=np.asarray(order, dtype=np.int64),
               worst_simulated=np.stack([cand[i] for i in order]) if order else None,
               subsample=subs.pop(), n=n)
    return out


# ---- InversionNet prediction on a test set ---------------------------------------------------------
_NETS = {}   # worker process: token -> InversionNet of the current job


def predict_shard(state, token: str, seismic, velocity, start: int, batch_size: int, examples: int) -> tuple:
    """Per-sample (ssim, mae, mse) of a shard's predictions, and the predictions of its
    samples with index < ``examples``."""
    from ..metrics.usefulness import _metrics_of
    from ..models import InversionNet
    if token not in _NETS:
        _NETS.clear()
        _NETS[token] = InversionNet.from_state_dict(state["tensors"], state["config"], max_batch=batch_size,
                                                    device=state.get("device", "auto"))
    net = _NETS[token]
    per, keep = {"ssim": [], "mae": [], "mse": []}, []
    for s0 in range(0, len(seismic), batch_size):
        s, v = seismic[s0:s0 + batch_size], velocity[s0:s0 + batch_size]
        p = net.predict(s, batch_size=batch_size, progress=False)
        for k, val in _metrics_of(p, v).items():
            per[k].append(val)
        if start + s0 < examples:
            keep.append(p[:examples - start - s0])
    return {k: np.concatenate(v) for k, v in per.items()}, (np.concatenate(keep) if keep else None)


def predict_sharded(client, model, test, batch_size: int, examples: int, threads=None, progress: bool = False,
                    desc: str = "testing InversionNet"):
    """(per-sample metrics, first predictions) of ``model`` on the pairs reader ``test``."""
    import secrets
    state = {"tensors": model.state_dict(), "config": {**model.config, "dims": list(model.config["dims"])},
             "device": model.device}   # the workers predict on the trained model's device, as in one process
    fut = client.scatter(state, broadcast=True, hash=False)
    token = secrets.token_hex(8)
    shards = []
    for a, b in shard_ranges(len(test), batch_size, client):
        s, v = test.read(np.arange(a, b))
        shards.append((fut, token, s, v, a, batch_size, examples))
    parts = run_shards(client, predict_shard, shards, name="inversionnet-predict", threads=threads,
                       progress=progress, desc=desc)
    per = {k: np.concatenate([p[0][k] for p in parts]) for k in ("ssim", "mae", "mse")}
    keep = [p[1] for p in parts if p[1] is not None]
    return per, np.concatenate(keep)[:examples]
