"""Softmax and the three attention cores: NumPy references written from the
PyTorch definitions (timm ViT Attention; lucidrains' Unet1D Attention and
LinearAttention), finite-difference gradient checks, error paths, threads."""
import numpy as np
import pytest
from gradcheck import assert_close, numeric_grad

import ubdiff
from ubdiff import attn_ops as A
from ubdiff._native import lib

# Forward references are float64 einsums; the core is float32 with sums over
# at most a few hundred terms of O(1) values, so 1e-5 relative/absolute holds.
FWD_TOL = dict(rtol=1e-5, atol=1e-5)


def _softmax64(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def ref_mhsa(qkv, nh):
    """timm Attention between qkv and proj: qkv.reshape(B,T,3,NH,HD)."""
    qkv = qkv.astype(np.float64)
    B, T, C3 = qkv.shape
    C = C3 // 3
    hd = C // nh
    q, k, v = qkv.reshape(B, T, 3, nh, hd).transpose(2, 0, 3, 1, 4)  # each (B,NH,T,HD)
    att = _softmax64(np.einsum("bhid,bhjd->bhij", q * hd ** -0.5, k), -1)
    out = np.einsum("bhij,bhjd->bhid", att, v).transpose(0, 2, 1, 3).reshape(B, T, C)
    return out, att


def _split_cf(qkv, nh):
    """to_qkv(x).chunk(3, dim=1), each 'b (h c) n -> b h c n'."""
    B, C3, L = qkv.shape
    return [t.reshape(B, nh, C3 // (3 * nh), L) for t in np.split(qkv.astype(np.float64), 3, axis=1)]


def ref_full(qkv, nh, scale):
    q, k, v = _split_cf(qkv, nh)
    att = _softmax64(np.einsum("bhdi,bhdj->bhij", q * scale, k), -1)
    out = np.einsum("bhij,bhdj->bhid", att, v)           # (b h n d)
    B, H, L, D = out.shape
    return out.transpose(0, 1, 3, 2).reshape(B, H * D, L), att  # 'b h n d -> b (h d) n'


def ref_linear(qkv, nh, scale):
    q, k, v = _split_cf(qkv, nh)
    q = _softmax64(q, -2) * scale
    k = _softmax64(k, -1)
    ctx = np.einsum("bhdn,bhen->bhde", k, v)
    out = np.einsum("bhde,bhdn->bhen", ctx, q)
    B, H, E, L = out.shape
    return out.reshape(B, H * E, L), q.reshape(B, H * E, L), k.reshape(B, H * E, L), ctx


def _rand(rng, *shape, s=1.0):
    return (s * rng.standard_normal(shape)).astype(np.float32)


# ---- softmax ----------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 3, 5), (4,)])
def test_softmax_forward_matches_numpy(rng, shape):
    x = _rand(rng, *shape, s=3.0)
    assert_close(A.softmax(x), _softmax64(x.astype(np.float64), -1), **FWD_TOL, what="softmax")


def test_softmax_is_stable_for_huge_inputs():
    x = np.array([[1e30, 1e30, -1e30], [88.0, 89.0, 90.0], [-1e4, -1e4, -1e4]], np.float32)
    y = A.softmax(x)
    assert np.isfinite(y).all()
    assert_close(y[0], [0.5, 0.5, 0.0], rtol=0, atol=1e-7, what="huge")
    assert_close(y[2], [1 / 3] * 3, rtol=1e-6, atol=1e-7, what="equal")


@pytest.mark.parametrize("shape", [(3, 5), (2, 1), (4, 2, 3)])
def test_softmax_gradcheck(rng, shape):
    x = _rand(rng, *shape)
    dout = _rand(rng, *shape)
    dx = A.softmax_backward(dout, A.softmax(x))
    assert_close(dx, numeric_grad(A.softmax, x, dout, eps=1e-2), what="softmax dinp")


def test_softmax_backward_accumulates(rng):
    x, dout = _rand(rng, 3, 4), _rand(rng, 3, 4)
    y = A.softmax(x)
    d = np.full_like(x, 2.0)
    lib.softmax_backward(d, dout, y)
    assert_close(d - 2.0, A.softmax_backward(dout, y), rtol=1e-6, atol=1e-7, what="+=")


# ---- multi-head self-attention (token layout) -----------------------------------

MHSA_SHAPES = [(1, 2, 6, 2), (2, 2, 8, 4), (2, 5, 9, 3), (1, 5, 12, 2), (3, 1, 4, 1)]  # (B, T, C, NH)


@pytest.mark.parametrize("B,T,C,NH", MHSA_SHAPES + [(2, 2, 640, 8)])
def test_mhsa_forward_matches_numpy(rng, B, T, C, NH):
    qkv = _rand(rng, B, T, 3 * C)
    out, att = A.mhsa_forward(qkv, NH)
    rout, ratt = ref_mhsa(qkv, NH)
    assert_close(out, rout, **FWD_TOL, what="mhsa out")
    assert_close(att, ratt, **FWD_TOL, what="mhsa att")


@pytest.mark.parametrize("B,T,C,NH", MHSA_SHAPES)
def test_mhsa_gradcheck(rng, B, T, C, NH):
    qkv = _rand(rng, B, T, 3 * C)
    dout = _rand(rng, B, T, C)
    _, att = A.mhsa_forward(qkv, NH)
    dqkv = A.mhsa_backward(dout, qkv, att)
    num = numeric_grad(lambda x: A.mhsa_forward(x, NH)[0], qkv, dout, eps=1e-2)
    assert_close(dqkv, num, what="mhsa dqkv")


def test_mhsa_backward_accumulates_and_skips_none(rng):
    qkv, dout = _rand(rng, 2, 3, 12), _rand(rng, 2, 3, 4)
    _, att = A.mhsa_forward(qkv, 2)
    d = np.ones_like(qkv)
    lib.mhsa_backward(d, np.empty_like(att), dout, qkv, att)
    assert_close(d - 1.0, A.mhsa_backward(dout, qkv, att), rtol=1e-6, atol=1e-6, what="+=")
    lib.mhsa_backward(None, np.empty_like(att), dout, qkv, att)


# ---- 1-D U-Net full attention ----------------------------------------------------

UNET_SHAPES = [(1, 2, 3, 5), (2, 3, 4, 7), (1, 4, 8, 3), (2, 2, 5, 1), (1, 1, 3, 2)]  # (B, NH, HD, L)


@pytest.mark.parametrize("B,NH,HD,L", UNET_SHAPES + [(2, 4, 32, 16)])
def test_full_attention_forward_matches_numpy(rng, B, NH, HD, L):
    qkv = _rand(rng, B, 3 * NH * HD, L)
    out, att = A.full_attention_forward(qkv, NH)
    rout, ratt = ref_full(qkv, NH, HD ** -0.5)
    assert_close(out, rout, **FWD_TOL, what="full out")
    assert_close(att, ratt, **FWD_TOL, what="full att")


@pytest.mark.parametrize("B,NH,HD,L", UNET_SHAPES)
def test_full_attention_gradcheck(rng, B, NH, HD, L):
    qkv = _rand(rng, B, 3 * NH * HD, L)
    dout = _rand(rng, B, NH * HD, L)
    scale = 0.7  # not HD**-0.5, so a scale mix-up would show
    _, att = A.full_attention_forward(qkv, NH, scale)
    dqkv = A.full_attention_backward(dout, qkv, att, scale)
    num = numeric_grad(lambda x: A.full_attention_forward(x, NH, scale)[0], qkv, dout, eps=1e-2)
    assert_close(dqkv, num, what="full dqkv")


# ---- 1-D U-Net linear attention ---------------------------------------------------

@pytest.mark.parametrize("B,NH,HD,L", UNET_SHAPES + [(2, 4, 32, 128)])
def test_linear_attention_forward_matches_numpy(rng, B, NH, HD, L):
    qkv = _rand(rng, B, 3 * NH * HD, L)
    got = A.linear_attention_forward(qkv, NH)
    for g, r, name in zip(got, ref_linear(qkv, NH, HD ** -0.5), ("out", "qs", "ks", "context")):
        assert_close(g, r, **FWD_TOL, what="linear " + name)


@pytest.mark.parametrize("B,NH,HD,L", UNET_SHAPES)
def test_linear_attention_gradcheck(rng, B, NH, HD, L):
    qkv = _rand(rng, B, 3 * NH * HD, L)
    dout = _rand(rng, B, NH * HD, L)
    scale = 0.6
    _, qs, ks, ctx = A.linear_attention_forward(qkv, NH, scale)
    dqkv = A.linear_attention_backward(dout, qkv, qs, ks, ctx, scale)
    num = numeric_grad(lambda x: A.linear_attention_forward(x, NH, scale)[0], qkv, dout, eps=1e-2)
    assert_close(dqkv, num, what="linear dqkv")


def test_unet_backward_accumulates_and_skips_none(rng):
    B, NH, HD, L = 2, 2, 3, 5
    qkv, dout = _rand(rng, B, 3 * NH * HD, L), _rand(rng, B, NH * HD, L)
    _, att = A.full_attention_forward(qkv, NH)
    d = np.ones_like(qkv)
    lib.full_attention_backward(d, np.empty_like(att), dout, qkv, att, HD ** -0.5)
    assert_close(d - 1.0, A.full_attention_backward(dout, qkv, att), rtol=1e-6, atol=1e-6, what="full +=")
    lib.full_attention_backward(None, np.empty_like(att), dout, qkv, att, 1.0)
    _, qs, ks, ctx = A.linear_attention_forward(qkv, NH)
    work = np.empty(A.linear_attention_work_size(B, NH, HD, L), np.float32)
    d = np.ones_like(qkv)
    lib.linear_attention_backward(d, work, dout, qkv, qs, ks, ctx, HD ** -0.5)
    assert_close(d - 1.0, A.linear_attention_backward(dout, qkv, qs, ks, ctx), rtol=1e-6, atol=1e-6,
                 what="linear +=")
    lib.linear_attention_backward(None, work, dout, qkv, qs, ks, ctx, 1.0)


# ---- threads ------------------------------------------------------------------------

def _all_ops(qkv_tok, qkv_cf, nh, rng):
    """Forward + backward of every op; a list of arrays."""
    res = []
    out, att = A.mhsa_forward(qkv_tok, nh)
    res += [out, att, A.mhsa_backward(np.ones_like(out), qkv_tok, att)]
    out, att = A.full_attention_forward(qkv_cf, nh)
    res += [out, att, A.full_attention_backward(np.ones_like(out), qkv_cf, att)]
    out, qs, ks, ctx = A.linear_attention_forward(qkv_cf, nh)
    res += [out, qs, ks, ctx, A.linear_attention_backward(np.ones_like(out), qkv_cf, qs, ks, ctx)]
    x = A.softmax(qkv_cf.reshape(-1, 64))
    res += [x, A.softmax_backward(np.ones_like(x), x)]
    return res


# (B, NH, HD, L): the first runs (batch, head) pairs in parallel; the second
# (L*L*HD > 262144) loops pairs serially and lets OpenBLAS thread each product.
@pytest.mark.parametrize("B,NH,HD,L", [(3, 4, 8, 16), (1, 2, 32, 128)])
def test_thread_count_changes_only_rounding(rng, B, NH, HD, L):
    """Reproducibility rule (README "Reproducibility"): the same thread count gives the
    same bits; another thread count may change the summation order inside OpenBLAS's
    sgemm (its K- and M-blocking depend on the thread count and the CPU kernel), so
    1 vs 2 threads agree within float32 rounding only.

    Tolerance: a length-K dot product summed in another order differs by at most
    ~K * eps32 * sum|terms|; here K <= 128 and the terms are O(1) products of
    N(0, 1) values scaled by HD^-0.5, so 1e-5 relative plus 1e-5 of the largest
    magnitude of each result covers it with margin (measured under the Haswell
    kernel: 2.4e-7 absolute) while any indexing or race bug gives O(1) errors."""
    qkv_tok = _rand(rng, B, L, 3 * NH * HD)
    qkv_cf = _rand(rng, B, 3 * NH * HD, L)
    before = ubdiff.get_num_threads()
    try:
        ubdiff.set_num_threads(1)
        one = _all_ops(qkv_tok, qkv_cf, NH, rng)
        ubdiff.set_num_threads(2)
        two = _all_ops(qkv_tok, qkv_cf, NH, rng)
        two_again = _all_ops(qkv_tok, qkv_cf, NH, rng)
    finally:
        ubdiff.set_num_threads(before)
    for k, (a, b, c) in enumerate(zip(one, two, two_again)):
        np.testing.assert_array_equal(b, c, err_msg=f"result {k}: same threads, same shapes, other bits")
        assert_close(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()), what=f"result {k}, 1 vs 2 threads")


# ---- error paths ----------------------------------------------------------------------

def f(*shape):
    return np.zeros(shape, np.float32)


def test_mhsa_errors():
    with pytest.raises(ValueError, match="not divisible"):
        A.mhsa_forward(f(1, 2, 30), 3)               # C = 10, NH = 3
    with pytest.raises(ValueError, match="must be \\(B, T, 3C\\)"):
        A.mhsa_forward(f(1, 2, 10), 2)
    with pytest.raises(ValueError, match="3\\*C"):
        lib.mhsa_forward(f(1, 2, 3), f(1, 1, 2, 2), f(1, 2, 10))
    with pytest.raises(ValueError, match="non-empty"):
        A.mhsa_forward(f(0, 2, 12), 2)
    with pytest.raises(ValueError, match="non-empty"):
        A.mhsa_forward(f(1, 0, 12), 2)
    with pytest.raises(ValueError, match="num_heads must be positive"):
        A.mhsa_forward(f(1, 2, 12), 0)
    with pytest.raises(ValueError, match="out has shape"):
        lib.mhsa_forward(f(1, 2, 5), f(1, 2, 2, 2), f(1, 2, 12))
    with pytest.raises(ValueError, match="att has shape"):
        lib.mhsa_forward(f(1, 2, 4), f(1, 2, 3, 2), f(1, 2, 12))
    with pytest.raises(ValueError, match="dout has shape"):
        lib.mhsa_backward(f(1, 2, 12), f(1, 2, 2, 2), f(1, 3, 4), f(1, 2, 12), f(1, 2, 2, 2))
    with pytest.raises(ValueError, match="datt must be non-empty and have the shape of att"):
        lib.mhsa_backward(f(1, 2, 12), f(1, 2, 2), f(1, 2, 4), f(1, 2, 12), f(1, 2, 2, 2))
    with pytest.raises(TypeError, match="qkv: expected dtype float32"):
        lib.mhsa_forward(f(1, 2, 4), f(1, 2, 2, 2), np.zeros((1, 2, 12)))


def test_unet_attention_errors():
    with pytest.raises(ValueError, match="multiple of 3\\*num_heads"):
        A.full_attention_forward(f(1, 20, 5), 3)
    with pytest.raises(ValueError, match="3\\*NH\\*HD"):
        lib.full_attention_forward(f(1, 6, 5), f(1, 4, 5, 5), f(1, 18, 5), 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        A.full_attention_forward(f(1, 12, 0), 2)
    with pytest.raises(ValueError, match="non-empty"):
        A.linear_attention_forward(f(0, 12, 4), 2)
    with pytest.raises(ValueError, match="out has shape"):
        lib.full_attention_forward(f(1, 6, 5), f(1, 2, 5, 5), f(1, 12, 5), 1.0)
    with pytest.raises(ValueError, match="att has shape"):
        lib.full_attention_forward(f(1, 4, 5), f(1, 2, 5, 4), f(1, 12, 5), 1.0)
    with pytest.raises(ValueError, match="scale must be finite"):
        lib.full_attention_forward(f(1, 4, 5), f(1, 2, 5, 5), f(1, 12, 5), float("inf"))
    with pytest.raises(ValueError, match="context has shape"):
        lib.linear_attention_forward(f(1, 4, 5), f(1, 4, 5), f(1, 4, 5), f(1, 2, 2, 3), f(1, 12, 5), 1.0)
    with pytest.raises(ValueError, match="qs has shape"):
        lib.linear_attention_forward(f(1, 4, 5), f(1, 4, 6), f(1, 4, 5), f(1, 2, 2, 2), f(1, 12, 5), 1.0)
    ctx, x = f(1, 2, 2, 2), f(1, 4, 5)
    with pytest.raises(ValueError, match="work is too small"):
        lib.linear_attention_backward(f(1, 12, 5), f(47), x, f(1, 12, 5), x, x, ctx, 1.0)
    with pytest.raises(ValueError, match="scale must be non-zero"):
        lib.linear_attention_backward(f(1, 12, 5), f(48), x, f(1, 12, 5), x, x, ctx, 0.0)


def test_softmax_errors():
    with pytest.raises(ValueError, match="non-empty"):
        A.softmax(f(3, 0))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        lib.softmax_forward(np.zeros((), np.float32), np.zeros((), np.float32))
    with pytest.raises(ValueError, match="shape of inp"):
        lib.softmax_forward(f(3, 4), f(4, 3))
    with pytest.raises(ValueError, match="shape of out"):
        lib.softmax_backward(f(3, 4), f(3, 5), f(3, 4))
