"""MT-Diffusion (ubdiff.baselines.MTDiffusion): the diffusion loss's gradient in
the latent, end-to-end training on pairs, paired sampling, exact resume."""
import numpy as np
import pytest

import ubdiff
from gradcheck import assert_close, central_difference
from test_sd_seismic import CFG, SEIS, pairs
from ubdiff.baselines import MTDiffusion
from ubdiff.baselines.mt_diffusion import latent_loss_grad
from ubdiff.models.diffusion import LatentDiffusion


@pytest.fixture(autouse=True)
def one_thread():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=16, seq_len=8)


def test_latent_loss_grad_matches_the_c_loss_and_finite_differences():
    """The loss equals LatentDiffusion.loss (the C v-prediction loss) for the same t and noise, and
    dz0 equals central differences of that C loss in z0 (smooth: SiLU, GroupNorm, attention;
    float32 loss O(1) with eps 1e-2: rounding ~1e-5; rtol = atol = 2e-3). Batch 5 over a
    max_batch of 2 also checks the chunking."""
    d = LatentDiffusion(DIFF, seed=2, max_batch=2, device="cpu")
    rng = np.random.default_rng(0)
    z0 = rng.uniform(-0.9, 0.9, (5, 1, 8)).astype(np.float32)
    noise = rng.standard_normal((5, 1, 8)).astype(np.float32)
    t = np.array([0, 3, 7, 11, 15])
    loss, dz = latent_loss_grad(d, z0, t, noise)

    def c_loss(z):
        return sum(d.loss(z[a:a + 2], t[a:a + 2], noise[a:a + 2])[1].astype(np.float64).sum()
                   for a in range(0, 5, 2)) / 5

    assert_close(loss, c_loss(z0), rtol=1e-5, atol=1e-7, what="loss")
    assert not np.any(d.flat("grad")), "the U-Net's gradients are left zero"
    eps = 1e-2
    for i in [(0, 0, 1), (1, 0, 4), (2, 0, 7), (3, 0, 0), (4, 0, 5)]:
        zp, zm = z0.copy(), z0.copy()
        zp[i] += eps
        zm[i] -= eps
        assert_close(dz[i], (c_loss(zp) - c_loss(zm)) / (2 * eps), rtol=2e-3, atol=2e-3, what=f"dz{i}")
    assert float(np.abs(dz).max()) > 1e-3
    # param_grads=True leaves the U-Net's gradient of the same loss (the C loss's, chunk by chunk
    # with weight chunk/B): the same float32 sums in another order, 1e-5 of the largest
    latent_loss_grad(d, z0, t, noise, param_grads=True)
    g = d.flat("grad").copy()
    d.zero_grad()
    for a in range(0, 5, 2):
        d.loss(z0[a:a + 2], t[a:a + 2], noise[a:a + 2], grad_scale=len(t[a:a + 2]) / 5)
    want = d.flat("grad")
    assert_close(g, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()), what="U-Net gradients")
    assert float(np.abs(want).max()) > 0
    with pytest.raises(ValueError, match="t must be"):
        latent_loss_grad(d, z0, t + 1, noise)
    with pytest.raises(ValueError, match="z0 and noise must be"):
        latent_loss_grad(d, z0[:, :, :4], t, noise)


def test_end_to_end_gradients_match_finite_differences():
    """MTDiffusion.gradients (the gradient half of train_batch): central differences of the total
    l_v + l_s + l_diff it returns against the gradients it leaves, 2 elements of tensors on each
    side of the aggregation z = (E(v) + E_s(s)) / 2: E's and E_s's last blocks (the factor 1/2
    and the diffusion term's dz reach them unmixed), E_s's first conv, both heads' BatchNorm, the
    U-Net's first and last convs and a time MLP (its gradient is l_diff's alone). The parts
    themselves are checked exactly elsewhere (test_sd_seismic, test_seis_encoder, test_diffusion).
    ReLU/LeakyReLU blocks moved off their kinks (BatchNorm betas 4, test_autoencoder.
    smooth_regime); float32 loss ~2.4 with eps 1e-2: measured within 4e-5, checked with
    atol 1e-3 + rtol 2e-2 (test_autoencoder's full-model check). Early conv weights of E are
    left out: there the L1 terms' kinks make the quotient drift with eps (measured: -0.235 ..
    -0.211 for eps 1e-2 .. 1e-3 against the analytic -0.207)."""
    from test_autoencoder import smooth_regime
    rng = np.random.default_rng(0)
    m = MTDiffusion(CFG, seed=1)
    smooth_regime(m.autoencoder, rng)
    for n, p in m.encoder.parameters().items():
        if n.endswith("layers.1.bias") and not n.startswith("convblock8"):
            p[:] = 4.0
    vel, seis = pairs(4, seed=5)
    p0 = [m.autoencoder.flat("param").copy(), m.diffusion.flat("param").copy()]
    m.gradients(vel, seis, step_key=(2, 3))
    assert np.array_equal(m.autoencoder.flat("param"), p0[0]) and np.array_equal(m.diffusion.flat("param"), p0[1])
    parts = [(m.autoencoder.named_parameters(), m.autoencoder.named_parameters("grad"),
              ["encoder.convBlock8.layers.1.weight", "encoder.convBlock8.layers.1.bias", "batch_norm_v.weight",
               "batch_norm_s.weight"]),
             (m.encoder.parameters(), m.encoder.gradients(),
              ["convblock1.layers.0.weight", "convblock8.layers.1.weight", "convblock8.layers.1.bias"]),
             (m.diffusion.parameters, m.diffusion.grads,
              ["init_conv.weight", "final_conv.weight", "downs.0.0.mlp.1.weight"])]
    grads = [{n: G[n].copy() for n in names} for _, G, names in parts]

    def f():
        return m.gradients(vel, seis, step_key=(2, 3))["total"]

    eps, big = 1e-2, 0.0
    for (P, _, names), G in zip(parts, grads):
        for name in names:
            flat = P[name].reshape(-1)
            for i in rng.choice(flat.size, size=2, replace=False):
                num, ana = central_difference(f, flat, i, eps), G[name].reshape(-1)[i]
                assert abs(num - ana) <= 1e-3 + 2e-2 * abs(num), f"{name}[{i}]: numeric {num:.6g} vs {ana:.6g}"
                big = max(big, abs(num))
    assert big > 1e-2


