"""Nearest upsampling, crop/pad, channel concat, time embedding, scale-shift,
axpy: NumPy references, finite-difference gradients, error paths, threads.

Data-movement ops are exact (a copy or a sum of at most four float32 values),
so their forwards and backwards are compared with atol 1e-6; gradient checks
use gradcheck.py's defaults (rtol = atol = 2e-3, see its docstring).
"""
import math

import numpy as np
import pytest
from gradcheck import assert_close, numeric_grad

import ubdiff
from ubdiff import norm_ops as N
from ubdiff._native import lib


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def f32z(*shape):
    return np.zeros(shape, np.float32)


# ---- upsampling -----------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 1, 1), (3, 2, 4, 5), (1, 3, 1, 3)])
def test_upsample_forward(rng, shape):
    x = randn(rng, *shape)
    ref = x.repeat(2, axis=2) if x.ndim == 3 else x.repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_array_equal(N.upsample_nearest(x), ref)


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 2, 3, 3)])
def test_upsample_gradcheck(rng, shape):
    x = randn(rng, *shape)
    dout = randn(rng, *N.upsample_nearest(x).shape)
    assert_close(N.upsample_nearest_backward(dout), numeric_grad(N.upsample_nearest, x, dout), what="upsample dx")


# ---- crop / pad -----------------------------------------------------------------

def crop_ref(x, t, b, l, r):
    H, W = x.shape[2:]
    pad = ((0, 0), (0, 0), (max(-t, 0), max(-b, 0)), (max(-l, 0), max(-r, 0)))
    xp = np.pad(x, pad)
    t, l = max(t, 0), max(l, 0)
    return xp[:, :, t:xp.shape[2] - max(b, 0), l:xp.shape[3] - max(r, 0)]


CROPS = [((2, 3, 12, 12), (5, 5, 5, 5)), ((1, 2, 7, 9), (1, 2, 0, 3)), ((2, 1, 4, 5), (-1, -2, -3, 0)),
         ((1, 2, 5, 6), (2, -1, -2, 3)), ((1, 1, 3, 3), (4, -3, 5, -4))]


@pytest.mark.parametrize("shape,tblr", CROPS)
def test_crop_forward(rng, shape, tblr):
    x = randn(rng, *shape)
    out = N.crop2d(x, *tblr)
    np.testing.assert_array_equal(out, crop_ref(x, *tblr))


def test_crop_openfwi_80_to_70(rng):
    x = randn(rng, 2, 4, 80, 80)
    out = N.crop2d(x, 5)
    assert out.shape == (2, 4, 70, 70)
    np.testing.assert_array_equal(out, x[:, :, 5:75, 5:75])


@pytest.mark.parametrize("shape,tblr", CROPS)
def test_crop_gradcheck(rng, shape, tblr):
    x = randn(rng, *shape)
    dout = randn(rng, *N.crop2d(x, *tblr).shape)
    num = numeric_grad(lambda v: N.crop2d(v, *tblr), x, dout)
    assert_close(N.crop2d_backward(dout, x.shape, *tblr), num, what="crop dx")


@pytest.mark.parametrize("tblr", [(3, 3, 0, 0), (0, 0, 6, 0), (-1, 7, 0, 0), (0, 0, 2, 4)])
def test_crop_larger_than_map(tblr):
    with pytest.raises(ValueError, match="larger than"):
        N.crop2d(f32z(1, 2, 6, 6), *tblr)
    with pytest.raises(ValueError, match="larger than"):  # the raw binding checks too
        lib.crop2d_forward(f32z(1, 2, 1, 1), f32z(1, 2, 6, 6), *tblr)


def test_crop_shape_errors():
    with pytest.raises(ValueError, match="out has shape"):
        lib.crop2d_forward(f32z(1, 2, 2, 3), f32z(1, 2, 6, 6), 2, 2, 2, 2)
    with pytest.raises(ValueError, match=r"inp has shape"):
        lib.crop2d_forward(f32z(1, 2, 2, 2), f32z(2, 6, 6), 2, 2, 2, 2)
    with pytest.raises(ValueError, match="dout has shape"):
        lib.crop2d_backward(f32z(1, 2, 6, 6), f32z(1, 2, 3, 2), 2, 2, 2, 2)


# ---- concat ---------------------------------------------------------------------

@pytest.mark.parametrize("sa,sb", [((2, 3, 5), (2, 4, 5)), ((3, 1), (3, 2)), ((1, 2, 3, 4), (1, 5, 3, 4))])
def test_concat_forward_and_backward(rng, sa, sb):
    a, b = randn(rng, *sa), randn(rng, *sb)
    out = N.concat(a, b)
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))
    dout = randn(rng, *out.shape)
    da, db = N.concat_backward(dout, sa[1])
    assert_close(da, numeric_grad(lambda v: N.concat(v, b), a, dout), what="concat da")
    assert_close(db, numeric_grad(lambda v: N.concat(a, v), b, dout), what="concat db")
    # either gradient may be skipped; the other still accumulates
    db2 = np.ones_like(db)
    lib.concat_backward(None, db2, dout, sa[1])
    assert_close(db2 - 1, db, rtol=0, atol=1e-6, what="db +=")  # (1 + d) - 1 rounds


