"""What the two seismic-encoder baselines (sd_seismic, mt_diffusion) share in a
comparison: their run folder (``<method>/run``, ubdiff.baselines saves it
atomically as a set), the training stages up to the plan's lengths with a save
every few epochs / diffusion steps (a killed comparison resumes inside a stage),
the normalised views of the n training pairs, and generation in physical units.

Training lengths, chosen so the baselines get what UB-Diff w/o opt gets (every
one of them learns from the n pairs only): step1_epochs + step2_epochs epochs
over the n pairs for the autoencoder part, then the plan's diffusion steps."""
from __future__ import annotations

import os

import numpy as np

RUN = "run"


def open_run(ctx, cls):
    from ...baselines._run import STATE_FILE
    run = ctx.path(RUN)
    if os.path.lexists(os.path.join(run, STATE_FILE)):
        return cls.load(run, device=ctx.device)
    return cls(ctx.plan["config"], seed=ctx.seed, max_batch=ctx.plan["autoencoder"]["batch_size"],
               device=ctx.device)


def pairs(ctx, m):
    """(velocity, seismic) of the n training pairs, normalised, read a batch at a time."""
    from ...baselines._run import normalised_pairs
    return normalised_pairs(m, ctx.data.train_pairs, constants=ctx.data.constants, what=ctx.name)


def ae_epochs(ctx) -> int:
    a = ctx.plan["autoencoder"]
    return a["step1_epochs"] + a["step2_epochs"]


def epochs(ctx, m, fit) -> None:
    """fit(k): k more epochs, until ae_epochs(ctx), saving every save_every."""
    a = ctx.plan["autoencoder"]
    target, every = ae_epochs(ctx), a["save_every"]
    if m.epoch >= target:
        return
    ctx.log(f"autoencoder: epochs {m.epoch + 1}..{target}")
    while m.epoch < target:
        hist = fit(min(every, target - m.epoch))
        m.save(ctx.path(RUN))
        r = hist[-1]
        ctx.log(f"epoch {r['epoch'] + 1}/{target}: " + " ".join(f"{k} {v:.4f}" for k, v in r.items()
                                                               if k != "epoch"))


def ae_kwargs(ctx) -> dict:
    a = ctx.plan["autoencoder"]
    return dict(batch_size=a["batch_size"], lr=a["lr"], lr_decay=a["lr_decay"], progress=ctx.progress)


def diffusion(ctx, m, *data) -> None:
    """The latent diffusion up to the plan's steps, saving every save_every."""
    d = ctx.plan["diffusion"]
    if m.diffusion.step >= d["steps"]:
        return
    ctx.log(f"diffusion: steps {m.diffusion.step + 1}..{d['steps']}")
    while m.diffusion.step < d["steps"]:
        k = min(d["save_every"], d["steps"] - m.diffusion.step)
        losses = m.fit_diffusion(*data, steps=k, batch_size=d["batch_size"], accum=d["accum"], lr=d["lr"],
                                 ema=d["ema"], ema_every=d["ema_every"], ema_decay=d["ema_decay"],
                                 progress=ctx.progress)
        m.save(ctx.path(RUN))
        ctx.log(f"diffusion step {m.diffusion.step}/{d['steps']}: mean loss {float(np.mean(losses)):.4f}")


def sampling(ctx) -> dict:
    s = ctx.plan["sampling"]
    return dict(sampler=s["sampler"], steps=s["steps"], weights=s["weights"])
