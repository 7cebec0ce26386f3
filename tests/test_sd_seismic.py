"""SD-seismic (ubdiff.baselines.SDSeismic) and the autoencoder entry points it
drives from outside (ae_latent.c: decode_backward, encode_backward)."""
import numpy as np
import pytest

import ubdiff
from cuda_util import assert_gpu_matches_cpu, requires_gpu
from gradcheck import assert_close, central_difference
from ubdiff import checkpoint
from ubdiff.baselines import SDSeismic
from ubdiff.models.autoencoder import CoLatentAutoencoder

# tiny: the seismic encoder sees the 32 x 8 records of the InversionNet tests (1 x 1 at convblock8)
AE = dict(dim1=2, dim2=3, dim3=4, dim4=4, latent=8, head_width=4, heads=2, mlp_hidden=16, nt=32, nr=8, max_batch=4)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=16)
CFG = {"autoencoder": AE, "diffusion": DIFF}
SEIS = (5, 32, 8)


@pytest.fixture(autouse=True)
def one_thread():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def pairs(n, seed=0):
    """Learnable tiny pairs: layered maps and records that are smooth functions of them."""
    rng = np.random.default_rng(seed)
    depth = np.linspace(-1, 1, 70)[None, None, :, None]
    a, c = rng.uniform(0.3, 0.9, (n, 1, 1, 1)), rng.uniform(-0.3, 0.3, (n, 1, 1, 1))
    vel = (np.clip(a * depth + c, -1, 1) * np.ones((1, 1, 1, 70))).astype(np.float32)
    tt = np.linspace(0, 1, 32)[None, None, :, None]
    xx = np.linspace(0, 1, 8)[None, None, None, :]
    shot = np.arange(5)[None, :, None, None] / 5
    seis = 0.8 * np.sin(6 * tt * (1 + a) + 3 * xx * c + shot) * np.exp(-2 * tt)
    return vel, seis.astype(np.float32)


def ae_model(seed=0, device="cpu"):
    from ubdiff.pipeline import resolve_config
    return CoLatentAutoencoder(resolve_config(CFG)["autoencoder"], seed=seed, device=device)


# ---- the autoencoder's external-latent entry points -----------------------------------------------
def test_decode_and_encode_backward_equal_the_whole_step():
    """encode(training) + decode_backward(z, vel, seis) + encode_backward(dz) is the w/o-opt
    forward_backward taken apart: the same losses, gradients and BatchNorm statistics. The
    parts add dz's two head contributions in the other order (velocity first), and sgemm's
    beta = 1 accumulation may round that differently: 1e-5 relative to the largest gradient."""
    vel, seis = pairs(4, seed=1)
    a, b = ae_model(3), ae_model(3)
    a.zero_grad()
    whole = a.forward_backward(vel, seis, mode="wo_opt")
    b.zero_grad()
    z = b.encode(vel, training=True)
    parts, dz = b.decode_backward(z, vel=vel, seis=seis)
    b.encode_backward(dz, vel)
    for k in ("total", "velocity", "seismic", "l1_v", "mse_v", "l1_s", "mse_s"):
        assert_close(parts[k], whole[k], rtol=1e-6, atol=1e-7, what=k)
    ga, gb = a.flat("grad"), b.flat("grad")
    assert_close(gb, ga, rtol=1e-5, atol=1e-5 * float(np.abs(ga).max()), what="gradients")
    np.testing.assert_array_equal(b.flat("buf"), a.flat("buf"))
    assert float(np.abs(ga).max()) > 0


