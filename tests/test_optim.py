"""Adam / AdamW, EMA and gradient clipping against NumPy references."""
import numpy as np
import pytest
from gradcheck import assert_close

from ubdiff import ops


def adam_ref(p, m, v, g, t, lr, b1, b2, eps, wd, decoupled):
    p, m, v, g = (a.astype(np.float64) for a in (p, m, v, g))
    if decoupled:
        p = p - lr * wd * p
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mhat = m / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    return p - lr * mhat / (np.sqrt(vhat) + eps), m, v


@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_matches_reference_over_steps(rng, decoupled):
    n = 1001
    p = rng.standard_normal(n).astype(np.float32)
    m = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    pr, mr, vr = p.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
    hp = dict(lr=1e-2, b1=0.9, b2=0.99, eps=1e-8, wd=1e-2, decoupled=decoupled)
    for t in range(1, 6):
        g = rng.standard_normal(n).astype(np.float32)
        ops.adam_update(p, m, v, g, t, lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"],
                        weight_decay=hp["wd"], decoupled=decoupled)
        pr, mr, vr = adam_ref(pr, mr, vr, g, t, **hp)
    assert_close(p, pr, rtol=1e-5, atol=1e-6, what="param")
    assert_close(m, mr, rtol=1e-5, atol=1e-6, what="m")
    assert_close(v, vr, rtol=1e-5, atol=1e-7, what="v")


def test_adam_decoupled_differs_from_l2():
    p1 = np.ones(4, np.float32); p2 = p1.copy()
    z = lambda: np.zeros(4, np.float32)  # noqa: E731
    g = np.full(4, 0.5, np.float32)
    ops.adam_update(p1, z(), z(), g, 1, lr=0.1, weight_decay=0.5, decoupled=True)
    ops.adam_update(p2, z(), z(), g, 1, lr=0.1, weight_decay=0.5, decoupled=False)
    assert not np.allclose(p1, p2)


def test_adam_bad_hyperparameters():
    a = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="t must be >= 1"):
        ops.adam_update(a, a.copy(), a.copy(), a, 0)
    with pytest.raises(ValueError, match="betas"):
        ops.adam_update(a, a.copy(), a.copy(), a, 1, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="elements"):
        ops.adam_update(a, np.zeros(2, np.float32), a.copy(), a, 1)


def test_ema(rng):
    p = rng.standard_normal(100).astype(np.float32)
    e = rng.standard_normal(100).astype(np.float32)
    ref = 0.995 * e.astype(np.float64) + 0.005 * p
    ops.ema_update(e, p, 0.995)
    assert_close(e, ref, rtol=1e-6, atol=1e-6, what="ema")
    with pytest.raises(ValueError, match="decay"):
        ops.ema_update(e, p, 1.5)


def test_grad_norm_and_clip(rng):
    g = rng.standard_normal(10_000).astype(np.float32)
    norm = np.linalg.norm(g.astype(np.float64))
    assert ops.grad_norm(g) == pytest.approx(norm, rel=1e-6)
    before = ops.clip_grad_norm(g, 1.0)
    assert before == pytest.approx(norm, rel=1e-6)
    assert np.linalg.norm(g.astype(np.float64)) == pytest.approx(1.0, rel=1e-5)
    # below the threshold nothing changes
    h = np.array([0.3, 0.4], np.float32)
    ops.clip_grad_norm(h, 1.0)
    np.testing.assert_array_equal(h, np.array([0.3, 0.4], np.float32))
    with pytest.raises(ValueError, match="max_norm"):
        ops.clip_grad_norm(h, 0.0)
