"""pixel_unshuffle (space-to-depth, the 2-D U-Net's Downsample): NumPy
reference, finite-difference gradient, accumulation, error paths, thread
count, and the CUDA twin against the CPU (skipped, with the reason, without a
GPU). The op is a permutation: every comparison is exact."""
import numpy as np
import pytest
from cuda_util import requires_gpu
from gradcheck import assert_close, numeric_grad
from unet2d_ref import pixel_unshuffle as unshuffle_ref

import ubdiff
from ubdiff._native import lib


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def unshuffle(x, r=2, prefix=""):
    B, C, H, W = x.shape
    out = np.full((B, C * r * r, H // r, W // r), np.nan, np.float32)  # NaN: any element not written shows
    getattr(lib, prefix + "pixel_unshuffle_forward")(out, x, r)
    return out


def unshuffle_backward(dout, r=2, prefix="", start=None):
    B, Cr, Ho, Wo = dout.shape
    dinp = np.zeros((B, Cr // (r * r), Ho * r, Wo * r), np.float32) if start is None else start.copy()
    getattr(lib, prefix + "pixel_unshuffle_backward")(dinp, dout, r)
    return dinp


def general_ref(x, r):
    B, C, H, W = x.shape
    return x.reshape(B, C, H // r, r, W // r, r).transpose(0, 1, 3, 5, 2, 4).reshape(B, C * r * r, H // r, W // r)


@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 3, 4, 6), (3, 5, 10, 8), (1, 64, 72, 72)])
def test_forward_matches_einops_layout(rng, shape):
    x = randn(rng, *shape)
    np.testing.assert_array_equal(unshuffle(x), unshuffle_ref(x))
    # the channel of output element (b, (c*2 + i)*2 + j, y, x) is input element (b, c, 2y + i, 2x + j)
    out = unshuffle(x)
    b, c, i, j, y, xx = shape[0] - 1, shape[1] - 1, 1, 0, shape[2] // 2 - 1, 0
    assert out[b, (c * 2 + i) * 2 + j, y, xx] == x[b, c, 2 * y + i, 2 * xx + j]


@pytest.mark.parametrize("r,shape", [(1, (2, 3, 5, 7)), (3, (2, 2, 9, 6)), (4, (1, 3, 8, 12))])
def test_other_factors(rng, r, shape):
    x = randn(rng, *shape)
    np.testing.assert_array_equal(unshuffle(x, r), general_ref(x, r))
    d = randn(rng, *general_ref(x, r).shape)
    np.testing.assert_array_equal(unshuffle_backward(d, r), general_ref_inverse(d, r))


def general_ref_inverse(d, r):
    B, Cr, Ho, Wo = d.shape
    C = Cr // (r * r)
    return d.reshape(B, C, r, r, Ho, Wo).transpose(0, 1, 4, 2, 5, 3).reshape(B, C, Ho * r, Wo * r)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 2, 6, 2)])
def test_gradcheck(rng, shape):
    x = randn(rng, *shape)
    dout = randn(rng, shape[0], shape[1] * 4, shape[2] // 2, shape[3] // 2)
    assert_close(unshuffle_backward(dout), numeric_grad(unshuffle, x, dout), what="pixel_unshuffle dx")


def test_backward_is_the_inverse_and_accumulates(rng):
    x = randn(rng, 2, 3, 8, 6)
    np.testing.assert_array_equal(unshuffle_backward(unshuffle(x)), x)
    start = randn(rng, 2, 3, 8, 6)
    d = randn(rng, 2, 12, 4, 3)
    np.testing.assert_array_equal(unshuffle_backward(d, start=start), start + general_ref_inverse(d, 2))


def test_errors():
    z = np.zeros
    with pytest.raises(ValueError, match="not a multiple of the factor 2"):
        lib.pixel_unshuffle_forward(z((1, 4, 2, 2), np.float32), z((1, 1, 5, 4), np.float32), 2)
    with pytest.raises(ValueError, match="factor r must be positive"):
        lib.pixel_unshuffle_forward(z((1, 4, 2, 2), np.float32), z((1, 1, 4, 4), np.float32), 0)
    with pytest.raises(ValueError, match=r"out.*expected.*\(1, 4, 2, 2\)"):
        lib.pixel_unshuffle_forward(z((1, 4, 2, 3), np.float32), z((1, 1, 4, 4), np.float32), 2)
    with pytest.raises(ValueError, match="dinp"):
        lib.pixel_unshuffle_backward(z((1, 1, 4), np.float32), z((1, 4, 2, 2), np.float32), 2)
    with pytest.raises(TypeError, match="inp"):
        lib.pixel_unshuffle_forward(z((1, 4, 2, 2), np.float32), z((1, 1, 4, 4), np.float64), 2)


def test_independent_of_thread_count(rng):
    x = randn(rng, 4, 32, 40, 40)  # above the OpenMP threshold
    d = randn(rng, 4, 128, 20, 20)
    n0 = ubdiff.get_num_threads()
    try:
        ubdiff.set_num_threads(1)
        one = unshuffle(x), unshuffle_backward(d)
        ubdiff.set_num_threads(2)
        two = unshuffle(x), unshuffle_backward(d)
    finally:
        ubdiff.set_num_threads(n0)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@requires_gpu
@pytest.mark.parametrize("r,shape", [(2, (2, 3, 4, 6)), (2, (3, 64, 72, 72)), (3, (1, 2, 9, 3))])
def test_cuda_vs_cpu(rng, r, shape):
    x = randn(rng, *shape)
    np.testing.assert_array_equal(unshuffle(x, r, "cuda_"), unshuffle(x, r))
    d, start = randn(rng, *unshuffle(x, r).shape), randn(rng, *shape)
    np.testing.assert_array_equal(unshuffle_backward(d, r, "cuda_", start), unshuffle_backward(d, r, "", start))
