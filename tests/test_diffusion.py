"""Latent diffusion: cosine schedule, v-prediction loss and its weighting,
training step (accumulation, EMA cadence, reproducibility, loss decrease),
DDPM / DDIM samplers against NumPy re-implementations that share the C
network and Philox streams, determinism, clamping, errors."""
import numpy as np
import pytest

from ubdiff.models.diffusion import LatentDiffusion
from ubdiff.ops import rand_normal
from gradcheck import assert_close, central_difference
from unet_ref import cosine_schedule

TINY = dict(dim=8, dim_mults=(1, 2), seq_len=8, groups=2, heads=2, dim_head=4, timesteps=16)
# reduced config for the loss-decrease test: fast on 2 shared cores
REDUCED = dict(dim=16, dim_mults=(1, 2), seq_len=32, groups=4, heads=2, dim_head=8, timesteps=64)
SAMPLE_STREAM = 1 << 62  # csrc/models/diffusion.h


def tiny(seed=0, max_batch=4, **kw):
    return LatentDiffusion(dict(TINY, **kw), seed=seed, max_batch=max_batch, device="cpu")


@pytest.mark.parametrize("T", [16, 256, 1000])
def test_schedule_matches_float64_reference(T):
    m = LatentDiffusion(dict(TINY, timesteps=T), max_batch=1, device="cpu")
    ref = cosine_schedule(T)
    got = m.schedule
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].dtype == np.float64 and got[k].shape == (T,)
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=1e-15, err_msg=k)
    assert got["betas"].max() <= 0.999
    if T == 256:
        assert got["betas"][-1] == 0.999  # the clip is active at the end of the paper's schedule


def test_v_target_and_loss_weighting_against_numpy():
    rng = np.random.default_rng(0)
    m = tiny()
    S = cosine_schedule(16)
    z0 = rng.uniform(-1, 1, (4, 1, 8)).astype(np.float32)
    noise = rng.normal(size=(4, 1, 8)).astype(np.float32)
    t = np.array([0, 5, 11, 15])
    sa = S["sqrt_alphas_cumprod"][t][:, None, None]
    s1 = S["sqrt_one_minus_alphas_cumprod"][t][:, None, None]
    xt = (sa * z0 + s1 * noise).astype(np.float32)
    v = sa * noise - s1 * z0
    pred = m.forward(xt, t).astype(np.float64)
    snr = S["alphas_cumprod"][t] / (1 - S["alphas_cumprod"][t])
    per_ref = snr / (snr + 1) * ((pred - v) ** 2).mean(axis=(1, 2))
    loss, per = m.loss(z0, t, noise)
    # float32 x_t and v vs float64: relative ~1e-6; the net's outputs amplify little
    assert_close(per, per_ref, rtol=1e-4, atol=1e-6, what="per-sample weighted MSE")
    assert abs(loss - per_ref.mean()) <= 1e-4 * abs(per_ref.mean())
    # the gradient of the loss is backward of dL/dpred = w * 2 (pred - v) / (C L B)
    m.zero_grad()
    m.loss(z0, t, noise, grad_scale=1.0)
    g_loss = m.flat("grad").copy()
    m.zero_grad()
    m.forward(xt, t)
    w = (snr / (snr + 1))[:, None, None]
    m.backward((w * 2 * (pred - v) / (8 * 4)).astype(np.float32))
    assert_close(g_loss, m.flat("grad"), rtol=1e-3, atol=1e-6, what="loss gradient")


def test_loss_gradient_matches_finite_differences():
    """d loss / d theta of diffusion_loss (q_sample, U-Net, weighted v-loss, grad_scale = 1) against
    central differences of the loss it returns, one element of every parameter tensor. Weights
    perturbed as in test_unet1d (every path carries signal). The loss is O(1) and float32 through
    ~40 layers (rounding ~1e-6 absolute, ~3e-5 on a quotient with eps 3e-2), truncation ~1e-3
    relative: test_unet1d's rtol 2e-2 / atol 3e-3, here atol 1e-3 (the loss is a mean over
    B * C * L = 16 terms, its gradients ~10x smaller than those of sum(out * dout))."""
    from test_unet1d import randomize
    rng = np.random.default_rng(6)
    m = tiny(max_batch=2)
    randomize(m, rng)
    z0 = rng.uniform(-1, 1, (2, 1, 8)).astype(np.float32)
    noise = rng.normal(size=(2, 1, 8)).astype(np.float32)
    t = np.array([3, 12])
    m.zero_grad()
    m.loss(z0, t, noise, grad_scale=1.0)
    G = {n: g.copy() for n, g in m.grads.items()}
    eps = 3e-2

    def f():
        return float(m.loss(z0, t, noise)[0])

    big = 0.0
    for name, p in m.parameters.items():
        flat = p.reshape(-1)
        # the element with the largest analytic gradient: a random one can carry a gradient
        # (~5e-3) at the level of the float32 difference quotient's own error (~1e-3 here,
        # measured: ups.1.1.block1.proj.bias[3] gave -6.4e-3 / -5.8e-3 by differences on two
        # OpenBLAS kernels, -5.008e-3 analytic on both), which would test the quotient, not the
        # gradient
        i = int(np.argmax(np.abs(G[name].reshape(-1))))
        num = central_difference(f, flat, i, eps)
        big = max(big, abs(num))
        assert_close(G[name].reshape(-1)[i], num, rtol=2e-2, atol=1e-3, what=f"d loss / d {name}[{i}]")
    assert big > 1e-2


