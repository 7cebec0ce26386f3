"""The 1-D U-Net denoiser: parameter table (names, shapes, count), forward
against a float64 NumPy reference of lucidrains' Unet1D, finite-difference
gradients of parameters of every kind and of the input, threads, errors."""
import numpy as np
import pytest

import ubdiff
from ubdiff.models.diffusion import PAPER_NUM_PARAMETERS, LatentDiffusion
from gradcheck import assert_close
from unet_ref import torch_keys, unet_forward

# Tiny config for the reference and gradient checks: 2 levels (one down/up
# sampling), odd-ish widths, GroupNorm with 2 groups, 2 heads of 4.
TINY = dict(dim=8, dim_mults=(1, 2), seq_len=8, groups=2, heads=2, dim_head=4, timesteps=16)


def tiny(seed=0, max_batch=3, **kw):
    return LatentDiffusion(dict(TINY, **kw), seed=seed, max_batch=max_batch, device="cpu")


def randomize(m, rng, scale=0.3):
    """Perturb every parameter (norm gains away from 1, biases away from 0) so
    that every path of the gradient check carries signal."""
    for v in m.parameters.values():
        v += rng.normal(0, scale, v.shape).astype(np.float32)


@pytest.fixture(scope="module")
def paper():
    return LatentDiffusion("paper", max_batch=2, device="cpu")  # ~2 s to build: shared


def test_paper_parameter_count_and_names(paper):
    m = paper
    assert m.num_parameters() == PAPER_NUM_PARAMETERS == 21_319_681
    ref = torch_keys(128, (1, 2, 2, 4))
    assert [(n, s) for n, s, _ in m.spec()] == ref
    assert sum(int(np.prod(s)) for _, s in ref) == 21_319_681
    # offsets are contiguous in order: one flat buffer
    off = 0
    for _, s, o in m.spec():
        assert o == off
        off += int(np.prod(s))


def test_small_config_and_torch_prefix():
    m = LatentDiffusion("small", max_batch=1, device="cpu")
    assert [(n, s) for n, s, _ in m.spec()] == torch_keys(32, (1, 2, 2, 2))
    sd = m.state_dict(prefix=LatentDiffusion.TORCH_PREFIX)
    assert "model.mid_attn.fn.fn.to_qkv.weight" in sd
    m2 = LatentDiffusion("small", seed=5, max_batch=1, device="cpu")
    m2.load_state_dict(sd, prefix="model.")
    assert np.array_equal(m2.flat("param"), m.flat("param"))


def test_init_is_pytorch_default_like():
    m = LatentDiffusion("small", seed=1, max_batch=1, device="cpu")
    P = m.parameters
    w = P["downs.2.0.block1.proj.weight"]  # (64, 64, 3): fan_in 192
    bound = 1 / np.sqrt(192)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound  # uniform's std
    assert np.all(P["downs.0.0.block1.norm.weight"] == 1) and np.all(P["downs.0.0.block1.norm.bias"] == 0)
    assert np.all(P["mid_attn.fn.norm.g"] == 1) and np.all(P["ups.0.2.fn.fn.to_out.1.g"] == 1)
    assert np.array_equal(m.flat("ema"), m.flat("param"))
    again = LatentDiffusion("small", seed=1, max_batch=1, device="cpu")
    other = LatentDiffusion("small", seed=2, max_batch=1, device="cpu")
    assert np.array_equal(again.flat("param"), m.flat("param"))
    assert not np.array_equal(other.flat("param"), m.flat("param"))


@pytest.mark.parametrize("mults,L", [((1, 2), 8), ((1, 2, 3), 12), ((2,), 5)])
def test_forward_matches_numpy_reference(mults, L):
    rng = np.random.default_rng(0)
    m = tiny(dim_mults=mults, seq_len=L)
    randomize(m, rng)
    x = rng.normal(size=(3, 1, L)).astype(np.float32)
    t = np.array([0, 7, 15], np.float32)
    out = m.forward(x, t)
    ref = unet_forward(m.parameters, x, t, 8, mults, groups=2, heads=2, dim_head=4)
    assert out.shape == (3, 1, L)
    # float32 through ~40 layers vs float64: relative error ~1e-5 expected
    assert_close(out, ref, rtol=1e-4, atol=1e-4, what="unet forward")


def test_paper_forward_shape_and_batch_independence(paper):
    m = paper
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 1, 128)).astype(np.float32)
    out = m.forward(x, [3, 200])
    assert out.shape == (2, 1, 128) and np.isfinite(out).all()
    one = m.forward(x[1:], [200])
    assert_close(one[0], out[1], rtol=1e-5, atol=1e-5, what="sample independent of its batch")