def test_decode_backward_dz_finite_difference():
    """dz of decode_backward against central differences of its own loss in z (seismic MSE only:
    no L1 kinks; the head's LeakyReLU keeps its sign pattern for steps of 1e-3 here, checked by
    comparing a smaller step). float32 network, loss O(0.1): rtol = atol = 2e-3."""
    _, seis = pairs(4, seed=2)
    m = ae_model(1)
    z = np.random.default_rng(5).uniform(-0.9, 0.9, (4, 8)).astype(np.float32)
    g = (0.0, 0.0, 0.0, 1.0)
    _, dz = m.decode_backward(z, seis=seis, gammas=g)

    def loss(zz):
        return m.decode_backward(zz, seis=seis, gammas=g)[0]["total"]

    eps = 1e-2
    for i in [(0, 0), (1, 3), (2, 7), (3, 5)]:
        zp, zm = z.copy(), z.copy()
        zp[i] += eps
        zm[i] -= eps
        assert_close(dz[i], (loss(zp) - loss(zm)) / (2 * eps), rtol=2e-3, atol=2e-3, what=f"dz{i}")
    assert float(np.abs(dz).max()) > 1e-4


def _smooth_tiny(seed, rng):
    """test_autoencoder's TINY model (every layer, 2 channels) moved off its ReLU kinks
    (test_autoencoder.smooth_regime), on the CPU (zero-copy views), with a batch of 4."""
    from test_autoencoder import AE as cpu_ae
    from test_autoencoder import TINY, data, smooth_regime
    m = cpu_ae(TINY, seed=seed)
    smooth_regime(m, rng)
    vel, seis = data(rng, TINY, 4)
    return m, vel, seis, TINY


def _check_against_reference(m, grads, objective, P, rng, part):
    """2 elements of every tensor of `part` (in E or not in E) against float64 central
    differences (eps 1e-5: truncation and rounding ~1e-10) of the float64 reference
    (tests/ae_reference.py, training-mode BatchNorm). What remains is the C backward's float32
    rounding: measured at most 3e-6 of the largest gradient (a pre-BN conv bias, whose exact
    gradient is 0) plus 1e-4 relative; the bound is 10x that. Tensors outside `part` must
    have received no gradient."""
    scale = max(float(np.abs(g).max()) for n, g in grads.items() if part(n))
    checked = 0
    for name in m.parameter_names():
        if not part(name):
            assert not np.any(grads[name]), f"{name}: gradient outside the part differentiated"
            continue
        flat = P[name].reshape(-1)
        for i in rng.choice(flat.size, size=min(2, flat.size), replace=False):
            num, ana = central_difference(objective, flat, i, 1e-5), grads[name].reshape(-1)[i]
            assert abs(num - ana) <= 1e-5 * scale + 1e-3 * abs(num), f"{name}[{i}]: {num:.6g} vs C {ana:.6g}"
            checked += 1
    assert scale > 1e-2
    return checked


def test_encode_backward_finite_difference(rng):
    """E's gradients from encode_backward(dz) after encode(training=True) against float64
    central differences of sum(E(vel) * dz) in the reference (training-mode BatchNorm: the batch
    statistics move with the parameter too), 2 elements of every encoder tensor; the heads and
    decoders get no gradient."""
    from ae_reference import encode
    m, vel, _, cfg = _smooth_tiny(2, rng)
    dz = rng.standard_normal((4, cfg["latent"])).astype(np.float32)
    m.zero_grad()
    m.encode(vel, training=True)
    m.encode_backward(dz, vel)
    grads = {n: g.copy() for n, g in m.named_parameters("grad").items()}
    P = {n: v.astype(np.float64) for n, v in m.named_parameters().items()}

    def objective():
        return float(np.sum(encode(P, vel, train=True) * dz))

    checked = _check_against_reference(m, grads, objective, P, rng, lambda n: n.startswith("encoder."))
    assert checked == 2 * 4 * 15  # conv weight, conv bias, BN gamma, BN beta of each of the 15 blocks


