"""BatchNorm, GroupNorm, LayerNorm, RMSNorm: NumPy references of the forward
passes (incl. BatchNorm's running statistics), finite-difference gradients of
inputs and parameters, train -> eval consistency, error paths, thread counts.

Tolerances: forwards are compared in float64 against references; the core
keeps statistics in double and the per-element math in float32, so 1e-5
relative (a few float32 ulps of O(1) outputs) is the bound. Gradient checks use
gradcheck.py's defaults (rtol = atol = 2e-3, see its docstring), with inputs
O(1) and per-channel/group populations >= 4 so the normalisations are smooth
on the scale of the finite-difference step.
"""
import numpy as np
import pytest
from gradcheck import assert_close, numeric_grad

import ubdiff
from ubdiff import norm_ops as N
from ubdiff._native import lib


def randn(rng, *shape, scale=1.0, loc=0.0):
    return (loc + scale * rng.standard_normal(shape)).astype(np.float32)


# ---- references (float64) -------------------------------------------------------

def bn_ref(x, gamma, beta, eps=1e-5):
    x = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    m = x.mean(axes)
    v = x.var(axes)  # biased, used to normalise
    y = (x - m.reshape(bshape)) / np.sqrt(v.reshape(bshape) + eps)
    return y * gamma.reshape(bshape) + beta.reshape(bshape), m, v


def bn_eval_ref(x, gamma, beta, rm, rv, eps=1e-5):
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x.astype(np.float64) - rm.reshape(bshape)) / np.sqrt(rv.astype(np.float64).reshape(bshape) + eps)
    return y * gamma.reshape(bshape) + beta.reshape(bshape)


def gn_ref(x, gamma, beta, G, eps=1e-5):
    B, C = x.shape[:2]
    xg = x.astype(np.float64).reshape(B, G, -1)
    m = xg.mean(2, keepdims=True)
    v = xg.var(2, keepdims=True)
    y = ((xg - m) / np.sqrt(v + eps)).reshape(x.shape)
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    return y * gamma.reshape(bshape) + beta.reshape(bshape)


