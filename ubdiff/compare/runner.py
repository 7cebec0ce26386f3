"""``ubdiff.compare.run``: data, training, generation, evaluation, tables and
figures of a comparison, resumable.

Layout of ``out_dir``::

    compare.json                 the settings (family, scale, seed, plan); a rerun must match them
    data/                        the simulated dataset (make_dataset; resumable itself)
    methods/<name>/run/          the method's checkpoints (UBDiff.save: atomic, every few epochs/steps)
    methods/<name>/trained.json  written once the method's training is complete
    methods/<name>/samples/      its N generated samples (OpenFWI layout, written atomically)
    methods/<name>/eval.json     its evaluation (evaluate.py)
    reference/eval.json          the real-data reference row
    tables.md, tables.json       Tables 2-5, physics consistency, reconstruction errors
    figures/                     fig5_samples.png, fig6_<method>.png

Every file is written atomically, so a comparison killed at any point resumes
where it stopped when rerun with the same arguments: finished methods,
samples and evaluations are kept, a stage in progress continues from its
last save. Retraining a method (its trained.json removed) drops its samples
and evaluation; regenerating drops the evaluation.

Randomness: every method trains with ``seed`` (same initialisation, shuffles
and noise streams) and samples with ``seed + 1``.
"""
from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np

from . import evaluate, figures, registry, samples, scales, tables
from . import split as split_mod

FORMAT = "ubdiff-compare-1"
SETTINGS = "compare.json"


def _write_json(path, obj):
    from ..data.npyio import atomic_path
    from ..metrics.report import _jsonable
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(_jsonable(obj), f, indent=1, allow_nan=False)
            f.write("\n")


def _read_json(path):
    from ..data.files import read_json
    return read_json(path, "comparison state") if os.path.lexists(path) else None


def _settings(out_dir, family, scale, seed, plan) -> dict:
    """compare.json: written on the first run; a rerun with other settings is refused."""
    want = {"format": FORMAT, "family": family, "scale": scale, "seed": int(seed), "plan": plan}
    path = os.path.join(out_dir, SETTINGS)
    have = _read_json(path)
    if have is not None:
        diff = [k for k in want if have.get(k) != want[k]]
        if "plan" in diff:
            diff.remove("plan")
            diff += [f"plan.{k}" for k in sorted(set(plan) | set(have.get("plan") or {}))
                     if (have.get("plan") or {}).get(k) != plan.get(k)]
        if diff:
            raise ValueError(f"{out_dir}: holds a comparison with other settings ({', '.join(diff)} differ); "
                             "rerun with its settings to resume it, or use another --out")
    else:
        _write_json(path, want)
    return want


def _say(msg, progress=True):
    print(msg, flush=True)


def run(out_dir: str, family: str = "flatvel-a", paired: int | None = None, scale: str = "small",
        methods=None, device: str = "cpu", samples_n: int | None = None, seed: int = 0,
        progress: bool = True, plan_overrides: dict | None = None, make_figures: bool = True) -> dict:
    """Run (or resume) a comparison in ``out_dir``; returns {'settings', 'results', 'tables', 'paths'}.

    family: the velocity family of the simulated data (ubdiff.data.families);
    paired: n, the training pairs (default: the scale's); scale: 'small' | 'paper' | 'tiny'
    (ubdiff/compare/scales.py); methods: None (all), 'a,b' or a list of names
    (ubdiff.compare.registry); samples_n: N generated per method (default: the scale's);
    device: passed to the methods' models; plan_overrides: any other plan entry.
    """
    t_all = time.perf_counter()
    plan = scales.plan(scale, family, paired=paired, samples=samples_n, overrides=plan_overrides)
    names = registry.resolve(methods)
    os.makedirs(out_dir, exist_ok=True)
    settings = _settings(out_dir, family, scale, seed, plan)
    _say(f"comparison in {out_dir}: {family}, scale {scale}, m = {plan['maps']}, n = {plan['paired']}, "
         f"N = {plan['samples']}, methods {', '.join(names)}")

    t0 = time.perf_counter()
    data = split_mod.build(os.path.join(out_dir, "data"), family, plan, seed=seed, progress=progress)
    settings = dict(settings, sizes=data.sizes(), samples=plan["samples"])
    refs = evaluate.real_features(data, plan)
    timing = {"data": time.perf_counter() - t0}

    results = {"settings": settings, "methods": {}, "real": None, "seconds": {}}
    finished, paths = {}, {"methods": {}}
    n, sample_seed = plan["samples"], int(seed) + 1
    for name in names:
        method, why = registry.status(name)
        title = method.title if method is not None else registry.title(name)
        if why:
            _say(f"skipping {title} ({name}): {why}")
            results["methods"][name] = {"method": name, "title": title, "skipped": why}
            continue
        folder = os.path.join(out_dir, "methods", name)
        ctx = registry.Context(name=name, folder=folder, data=data, plan=plan, seed=int(seed), device=device,
                               progress=progress, finished=finished)
        try:
            results["methods"][name] = _run_method(method, ctx, n, sample_seed, refs, progress)
        except NotImplementedError as e:   # e.g. a device this model does not run on yet
            _say(f"skipping {title} ({name}): {e}")
            results["methods"][name] = {"method": name, "title": title, "skipped": str(e)}
            continue
        finished[name] = folder
        paths["methods"][name] = folder

    ref_path = os.path.join(out_dir, "reference", "eval.json")
    real = _read_json(ref_path)
    if real is None:
        _say("evaluating the real-data reference (InversionNet on the n real pairs, FID floors)")
        real = evaluate.evaluate_real(data, plan, refs, int(seed), progress)
        _write_json(ref_path, real)
    results["real"] = real

    tabs = tables.build(results)
    results["seconds"] = {**timing, **{k: v.get("seconds_total") for k, v in results["methods"].items()
                                       if "seconds_total" in v}}
    md = tables.markdown(tabs, settings)
    paths["markdown"] = os.path.join(out_dir, "tables.md")
    paths["json"] = os.path.join(out_dir, "tables.json")
    from ..data.npyio import atomic_path
    with atomic_path(paths["markdown"]) as tmp:
        with open(tmp, "w") as f:
            f.write(md)
    _write_json(paths["json"], {"settings": settings, "tables": tabs, "methods": results["methods"],
                                "real": real, "seconds": results["seconds"]})
    if make_figures:
        paths["figures"] = _figures(out_dir, data, plan, results, finished)
    print("\n" + tables.plain(tabs), flush=True)
    _say(f"\ntables: {paths['markdown']} (and .json); {time.perf_counter() - t_all:.0f} s in this call")
    return {"settings": settings, "results": results, "tables": tabs, "paths": paths}