def test_decode_backward_finite_difference_params_and_both_heads(rng):
    """decode_backward(z, vel, seis) with every loss term (L1 and MSE of both modalities): the
    parameter gradients of both heads and decoders (2 elements of every tensor) and dz (every
    element: both heads add into it) against float64 central differences of the reference's
    total loss; E gets no gradient. dz measured within 6e-9 of the differences (largest
    entry 6e-3): atol 1e-6 + rtol 1e-3."""
    from ae_reference import decode_seismic, decode_velocity, loss
    m, vel, seis, cfg = _smooth_tiny(3, rng)
    z = rng.uniform(-0.9, 0.9, (4, cfg["latent"])).astype(np.float32)
    m.zero_grad()
    losses, dz = m.decode_backward(z, vel=vel, seis=seis)
    grads = {n: g.copy() for n, g in m.named_parameters("grad").items()}
    P = {n: v.astype(np.float64) for n, v in m.named_parameters().items()}
    z64 = z.astype(np.float64)

    def objective():
        return float(loss(decode_velocity(P, z64, train=True), vel)
                     + loss(decode_seismic(P, z64, cfg, train=True), seis))

    assert abs(objective() - losses["total"]) <= 1e-5 * objective()
    checked = _check_against_reference(m, grads, objective, P, rng, lambda n: not n.startswith("encoder."))
    assert checked > 60
    num = np.array([central_difference(objective, z64.reshape(-1), i, 1e-5) for i in range(z.size)]).reshape(z.shape)
    assert_close(dz, num, rtol=1e-3, atol=1e-6, what="dz (both heads)")
    assert float(np.abs(dz).max()) > 1e-3


def test_reinit_invalidates_the_training_encode():
    """init() replaces E's weights: the activations a training-mode encode left are not those of
    the new weights, so encode_backward must refuse until the next training encode (it used to
    combine them with the new weights into a wrong gradient)."""
    vel, _ = pairs(4, seed=7)
    m = ae_model(4)
    dz = np.ones((4, 8), np.float32)
    m.encode(vel, training=True)
    m.init(5)
    with pytest.raises(ValueError, match="training-mode encode of the same batch"):
        m.encode_backward(dz, vel)
    m.zero_grad()
    m.encode(vel, training=True)
    m.encode_backward(dz, vel)   # a fresh training encode is accepted again
    g = m.get_tensor(None, "grad")
    fresh = ae_model(5)          # the same weights built from scratch: the same gradient
    fresh.zero_grad()
    fresh.encode(vel, training=True)
    fresh.encode_backward(dz, vel)
    np.testing.assert_array_equal(g, fresh.get_tensor(None, "grad"))
    assert np.abs(g).max() > 0


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_gpu)])
def test_entry_points_on_any_device(device):
    """decode_backward + encode_backward on `device` against the CPU (DESIGN.md tolerance)."""
    vel, seis = pairs(4, seed=6)
    res = {}
    for dev in ("cpu", device):
        m = ae_model(2, dev)
        m.zero_grad()
        z = m.encode(vel, training=True)
        losses, dz = m.decode_backward(z, vel=vel, seis=seis)
        m.encode_backward(dz, vel)
        res[dev] = (z, dz, np.array([losses["velocity"], losses["seismic"]]), m.get_tensor(None, "grad"),
                    m.get_tensor(None, "buf"))
    for a, b, what in zip(res[device], res["cpu"], ("z", "dz", "losses", "grads", "BatchNorm buffers")):
        assert_gpu_matches_cpu(a, b, atol=1e-4, rtol=1e-3, what=what)


def test_entry_point_errors():
    m = ae_model()
    vel, seis = pairs(4)
    z = np.zeros((4, 8), np.float32)
    with pytest.raises(ValueError, match="give vel, seis or both"):
        m.decode_backward(z)
    with pytest.raises(ValueError, match=r"z must be \(B, 8\)"):
        m.decode_backward(z[:, :7], seis=seis)
    with pytest.raises(ValueError, match="seis must be"):
        m.decode_backward(z, seis=seis[:3])
    with pytest.raises(ValueError, match="at least 2"):
        m.decode_backward(z[:1], seis=seis[:1])
    with pytest.raises(ValueError, match="gammas"):
        m.decode_backward(z, seis=seis, gammas=(1, 1, 1, -1))
    m.encode(vel, training=False)
    with pytest.raises(ValueError, match="training-mode encode of the same batch"):
        m.encode_backward(z, vel)
    m.encode(vel[:2], training=True)
    with pytest.raises(ValueError, match="training-mode encode of the same batch"):
        m.encode_backward(z, vel)