def ln_ref(x, gamma, beta, eps=1e-6):
    x = x.astype(np.float64)
    m = x.mean(-1, keepdims=True)
    v = x.var(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * gamma + beta


def rms_ref(x, g):
    x = x.astype(np.float64)
    n = np.maximum(np.sqrt((x ** 2).sum(1, keepdims=True)), 1e-12)
    return x / n * g.reshape(1, -1, 1) * np.sqrt(x.shape[1])


def in_threads(n, f):
    n0 = ubdiff.get_num_threads()
    ubdiff.set_num_threads(n)
    try:
        return f()
    finally:
        ubdiff.set_num_threads(n0)


# ---- BatchNorm ----------------------------------------------------------------------

BN_SHAPES = [(2, 3), (5, 4), (4, 3, 5), (3, 2, 3, 5), (1, 4, 7), (2, 1, 1, 1)]


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_train_forward_and_running_stats(rng, shape):
    x = randn(rng, *shape, scale=2.0, loc=0.5)
    C = shape[1]
    gamma, beta = randn(rng, C), randn(rng, C)
    rm, rv = randn(rng, C), (1 + rng.random(C)).astype(np.float32)
    rm0, rv0 = rm.copy().astype(np.float64), rv.copy().astype(np.float64)
    out, mean, rstd = N.batchnorm_train(x, gamma, beta, rm, rv, momentum=0.1, eps=1e-5)
    ref, m, v = bn_ref(x, gamma, beta)
    assert_close(out, ref, rtol=1e-5, atol=1e-5, what="bn out")
    assert_close(mean, m, rtol=1e-6, atol=1e-6, what="bn mean")
    assert_close(rstd, 1 / np.sqrt(v + 1e-5), rtol=1e-5, atol=0, what="bn rstd")
    n = x.size // C
    assert_close(rm, 0.9 * rm0 + 0.1 * m, rtol=1e-6, atol=1e-6, what="running_mean")
    assert_close(rv, 0.9 * rv0 + 0.1 * v * n / (n - 1), rtol=1e-6, atol=1e-6, what="running_var (unbiased)")


def test_batchnorm_running_var_is_unbiased(rng):
    # momentum 1 copies the batch statistics: running_var must be the UNBIASED
    # variance (n/(n-1) = 1.2 times the biased one here), as in PyTorch.
    x = randn(rng, 3, 2, 2)
    rm, rv = np.zeros(2, np.float32), np.ones(2, np.float32)
    N.batchnorm_train(x, np.ones(2), np.zeros(2), rm, rv, momentum=1.0)
    x64 = x.astype(np.float64)
    assert_close(rm, x64.mean((0, 2)), rtol=1e-6, atol=1e-6, what="mean")
    assert_close(rv, x64.var((0, 2), ddof=1), rtol=1e-6, atol=1e-7, what="unbiased var")
    assert not np.allclose(rv, x64.var((0, 2)), rtol=1e-3)


def test_batchnorm_stable_for_large_offset(rng):
    # mean 1e4 against spread 1: a float E[x^2]-E[x]^2 would lose all digits
    x = randn(rng, 64, 2, 300, loc=1e4)
    out, mean, rstd = N.batchnorm_train(x, np.ones(2), np.zeros(2))
    _, m, v = bn_ref(x, np.ones(2), np.zeros(2))
    assert_close(rstd, 1 / np.sqrt(v + 1e-5), rtol=1e-5, atol=0, what="rstd")
    assert_close(out.std((0, 2)), np.ones(2), rtol=1e-3, atol=0, what="std 1")


@pytest.mark.parametrize("shape", [(2, 3), (4, 3, 5), (2, 2, 3, 3)])
def test_batchnorm_eval_forward(rng, shape):
    x = randn(rng, *shape)
    C = shape[1]
    gamma, beta, rm = randn(rng, C), randn(rng, C), randn(rng, C)
    rv = (0.5 + rng.random(C)).astype(np.float32)
    assert_close(N.batchnorm_eval(x, gamma, beta, rm, rv), bn_eval_ref(x, gamma, beta, rm, rv),
                 rtol=1e-5, atol=1e-5, what="bn eval")


def test_batchnorm_eval_single_value_per_channel(rng):
    # training refuses B*S = 1, eval mode (frozen encoder, sampling) must not
    x = randn(rng, 1, 4)
    gamma, beta, rm = randn(rng, 4), randn(rng, 4), randn(rng, 4)
    rv = (0.5 + rng.random(4)).astype(np.float32)
    assert_close(N.batchnorm_eval(x, gamma, beta, rm, rv), bn_eval_ref(x, gamma, beta, rm, rv),
                 rtol=1e-5, atol=1e-5, what="bn eval B=1")


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 5), (2, 3, 2, 3), (1, 2, 7)])
def test_batchnorm_train_gradcheck(rng, shape):
    x = randn(rng, *shape)
    C = shape[1]
    gamma, beta = randn(rng, C) + 1.0, randn(rng, C)
    dout = randn(rng, *shape)
    _, mean, rstd = N.batchnorm_train(x, gamma, beta)
    dx, dg, db = N.batchnorm_backward(dout, x, gamma, mean, rstd)
    f = lambda x_, g_, b_: N.batchnorm_train(x_, g_, b_)[0]  # noqa: E731
    assert_close(dx, numeric_grad(lambda v: f(v, gamma, beta), x, dout, eps=1e-2), what="bn dx")
    assert_close(dg, numeric_grad(lambda v: f(x, v, beta), gamma, dout, eps=1e-2), what="bn dgamma")
    assert_close(db, numeric_grad(lambda v: f(x, gamma, v), beta, dout, eps=1e-2), what="bn dbeta")


