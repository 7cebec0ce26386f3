"""UB-Diff (Yang et al., AAAI 2025), as the paper trains it:
step 1 (Eq. 2) E, the velocity head and D_v on all m maps; step 2 (Eqs. 3-4,
F = 1 as the authors' fine_tune_Dec_S.py) the seismic head and D_s on the n
pairs; step 3 the latent diffusion on z = E(velocity) of all m maps. One
diffusion sample decodes into a velocity map and its seismic record."""
from ..registry import Method
from . import _latent


def train(ctx):
    m = _latent.open_model(ctx)
    ae, kw = ctx.plan["autoencoder"], _latent.ae_kwargs(ctx)
    _latent.epochs(ctx, m, "step1", ae["step1_epochs"],
                   lambda k: m.fit_autoencoder(ctx.data.train_velocity, k, **kw))
    _latent.epochs(ctx, m, "step2", ae["step2_epochs"],
                   lambda k: m.finetune(ctx.data.train_pairs, None, k, freeze=ae["freeze"], **kw))
    _latent.diffusion(ctx, m, ctx.data.train_velocity)


METHOD = Method(
    name="ubdiff", title="UB-Diff", produces=("velocity", "seismic"), paired=True,
    train=train, generate=_latent.generate_pairs, reconstruct=_latent.reconstructor,
    description="step 1 on all m maps, step 2 (F = 1) on the n pairs, latent diffusion on z of all m maps")
