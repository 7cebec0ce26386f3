"""What the UB-Diff family of methods shares: one UBDiff run folder per method
(``<method>/run``, saved atomically every few epochs / diffusion steps, so a
killed comparison resumes inside a stage), stages run up to the plan's length,
generation through UBDiff.generate, reconstruction through the autoencoder.

Every method starts from the same seed (initialisation, shuffling, noise): the
methods differ in what they train, not in their luck.
"""
from __future__ import annotations

import os

import numpy as np

RUN = "run"


def run_dir(ctx) -> str:
    return ctx.path(RUN)


def open_model(ctx, run: str | None = None):
    """The method's UBDiff: loaded from its run folder, else a new one with the dataset's constants."""
    from ...pipeline import STATE_FILE, UBDiff
    run = run or run_dir(ctx)
    if os.path.lexists(os.path.join(run, STATE_FILE)):
        return UBDiff.load(run)
    m = UBDiff(ctx.plan["config"], device=ctx.device, seed=ctx.seed, max_batch=ctx.plan["autoencoder"]["batch_size"])
    m.set_constants(dict(ctx.data.constants))
    return m


def ae_kwargs(ctx) -> dict:
    a = ctx.plan["autoencoder"]
    return dict(batch_size=a["batch_size"], lr=a["lr"], lr_decay=a["lr_decay"], progress=ctx.progress)


def epochs(ctx, m, stage: str, target: int, fit) -> None:
    """Run ``fit(k)`` (k more epochs of ``stage``) until the stage has ``target`` epochs,
    saving every ``save_every`` epochs."""
    every = ctx.plan["autoencoder"]["save_every"]
    done = m.state[stage]["epoch"]
    if done >= target:
        return
    ctx.log(f"{stage}: epochs {done + 1}..{target}")
    while m.state[stage]["epoch"] < target:
        hist = fit(min(every, target - m.state[stage]["epoch"]))
        m.save(run_dir(ctx))
        if hist:
            r = hist[-1]
            parts = "".join(f" {k} {r[k]:.4f}" for k in ("velocity", "seismic") if k in r)
            ctx.log(f"{stage} epoch {r['epoch'] + 1}/{target}: loss {r['total']:.4f}{parts}")


def diffusion(ctx, m, velocity) -> None:
    """Latent diffusion on z = E(velocity) up to the plan's steps, saving every ``save_every``."""
    d = ctx.plan["diffusion"]
    if m.diffusion.step >= d["steps"]:
        return
    ctx.log(f"diffusion: steps {m.diffusion.step + 1}..{d['steps']}")
    while m.diffusion.step < d["steps"]:
        k = min(d["save_every"], d["steps"] - m.diffusion.step)
        losses = m.fit_diffusion(velocity, k, batch_size=d["batch_size"], accum=d["accum"], lr=d["lr"],
                                 ema=d["ema"], ema_every=d["ema_every"], ema_decay=d["ema_decay"],
                                 progress=ctx.progress)
        m.save(run_dir(ctx))
        ctx.log(f"diffusion step {m.diffusion.step}/{d['steps']}: mean loss {float(np.mean(losses)):.4f}")


def sampling(ctx) -> dict:
    s = ctx.plan["sampling"]
    return dict(sampler=s["sampler"], steps=s["steps"], weights=s["weights"])


def generate_pairs(ctx, n: int, seed: int, out_dir: str, run: str | None = None) -> dict:
    """n pairs of the trained run (UBDiff.generate: OpenFWI files, atomic)."""
    m = open_model(ctx, run)
    return m.generate(n, out_dir, seed=seed, progress=ctx.progress, **sampling(ctx))


def reconstructor(ctx, run: str | None = None):
    """f(normalised velocity (B, 1, 70, 70)) -> (velocity, seismic) through E and both decoders
    (eval mode), normalised; and the model's seismic time axis length."""
    m = open_model(ctx, run)
    ae = m.autoencoder
    mb = ae.config["max_batch"]

    def f(v):
        vs, ss = [], []
        for s in range(0, len(v), mb):
            z = ae.encode(v[s:s + mb], training=False)
            a, b = ae.decode(z)
            vs.append(a)
            ss.append(b)
        return np.concatenate(vs), np.concatenate(ss)
    f.nt = ae.config["nt"]
    return f