@pytest.mark.parametrize("shape", [(3, 2), (2, 3, 5), (2, 2, 3, 3)])
def test_batchnorm_eval_gradcheck(rng, shape):
    x = randn(rng, *shape)
    C = shape[1]
    gamma, beta, rm = randn(rng, C), randn(rng, C), randn(rng, C)
    rv = (0.5 + rng.random(C)).astype(np.float32)
    dout = randn(rng, *shape)
    dx, dg, db = N.batchnorm_backward_eval(dout, x, gamma, rm, rv)
    f = lambda x_, g_, b_: N.batchnorm_eval(x_, g_, b_, rm, rv)  # noqa: E731
    assert_close(dx, numeric_grad(lambda v: f(v, gamma, beta), x, dout), what="bn eval dx")
    assert_close(dg, numeric_grad(lambda v: f(x, v, beta), gamma, dout), what="bn eval dgamma")
    assert_close(db, numeric_grad(lambda v: f(x, gamma, v), beta, dout), what="bn eval dbeta")


def test_batchnorm_backward_accumulates_and_skips_null(rng):
    x, dout = randn(rng, 4, 3, 2), randn(rng, 4, 3, 2)
    gamma, beta = randn(rng, 3), randn(rng, 3)
    _, mean, rstd = N.batchnorm_train(x, gamma, beta)
    dx, dg, db = N.batchnorm_backward(dout, x, gamma, mean, rstd)
    dx2, dg2, db2 = np.ones_like(dx), np.full_like(dg, 2), np.full_like(db, 3)
    lib.batchnorm_backward(dx2, dg2, db2, dout, x, gamma, mean, rstd)
    assert_close(dx2 - 1, dx, rtol=1e-6, atol=1e-6, what="dx +=")
    assert_close(dg2 - 2, dg, rtol=1e-6, atol=1e-6, what="dgamma +=")
    assert_close(db2 - 3, db, rtol=1e-6, atol=1e-6, what="dbeta +=")
    lib.batchnorm_backward(None, None, None, dout, x, gamma, mean, rstd)
    only = np.zeros_like(dg)
    lib.batchnorm_backward(None, only, None, dout, x, gamma, mean, rstd)
    assert_close(only, dg, rtol=0, atol=0, what="dgamma alone")
    lib.batchnorm_backward_eval(None, None, None, dout, x, gamma, mean, np.ones(3, np.float32), 1e-5)


def test_batchnorm_train_then_eval_consistent(rng):
    # Many training steps on batches from a fixed distribution: the running
    # statistics approach the data statistics, so eval output ~ train output.
    # With momentum 0.1 the running mean averages ~10 batches of 128 values:
    # its noise is ~ sigma/sqrt(1300) ~ 0.03 sigma, the variance's ~ 4%.
    C = 3
    mu = np.array([2.0, -1.0, 0.3])
    sigma = np.array([0.5, 3.0, 1.0])
    gamma, beta = randn(rng, C), randn(rng, C)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)

    def batch(B):
        return (mu.reshape(1, C, 1) + sigma.reshape(1, C, 1) * rng.standard_normal((B, C, 8))).astype(np.float32)

    for _ in range(150):
        N.batchnorm_train(batch(16), gamma, beta, rm, rv)
    assert np.all(np.abs(rm - mu) < 0.15 * sigma), (rm, mu)
    assert np.all(np.abs(rv / sigma ** 2 - 1) < 0.2), (rv, sigma ** 2)
    x = batch(256)
    y_train = N.batchnorm_train(x, gamma, beta)[0]
    y_eval = N.batchnorm_eval(x, gamma, beta, rm, rv)
    # the normalised values differ by the relative errors above: |diff| ~ 0.2 |gamma| |xhat|
    err = np.abs(y_eval - y_train) / (np.abs(gamma).reshape(1, C, 1) * (1 + np.abs(y_train)))
    assert err.max() < 0.3 and err.mean() < 0.1, (err.max(), err.mean())


