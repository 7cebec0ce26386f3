"""Winograd convolutions (csrc/cpu/winograd.c): stride-1 (3, 3) kernels with >= 16
channels in and out, (1, 3) and (3, 1) kernels (conv1d k = 3 included) with >= 128,
>= 128 tiles per call.

Checked against float64 references from the definitions (test_conv.py's), the
im2col path of the same build (``conv_algorithm("im2col")``), finite
differences, and for their edge cases: chunks of several samples with a partial
last one, bands of tile rows of one large sample, tile rows longer than one
64-tile segment, odd sizes (tiles hanging over the edge), padding 0 and 2.
"""
import numpy as np
import pytest
from gradcheck import assert_close, at_thread_counts, numeric_grad
from numpy.lib.stride_tricks import sliding_window_view
from test_conv import conv2d_ref, convt2d_ref

from ubdiff import conv_ops as C
from ubdiff._native import lib


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _dw_ref(dout, x, k, p):
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    win = sliding_window_view(xp, k, axis=(2, 3))[:, :, :dout.shape[2], :dout.shape[3]]
    return np.einsum("bohw,bchwij->ocij", dout.astype(np.float64), win)


def _scale(ref):
    return float(np.abs(ref).max())


# (B, C, H, W, OC, kernel, padding)
CASES = [
    (4, 16, 15, 17, 16, (3, 3), (1, 1)),   # odd sizes: the last tile row / column hangs over
    (8, 16, 10, 10, 24, (3, 3), (0, 0)),   # no padding: 8 x 8 output
    (8, 17, 5, 8, 16, (3, 3), (2, 2)),     # padding 2: output larger than the input
    (1, 16, 3, 150, 16, (3, 3), (1, 1)),   # 75 tiles a row: two 64-tile segments
    (8, 128, 11, 7, 128, (3, 1), (1, 0)),  # InversionNet's (3, 1) form: F(4, 3) along h
    (8, 128, 5, 13, 136, (1, 3), (0, 1)),  # F(4, 3) along w
    (4, 16, 100, 100, 16, (3, 3), (1, 1)),  # 2500 tiles a sample: chunks of 3 samples, then 1
    (1, 16, 190, 190, 16, (3, 3), (1, 1)),  # 9025 tiles: two bands of tile rows
]


def _ids(c):
    return f"B{c[0]}-C{c[1]}-{c[2]}x{c[3]}-OC{c[4]}-k{c[5][0]}{c[5][1]}-p{c[6][0]}{c[6][1]}"


@pytest.mark.parametrize("B,Cin,H,W,OC,k,p", CASES, ids=[_ids(c) for c in CASES])
def test_winograd_matches_float64_and_im2col(rng, B, Cin, H, W, OC, k, p):
    assert C.conv_algorithm() == "auto"
    x, w, b = _rand(rng, B, Cin, H, W), _rand(rng, OC, Cin, *k), _rand(rng, OC)
    ref = conv2d_ref(x, w, b, 1, p)
    y = C.conv2d(x, w, b, 1, p)
    with C.using_conv_algorithm("im2col"):
        y_im = C.conv2d(x, w, b, 1, p)
    err_w, err_i = np.abs(y - ref).max(), np.abs(y_im - ref).max()
    # Max error / peak output, measured on these cases: F(2, 3) x F(2, 3) 1.6-2.1e-7
    # (im2col 4.0-4.4e-7); F(4, 3), whose constants reach 8 and 1/24, 1.7-1.8e-6 at 128
    # channels (im2col 0.6-1.0e-6). Tolerances 6-10x the measured worst; a wrong tile or
    # edge is O(1).
    one_d = 1 in k
    assert err_w <= (1e-5 if one_d else 2e-6) * _scale(ref), (err_w, err_i)
    assert not np.array_equal(y, y_im), "the Winograd path did not run (identical to im2col)"

    dout = _rand(rng, *y.shape)
    dx, dw, db = C.conv2d_backward(dout, x, w, True, 1, p)
    dx_ref = convt2d_ref(dout, w, None, 1, p, 0)
    dw_ref = _dw_ref(dout, x, k, p)
    # measured / peak: dx 1.6-2.2e-7 (2-D), 1.5e-6 (1-D); dw (sums of up to
    # B * OH * OW = 40,000 products) 1.5-3.4e-7 (2-D), 1.6-1.7e-6 (1-D), im2col 0.3-0.6e-6
    assert np.abs(dx - dx_ref).max() <= (1e-5 if one_d else 2e-6) * _scale(dx_ref)
    assert np.abs(dw - dw_ref).max() <= (1e-5 if one_d else 4e-6) * _scale(dw_ref)
    assert_close(db, dout.astype(np.float64).sum((0, 2, 3)), rtol=1e-4, atol=1e-3, what="db")


