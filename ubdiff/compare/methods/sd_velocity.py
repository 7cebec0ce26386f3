"""SD (velocity): single-modality latent diffusion on velocity maps -- the UB-Diff
encoder and D_v trained on all m maps (step 1), a latent diffusion on their z;
velocity only, no pairs.

This is exactly UB-Diff without its step 2: with F = 1 step 2 leaves E, the
velocity head and D_v untouched, and the diffusion trains on z = E(velocity)
with the same seed, so SD's velocity samples are UB-Diff's, bit for bit (same
machine). When UB-Diff runs in the same comparison this method therefore takes
over its run and its samples instead of training the same networks again
(``reuses``); alone, or with F = 0, it trains its own."""
import os

import numpy as np

from ..registry import Method
from . import _latent


def _reuse(ctx):
    """UB-Diff's method folder when its velocity side is this model (F = 1), else None."""
    return ctx.shared("ubdiff") if ctx.plan["autoencoder"]["freeze"] else None


def train(ctx):
    if _reuse(ctx):
        ctx.log("UB-Diff (F = 1) in this comparison has trained exactly this model: reusing its run")
        return
    m = _latent.open_model(ctx)
    _latent.epochs(ctx, m, "step1", ctx.plan["autoencoder"]["step1_epochs"],
                   lambda k: m.fit_autoencoder(ctx.data.train_velocity, k, **_latent.ae_kwargs(ctx)))
    _latent.diffusion(ctx, m, ctx.data.train_velocity)


def generate(ctx, n, seed, out_dir):
    from ...data import Normalizer, OpenFWIDataset
    from .. import samples
    shared = _reuse(ctx)
    theirs = os.path.join(shared, "samples") if shared else None
    meta = {"seed": int(seed), "method": "sd_velocity", "label_min": ctx.data.constants["label_min"],
            "label_max": ctx.data.constants["label_max"]}
    if theirs and samples.complete(theirs, n, seed):   # UB-Diff's samples: the same draws
        vel = OpenFWIDataset.from_folder(theirs, velocity_only=True)
        meta["copied_from"] = "ubdiff samples (identical draws)"
        return samples.write_velocity(out_dir, n, lambda a, k: vel.velocity(np.arange(a, a + k)), meta)
    m = _latent.open_model(ctx, os.path.join(shared, _latent.RUN) if shared else None)
    norm = Normalizer(dict(ctx.data.constants))
    mb = m.autoencoder.config["max_batch"]

    def draw(first, count):
        z = m.sample_latents(count, seed=seed, first=first, progress=ctx.progress, **_latent.sampling(ctx))
        z = z.reshape(count, -1)
        v = np.concatenate([m.autoencoder.decode(z[s:s + mb], seismic=False)[0] for s in range(0, count, mb)])
        return norm.velocity_inverse(v)
    return samples.write_velocity(out_dir, n, draw, meta)


METHOD = Method(
    name="sd_velocity", title="SD (velocity)", produces=("velocity",), paired=False,
    train=train, generate=generate, reuses="ubdiff",
    description="UB-Diff's encoder + D_v on all m maps and a latent diffusion on their z (velocity only)")