# ---- SD-seismic ----------------------------------------------------------------------------------
def test_sd_seismic_trains_only_its_parts_and_lowers_the_loss():
    _, seis = pairs(8, seed=3)
    m = SDSeismic(CFG, seed=0)
    ae = m.autoencoder
    before = {g: ae.flat("param")[ae.group_slice(g)].copy() for g in ("encoder", "head_v", "decoder_v",
                                                                       "head_s", "decoder_s")}
    enc0 = m.encoder.get_tensor(None, "param")
    hist = m.fit_autoencoder(seis, epochs=12, batch_size=4, lr=3e-3, progress=False)
    assert hist[-1]["seismic"] < 0.7 * hist[0]["seismic"], [h["seismic"] for h in hist]
    for g in ("encoder", "head_v", "decoder_v"):   # the UB-Diff velocity side is not part of SD-seismic
        np.testing.assert_array_equal(ae.flat("param")[ae.group_slice(g)], before[g])
    for g in ("head_s", "decoder_s"):
        assert not np.array_equal(ae.flat("param")[ae.group_slice(g)], before[g])
    assert not np.array_equal(m.encoder.get_tensor(None, "param"), enc0)
    assert m.encoder.step == ae.optimizer_steps()["decoder_s"] == 24
    rec = m.reconstruct(seis)
    assert rec.shape == seis.shape and np.isfinite(rec).all()


def test_sd_seismic_diffusion_sampling_and_exact_resume(tmp_path):
    _, seis = pairs(8, seed=4)
    a = SDSeismic(CFG, seed=1)
    a.fit_autoencoder(seis, epochs=2, batch_size=4, lr=1e-3, progress=False)
    a.fit_diffusion(seis, steps=2, batch_size=4, accum=1, lr=1e-3, progress=False)
    b = SDSeismic(CFG, seed=1)
    b.fit_autoencoder(seis, epochs=1, batch_size=4, lr=1e-3, progress=False)
    b.save(tmp_path / "run")
    b = SDSeismic.load(tmp_path / "run")
    b.fit_autoencoder(seis, epochs=1, batch_size=4, lr=1e-3, progress=False)
    b.fit_diffusion(seis, steps=1, batch_size=4, accum=1, lr=1e-3, progress=False)
    b.save(tmp_path / "run")
    b = SDSeismic.load(tmp_path / "run")
    b.fit_diffusion(seis, steps=1, batch_size=4, accum=1, lr=1e-3, progress=False)
    # same machine, thread count and shapes: the same bits (README, Reproducibility)
    for x, y in ((a.autoencoder.flat("param"), b.autoencoder.flat("param")),
                 (a.encoder.get_tensor(None, "param"), b.encoder.get_tensor(None, "param")),
                 (a.diffusion.flat("param"), b.diffusion.flat("param"))):
        np.testing.assert_array_equal(x, y)
    s1 = a.sample(3, seed=7, sampler="ddim", steps=4)
    assert s1.shape == (3, *SEIS) and np.isfinite(s1).all()
    np.testing.assert_array_equal(s1, b.sample(3, seed=7, sampler="ddim", steps=4))
    assert not np.array_equal(s1, a.sample(3, seed=8, sampler="ddim", steps=4))
    assert a.history["diffusion"] == b.history["diffusion"]


def test_sd_seismic_errors(tmp_path):
    m = SDSeismic(CFG)
    _, seis = pairs(4)
    with pytest.raises(ValueError, match="at least 2"):
        m.fit_autoencoder(seis[:1], epochs=1, progress=False)
    with pytest.raises(ValueError, match="batch_size must be in 2..4"):
        m.fit_autoencoder(seis, epochs=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="steps must be"):
        m.fit_diffusion(seis, steps=-1, progress=False)
    with pytest.raises(ValueError, match="weights must be"):
        m.sample(2, weights="best")
    with pytest.raises(ValueError, match="device must be"):
        SDSeismic(CFG, device="tpu")
    with pytest.raises(checkpoint.CheckpointError, match="not a SDSeismic run folder"):
        SDSeismic.load(tmp_path)
