"""MT-Diffusion (Chen et al. 2024; our reading, ubdiff.baselines.mt_diffusion):
velocity and seismic encoders aggregated into one shared latent (their mean),
the 1-D U-Net denoiser and both UB-Diff decoders, trained end to end on the n
pairs only (reconstruction of both modalities + the diffusion loss), then the
U-Net alone on the frozen latents up to the plan's diffusion steps. One noise
draw decodes into a pair."""
from ..registry import Method
from . import _seisenc


def _cls():
    from ...baselines import MTDiffusion
    return MTDiffusion


def train(ctx):
    m = _seisenc.open_run(ctx, _cls())
    vel, seis = _seisenc.pairs(ctx, m)
    d = ctx.plan["diffusion"]
    m.diffusion.set_ema(d["ema"], update_every=d["ema_every"], beta=d["ema_decay"])
    _seisenc.epochs(ctx, m, lambda k: m.fit(vel, seis, k, diffusion_lr=d["lr"], **_seisenc.ae_kwargs(ctx)))
    _seisenc.diffusion(ctx, m, vel, seis)


def generate(ctx, n, seed, out_dir):
    from ...data import Normalizer
    from .. import samples
    m = _seisenc.open_run(ctx, _cls())
    norm = Normalizer(dict(ctx.data.constants))
    z = m.sample_latents(n, seed=seed, **_seisenc.sampling(ctx))
    meta = {"seed": int(seed), "method": "mt_diffusion", **{k: ctx.data.constants[k] for k in
                                                            ("label_min", "label_max", "data_min", "data_max")}}

    def draw(first, count):
        v, s = m.decode(z[first:first + count], velocity=True, seismic=True)
        return norm.velocity_inverse(v), norm.seismic_inverse(s)
    return samples.write_samples(out_dir, n, draw, meta, seismic_shape=m.encoder.input_shape)


METHOD = Method(
    name="mt_diffusion", title="MT-Diffusion", produces=("velocity", "seismic"), paired=True,
    train=train, generate=generate,
    description="velocity and seismic encoders -> one shared latent (mean), 1-D U-Net, both decoders, "
                "end to end on the n pairs (reconstruction + diffusion loss)")