# ---- GroupNorm ------------------------------------------------------------------------

GN_CASES = [((2, 6, 5), 3), ((3, 4, 1), 2), ((1, 6, 2, 3), 2), ((2, 4, 3), 1), ((2, 3, 4), 3), ((2, 16, 7), 8)]


@pytest.mark.parametrize("shape,G", GN_CASES)
def test_groupnorm_forward(rng, shape, G):
    x = randn(rng, *shape, scale=1.5, loc=-0.7)
    C = shape[1]
    gamma, beta = randn(rng, C), randn(rng, C)
    out, mean, rstd = N.groupnorm_forward(x, gamma, beta, G, eps=1e-5)
    assert_close(out, gn_ref(x, gamma, beta, G), rtol=1e-5, atol=1e-5, what="gn out")
    xg = x.astype(np.float64).reshape(shape[0], G, -1)
    assert_close(mean, xg.mean(2), rtol=1e-6, atol=1e-6, what="gn mean")
    assert_close(rstd, 1 / np.sqrt(xg.var(2) + 1e-5), rtol=1e-5, atol=0, what="gn rstd")


@pytest.mark.parametrize("shape,G", [((2, 6, 5), 3), ((1, 4, 2, 3), 2), ((2, 4, 3), 1), ((3, 2, 5), 2)])
def test_groupnorm_gradcheck(rng, shape, G):
    x = randn(rng, *shape)
    C = shape[1]
    gamma, beta, dout = randn(rng, C) + 1, randn(rng, C), randn(rng, *shape)
    _, mean, rstd = N.groupnorm_forward(x, gamma, beta, G)
    dx, dg, db = N.groupnorm_backward(dout, x, gamma, mean, rstd)
    f = lambda x_, g_, b_: N.groupnorm_forward(x_, g_, b_, G)[0]  # noqa: E731
    assert_close(dx, numeric_grad(lambda v: f(v, gamma, beta), x, dout), what="gn dx")
    assert_close(dg, numeric_grad(lambda v: f(x, v, beta), gamma, dout), what="gn dgamma")
    assert_close(db, numeric_grad(lambda v: f(x, gamma, v), beta, dout), what="gn dbeta")


# ---- LayerNorm ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 7), (1, 4), (4, 640)])
def test_layernorm_forward(rng, shape):
    x = randn(rng, *shape, scale=2.0, loc=1.0)
    C = shape[-1]
    gamma, beta = randn(rng, C), randn(rng, C)
    out, mean, rstd = N.layernorm_forward(x, gamma, beta)  # default eps 1e-6 (paper's ViT decoder)
    assert_close(out, ln_ref(x, gamma, beta, 1e-6), rtol=1e-5, atol=1e-5, what="ln out")
    assert_close(mean, x.astype(np.float64).reshape(-1, C).mean(1), rtol=1e-6, atol=1e-6, what="ln mean")


def test_layernorm_eps_matters(rng):
    # a nearly constant row: eps 1e-6 vs 1e-5 gives visibly different outputs
    x = (1 + 1e-3 * rng.standard_normal((2, 8))).astype(np.float32)
    g, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    assert_close(N.layernorm_forward(x, g, b, eps=1e-6)[0], ln_ref(x, g, b, 1e-6), rtol=1e-3, atol=1e-3)
    assert not np.allclose(N.layernorm_forward(x, g, b, eps=1e-6)[0], ln_ref(x, g, b, 1e-5), atol=1e-2)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 7), (1, 4)])
