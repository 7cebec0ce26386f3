"""UB-Diff seismic-first (the paper's Table 5 variant: Eq. 3 before Eq. 2).

Our reading of it: the two steps of UB-Diff in the other order, each the
mirror of the original one. First Eq. 3 on the n pairs: E, the seismic head
and D_s learn l_s (velocity -> z -> seismic), so the co-latent space is shaped
by the seismic records of the few pairs; then Eq. 2 on all m maps with E
frozen (eval mode, the mirror of F = 1): the velocity head and D_v learn to
decode that z. The latent diffusion is UB-Diff's, on z = E(velocity) of all
m maps. Epochs: step2_epochs for the first stage (it sees the pairs, as
UB-Diff's step 2), step1_epochs for the second (all maps, as step 1)."""
from ...models import autoencoder as _ae
from ..registry import Method
from . import _latent


def train(ctx):
    m = _latent.open_model(ctx)
    ae, kw = ctx.plan["autoencoder"], _latent.ae_kwargs(ctx)
    _latent.epochs(ctx, m, "seis_first", ae["step2_epochs"],
                   lambda k: m.fit_seismic_first(ctx.data.train_pairs, None, k, **kw))
    _latent.epochs(ctx, m, "vel_after", ae["step1_epochs"],
                   lambda k: m.fit_velocity_after(ctx.data.train_velocity, k, **kw))
    _latent.diffusion(ctx, m, ctx.data.train_velocity)


def unavailable():
    if not {"seis_first", "vel_after"} <= set(_ae.MODES):
        return ("this build's autoencoder has no 'seis_first' / 'vel_after' training modes "
                "(csrc/models/ae_train.c)")
    return None


METHOD = Method(
    name="ubdiff_seismic_first", title="UB-Diff (seismic first)", produces=("velocity", "seismic"), paired=True,
    train=train, generate=_latent.generate_pairs, reconstruct=_latent.reconstructor, unavailable=unavailable,
    description="Eq. 3 first (E + D_s on the n pairs), then Eq. 2 (D_v on all m maps, E frozen), latent diffusion")
