"""Conv2d, ConvTranspose2d, Conv1d: NumPy references, gradient checks, errors.

References are written directly from the definitions (sliding windows for the
convolution, the scatter form for the transposed one), in float64.
"""
import numpy as np
import pytest
from gradcheck import assert_close, at_thread_counts, numeric_grad
from numpy.lib.stride_tricks import sliding_window_view

from ubdiff import conv_ops as C
from ubdiff._native import lib


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d_ref(x, w, b=None, stride=1, padding=0):
    """out[b,o,h,w] = sum_{c,i,j} xpad[b,c,h*sh+i,w*sw+j] w[o,c,i,j] + b[o]."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::sh, ::sw]  # (B,C,OH,OW,KH,KW)
    out = np.einsum("bchwij,ocij->bohw", win, np.asarray(w, np.float64))
    return out if b is None else out + np.asarray(b, np.float64)[None, :, None, None]


def convt2d_ref(x, w, b=None, stride=1, padding=0, output_padding=0):
    """Scatter definition: each input pixel adds x[b,c,h,w] * w[c] at (h*sh, w*sw), then crop the padding."""
    (sh, sw), (ph, pw), (oph, opw) = _pair(stride), _pair(padding), _pair(output_padding)
    B, Cin, H, W = x.shape
    _, OC, KH, KW = w.shape
    full = np.zeros((B, OC, (H - 1) * sh + KH + oph, (W - 1) * sw + KW + opw))
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    for h in range(H):
        for v in range(W):
            full[:, :, h * sh:h * sh + KH, v * sw:v * sw + KW] += np.einsum("bc,cokl->bokl", x64[:, :, h, v], w64)
    OH, OW = (H - 1) * sh - 2 * ph + KH + oph, (W - 1) * sw - 2 * pw + KW + opw
    out = full[:, :, ph:ph + OH, pw:pw + OW]
    return out if b is None else out + np.asarray(b, np.float64)[None, :, None, None]


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# (B, C, H, W, OC, kernel, stride, padding): odd sizes, stride 2, rectangular kernels
CONV2D_CASES = [
    (2, 3, 5, 5, 4, (3, 3), (1, 1), (1, 1)),
    (1, 2, 7, 6, 3, (3, 3), (2, 2), (1, 1)),
    (2, 2, 9, 3, 3, (7, 1), (2, 1), (3, 0)),   # InversionNet's first-layer form
    (1, 2, 9, 10, 2, (8, 9), (1, 1), (0, 0)),  # InversionNet's last encoder layer form
    (3, 4, 4, 4, 5, (1, 1), (1, 1), (0, 0)),   # pointwise
    (2, 3, 3, 3, 2, (3, 3), (2, 2), (1, 1)),   # tiny map: 2x2 output
    (1, 1, 5, 7, 2, (2, 3), (3, 2), (0, 2)),
]


@pytest.mark.parametrize("B,Cin,H,W,OC,k,s,p", CONV2D_CASES)
def test_conv2d_forward_matches_numpy(rng, B, Cin, H, W, OC, k, s, p):
    x, w, b = _rand(rng, B, Cin, H, W), _rand(rng, OC, Cin, *k), _rand(rng, OC)
    # float32 sums of <= 72 O(1) products: 1e-5 relative/absolute is ample
    assert_close(C.conv2d(x, w, b, s, p), conv2d_ref(x, w, b, s, p), rtol=1e-5, atol=1e-5, what="conv2d")
    assert_close(C.conv2d(x, w, None, s, p), conv2d_ref(x, w, None, s, p), rtol=1e-5, atol=1e-5, what="no bias")


@pytest.mark.parametrize("B,Cin,H,W,OC,k,s,p", CONV2D_CASES)
def test_conv2d_gradcheck(rng, B, Cin, H, W, OC, k, s, p):
    x, w, b = _rand(rng, B, Cin, H, W), _rand(rng, OC, Cin, *k), _rand(rng, OC)
    dout = rng.standard_normal(C.conv2d(x, w, b, s, p).shape).astype(np.float32)
    dx, dw, db = C.conv2d_backward(dout, x, w, True, s, p)
    # tolerances: gradcheck.py defaults (float32 central differences, eps 1e-2; conv is linear so no truncation)
    assert_close(dx, numeric_grad(lambda x_: C.conv2d(x_, w, b, s, p), x, dout), what="dx")
    assert_close(dw, numeric_grad(lambda w_: C.conv2d(x, w_, b, s, p), w, dout), what="dw")
    assert_close(db, numeric_grad(lambda b_: C.conv2d(x, w, b_, s, p), b, dout), what="db")


# Large maps (OH*OW >= 2048) take the one-sample-per-GEMM path; small ones batch samples.
@pytest.mark.parametrize("k,s,p", [((3, 3), (1, 1), (1, 1)), ((1, 1), (1, 1), (0, 0)), ((3, 3), (2, 2), (1, 1))])
def test_conv2d_large_map_matches_reference(rng, k, s, p):
    B, Cin, H, W, OC = 3, 3, 50, 96, 4
    x, w, b = _rand(rng, B, Cin, H, W), _rand(rng, OC, Cin, *k), _rand(rng, OC)
    y = C.conv2d(x, w, b, s, p)
    assert_close(y, conv2d_ref(x, w, b, s, p), rtol=1e-5, atol=1e-5, what="conv2d large")
    dout = _rand(rng, *y.shape)
    dx, dw, db = C.conv2d_backward(dout, x, w, True, s, p)
    # dx is the transposed conv of dout; output_padding recovers the exact input size
    op = tuple((n + 2 * pp - kk) % ss for n, pp, kk, ss in zip((H, W), p, k, s))
    assert_close(dx, convt2d_ref(dout, w, None, s, p, op), rtol=1e-4, atol=1e-4, what="dx")
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    win = sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]][:, :, :y.shape[2], :y.shape[3]]
    # dw sums ~ B*OH*OW = 14400 products: relative 1e-4
    assert_close(dw, np.einsum("bohw,bchwij->ocij", dout, win), rtol=1e-4, atol=1e-3, what="dw")
    assert_close(db, dout.astype(np.float64).sum((0, 2, 3)), rtol=1e-4, atol=1e-3, what="db")


# One sample with many channels: the GEMMs are cut into bands of output rows
# (several bands, the last one partial); compare everything with the references.
@pytest.mark.parametrize("H,W,s", [(110, 20, 1), (200, 41, 2)])
def test_conv2d_bands_match_reference(rng, H, W, s):
    x, w, b = _rand(rng, 1, 64, H, W), _rand(rng, 3, 64, 3, 3), _rand(rng, 3)
    y = C.conv2d(x, w, b, s, 1)
    assert_close(y, conv2d_ref(x, w, b, s, 1), rtol=1e-4, atol=1e-4, what="conv2d bands")
    dout = _rand(rng, *y.shape)
    dx, dw, db = C.conv2d_backward(dout, x, w, True, s, 1)
    op = tuple((n + 2 - 3) % s for n in (H, W))
    assert_close(dx, convt2d_ref(dout, w, None, s, 1, op), rtol=1e-4, atol=1e-4, what="dx bands")
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::s, ::s][:, :, :y.shape[2], :y.shape[3]]
    assert_close(dw, np.einsum("bohw,bchwij->ocij", dout, win), rtol=1e-4, atol=1e-3, what="dw bands")


def test_convt2d_bands_match_reference(rng):
    x, w, b = _rand(rng, 1, 16, 50, 44), _rand(rng, 16, 32, 4, 4), _rand(rng, 32)
    y = C.conv_transpose2d(x, w, b, 2, 1, 1)
    assert_close(y, convt2d_ref(x, w, b, 2, 1, 1), rtol=1e-4, atol=1e-4, what="convt bands")
    dout = _rand(rng, *y.shape)
    dx, dw, _ = C.conv_transpose2d_backward(dout, x, w, True, 2, 1, 1)
    assert_close(dx, conv2d_ref(dout, w, None, 2, 1), rtol=1e-4, atol=1e-4, what="dx bands")
    xp = np.pad(dout.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (4, 4), axis=(2, 3))[:, :, ::2, ::2][:, :, :50, :44]
    assert_close(dw, np.einsum("bchw,bohwij->coij", x, win), rtol=1e-4, atol=1e-3, what="dw bands")


def test_conv2d_backward_accumulates_and_skips(rng):
    x, w = _rand(rng, 2, 3, 6, 5), _rand(rng, 4, 3, 3, 3)
    dout = _rand(rng, 2, 4, 3, 3)
    dx0, dw0, db0 = C.conv2d_backward(dout, x, w, True, 2, 1)
    dx, dw, db = np.ones_like(x), np.full_like(w, 2.0), np.full(4, 3.0, np.float32)
    lib.conv2d_backward(dx, dw, db, dout, x, w, stride=2, padding=1)
    assert_close(dx - 1, dx0, rtol=1e-5, atol=1e-5, what="dx +=")
    assert_close(dw - 2, dw0, rtol=1e-5, atol=1e-5, what="dw +=")
    assert_close(db - 3, db0, rtol=1e-5, atol=1e-5, what="db +=")
    only_dw = np.zeros_like(w)
    lib.conv2d_backward(None, only_dw, None, dout, x, w, stride=2, padding=1)
    assert_close(only_dw, dw0, rtol=1e-6, atol=1e-6, what="dw alone")
    lib.conv2d_backward(None, None, None, dout, x, w, stride=2, padding=1)


# ---- conv-transpose ------------------------------------------------------------
# (B, C, H, W, OC, kernel, stride, padding, output_padding)
CONVT_CASES = [
    (2, 3, 3, 3, 2, (4, 4), (2, 2), (1, 1), (0, 0)),  # D_v upsampling form
    (1, 2, 1, 1, 3, (5, 5), (2, 2), (0, 0), (0, 0)),  # D_v first layer form (1x1 -> 5x5)
    (2, 2, 3, 4, 3, (3, 3), (2, 2), (1, 1), (1, 1)),  # output_padding
    (1, 3, 4, 3, 2, (3, 2), (1, 2), (0, 1), (0, 1)),
    (2, 4, 5, 5, 3, (1, 1), (1, 1), (0, 0), (0, 0)),
    (1, 2, 2, 3, 2, (3, 3), (3, 2), (2, 1), (2, 0)),
]


@pytest.mark.parametrize("B,Cin,H,W,OC,k,s,p,op", CONVT_CASES)
def test_convt2d_forward_matches_numpy(rng, B, Cin, H, W, OC, k, s, p, op):
    x, w, b = _rand(rng, B, Cin, H, W), _rand(rng, Cin, OC, *k), _rand(rng, OC)
    assert_close(C.conv_transpose2d(x, w, b, s, p, op), convt2d_ref(x, w, b, s, p, op), rtol=1e-5, atol=1e-5,
                 what="convt2d")


@pytest.mark.parametrize("B,Cin,H,W,OC,k,s,p,op", CONVT_CASES)
def test_convt2d_gradcheck(rng, B, Cin, H, W, OC, k, s, p, op):
    x, w, b = _rand(rng, B, Cin, H, W), _rand(rng, Cin, OC, *k), _rand(rng, OC)
    f = lambda x_, w_, b_: C.conv_transpose2d(x_, w_, b_, s, p, op)  # noqa: E731
    dout = _rand(rng, *f(x, w, b).shape)
    dx, dw, db = C.conv_transpose2d_backward(dout, x, w, True, s, p, op)
    assert_close(dx, numeric_grad(lambda x_: f(x_, w, b), x, dout), what="dx")
    assert_close(dw, numeric_grad(lambda w_: f(x, w_, b), w, dout), what="dw")
    assert_close(db, numeric_grad(lambda b_: f(x, w, b_), b, dout), what="db")


def test_convt2d_large_map_is_adjoint_of_conv2d(rng):
    # H*W >= 2048: one sample per GEMM. <convT(x), y> == <x, conv(y)> with the same weight.
    x, w = _rand(rng, 2, 3, 48, 50), _rand(rng, 3, 2, 4, 4)
    y = C.conv_transpose2d(x, w, None, 2, 1)
    assert_close(y, convt2d_ref(x, w, None, 2, 1), rtol=1e-5, atol=1e-5, what="convt large")
    dout = _rand(rng, *y.shape)
    dx, dw, db = C.conv_transpose2d_backward(dout, x, w, True, 2, 1)
    assert_close(dx, conv2d_ref(dout, w, None, 2, 1), rtol=1e-4, atol=1e-4, what="dx = conv(dout)")
    xp = np.pad(dout.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (4, 4), axis=(2, 3))[:, :, ::2, ::2]
    assert_close(dw, np.einsum("bchw,bohwij->coij", x, win), rtol=1e-4, atol=1e-3, what="dw")
    assert_close(db, dout.astype(np.float64).sum((0, 2, 3)), rtol=1e-4, atol=1e-3, what="db")


# ---- conv1d ----------------------------------------------------------------------
CONV1D_CASES = [(2, 1, 9, 4, 7, 1, 3), (2, 3, 8, 4, 4, 2, 1), (3, 4, 5, 2, 3, 1, 1), (2, 3, 6, 5, 1, 1, 0),
                (1, 2, 7, 3, 3, 3, 0)]


@pytest.mark.parametrize("B,Cin,L,OC,K,s,p", CONV1D_CASES)
def test_conv1d_forward_and_gradcheck(rng, B, Cin, L, OC, K, s, p):
    x, w, b = _rand(rng, B, Cin, L), _rand(rng, OC, Cin, K), _rand(rng, OC)
    ref = conv2d_ref(x[:, :, None], w[:, :, None], b, (1, s), (0, p))[:, :, 0]
    y = C.conv1d(x, w, b, s, p)
    assert_close(y, ref, rtol=1e-5, atol=1e-5, what="conv1d")
    dout = _rand(rng, *y.shape)
    dx, dw, db = C.conv1d_backward(dout, x, w, True, s, p)
    assert_close(dx, numeric_grad(lambda x_: C.conv1d(x_, w, b, s, p), x, dout), what="dx")
    assert_close(dw, numeric_grad(lambda w_: C.conv1d(x, w_, b, s, p), w, dout), what="dw")
    assert_close(db, numeric_grad(lambda b_: C.conv1d(x, w, b_, s, p), b, dout), what="db")


# ---- threads -------------------------------------------------------------------------
def test_results_independent_of_thread_count(rng):
    x, w, b = _rand(rng, 4, 8, 40, 60), _rand(rng, 16, 8, 3, 3), _rand(rng, 16)
    xt, wt = _rand(rng, 4, 8, 20, 30), _rand(rng, 8, 16, 4, 4)

    def run():
        y = C.conv2d(x, w, b, 1, 1)
        g = C.conv2d_backward(y, x, w, True, 1, 1)
        yt = C.conv_transpose2d(xt, wt, b, 2, 1)
        gt = C.conv_transpose2d_backward(yt, xt, wt, True, 2, 1)
        return [y, *g, yt, *gt]

    res = at_thread_counts(run)
    for a, b_ in zip(*res):
        # BLAS may split sums differently per thread count: rounding-level differences only
        assert_close(a, b_, rtol=1e-5, atol=1e-4, what="1 vs 2 threads")


def test_concurrent_calls_from_python_threads(rng):
    # The GIL is released: two Python threads run convs (and their sgemms) at once.
    import threading
    x, w = _rand(rng, 4, 16, 30, 30), _rand(rng, 16, 16, 3, 3)
    ref = C.conv2d(x, w, None, 1, 1)
    results, errors = [None] * 4, []

    def work(k):
        try:
            for _ in range(3):
                results[k] = C.conv2d(x, w, None, 1, 1)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in ts)
    for r in results:
        assert_close(r, ref, rtol=1e-5, atol=1e-5, what="threaded")


# ---- errors --------------------------------------------------------------------------
def test_conv2d_errors(rng):
    x, w = _rand(rng, 1, 2, 5, 5), _rand(rng, 3, 2, 3, 3)
    with pytest.raises(ValueError, match="larger than the padded input"):
        C.conv2d(x, _rand(rng, 3, 2, 6, 3))
    with pytest.raises(ValueError, match="padding must be >= 0"):
        C.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="must be positive"):
        C.conv2d(x, w, stride=(0, 1))
    with pytest.raises(ValueError, match="weight"):  # channel mismatch
        C.conv2d(x, _rand(rng, 3, 4, 3, 3))
    with pytest.raises(ValueError, match="bias"):
        C.conv2d(x, w, _rand(rng, 4))
    with pytest.raises(ValueError, match="non-empty"):
        C.conv2d(np.zeros((0, 2, 5, 5), np.float32), w)
    with pytest.raises(ValueError, match="4-D"):
        C.conv2d(x[0], w)
    with pytest.raises(TypeError, match="pair of ints"):
        lib.conv2d_forward(np.empty((1, 3, 3, 3), np.float32), x, w, None, stride="a")
    with pytest.raises(ValueError, match="out"):  # wrong output shape
        lib.conv2d_forward(np.empty((1, 3, 4, 3), np.float32), x, w, None)
    with pytest.raises(TypeError, match="float32"):
        lib.conv2d_forward(np.empty((1, 3, 3, 3)), x, w, None)
    with pytest.raises(ValueError, match="dout"):
        lib.conv2d_backward(None, np.zeros_like(w), None, np.zeros((1, 3, 2, 2), np.float32), x, w)


def test_convt2d_and_conv1d_errors(rng):
    x, w = _rand(rng, 1, 2, 3, 3), _rand(rng, 2, 3, 3, 3)
    with pytest.raises(ValueError, match="output_padding"):
        C.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        C.conv_transpose2d(x, w, stride=1, output_padding=1)
    with pytest.raises(ValueError, match="leaves no output"):
        C.conv_transpose2d(_rand(rng, 1, 2, 1, 1), w, padding=2)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        C.conv_transpose2d(x, w, padding=(0, -1))
    with pytest.raises(ValueError, match="weight"):
        C.conv_transpose2d(x, _rand(rng, 3, 3, 3, 3))
    x1, w1 = _rand(rng, 2, 3, 4), _rand(rng, 5, 3, 3)
    with pytest.raises(ValueError, match="kernel 7 is longer"):
        C.conv1d(x1, _rand(rng, 5, 3, 7), padding=1)
    with pytest.raises(ValueError, match="must be positive"):
        C.conv1d(x1, w1, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        C.conv1d(x1, w1, padding=-2)
    with pytest.raises(ValueError, match="weight"):
        C.conv1d(x1, _rand(rng, 5, 2, 3))