def test_layernorm_gradcheck(rng, shape):
    x = randn(rng, *shape)
    C = shape[-1]
    gamma, beta, dout = randn(rng, C) + 1, randn(rng, C), randn(rng, *shape)
    _, mean, rstd = N.layernorm_forward(x, gamma, beta)
    dx, dg, db = N.layernorm_backward(dout, x, gamma, mean, rstd)
    f = lambda x_, g_, b_: N.layernorm_forward(x_, g_, b_)[0]  # noqa: E731
    assert_close(dx, numeric_grad(lambda v: f(v, gamma, beta), x, dout), what="ln dx")
    assert_close(dg, numeric_grad(lambda v: f(x, v, beta), gamma, dout), what="ln dgamma")
    assert_close(db, numeric_grad(lambda v: f(x, gamma, v), beta, dout), what="ln dbeta")


# ---- RMSNorm --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 1), (3, 1, 2), (2, 128, 16)])
def test_rmsnorm_forward(rng, shape):
    x = randn(rng, *shape)
    g = randn(rng, shape[1])
    out, rnorm = N.rmsnorm_forward(x, g)
    assert_close(out, rms_ref(x, g), rtol=1e-5, atol=1e-5, what="rms out")
    assert_close(rnorm, 1 / np.sqrt((x.astype(np.float64) ** 2).sum(1)), rtol=1e-5, atol=0, what="rnorm")
    # g may come in the U-Net's (1, C, 1) parameter shape
    assert_close(N.rmsnorm_forward(x, g.reshape(1, -1, 1))[0], out, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 1), (3, 2, 3)])
def test_rmsnorm_gradcheck(rng, shape):
    x = randn(rng, *shape)
    g, dout = randn(rng, shape[1]) + 1, randn(rng, *shape)
    _, rnorm = N.rmsnorm_forward(x, g)
    dx, dg = N.rmsnorm_backward(dout, x, g, rnorm)
    assert_close(dx, numeric_grad(lambda v: N.rmsnorm_forward(v, g)[0], x, dout, eps=1e-3), what="rms dx")
    assert_close(dg, numeric_grad(lambda v: N.rmsnorm_forward(x, v)[0], g, dout), what="rms dg")


def test_rmsnorm_clamped_norm(rng):
    # a zero column: the norm is clamped at 1e-12, output 0, and (as in torch,
    # where the clamp makes the norm a constant) dx = dout * g * sqrt(C) / 1e-12.
    x = randn(rng, 1, 3, 2)
    x[:, :, 1] = 0
    g, dout = randn(rng, 3), randn(rng, 1, 3, 2)
    out, rnorm = N.rmsnorm_forward(x, g)
    assert np.all(out[:, :, 1] == 0)
    assert rnorm[0, 1] == np.float32(1e12)
    dx, _ = N.rmsnorm_backward(dout, x, g, rnorm)
    assert_close(dx[0, :, 1], dout[0, :, 1] * g * np.sqrt(3) * 1e12, rtol=1e-5, atol=0, what="clamped dx")


# ---- threads ----------------------------------------------------------------------

def test_norms_independent_of_thread_count(rng):
    # sizes above the OpenMP threshold; every statistic/gradient is owned by one
    # thread, so 1 and 2 threads give identical bits.
    x = randn(rng, 8, 16, 400, loc=0.3)
    dout = randn(rng, 8, 16, 400)
    gamma, beta = randn(rng, 16), randn(rng, 16)
    g = randn(rng, 16)
    xl = randn(rng, 130, 640)
    dl = randn(rng, 130, 640)
    gl, bl = randn(rng, 640), randn(rng, 640)

    def run():
        rm, rv = np.zeros(16, np.float32), np.ones(16, np.float32)
        r = list(N.batchnorm_train(x, gamma, beta, rm, rv)) + [rm, rv]
        r += N.batchnorm_backward(dout, x, gamma, r[1], r[2])
        r.append(N.batchnorm_eval(x, gamma, beta, rm, rv))
        r += N.batchnorm_backward_eval(dout, x, gamma, rm, rv)
        o, m, s = N.groupnorm_forward(x, gamma, beta, 4)
        r += [o, m, s, *N.groupnorm_backward(dout, x, gamma, m, s)]
        o, m, s = N.layernorm_forward(xl, gl, bl)
        r += [o, m, s, *N.layernorm_backward(dl, xl, gl, m, s)]
        o, rn = N.rmsnorm_forward(x, g)
        r += [o, rn, *N.rmsnorm_backward(dout, x, g, rn)]
        return r

    one, two = in_threads(1, run), in_threads(2, run)
    for k, (a, b) in enumerate(zip(one, two)):
        np.testing.assert_array_equal(a, b, err_msg=f"result {k}")