def test_gradients_finite_difference():
    """d sum(out * dout) / d theta for two elements of EVERY parameter tensor (160; a routing slip
    of one instance -- the second level's attention, one block's time MLP, an up path's skip
    half -- shows too) and all inputs.

    Tolerance: the objective comes out of ~40 float32 layers; its rounding
    noise, measured, is ~5e-5 absolute, i.e. ~1e-3 on a central difference
    with eps = 3e-2, whose truncation error eps^2 |f'''| / 6 is ~1e-3 relative
    (smooth layers: SiLU, GELU, softmax, norms; measured by varying eps).
    rtol = 2e-2, atol = 3e-3 leave a margin of a few x, while a wrong routing
    or a missed term gives errors of O(|grad|)."""
    rng = np.random.default_rng(3)
    m = tiny(max_batch=2)
    randomize(m, rng)
    x = rng.normal(size=(2, 1, 8)).astype(np.float32)
    t = np.array([2, 13], np.float32)
    dout = rng.normal(size=(2, 1, 8)).astype(np.float32)
    m.zero_grad()
    m.forward(x, t)
    dx = m.backward(dout, input_grad=True)
    P, G = m.parameters, m.grads
    eps = 3e-2

    def f():
        return float(np.sum(m.forward(x, t).astype(np.float64) * dout))

    picks = [(n, tuple(int(rng.integers(d)) for d in P[n].shape)) for n in P for _ in range(2)]
    assert len(P) == 160
    for name, idx in picks:
        p = P[name]
        old = p[idx]
        p[idx] = old + eps
        fp = f()
        p[idx] = old - eps
        fm = f()
        p[idx] = old
        assert_close(G[name][idx], (fp - fm) / (2 * eps), rtol=2e-2, atol=3e-3, what=f"d/d {name}{idx}")
    num = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        num[i] = (fp - fm) / (2 * eps)
    # d/dx is O(50) here (random weights amplify); its rounding noise scales
    # with it, so the absolute tolerance is relative to the largest entry.
    assert_close(dx, num, rtol=2e-2, atol=2e-3 * np.abs(num).max(), what="d/dx")


def test_gradients_accumulate():
    rng = np.random.default_rng(4)
    m = tiny(max_batch=2)
    x = rng.normal(size=(2, 1, 8)).astype(np.float32)
    dout = rng.normal(size=(2, 1, 8)).astype(np.float32)
    m.zero_grad()
    m.forward(x, [1, 2])
    m.backward(dout)
    g1 = m.flat("grad").copy()
    m.forward(x, [1, 2])
    m.backward(dout)
    assert_close(m.flat("grad"), 2 * g1, rtol=1e-5, atol=1e-7, what="grads accumulate")


def test_reinit_invalidates_the_forward():
    """reinit() replaces the weights: the activations the last forward saved are the old
    weights', so backward must refuse until a new forward (it used to pair them with the new
    weights into a wrong gradient); after one, the gradient is that of a fresh model."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 1, 8)).astype(np.float32)
    dout = rng.normal(size=(2, 1, 8)).astype(np.float32)
    m = tiny(seed=0, max_batch=2)
    m.forward(x, [1, 2])
    m.reinit(3)
    with pytest.raises(ValueError, match="needs a preceding forward"):
        m.backward(dout)
    m.zero_grad()
    m.forward(x, [1, 2])
    m.backward(dout)
    fresh = tiny(seed=3, max_batch=2)
    fresh.zero_grad()
    fresh.forward(x, [1, 2])
    fresh.backward(dout)
    np.testing.assert_array_equal(m.flat("grad"), fresh.flat("grad"))


def test_one_vs_two_threads():
    rng = np.random.default_rng(5)
    m = LatentDiffusion("small", max_batch=2, device="cpu")
    x = rng.normal(size=(2, 1, 128)).astype(np.float32)
    n0 = ubdiff.get_num_threads()
    try:
        ubdiff.set_num_threads(1)
        a = m.forward(x, [5, 9])
        ubdiff.set_num_threads(2)
        b = m.forward(x, [5, 9])
    finally:
        ubdiff.set_num_threads(n0)
    assert_close(a, b, rtol=1e-5, atol=1e-5, what="threads")


def test_errors():
    with pytest.raises(ValueError, match="unknown config"):
        LatentDiffusion("huge", device="cpu")
    with pytest.raises(ValueError, match="unknown config keys"):
        LatentDiffusion({"width": 3}, device="cpu")
    with pytest.raises(ValueError, match="multiple of 2"):
        LatentDiffusion(dict(TINY, seq_len=6, dim_mults=(1, 2, 2)), device="cpu")
    with pytest.raises(ValueError, match="divisible by groups"):
        LatentDiffusion(dict(TINY, groups=3), device="cpu")
    with pytest.raises(ValueError, match="max_batch"):
        tiny(max_batch=0)
    m = tiny(max_batch=2)
    with pytest.raises(ValueError, match="shape"):
        m.forward(np.zeros((2, 1, 9), np.float32), [0, 0])
    with pytest.raises(ValueError, match="max_batch"):
        m.forward(np.zeros((3, 1, 8), np.float32), [0, 0, 0])
    with pytest.raises(ValueError, match="preceding forward"):
        tiny().backward(np.zeros((1, 1, 8), np.float32))
    m.forward(np.zeros((2, 1, 8), np.float32), [0, 0])
    with pytest.raises(ValueError, match="same batch"):
        m.backward(np.zeros((1, 1, 8), np.float32))
    m.forward(np.zeros((2, 1, 8), np.float32), [0, 0], use_ema=True)
    with pytest.raises(ValueError, match="EMA"):
        m.backward(np.zeros((2, 1, 8), np.float32))
    with pytest.raises(TypeError, match="handle"):
        ubdiff._native.lib.unet_forward(object(), None, None, None, False)
