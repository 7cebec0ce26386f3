"""UB-Diff w/o opt (the paper's ablation): the same co-latent autoencoder trained
in one step, from scratch, on the n pairs only (both losses, everything trained),
then the same latent diffusion on z = E(velocity) of all m maps (the diffusion
needs velocity maps only, which are plentiful).

Training length: as many epochs over its n pairs as UB-Diff's two steps have
together (step1_epochs + step2_epochs); the authors' repository has no script
for this ablation (README, "Where ubdiff follows the authors' code")."""
from ..registry import Method
from . import _latent


def train(ctx):
    m = _latent.open_model(ctx)
    ae = ctx.plan["autoencoder"]
    _latent.epochs(ctx, m, "wo_opt", ae["step1_epochs"] + ae["step2_epochs"],
                   lambda k: m.fit_wo_opt(ctx.data.train_pairs, None, k, **_latent.ae_kwargs(ctx)))
    _latent.diffusion(ctx, m, ctx.data.train_velocity)


METHOD = Method(
    name="wo_opt", title="UB-Diff w/o opt", produces=("velocity", "seismic"), paired=True,
    train=train, generate=_latent.generate_pairs, reconstruct=_latent.reconstructor,
    description="the autoencoder in one step on the n pairs only, then the latent diffusion on z of all m maps")
