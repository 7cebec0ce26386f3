"""CUDA twins of linear backward, the L1/MSE losses, gradient norm and
clipping, EMA and softmax cross-entropy against their CPU ops (skipped, with
the reason, without a GPU). In a CUDA build on a GPU-less machine the cuda_*
bindings must raise, not crash.

Tolerances (|gpu - cpu| <= atol + rtol |cpu|):
  * products (cuBLAS vs OpenBLAS, fp32, no TF32 for cublasSgemm by default)
    differ by summation order: K-term sums of O(1) values, atol 1e-4 and
    rtol 1e-4 for K <= ~100, atol scaled by sqrt(K/100) beyond;
  * the losses and the norm are double sums rounded once to float on both
    sides: they differ by at most one float ulp, rtol 3e-7;
  * elementwise gradients use the same float formulas; the GPU contracts
    a*b + c into one FMA where the CPU rounds twice, one ulp of O(1) values:
    atol 1e-7..1e-6 as stated per test;
  * softmax probabilities: CUDA's expf is within 2 ulp, glibc's within 1:
    rtol 1e-5.
"""
import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu

import ubdiff
from ubdiff import ops
from ubdiff._native import lib

CUDA_BUILT = hasattr(lib, "cuda_linear_backward")


def randn(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


# ---- linear backward ------------------------------------------------------------

@requires_gpu
@pytest.mark.parametrize("B,C,OC", [(1, 1, 1), (33, 65, 17), (7, 3, 200), (300, 40, 9)])
def test_linear_backward_cuda_vs_cpu(rng, B, C, OC):
    x, w, dout = randn(rng, B, C), randn(rng, OC, C), randn(rng, B, OC)
    # start from non-zero gradients: both must accumulate (+=), weight gradients with beta = 1
    g0 = [randn(rng, B, C), randn(rng, OC, C), randn(rng, OC)]
    cpu = [a.copy() for a in g0]
    gpu = [a.copy() for a in g0]
    lib.linear_backward(*cpu, dout, x, w)
    lib.cuda_linear_backward(*gpu, dout, x, w)
    k = max(OC, B)  # longest sum: OC terms in dinp, B in dweight and dbias
    atol = 1e-4 * max(1.0, (k / 100) ** 0.5)
    for name, g, c in zip(("dinp", "dweight", "dbias"), gpu, cpu):
        assert_gpu_matches_cpu(g, c, atol=atol, rtol=1e-4, what=name)


@requires_gpu
def test_linear_backward_cuda_skips_null_gradients(rng):
    x, w, dout = randn(rng, 5, 4), randn(rng, 3, 4), randn(rng, 5, 3)
    dw = np.zeros((3, 4), np.float32)
    lib.cuda_linear_backward(None, dw, None, dout, x, w)
    assert_gpu_matches_cpu(dw, dout.T.astype(np.float64) @ x, atol=1e-5, rtol=1e-5, what="dweight only")
    lib.cuda_linear_backward(None, None, None, dout, x, w)  # nothing asked: a no-op, no error


# ---- losses ---------------------------------------------------------------------

@requires_gpu
@pytest.mark.parametrize("n", [1, 1000, 300_001])
@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_loss_cuda_vs_cpu(rng, n, loss):
    p, t = randn(rng, n), randn(rng, n)
    t[: n // 3] = p[: n // 3]  # exact zeros: sign(0) = 0 on both
    cpu = getattr(lib, f"{loss}_forward")(p, t)
    gpu = getattr(lib, f"cuda_{loss}_forward")(p, t)
    assert_gpu_matches_cpu(gpu, cpu, atol=0, rtol=3e-7, what=f"{loss} loss")
    dc, dg = np.ones(n, np.float32), np.ones(n, np.float32)  # += checked too
    getattr(lib, f"{loss}_backward")(dc, p, t, 0.7)
    getattr(lib, f"cuda_{loss}_backward")(dg, p, t, 0.7)
    assert_gpu_matches_cpu(dg, dc, atol=2.5e-7, rtol=1e-6, what=f"{loss} backward")


@requires_gpu
def test_loss_cuda_nan():
    p = np.array([1.0, np.nan, -2.0, 3.0], np.float32)
    t = np.array([0.0, 0.0, -2.0, 4.0], np.float32)
    assert np.isnan(lib.cuda_l1_forward(p, t)) and np.isnan(lib.cuda_mse_forward(p, t))
    d = np.zeros(4, np.float32)
    lib.cuda_l1_backward(d, p, t)
    # torch.sign(nan) = nan: the NaN reaches the gradient instead of vanishing
    np.testing.assert_array_equal(d, [0.25, np.nan, 0.0, -0.25])


@requires_gpu
def test_loss_cuda_errors():
    e = np.zeros(0, np.float32)
    with pytest.raises(ValueError, match="l1_forward: empty input"):
        lib.cuda_l1_forward(e, e)
    with pytest.raises(ValueError, match="mse_backward: empty input"):
        lib.cuda_mse_backward(e, e, e)


# ---- gradient norm, clipping, EMA ----------------------------------------------

@requires_gpu
@pytest.mark.parametrize("n", [1, 77, 1_000_003])
def test_grad_norm_cuda_vs_cpu(rng, n):
    g = randn(rng, n, scale=3.0)
    assert_gpu_matches_cpu(lib.cuda_grad_norm(g), lib.grad_norm(g), atol=0, rtol=3e-7, what="norm")


@requires_gpu
def test_grad_norm_cuda_empty_and_nan():
    assert lib.cuda_grad_norm(np.zeros(0, np.float32)) == 0.0
    g = np.array([1.0, np.nan], np.float32)
    assert np.isnan(lib.cuda_grad_norm(g))
    gc = g.copy()
    assert np.isnan(lib.cuda_clip_grad_norm(gc, 1.0))
    np.testing.assert_array_equal(gc, g)  # NaN coefficient: no scaling, as on the CPU


@requires_gpu
@pytest.mark.parametrize("max_norm", [0.5, 1e9])
def test_clip_grad_norm_cuda_vs_cpu(rng, max_norm):
    g = randn(rng, 123_457)
    gc, gg = g.copy(), g.copy()
    nc = lib.clip_grad_norm(gc, max_norm)
    ng = lib.cuda_clip_grad_norm(gg, max_norm)
    assert_gpu_matches_cpu(ng, nc, atol=0, rtol=3e-7, what="norm before clipping")
    # the coefficient comes from norms within one ulp: 2 ulp of each element
    assert_gpu_matches_cpu(gg, gc, atol=0, rtol=3e-7, what="clipped grad")
    if max_norm > 1e6:
        np.testing.assert_array_equal(gg, g)  # coef >= 1: untouched
    else:
        assert abs(np.linalg.norm(gg.astype(np.float64)) - max_norm) < 1e-4


@requires_gpu
def test_clip_grad_norm_cuda_errors():
    with pytest.raises(ValueError, match="max_norm must be positive"):
        lib.cuda_clip_grad_norm(np.ones(3, np.float32), 0.0)


@requires_gpu
def test_ema_cuda_vs_cpu(rng):
    ema, p = randn(rng, 54_321), randn(rng, 54_321)
    ec, eg = ema.copy(), ema.copy()
    lib.ema_update(ec, p, 0.999)
    lib.cuda_ema_update(eg, p, 0.999)
    assert_gpu_matches_cpu(eg, ec, atol=1e-6, rtol=1e-6, what="ema")
    with pytest.raises(ValueError, match="decay must lie in"):
        lib.cuda_ema_update(eg, p, 1.5)


# ---- softmax cross-entropy ----------------------------------------------------------

@requires_gpu
@pytest.mark.parametrize("B,K", [(1, 1), (7, 3), (300, 10), (4, 1000)])
def test_xent_cuda_vs_cpu(rng, B, K):
    logits = randn(rng, B, K, scale=4.0)
    logits[0, :] = 50.0  # ties (first arg-max wins) and large values (max-shifted)
    labels = rng.integers(0, K, B).astype(np.int32)
    lc, lg = np.zeros(1, np.float32), np.zeros(1, np.float32)
    pc, pg = np.empty((B, K), np.float32), np.empty((B, K), np.float32)
    cc = lib.xent_forward(lc, pc, logits, labels)
    cg = lib.cuda_xent_forward(lg, pg, logits, labels)
    assert cg == cc
    assert_gpu_matches_cpu(pg, pc, atol=1e-7, rtol=1e-5, what="probs")
    assert_gpu_matches_cpu(lg, lc, atol=1e-6, rtol=1e-5, what="loss")
    dc, dg = np.ones((B, K), np.float32), np.ones((B, K), np.float32)
    lib.xent_backward(dc, pc, labels, 0.5)
    lib.cuda_xent_backward(dg, pc, labels, 0.5)
    assert_gpu_matches_cpu(dg, dc, atol=2.5e-7, rtol=1e-6, what="dlogits")


@requires_gpu
def test_xent_cuda_bad_label_is_an_error(rng):
    logits = randn(rng, 4, 5)
    labels = np.array([0, 4, 7, -1], np.int32)
    with pytest.raises(ValueError, match=r"xent_forward: label 7 of row 2 is outside \[0, 5\)"):
        lib.cuda_xent_forward(np.zeros(1, np.float32), np.empty((4, 5), np.float32), logits, labels)
    with pytest.raises(ValueError, match=r"xent_backward: label 7 of row 2 is outside \[0, 5\)"):
        lib.cuda_xent_backward(np.zeros((4, 5), np.float32), np.empty((4, 5), np.float32), labels)


# ---- a CUDA build without a GPU ----------------------------------------------------

@pytest.mark.skipif(not CUDA_BUILT or ubdiff.gpu_count() > 0, reason="needs a CUDA build on a machine without GPU")
def test_new_cuda_bindings_raise_without_gpu():
    x = np.ones((4, 3), np.float32)
    w = np.ones((2, 3), np.float32)
    d = np.ones((4, 2), np.float32)
    v = np.ones(5, np.float32)
    lab = np.zeros(4, np.int32)
    calls = [
        lambda: lib.cuda_linear_backward(np.zeros_like(x), None, None, d, x, w),
        lambda: lib.cuda_l1_forward(v, v),
        lambda: lib.cuda_l1_backward(v.copy(), v, v),
        lambda: lib.cuda_mse_forward(v, v),
        lambda: lib.cuda_mse_backward(v.copy(), v, v),
        lambda: lib.cuda_grad_norm(v),
        lambda: lib.cuda_clip_grad_norm(v.copy(), 1.0),
        lambda: lib.cuda_ema_update(v.copy(), v, 0.9),
        lambda: lib.cuda_xent_forward(np.zeros(1, np.float32), np.empty_like(x), x, lab),
        lambda: lib.cuda_xent_backward(np.zeros_like(x), x, lab),
        lambda: lib.cuda_mhsa_forward(np.empty((1, 2, 4), np.float32), np.empty((1, 2, 2, 2), np.float32),
                                      np.ones((1, 2, 12), np.float32)),
        lambda: lib.cuda_mhsa_backward(np.zeros((1, 2, 12), np.float32), np.empty((1, 2, 2, 2), np.float32),
                                       np.ones((1, 2, 4), np.float32), np.ones((1, 2, 12), np.float32),
                                       np.ones((1, 2, 2, 2), np.float32)),
        lambda: lib.cuda_full_attention_backward(np.zeros((1, 6, 3), np.float32), np.empty((1, 1, 3, 3), np.float32),
                                                 np.ones((1, 2, 3), np.float32), np.ones((1, 6, 3), np.float32),
                                                 np.ones((1, 1, 3, 3), np.float32), 0.5),
        lambda: lib.cuda_linear_attention_forward(np.empty((1, 2, 3), np.float32), np.empty((1, 2, 3), np.float32),
                                                  np.empty((1, 2, 3), np.float32), np.empty((1, 1, 2, 2), np.float32),
                                                  np.ones((1, 6, 3), np.float32), 0.5),
        lambda: lib.cuda_linear_attention_backward(np.zeros((1, 6, 3), np.float32), np.empty(16, np.float32),
                                                   np.ones((1, 2, 3), np.float32), np.ones((1, 6, 3), np.float32),
                                                   np.ones((1, 2, 3), np.float32), np.ones((1, 2, 3), np.float32),
                                                   np.ones((1, 1, 2, 2), np.float32), 0.5),
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match="CUDA|cuda"):
            call()
    # shapes and types are still checked before any device work
    with pytest.raises(ValueError, match="dout"):
        lib.cuda_linear_backward(None, None, None, np.ones((4, 3), np.float32), x, w)
    with pytest.raises(TypeError, match="int32"):
        lib.cuda_xent_backward(np.zeros_like(x), x, lab.astype(np.int64))
    with pytest.raises(ValueError, match="labels must have shape"):
        lib.cuda_xent_forward(np.zeros(1, np.float32), np.empty_like(x), x, np.zeros(3, np.int32))