def test_train_step_draws_t_and_noise_from_philox():
    """train_step's loss equals loss() with the documented Philox draws."""
    rng = np.random.default_rng(1)
    z0 = rng.uniform(-1, 1, (3, 1, 8)).astype(np.float32)
    a, b = tiny(seed=3), tiny(seed=3)
    seed, step = 11, 4
    from ubdiff.ops import rand_uniform
    u = rand_uniform(3, seed, stream=4 * step)
    t = np.minimum((u * 16).astype(np.int64), 15)
    noise = rand_normal((3, 1, 8), seed, stream=4 * step + 1)
    ref, _ = b.loss(z0, t, noise)
    r = a.train_step(z0, seed=seed, step=step, max_grad_norm=0.0)
    assert abs(r["loss"] - ref) <= 1e-6 * max(1.0, abs(ref))
    assert a.step == step + 1


def test_grad_accumulation_equals_one_big_batch():
    """accum=2 of B=2 draws per-sample t/noise by global index, so it sees the
    very samples of one batch of 4; the mean of the two micro-batch means is
    the batch mean, hence the same loss and gradient (up to float rounding)."""
    rng = np.random.default_rng(2)
    z0 = rng.uniform(-1, 1, (4, 1, 8)).astype(np.float32)
    a, b = tiny(seed=1), tiny(seed=1)
    ra = a.train_step(z0, accum=2, seed=5, step=0)
    rb = b.train_step(z0, accum=1, seed=5, step=0)
    assert abs(ra["loss"] - rb["loss"]) <= 1e-5 * abs(rb["loss"])
    assert abs(ra["grad_norm"] - rb["grad_norm"]) <= 1e-4 * rb["grad_norm"]
    assert_close(a.flat("grad"), b.flat("grad"), rtol=1e-3, atol=1e-6, what="accumulated grads")
    assert_close(a.flat("param"), b.flat("param"), rtol=1e-4, atol=1e-6, what="params after Adam")


def test_clipping_and_adam_match_numpy():
    rng = np.random.default_rng(3)
    z0 = rng.uniform(-1, 1, (2, 1, 8)).astype(np.float32)
    m = tiny()
    p0 = m.flat("param").copy()
    r = m.train_step(z0, lr=1e-3, betas=(0.9, 0.99), max_grad_norm=0.01, ema_every=0)
    g = m.flat("grad")  # the clipped gradient the step used
    assert r["grad_norm"] > 0.01
    assert abs(np.linalg.norm(g.astype(np.float64)) - 0.01) < 1e-5
    # first Adam step: m = 0.1 g, v = 0.01 g^2, bias-corrected -> p -= lr * g / (|g| + eps)
    p_ref = p0 - 1e-3 * g / (np.abs(g) + 1e-8)
    assert_close(m.flat("param"), p_ref, rtol=1e-5, atol=1e-6, what="Adam step")


def test_ema_cadence():
    rng = np.random.default_rng(4)
    z0 = rng.uniform(-1, 1, (2, 1, 8)).astype(np.float32)
    m = tiny()
    e0 = m.flat("ema").copy()
    assert np.array_equal(e0, m.flat("param"))  # initialised to the parameters
    m.train_step(z0, ema_every=3, ema_decay=0.5)
    m.train_step(z0, ema_every=3, ema_decay=0.5)
    assert np.array_equal(m.flat("ema"), e0)  # steps 1, 2: no update
    m.train_step(z0, ema_every=3, ema_decay=0.5)
    p = m.flat("param")
    expect = e0 + np.float32(0.5) * (p - e0)  # the core's float32 formula
    assert np.array_equal(m.flat("ema"), expect)
    e3 = m.flat("ema").copy()
    m.train_step(z0, ema_every=3, ema_decay=0.5)
    assert np.array_equal(m.flat("ema"), e3)


