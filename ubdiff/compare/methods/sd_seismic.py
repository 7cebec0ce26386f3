"""SD (seismic): the seismic encoder + D_s trained as an autoencoder on the n
records only (the paper's seismic reconstruction loss, L1 + MSE), then the same
latent diffusion on their z; seismic only, unpaired (ubdiff.baselines.SDSeismic)."""
from ..registry import Method
from . import _seisenc


def _cls():
    from ...baselines import SDSeismic
    return SDSeismic


def train(ctx):
    m = _seisenc.open_run(ctx, _cls())
    _, seis = _seisenc.pairs(ctx, m)
    _seisenc.epochs(ctx, m, lambda k: m.fit_autoencoder(seis, k, **_seisenc.ae_kwargs(ctx)))
    _seisenc.diffusion(ctx, m, seis)


def generate(ctx, n, seed, out_dir):
    from ...data import Normalizer
    from .. import samples
    m = _seisenc.open_run(ctx, _cls())
    norm = Normalizer(dict(ctx.data.constants))
    z = m.sample_latents(n, seed=seed, **_seisenc.sampling(ctx))
    meta = {"seed": int(seed), "method": "sd_seismic", **{k: ctx.data.constants[k] for k in
                                                          ("label_min", "label_max", "data_min", "data_max")}}

    def draw(first, count):
        return None, norm.seismic_inverse(m.decode(z[first:first + count], velocity=False, seismic=True)[1])
    return samples.write_samples(out_dir, n, draw, meta, velocity=False, seismic_shape=m.encoder.input_shape)


METHOD = Method(
    name="sd_seismic", title="SD (seismic)", produces=("seismic",), paired=False,
    train=train, generate=generate,
    description="a seismic encoder + D_s on the n records only (L1 + MSE), latent diffusion on their z "
                "(seismic only)")