def test_winograd_conv1d_k3(rng):
    """conv1d (B, C, L) k = 3 is conv2d with a (1, 3) kernel: F(4, 3); L = 300 spans 2 segments."""
    x, w, b = _rand(rng, 3, 128, 300), _rand(rng, 128, 128, 3), _rand(rng, 128)
    y = C.conv1d(x, w, b, 1, 1)
    ref = conv2d_ref(x[:, :, None], w[:, :, None], b, 1, (0, 1))[:, :, 0]
    assert np.abs(y - ref).max() <= 1e-5 * _scale(ref)
    with C.using_conv_algorithm("im2col"):
        y_im = C.conv1d(x, w, b, 1, 1)
        g_im = C.conv1d_backward(y, x, w, True, 1, 1)
    g = C.conv1d_backward(y, x, w, True, 1, 1)
    assert not np.array_equal(y, y_im)
    for a, b_, name in zip(g, g_im, ("dx", "dw", "db")):
        assert np.abs(a - b_).max() <= 1e-5 * _scale(b_), name


# >= 128 tiles per call (below that the Winograd path is not taken); 1-D forms need 128 channels
@pytest.mark.parametrize("k,p,c,hw", [((3, 3), (1, 1), 16, (16, 15)), ((3, 1), (1, 0), 128, (7, 32)),
                                      ((1, 3), (0, 1), 128, (32, 7))])
def test_winograd_gradcheck(rng, k, p, c, hw):
    x, w, b = _rand(rng, 2, c, *hw), _rand(rng, c, c, *k) * 0.3 / np.sqrt(c / 16), _rand(rng, c)
    with C.using_conv_algorithm("im2col"):
        y_im = C.conv2d(x, w, b, 1, p)
    assert not np.array_equal(C.conv2d(x, w, b, 1, p), y_im), "the Winograd path did not run"
    dout = _rand(rng, *y_im.shape)
    dx, dw, _ = C.conv2d_backward(dout, x, w, True, 1, p)
    # the forward is linear in x and in w: central differences have no truncation error;
    # 300 random elements of each (128 channels: too many for all), edges and interior alike
    for arr, grad, f, name in [(x, dx, lambda x_: C.conv2d(x_, w, b, 1, p), "dx"),
                               (w, dw, lambda w_: C.conv2d(x, w_, b, 1, p), "dw")]:
        idx = rng.choice(arr.size, 300, replace=False)
        assert_close(grad.reshape(-1)[idx], numeric_grad(f, arr, dout, idx=idx), what=name)


def test_winograd_backward_accumulates_and_skips(rng):
    x, w = _rand(rng, 8, 16, 8, 8), _rand(rng, 16, 16, 3, 3)
    dout = _rand(rng, 8, 16, 8, 8)
    dx, dw, _ = C.conv2d_backward(dout, x, w, False, 1, 1)
    dx0, dw0 = _rand(rng, *dx.shape), _rand(rng, *dw.shape)
    a, c = dx0.copy(), dw0.copy()
    lib.conv2d_backward(a, c, None, dout, x, w, stride=(1, 1), padding=(1, 1))
    assert_close(a, dx0 + dx, rtol=1e-6, atol=1e-5, what="dx +=")
    assert_close(c, dw0 + dw, rtol=1e-6, atol=1e-5, what="dw +=")
    only_dx, only_dw = np.zeros_like(dx), np.zeros_like(dw)
    lib.conv2d_backward(only_dx, None, None, dout, x, w, stride=(1, 1), padding=(1, 1))
    lib.conv2d_backward(None, only_dw, None, dout, x, w, stride=(1, 1), padding=(1, 1))
    assert np.array_equal(only_dx, dx) and np.array_equal(only_dw, dw)


def test_winograd_same_bits_at_any_thread_count(rng):
    x, w, b = _rand(rng, 3, 32, 40, 36), _rand(rng, 32, 32, 3, 3), _rand(rng, 32)

    def run():
        y = C.conv2d(x, w, b, 1, 1)
        return [y, *C.conv2d_backward(y, x, w, True, 1, 1)]

    res = at_thread_counts(run)
    for a, b_ in zip(*res):
        assert np.array_equal(a, b_)


def test_shapes_outside_winograd_are_unchanged(rng):
    """Stride 2, 15 channels, 5x5 kernels, fewer than 128 tiles in the call, a 1-D form
    with 64 channels: the im2col path whatever the setting (same bits)."""
    for x, w, s in [(_rand(rng, 8, 16, 9, 9), _rand(rng, 16, 16, 3, 3), 2),
                    (_rand(rng, 8, 15, 9, 9), _rand(rng, 16, 15, 3, 3), 1),
                    (_rand(rng, 8, 16, 9, 9), _rand(rng, 16, 16, 5, 5), 1),
                    (_rand(rng, 7, 16, 8, 8), _rand(rng, 16, 16, 3, 3), 1),   # 7 x 16 = 112 tiles
                    (_rand(rng, 8, 64, 9, 9), _rand(rng, 64, 64, 3, 1), 1)]:
        y = C.conv2d(x, w, None, s, 1)
        with C.using_conv_algorithm("im2col"):
            assert np.array_equal(y, C.conv2d(x, w, None, s, 1))


def test_conv_algorithm_setting():
    assert C.conv_algorithm() == "auto"
    with C.using_conv_algorithm("im2col"):
        assert C.conv_algorithm() == "im2col" and lib.conv_algo() == "im2col"
    assert C.conv_algorithm() == "auto"
    with pytest.raises(ValueError, match="'auto' or 'im2col'"):
        C.conv_algorithm("winograd")
    with pytest.raises(ValueError, match="'auto' or 'im2col'"):
        lib.conv_algo("fast")
    assert C.conv_algorithm() == "auto"