def test_training_is_resumable():
    rng = np.random.default_rng(5)
    z0 = rng.uniform(-1, 1, (2, 1, 8)).astype(np.float32)
    a = tiny(seed=2)
    la = [a.train_step(z0, ema_every=2)["loss"] for _ in range(3)]
    b = tiny(seed=2)
    b.train_step(z0, ema_every=2)
    c = tiny(seed=9)
    for k in ("param", "m", "v", "ema"):
        c.flat(k)[:] = b.flat(k)
    c.seed, c.step = b.seed, b.step
    lc = [c.train_step(z0, ema_every=2)["loss"] for _ in range(2)]
    assert lc == la[1:]
    for k in ("param", "m", "v", "ema"):
        assert np.array_equal(c.flat(k), a.flat(k)), k


def _loss_decreases(cfg, n_steps, B, lr):
    rng = np.random.default_rng(6)
    L = cfg["seq_len"]
    # fixed data: smooth latents in [-1, 1]
    z0 = np.sin(np.linspace(0, 3, L)[None, None, :] * rng.uniform(1, 3, (B, 1, 1)) + rng.uniform(0, 6, (B, 1, 1)))
    z0 = z0.astype(np.float32)
    m = LatentDiffusion(cfg, seed=0, max_batch=B, device="cpu")
    T = cfg["timesteps"]
    t_eval = np.linspace(0, T - 1, B).astype(np.int64)
    n_eval = rand_normal(z0.shape, 123)
    before, _ = m.loss(z0, t_eval, n_eval)
    for _ in range(n_steps):
        m.train_step(z0, lr=lr)
    after, _ = m.loss(z0, t_eval, n_eval)
    assert after < 0.7 * before, (before, after)


def test_loss_decreases_reduced_config():
    _loss_decreases(REDUCED, 30, 8, 2e-3)


def test_loss_decreases_small_config():
    _loss_decreases(dict(LatentDiffusion("small", max_batch=1, device="cpu").config), 40, 8, 1e-3)


# ---- samplers -----------------------------------------------------------------
def ref_sample(m, n, seed, sampler, steps=None, eta=0.0, use_ema=True):
    """NumPy re-implementation of GaussianDiffusion1D.p_sample_loop / ddim_sample
    using the C network and the documented Philox streams."""
    S = m.schedule
    T = m.timesteps
    per = int(np.prod(m.sample_shape))
    x = rand_normal((n, *m.sample_shape), seed, stream=SAMPLE_STREAM).astype(np.float64)

    def noise(time):
        return rand_normal((n, *m.sample_shape), seed, stream=SAMPLE_STREAM + 1 + time).astype(np.float64)

    def x0_of(x, time):
        v = m.forward(x.astype(np.float32), np.full(n, time), use_ema=use_ema)
        return np.clip(S["sqrt_alphas_cumprod"][time] * x - S["sqrt_one_minus_alphas_cumprod"][time] * v, -1, 1)

    if sampler == "ddpm":
        for time in reversed(range(T)):
            x0 = x0_of(x, time)
            mean = S["posterior_mean_coef1"][time] * x0 + S["posterior_mean_coef2"][time] * x
            x = mean + (np.exp(0.5 * S["posterior_log_variance_clipped"][time]) * noise(time) if time > 0 else 0)
        return x
    times = list(reversed(np.linspace(-1, T - 1, steps + 1).astype(np.float32).astype(np.int64).tolist()))
    for time, nxt in zip(times[:-1], times[1:]):
        x0 = x0_of(x, time)
        eps = (S["sqrt_recip_alphas_cumprod"][time] * x - x0) / S["sqrt_recipm1_alphas_cumprod"][time]
        if nxt < 0:
            x = x0
            continue
        a, an = S["alphas_cumprod"][time], S["alphas_cumprod"][nxt]
        sigma = eta * np.sqrt((1 - a / an) * (1 - an) / (1 - a))
        c = np.sqrt(1 - an - sigma ** 2)
        x = x0 * np.sqrt(an) + c * eps + (sigma * noise(time) if sigma > 0 else 0)
    return x


def trained_tiny():
    rng = np.random.default_rng(7)
    m = tiny(seed=4, max_batch=3)
    for v in m.parameters.values():  # a non-trivial EMA != params
        v += rng.normal(0, 0.1, v.shape).astype(np.float32)
    return m


@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", None, 0.0), ("ddim", 16, 0.0), ("ddim", 5, 0.0),
                                               ("ddim", 5, 0.7)])
def test_samplers_match_numpy_reimplementation(sampler, steps, eta):
    m = trained_tiny()
    for use_ema in (True, False):
        got = m.sample(3, seed=8, sampler=sampler, steps=steps, eta=eta, use_ema=use_ema)
        ref = ref_sample(m, 3, 8, sampler, steps, eta, use_ema)
        # float32 chain of <= 16 steps vs float64 arithmetic around the same net
        assert_close(got, ref, rtol=1e-3, atol=1e-4, what=f"{sampler} {steps} {eta} ema={use_ema}")


