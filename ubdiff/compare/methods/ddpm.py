"""DDPM (velocity): the paper's pixel-space baseline of Table 4 -- a 2-D U-Net
diffusion (ubdiff.models.VelocityDDPM: lucidrains' Unet, cosine schedule,
T = 256, v-prediction, the latent diffusion's samplers) trained on all m
velocity maps, generating velocity only, unpaired.

Its plan is the ``ddpm`` section of the comparison's plan
(ubdiff/compare/scales.py): the keys of the ``diffusion`` section (steps,
batch_size, accum, lr, ema, ema_every, ema_decay, save_every) plus
``config`` (the VelocityDDPM config) and ``sampling`` (as the plan's). At the
small scale it trains briefly and samples with DDIM: a 2-D U-Net on 70 x 70
maps costs far more per sample than the 1-D U-Net on 128 latents.
Training is resumable: the model is saved atomically to
``<method>/ddpm.safetensors`` every ``save_every`` steps and a new call
continues from it (the minibatch order is keyed by (seed, epoch), so a
resumed run draws what an uninterrupted one would)."""
from __future__ import annotations

import os

import numpy as np

from ..registry import Method

CHECKPOINT = "ddpm.safetensors"


def _plan(ctx) -> dict:
    return ctx.plan["ddpm"]


def _open(ctx):
    from ...models.ddpm import VelocityDDPM
    path = ctx.path(CHECKPOINT)
    p = _plan(ctx)
    if os.path.lexists(path):
        return VelocityDDPM.load(path, max_batch=p["batch_size"], device=ctx.device)
    c = ctx.data.constants
    m = VelocityDDPM(p["config"], seed=ctx.seed, max_batch=p["batch_size"], device=ctx.device,
                     velocity_range=(c["label_min"], c["label_max"]))
    m.set_ema(p["ema"], beta=p["ema_decay"], update_every=p["ema_every"])
    return m


def train(ctx):
    p = _plan(ctx)
    m = _open(ctx)
    if m.step >= p["steps"]:
        return
    vel = ctx.data.train_velocity
    maps = vel.velocity(np.arange(len(vel)))          # all m maps, m/s
    ctx.log(f"pixel DDPM ({m.num_parameters():,} parameters, {m.device}): steps {m.step + 1}..{p['steps']}")
    while m.step < p["steps"]:
        k = min(p["save_every"], p["steps"] - m.step)
        losses = m.fit(maps, k, batch_size=p["batch_size"], accum=p["accum"], lr=p["lr"], progress=ctx.progress)
        m.save(ctx.path(CHECKPOINT))
        ctx.log(f"ddpm step {m.step}/{p['steps']}: mean loss {float(np.mean(losses)):.4f}")


def generate(ctx, n, seed, out_dir):
    from .. import samples
    p = _plan(ctx)
    s = p["sampling"]
    m = _open(ctx)
    meta = {"seed": int(seed), "method": "ddpm", "label_min": m.velocity_range[0],
            "label_max": m.velocity_range[1]}

    def draw(first, count):
        return m.generate(count, seed=seed, first=first, sampler=s["sampler"], steps=s["steps"],
                          use_ema=s["weights"] == "ema", progress=ctx.progress)
    return samples.write_velocity(out_dir, n, draw, meta)


METHOD = Method(
    name="ddpm", title="DDPM", produces=("velocity",), paired=False, train=train, generate=generate,
    description="pixel-space DDPM: a 2-D U-Net (lucidrains' Unet) on all m velocity maps (velocity only)")