def test_end_to_end_training_touches_every_part_and_lowers_the_losses():
    vel, seis = pairs(8, seed=3)
    m = MTDiffusion(CFG, seed=0)
    p0 = m.autoencoder.flat("param").copy()
    e0, u0 = m.encoder.get_tensor(None, "param"), m.diffusion.flat("param").copy()
    hist = m.fit(vel, seis, epochs=10, batch_size=4, lr=3e-3, diffusion_lr=1e-3, progress=False)
    for k in ("velocity", "seismic"):
        assert hist[-1][k] < 0.7 * hist[0][k], (k, [h[k] for h in hist])
    assert all(np.isfinite(h["diffusion"]) for h in hist)
    ae = m.autoencoder
    for g in ("encoder", "head_v", "decoder_v", "head_s", "decoder_s"):
        sl = ae.group_slice(g)
        assert not np.array_equal(ae.flat("param")[sl], p0[sl]), g
    assert not np.array_equal(m.encoder.get_tensor(None, "param"), e0)
    assert not np.array_equal(m.diffusion.flat("param"), u0)
    assert m.diffusion.step == 20 and m.encoder.step == 20
    v, s = m.reconstruct(vel, seis)
    assert v.shape == vel.shape and s.shape == seis.shape


def test_the_diffusion_term_reaches_the_encoders():
    """diffusion_weight changes the encoders' update (the U-Net's input gradient flows back), and
    weight 0 leaves it to the reconstruction terms alone."""
    vel, seis = pairs(4, seed=5)
    res = {}
    for w in (0.0, 1.0):
        m = MTDiffusion(CFG, seed=0)
        m.train_batch(vel, seis, lr=1e-3, diffusion_weight=w)
        res[w] = m.encoder.get_tensor(None, "param"), m.autoencoder.flat("param")[
            m.autoencoder.group_slice("encoder")].copy()
    assert not np.array_equal(res[0.0][0], res[1.0][0])
    assert not np.array_equal(res[0.0][1], res[1.0][1])


def test_paired_sampling_and_exact_resume(tmp_path):
    vel, seis = pairs(8, seed=6)
    a = MTDiffusion(CFG, seed=1)
    a.fit(vel, seis, epochs=2, batch_size=4, lr=1e-3, progress=False)
    a.fit_diffusion(vel, seis, steps=2, batch_size=4, accum=1, lr=1e-3, progress=False)
    b = MTDiffusion(CFG, seed=1)
    b.fit(vel, seis, epochs=1, batch_size=4, lr=1e-3, progress=False)
    b.save(tmp_path / "run")
    b = MTDiffusion.load(tmp_path / "run")
    b.fit(vel, seis, epochs=1, batch_size=4, lr=1e-3, progress=False)
    b.fit_diffusion(vel, seis, steps=2, batch_size=4, accum=1, lr=1e-3, progress=False)
    for x, y in ((a.autoencoder.flat("param"), b.autoencoder.flat("param")),
                 (a.encoder.get_tensor(None, "param"), b.encoder.get_tensor(None, "param")),
                 (a.diffusion.flat("param"), b.diffusion.flat("param"))):
        np.testing.assert_array_equal(x, y)
    v, s = a.sample(3, seed=2, sampler="ddim", steps=4)
    assert v.shape == (3, 1, 70, 70) and s.shape == (3, *SEIS)
    z = a.sample_latents(3, seed=2, sampler="ddim", steps=4)   # one noise draw -> both modalities
    v2, s2 = a.decode(z, velocity=True, seismic=True)
    np.testing.assert_array_equal(v, v2)
    np.testing.assert_array_equal(s, s2)
    vb, sb = b.sample(3, seed=2, sampler="ddim", steps=4)
    np.testing.assert_array_equal(v, vb)
    np.testing.assert_array_equal(s, sb)


def test_errors():
    m = MTDiffusion(CFG)
    vel, seis = pairs(4)
    with pytest.raises(ValueError, match="4 velocity maps but 3 seismic records"):
        m.fit(vel, seis[:3], epochs=1, progress=False)
    with pytest.raises(ValueError, match="diffusion_weight"):
        m.fit(vel, seis, epochs=1, diffusion_weight=-1.0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(vel, seis, epochs=1, batch_size=1, progress=False)