def test_sampler_determinism_and_chunking():
    m = trained_tiny()
    a = m.sample(5, seed=1)
    assert np.array_equal(a, m.sample(5, seed=1))
    assert not np.allclose(a, m.sample(5, seed=2))
    # chunks of max_batch=3 vs 5 and the progress path give the same samples
    m5 = tiny(seed=4, max_batch=5)
    m5.flat("param")[:] = m.flat("param")
    m5.flat("ema")[:] = m.flat("ema")
    assert_close(m5.sample(5, seed=1), a, rtol=1e-5, atol=1e-6, what="chunking")
    seen = []
    b = m.sample(5, seed=1, progress=lambda done, total: seen.append((done, total)))
    assert np.array_equal(a, b)
    assert seen[-1] == (32, 32)  # 2 chunks x 16 steps
    # the first sample does not depend on how many are drawn
    assert_close(m.sample(1, seed=1)[0], a[0], rtol=1e-5, atol=1e-6, what="prefix")


def test_ddpm_clamps_x0():
    m = trained_tiny()
    m.ema["final_conv.weight"][...] *= 1000  # wild v predictions
    z = m.sample(3, seed=3)
    # the last DDPM step returns the clamped x0 (posterior_mean_coef1[0] = 1, coef2[0] = 0)
    assert np.all(np.abs(z) <= 1.0 + 1e-6)
    assert np.mean(np.abs(np.abs(z) - 1) < 1e-6) > 0.5  # most saturate


def test_ddim_full_steps_eta1_follows_ddpm():
    """DDIM with steps = T and eta = 1 has sigma^2 = posterior variance and mean
    sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps = the DDPM posterior mean
    (algebraically); with the same noise streams the two samplers agree up to
    float rounding."""
    m = trained_tiny()
    a = m.sample(3, seed=6, sampler="ddpm")
    b = m.sample(3, seed=6, sampler="ddim", steps=16, eta=1.0)
    assert_close(b, a, rtol=1e-3, atol=1e-4, what="ddim(T, eta=1) vs ddpm")


def test_sampling_errors():
    m = tiny()
    with pytest.raises(ValueError, match="sampler"):
        m.sample(2, sampler="euler")
    with pytest.raises(ValueError, match="ddpm always"):
        m.sample(2, sampler="ddpm", steps=5)
    with pytest.raises(ValueError, match="ddim steps"):
        m.sample(2, sampler="ddim", steps=17)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        m.sample(2, sampler="ddim", steps=0)
    with pytest.raises(ValueError, match="eta"):
        m.sample(2, sampler="ddim", steps=4, eta=-1)
    with pytest.raises(ValueError, match="n must be"):
        m.sample(0)
    with pytest.raises(TypeError):
        m.sample(2.5)


def test_training_errors():
    m = tiny()
    z = np.zeros((4, 1, 8), np.float32)
    with pytest.raises(ValueError, match="multiple of accum"):
        m.train_step(z[:3], accum=2)
    with pytest.raises(ValueError, match="max_batch"):
        m.train_step(np.zeros((5, 1, 8), np.float32))
    with pytest.raises(ValueError, match="shape"):
        m.train_step(np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="betas"):
        m.train_step(z, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="max_grad_norm"):
        m.train_step(z, max_grad_norm=-1)
    with pytest.raises(ValueError, match="ema_decay"):
        m.train_step(z, ema_decay=1.5)
    with pytest.raises(ValueError, match="t must lie"):
        m.loss(z, np.array([0, 1, 2, 16]), z)
    with pytest.raises(ValueError, match="integer"):
        m.loss(z, np.array([0.5, 1, 2, 3]), z)
    with pytest.raises(ValueError, match="timesteps"):
        LatentDiffusion(dict(TINY, timesteps=0), device="cpu")
    assert m.step == 0  # failed calls do not advance the step


def test_checkpoint_roundtrip_resumes_training(tmp_path):
    rng = np.random.default_rng(9)
    z0 = rng.uniform(-1, 1, (2, 1, 8)).astype(np.float32)
    a = tiny(seed=3)
    a.train_step(z0, ema_every=1)
    path = str(tmp_path / "diff.safetensors")
    a.save(path)
    b = LatentDiffusion.load(path, device="cpu")
    assert b.config == a.config and b.step == 1 and b.seed == 3
    for k in ("param", "m", "v", "ema"):
        assert np.array_equal(b.flat(k), a.flat(k)), k
    assert a.train_step(z0)["loss"] == b.train_step(z0)["loss"]
    assert np.array_equal(a.sample(2, seed=1), b.sample(2, seed=1))
    from ubdiff.checkpoint import CheckpointError, save
    save(str(tmp_path / "other.safetensors"), {"x": np.zeros(1, np.float32)}, {"kind": "autoencoder"})
    with pytest.raises(CheckpointError, match="expected 'latent_diffusion'"):
        LatentDiffusion.load(str(tmp_path / "other.safetensors"))
