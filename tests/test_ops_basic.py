"""Linear, activations, losses: NumPy references and gradient checks."""
import math

import numpy as np
import pytest
from gradcheck import assert_close, numeric_grad

from ubdiff import ops
from ubdiff._native import lib

# ---- linear -------------------------------------------------------------


@pytest.mark.parametrize("B,C,OC,bias", [(1, 1, 1, True), (3, 5, 4, True), (7, 3, 9, False), (2, 17, 3, True)])
def test_linear_forward_matches_numpy(rng, B, C, OC, bias):
    x = rng.standard_normal((B, C)).astype(np.float32)
    w = rng.standard_normal((OC, C)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32) if bias else None
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
    assert_close(ops.linear_forward(x, w, b), ref, rtol=1e-5, atol=1e-5, what="linear")


# Few rows and >= 2^22 weights: the streaming kernel (csrc/cpu/linear_skinny.c), with
# row and column counts that leave partial 4 x 4 blocks and a tail after the 8-float
# vectors; 17 rows take sgemm again.
@pytest.mark.parametrize("B,C,OC,bias", [(1, 640, 6557, True), (3, 643, 6530, False), (16, 640, 6555, True),
                                         (5, 13, 330_001, True), (17, 640, 6555, True)])
def test_linear_few_rows_large_weight_matches_numpy(rng, B, C, OC, bias):
    assert (B <= 16) == (C * OC >= 2**22 and B <= 16)   # every case but the last is on the streaming kernel
    x = rng.standard_normal((B, C)).astype(np.float32)
    w = (rng.standard_normal((OC, C)) / np.sqrt(C)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32) if bias else None
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
    y = ops.linear_forward(x, w, b)
    # sums of C products of O(1 / sqrt(C)) terms: outputs O(1), float32 rounding ~1e-6
    assert np.abs(y - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
    if B <= 16:  # the streaming kernel computes each row alone (sgemm's blocking depends on B)
        assert np.array_equal(y[:1], ops.linear_forward(x[:1], w, b)), "a row must not depend on the others"


@pytest.mark.parametrize("B,C,OC", [(2, 3, 4), (5, 1, 3), (3, 6, 1)])
def test_linear_gradcheck(rng, B, C, OC):
    x = rng.standard_normal((B, C)).astype(np.float32)
    w = rng.standard_normal((OC, C)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    dout = rng.standard_normal((B, OC)).astype(np.float32)
    dx, dw, db = ops.linear_backward(dout, x, w, bias=True)
    assert_close(dx, numeric_grad(lambda x_: ops.linear_forward(x_, w, b), x, dout), what="dx")
    assert_close(dw, numeric_grad(lambda w_: ops.linear_forward(x, w_, b), w, dout), what="dw")
    assert_close(db, numeric_grad(lambda b_: ops.linear_forward(x, w, b_), b, dout), what="db")


def test_linear_backward_accumulates(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w = rng.standard_normal((2, 4)).astype(np.float32)
    dout = rng.standard_normal((3, 2)).astype(np.float32)
    dx = np.ones_like(x)
    dw = np.full_like(w, 2.0)
    db = np.full(2, 3.0, np.float32)
    lib.linear_backward(dx, dw, db, dout, x, w)
    assert_close(dx - 1.0, dout @ w, rtol=1e-5, atol=1e-5, what="dx +=")
    assert_close(dw - 2.0, dout.T @ x, rtol=1e-5, atol=1e-5, what="dw +=")
    assert_close(db - 3.0, dout.sum(0), rtol=1e-5, atol=1e-5, what="db +=")
    # NULL gradients are skipped without error
    lib.linear_backward(None, None, None, dout, x, w)


# ---- activations ---------------------------------------------------------

def _gelu_ref(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


REFS = {
    "relu": (lambda x, p: np.maximum(x, 0), 0.0),
    "leaky_relu": (lambda x, p: np.where(x > 0, x, p * x), 0.2),
    "tanh": (lambda x, p: np.tanh(x), 0.0),
    "silu": (lambda x, p: x / (1 + np.exp(-x)), 0.0),
    "gelu": (lambda x, p: _gelu_ref(x), 0.0),
}


@pytest.mark.parametrize("kind", sorted(REFS))
def test_activation_forward_matches_numpy(rng, kind):
    f, p = REFS[kind]
    x = (3 * rng.standard_normal((4, 33))).astype(np.float32)
    assert_close(ops.act_forward(x, kind, p), f(x.astype(np.float64), p), rtol=1e-5, atol=1e-6, what=kind)


@pytest.mark.parametrize("kind", sorted(REFS))
def test_activation_gradcheck(rng, kind):
    _, p = REFS[kind]
    x = rng.standard_normal((3, 7)).astype(np.float32)
    if kind in ("relu", "leaky_relu"):  # keep away from the kink, where FD is meaningless
        x = np.where(np.abs(x) < 0.05, 0.3, x).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    num = numeric_grad(lambda x_: ops.act_forward(x_, kind, p), x, dout, eps=1e-2)
    assert_close(ops.act_backward(dout, x, kind, p), num, what=kind)


def test_silu_exponential_accuracy_over_the_float_range():
    """The CPU SiLU has its own vectorisable exp (csrc/cpu/activations.c). Measured against
    float64: forward 1.7e-7 relative (NumPy's float32 exp in the same formula: 2.2e-7);
    derivative 9.8e-7 absolute, the same as with NumPy's exp (s (1 + x (1 - s)) cancels
    near its root at x = -1.28, so relative error is meaningless there)."""
    x = np.concatenate([np.linspace(-30, 30, 200_001), np.linspace(-100, 100, 20_001),
                        [0.0, -0.0, 1e-30, -1e-30, 88.0, 89.0, -87.0, -88.0, 3e38, -3e38]]).astype(np.float32)
    x64 = x.astype(np.float64)
    ref = x64 / (1 + np.exp(-x64))
    y = ops.act_forward(x, "silu").astype(np.float64)
    big = np.abs(ref) > 1e-30
    rel = np.abs(y - ref)[big] / np.abs(ref[big])
    assert rel.max() < 4e-7, rel.max()                       # float32 ulp is 6e-8 .. 1.2e-7
    assert np.all(np.abs(y[~big]) <= 1e-30) and np.all(np.isfinite(y))
    s = 1 / (1 + np.exp(-x64))
    dref = s * (1 + x64 * (1 - s))
    d = ops.act_backward(np.ones_like(x), x, "silu").astype(np.float64)
    assert np.abs(d - dref).max() < 2e-6
    assert np.isnan(ops.act_forward(np.array([np.nan], np.float32), "silu")[0])
    assert np.isnan(ops.act_backward(np.ones(1, np.float32), np.array([np.nan], np.float32), "silu")[0])


def test_activation_unknown_kind_is_an_error():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="unknown"):
        ops.act_forward(x, "swish")
    with pytest.raises(ValueError, match="unknown kind"):
        lib.act_forward(np.empty_like(x), x, 99)


def test_activation_large_parallel_same_as_small(rng):
    # crosses the OpenMP threshold: results must equal the element-wise formula
    x = rng.standard_normal(200_003).astype(np.float32)
    y = ops.gelu(x)
    assert_close(y[:1000], ops.gelu(x[:1000]), rtol=0, atol=0, what="gelu parallel")


# ---- losses ---------------------------------------------------------------

def test_losses_match_numpy(rng):
    p = rng.standard_normal((4, 5)).astype(np.float32)
    t = rng.standard_normal((4, 5)).astype(np.float32)
    assert ops.l1_loss(p, t) == pytest.approx(np.abs(p - t).mean(dtype=np.float64), rel=1e-6)
    assert ops.mse_loss(p, t) == pytest.approx(((p - t).astype(np.float64) ** 2).mean(), rel=1e-6)


@pytest.mark.parametrize("name", ["l1", "mse"])
def test_loss_gradcheck(rng, name):
    p = rng.standard_normal((3, 4)).astype(np.float32)
    t = rng.standard_normal((3, 4)).astype(np.float32)
    fwd = ops.l1_loss if name == "l1" else ops.mse_loss
    bwd = ops.l1_loss_backward if name == "l1" else ops.mse_loss_backward
    num = numeric_grad(lambda p_: np.array(fwd(p_, t), np.float32), p, np.float32(1.0), eps=1e-3)
    assert_close(bwd(p, t), num, what=name)
    assert_close(bwd(p, t, scale=2.5), 2.5 * num, what=name + " scaled")