# ---- error paths ------------------------------------------------------------------

def f32z(*shape):
    return np.zeros(shape, np.float32)


def test_groupnorm_channels_not_divisible():
    with pytest.raises(ValueError, match="not divisible"):
        N.groupnorm_forward(f32z(2, 6, 3), np.ones(6), np.zeros(6), 4)
    with pytest.raises(ValueError, match="not divisible"):
        lib.groupnorm_backward(None, None, None, f32z(2, 6, 3), f32z(2, 6, 3), np.ones(6, np.float32),
                               f32z(2, 4), f32z(2, 4))
    with pytest.raises(ValueError, match="groups must be positive"):
        N.groupnorm_forward(f32z(2, 6, 3), np.ones(6), np.zeros(6), 0)


@pytest.mark.parametrize("call,msg", [
    (lambda: N.batchnorm_train(f32z(1, 3), np.ones(3), np.zeros(3)), "more than one value"),
    (lambda: N.batchnorm_train(f32z(0, 3, 2), np.ones(3), np.zeros(3)), "non-empty|must be 1"),
    (lambda: N.batchnorm_train(f32z(4, 3, 0), np.ones(3), np.zeros(3)), "must be 1"),
    (lambda: N.batchnorm_train(f32z(4), np.ones(3), np.zeros(3)), r"\(B, C"),
    (lambda: N.batchnorm_train(f32z(4, 3), np.ones(4), np.zeros(3)), "gamma has shape"),
    (lambda: N.batchnorm_train(f32z(4, 3), np.ones(3), np.zeros(3), momentum=1.5), "momentum"),
    (lambda: N.batchnorm_train(f32z(4, 3), np.ones(3), np.zeros(3), eps=0.0), "eps"),
    (lambda: N.batchnorm_train(f32z(4, 3), np.ones(3), np.zeros(3), f32z(3), None), "both"),
    (lambda: N.batchnorm_train(f32z(4, 3), np.ones(3), np.zeros(3), f32z(4), f32z(4)), "running_mean has shape"),
    (lambda: N.batchnorm_eval(f32z(4, 3), np.ones(3), np.zeros(3), f32z(3), -np.ones(3)), "negative"),
    (lambda: N.batchnorm_backward(f32z(4, 3, 2), f32z(4, 3, 3), np.ones(3), f32z(3), f32z(3)), "dout must have"),
    (lambda: N.groupnorm_forward(f32z(2, 6, 3), np.ones(5), np.zeros(6), 3), "gamma has shape"),
    (lambda: N.layernorm_forward(f32z(3, 4), np.ones(5), np.zeros(4)), "gamma has shape"),
    (lambda: N.layernorm_forward(f32z(3, 0), np.ones(0), np.zeros(0)), "non-empty"),
    (lambda: N.rmsnorm_forward(f32z(2, 3), np.ones(3)), r"\(B, C, L\)"),
    (lambda: N.rmsnorm_forward(f32z(2, 3, 4), np.ones(4)), "g has shape"),
    (lambda: N.rmsnorm_backward(f32z(2, 3, 4), f32z(2, 3, 4), np.ones(3), f32z(2, 3)), "rnorm has shape"),
])
def test_norm_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_running_stats_must_be_updatable():
    with pytest.raises(TypeError, match="in place"):
        N.batchnorm_train(f32z(4, 3), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))  # float64