@pytest.mark.parametrize("a,b,msg", [
    (f32z(2, 3, 5), f32z(3, 3, 5), "agree"),
    (f32z(2, 3, 5), f32z(2, 3, 4), "agree"),
    (f32z(2, 3, 5), f32z(2, 3), "agree"),
    (f32z(2, 0, 5), f32z(2, 3, 5), "must be 1"),
])
def test_concat_errors(a, b, msg):
    with pytest.raises(ValueError, match=msg):
        N.concat(a, b)


def test_concat_backward_errors():
    with pytest.raises(ValueError, match="split"):
        lib.concat_backward(None, None, f32z(2, 3, 4), 3)
    with pytest.raises(ValueError, match="da has the wrong shape"):
        lib.concat_backward(f32z(2, 2, 4), None, f32z(2, 3, 4), 1)
    with pytest.raises(ValueError, match="out has the wrong shape"):
        lib.concat_forward(f32z(2, 4, 4), f32z(2, 1, 4), f32z(2, 2, 4))


# ---- time embedding ----------------------------------------------------------------

def temb_ref(t, dim):
    # lucidrains' SinusoidalPosEmb
    half = dim // 2
    f = np.exp(np.arange(half) * -(math.log(10000) / (half - 1)))
    a = np.asarray(t, np.float64)[:, None] * f[None, :]
    return np.concatenate([np.sin(a), np.cos(a)], axis=1)


@pytest.mark.parametrize("dim", [4, 6, 128])
def test_time_embedding(dim):
    t = np.array([0, 1, 7, 100, 255], np.float32)
    out = N.time_embedding(t, dim)
    assert out.shape == (5, dim)
    assert_close(out, temb_ref(t, dim), rtol=1e-6, atol=1e-6, what="temb")
    # the U-Net's 128: the lowest frequency is exactly 1/10000
    if dim == 128:
        assert_close(out[3, 63], math.sin(100 * 1e-4), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dim", [2, 3, 7, 0])
def test_time_embedding_bad_dim(dim):
    with pytest.raises(ValueError, match="dim|non-empty"):
        N.time_embedding(np.zeros(3, np.float32), dim)


# ---- scale-shift, axpy ------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 1), (3, 1, 2)])
def test_scale_shift_forward_and_gradcheck(rng, shape):
    B, C, L = shape
    x, ss, dout = randn(rng, *shape), randn(rng, B, 2 * C), randn(rng, *shape)
    ref = x * (1 + ss[:, :C, None]) + ss[:, C:, None]
    assert_close(N.scale_shift(x, ss), ref, rtol=1e-6, atol=1e-6, what="scale_shift")
    dx, dss = N.scale_shift_backward(dout, x, ss)
    assert_close(dx, numeric_grad(lambda v: N.scale_shift(v, ss), x, dout), what="dx")
    assert_close(dss, numeric_grad(lambda v: N.scale_shift(x, v), ss, dout), what="dss")


def test_scale_shift_errors():
    with pytest.raises(ValueError, match="ss has shape"):
        N.scale_shift(f32z(2, 3, 4), f32z(2, 3))
    with pytest.raises(ValueError, match="x has shape"):
        N.scale_shift(f32z(2, 3), f32z(2, 6))
    with pytest.raises(ValueError, match="dss has shape"):
        lib.scale_shift_backward(None, f32z(2, 5), f32z(2, 3, 4), f32z(2, 3, 4), f32z(2, 6))


def test_axpy(rng):
    y, x = randn(rng, 3, 7), randn(rng, 21)
    y0 = y.copy()
    N.axpy(y, x, -0.5)
    assert_close(y, y0 - 0.5 * x.reshape(3, 7), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="elements"):
        N.axpy(y, x[:20], 1.0)


# ---- threads ------------------------------------------------------------------------

def test_shape_ops_independent_of_thread_count(rng):
    x = randn(rng, 4, 64, 20, 20)   # 102400 values: above the OpenMP threshold
    x1 = randn(rng, 8, 128, 64)
    ss = randn(rng, 8, 256)
    big = randn(rng, 200_001)

    def run():
        up = N.upsample_nearest(x)
        r = [up, N.upsample_nearest_backward(up), N.crop2d(x, 2, -1, 3, 1),
             N.crop2d_backward(N.crop2d(x, 2, -1, 3, 1), x.shape, 2, -1, 3, 1),
             N.upsample_nearest(x1), N.concat(x1, x1), *N.concat_backward(N.concat(x1, x1), 128),
             N.scale_shift(x1, ss), *N.scale_shift_backward(x1, x1, ss)]
        y = big.copy()
        N.axpy(y, big, 0.3)
        return r + [y]

    n0 = ubdiff.get_num_threads()
    try:
        ubdiff.set_num_threads(1)
        one = run()
        ubdiff.set_num_threads(2)
        two = run()
    finally:
        ubdiff.set_num_threads(n0)
    for k, (a, b) in enumerate(zip(one, two)):
        np.testing.assert_array_equal(a, b, err_msg=f"result {k}")
