"""Physics consistency of generated pairs: does the generated seismic record
match what the wave equation makes of the generated velocity map?

For each pair (v, s_gen) we simulate s_sim = simulate(v) and report
- relative L1  = sum|s_gen - s_sim| / sum|s_sim|,
- relative L2  = ||s_gen - s_sim||_2 / ||s_sim||_2,
- Pearson correlation of s_gen and s_sim per shot (over time x receivers),
all in physical units, plus a summary and the worst pairs (largest relative L2).
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from . import _norm

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _default_simulate():
    try:
        from ubdiff.physics import forward_model
    except ImportError as e:
        raise ImportError("physics_consistency needs a simulator: ubdiff.physics.forward_model is not "
                          f"available in this build ({e}); pass simulate=<callable>") from e
    return forward_model


def subsample_factor(nt_sim: int, nt_gen: int) -> int:
    """k such that s_sim[..., ::k, :] has nt_gen time samples (1 when equal)."""
    if nt_gen == nt_sim:
        return 1
    if nt_gen > nt_sim or nt_gen < 1:
        raise ValueError(f"generated seismic has {nt_gen} time samples, the simulation {nt_sim}: "
                         "it can only be subsampled, not stretched")
    for k in sorted({max(1, nt_sim // nt_gen), -(-nt_sim // nt_gen)}):
        if len(range(0, nt_sim, k)) == nt_gen:
            return k
    raise ValueError(f"generated seismic has {nt_gen} time samples, which is not the simulation's "
                     f"{nt_sim} subsampled by an integer factor (::k)")


def _pearson_per_shot(a, b):
    """(B, S, T, R) x2 -> (B, S) correlation; NaN where either shot is constant."""
    a = a.reshape(a.shape[0], a.shape[1], -1)
    b = b.reshape(b.shape[0], b.shape[1], -1)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


def worst_order(rel_l2, indices) -> list:
    """``indices`` sorted worst first: largest relative L2 first, NaN last, ties by index."""
    return sorted(indices, key=lambda i: (bool(np.isnan(rel_l2[i])), -float(rel_l2[i]), int(i)))


def summarize(x) -> dict:
    """mean / std / min / max / quantiles of the finite values of x."""
    x = np.asarray(x, dtype=np.float64).ravel()
    f = x[np.isfinite(x)]
    out = {"count": int(f.size), "nonfinite": int(x.size - f.size)}
    if f.size == 0:
        return out
    out.update(mean=float(f.mean()), std=float(f.std()), min=float(f.min()), max=float(f.max()))
    for q, v in zip(QUANTILES, np.quantile(f, QUANTILES)):
        out[f"q{int(round(q * 100)):02d}"] = float(v)
    out["median"] = out["q50"]
    return out


def physics_consistency(velocity, seismic, *, simulate: Callable | None = None, normalized: bool = False,
                        vmin: float = _norm.VELOCITY_RANGE[0], vmax: float = _norm.VELOCITY_RANGE[1],
                        dataset: str | None = None, data_range=None, sim_kwargs: dict | None = None,
                        batch_size: int = 8, worst_k: int = 4, progress: bool = False, client=None,
                        threads: int | None = None) -> dict:
    """Compare generated seismic with the simulation of the generated velocity.

    velocity (N, 1, H, W) in m/s, seismic (N, S, T, R) in physical amplitude; with
    normalized=True both are in [-1, 1] and are mapped back (velocity with
    vmin/vmax, seismic with `dataset` or `data_range`). `simulate(v_batch,
    **sim_kwargs)` maps (B, 1, H, W) float32 m/s to (B, S, nt, R); it defaults to
    ubdiff.physics.forward_model. Generated seismic with fewer time samples than
    the simulation is compared against the simulation subsampled ::k (k inferred).

    Returns a dict: per-pair arrays "rel_l1" (N,), "rel_l2" (N,), "corr" (N, S),
    "corr_mean" (N,); "summary" (per metric statistics); "worst" (indices, worst
    first, by rel_l2; NaN last, ties by index) with "worst_simulated" (their simulated
    records, already subsampled); "subsample" (k).

    client: a ``distributed.Client``; then shards of whole batches are simulated on its
    workers (``simulate`` must be picklable: None or a module-level function), with the
    same per-pair results (ubdiff/distributed/eval_shards.py).
    """
    if len(velocity) != len(seismic):
        raise ValueError(f"velocity and seismic hold different numbers of samples: {len(velocity)} vs {len(seismic)}")
    n = len(velocity)
    if n == 0:
        raise ValueError("no pairs to check")
    if np.ndim(velocity) != 4 or np.ndim(seismic) != 4:
        raise ValueError(f"expected velocity (N, 1, H, W) and seismic (N, S, T, R), got "
                         f"{np.shape(velocity)} and {np.shape(seismic)}")
    for a, name in ((velocity, "velocity"), (seismic, "seismic")):
        kind = np.asarray(a[:1]).dtype.kind
        if kind not in "fiu":
            raise TypeError(f"{name}: must be a real numeric array, got dtype {np.asarray(a[:1]).dtype}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if client is not None:
        from ..distributed.eval_shards import physics_sharded
        kw = dict(simulate=simulate, normalized=normalized, vmin=vmin, vmax=vmax, dataset=dataset,
                  data_range=data_range, sim_kwargs=sim_kwargs, batch_size=batch_size)
        return physics_sharded(client, velocity, seismic, kw, worst_k, threads=threads, progress=progress)
    simulate = _default_simulate() if simulate is None else simulate
    sim_kwargs = dict(sim_kwargs or {})
    if normalized:
        drange = _norm.seismic_range(dataset, data_range)

    rel_l1, rel_l2 = np.empty(n), np.empty(n)
    corr = None
    k_sub = None
    worst: dict[int, np.ndarray] = {}   # running top-k by rel_l2: index -> simulated record
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="physics consistency", unit="batch")
    for s in starts:
        v = np.asarray(velocity[s:s + batch_size], dtype=np.float32)
        g = np.asarray(seismic[s:s + batch_size], dtype=np.float32)
        _norm.check_finite(v, "velocity", offset=s)
        _norm.check_finite(g, "seismic", offset=s)
        if normalized:
            v = _norm.denormalize_velocity(v, vmin, vmax)
            g = _norm.denormalize_seismic(g, *drange)
        sim = np.asarray(simulate(np.ascontiguousarray(v), **sim_kwargs), dtype=np.float32)
        if sim.ndim != 4 or sim.shape[0] != v.shape[0]:
            raise ValueError(f"simulate returned shape {sim.shape} for {v.shape[0]} velocity maps")
        _norm.check_finite(sim, "simulate(velocity) (the simulation)", offset=s)
        if sim.shape[1] != g.shape[1] or sim.shape[3] != g.shape[3]:
            raise ValueError(f"shots/receivers differ: generated {g.shape[1:]} vs simulated {sim.shape[1:]}")
        k = subsample_factor(sim.shape[2], g.shape[2])
        k_sub = k if k_sub is None else k_sub
        sim = sim[:, :, ::k, :]
        d = (g - sim).astype(np.float64).reshape(len(g), -1)
        r = sim.astype(np.float64).reshape(len(g), -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel_l1[s:s + len(g)] = np.abs(d).sum(1) / np.abs(r).sum(1)
            rel_l2[s:s + len(g)] = np.linalg.norm(d, axis=1) / np.linalg.norm(r, axis=1)
        c = _pearson_per_shot(g.astype(np.float64), sim.astype(np.float64))
        if corr is None:
            corr = np.empty((n, c.shape[1]))
        corr[s:s + len(g)] = c
        if worst_k > 0:
            for j in range(len(g)):
                worst[s + j] = sim[j].copy()
            worst = {i: worst[i] for i in worst_order(rel_l2, worst)[:worst_k]}

    with warnings.catch_warnings():  # all-NaN rows (constant shots) give NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        corr_mean = np.nanmean(corr, axis=1)
    order = worst_order(rel_l2, worst)
    return {
        "rel_l1": rel_l1, "rel_l2": rel_l2, "corr": corr, "corr_mean": corr_mean,
        "summary": {"rel_l1": summarize(rel_l1), "rel_l2": summarize(rel_l2), "corr": summarize(corr)},
        "worst": np.asarray(order, dtype=np.int64),
        "worst_simulated": np.stack([worst[i] for i in order]) if order else None,
        "subsample": int(k_sub),
        "n": n,
    }


def plot_worst_pairs(velocity, seismic, result: dict, path=None, shots=(0, 2, 4), max_pairs: int = 4,
                     normalized: bool = False, vmin: float = _norm.VELOCITY_RANGE[0],
                     vmax: float = _norm.VELOCITY_RANGE[1], dataset: str | None = None, data_range=None):
    """Figure of the worst pairs (rows): velocity | for each shot: generated, simulated, difference.

    Like Fig. 6 of the paper. Uses result["worst"] / result["worst_simulated"]
    from physics_consistency (no re-simulation). Saves a PNG at `path` if given;
    returns the matplotlib Figure.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    idx = list(result["worst"][:max_pairs])
    if not idx:
        raise ValueError("result holds no worst pairs (physics_consistency(worst_k=0)?)")
    sims = result["worst_simulated"]
    k = result.get("subsample", 1)
    nshots = sims.shape[1]
    shots = [s for s in shots if 0 <= s < nshots] or [0]
    ncol = 1 + 3 * len(shots)
    fig, axes = plt.subplots(len(idx), ncol, figsize=(1.9 * ncol, 2.3 * len(idx)), squeeze=False)
    for row, i in enumerate(idx):
        v = np.asarray(velocity[i], np.float32)[0]
        g = np.asarray(seismic[i], np.float32)
        if normalized:
            v = _norm.denormalize_velocity(v, vmin, vmax)
            g = _norm.denormalize_seismic(g, *_norm.seismic_range(dataset, data_range))
        sim = sims[row]
        ax = axes[row, 0]
        im = ax.imshow(v, cmap="viridis", aspect="equal")
        ax.set_title(f"#{i} velocity\nrelL2={result['rel_l2'][i]:.3f}", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=5)
        for c, s in enumerate(shots):
            lim = float(np.percentile(np.abs(sim[s]), 99)) or 1.0
            diff = g[s] - sim[s]
            for j, (img, name) in enumerate(((g[s], "generated"), (sim[s], "simulated"), (diff, "difference"))):
                ax = axes[row, 1 + 3 * c + j]
                ax.imshow(img, cmap="seismic", vmin=-lim, vmax=lim, aspect="auto")
                extra = f"\nr={result['corr'][i, s]:.2f}" if name == "difference" else ""
                ax.set_title(f"shot {s} {name}{extra}", fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"Worst pairs by relative L2 (time subsampled ::{k})" if k > 1 else
                 "Worst pairs by relative L2", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