def _run_method(method, ctx, n, sample_seed, refs, progress) -> dict:
    folder = ctx.folder
    os.makedirs(folder, exist_ok=True)
    trained_p, eval_p, sdir = (os.path.join(folder, f) for f in ("trained.json", "eval.json", "samples"))
    # what the training depended on: a reused method's own training (retrained -> train again)
    reused = {r: (_read_json(os.path.join(ctx.shared(r), "trained.json")) or {}).get("seconds", {}).get("train")
              for r in [method.reuses] if r and ctx.shared(r)}
    stamp = {"method": method.name, "reuses": reused}
    done = _read_json(trained_p)
    seconds = dict((done or {}).get("seconds", {}))
    if done is None or done.get("stamp") != stamp:
        _say(f"\n== {method.title} ({method.name}): training -- {method.description}")
        for p in (eval_p,):
            if os.path.lexists(p):
                os.remove(p)
        shutil.rmtree(sdir, ignore_errors=True)
        t0 = time.perf_counter()
        method.train(ctx)
        seconds = {"train": time.perf_counter() - t0}
        _write_json(trained_p, {"stamp": stamp, "seconds": seconds})
    if not samples.complete(sdir, n, sample_seed):
        _say(f"== {method.title}: generating {n} samples")
        if os.path.lexists(eval_p):
            os.remove(eval_p)
        t0 = time.perf_counter()
        method.generate(ctx, n, sample_seed, sdir)
        seconds["generate"] = time.perf_counter() - t0
        _write_json(trained_p, {"stamp": stamp, "seconds": seconds})
    ev = _read_json(eval_p)
    if ev is None:
        _say(f"== {method.title}: evaluating")
        ev = evaluate.evaluate_samples(method, ctx, samples.open_samples(sdir), refs, progress)
        ev["seconds_train_generate"] = seconds
        _write_json(eval_p, ev)
    ev["seconds_total"] = float(sum(v for v in seconds.values() if v) + ev.get("seconds", 0.0))
    return ev


def _figures(out_dir, data, plan, results, finished) -> dict:
    fdir = os.path.join(out_dir, "figures")
    os.makedirs(fdir, exist_ok=True)
    k = plan["figure_samples"]
    lo, hi = data.velocity_range
    idx = np.arange(min(k, len(data.test_pairs)))
    rows = [("real (held-out)", data.test_pairs.velocity(idx), data.test_pairs.seismic(idx))]
    physics_rows = []
    for name, folder in finished.items():
        s = samples.open_samples(os.path.join(folder, "samples"))
        j = np.arange(min(k, len(s["velocity"] if s["velocity"] is not None else s["pairs"])))
        vel = s["velocity"].velocity(j) if s["velocity"] is not None else None
        seis = s["pairs"].seismic(j) if s["pairs"] is not None else None
        rows.append((results["methods"][name]["title"], vel, seis))
        if vel is not None and seis is not None:
            physics_rows.append((name, results["methods"][name]["title"], vel, seis))
    out = {"fig5": figures.samples_figure(os.path.join(fdir, "fig5_samples.png"), rows, lo, hi,
                                          title="Samples of each method (cf. the paper's Fig. 5)")}
    for name, title, vel, seis in physics_rows:
        sim = figures.simulate_like(vel, seis.shape[2])
        out[f"fig6_{name}"] = figures.physics_figure(
            os.path.join(fdir, f"fig6_{name}.png"), vel, seis, sim, lo, hi,
            title=f"{title}: generated vs forward-modelled seismic (cf. the paper's Fig. 6)")
    return out
