"""Finite-difference gradient checking for float32 ops.

The core computes in float32, so a central difference with step eps has a
rounding error of about ulp(f) / eps ~ 1e-7 * |f| / eps and a truncation
error O(eps^2 * f'''). With eps = 1e-2 .. 1e-3 and inputs O(1) both stay near
1e-4 relative, which is why the default tolerances below are rtol = atol = 2e-3
(the scalar objective sum(out * dout) is accumulated in float64).
"""
import numpy as np


def numeric_grad(f, x, dout, eps=1e-2, idx=None):
    """d/dx of sum(f(x) * dout), by central differences over every element of x,
    or only at the flat indices idx (then a 1-D array of those elements).

    f maps a float32 array shaped like x to a float32 array shaped like dout.
    x is perturbed in place and restored.
    """
    flat = x.reshape(-1)
    d64 = np.asarray(dout, np.float64)
    objective = lambda: float(np.sum(np.asarray(f(x), np.float64) * d64))  # noqa: E731
    if idx is not None:
        return np.array([central_difference(objective, flat, i, eps) for i in idx])
    g = np.zeros(x.shape, np.float64)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        gflat[i] = central_difference(objective, flat, i, eps)
    return g


def assert_close(actual, expected, rtol=2e-3, atol=2e-3, what=""):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.abs(actual - expected)
    bad = err > atol + rtol * np.abs(expected)
    if bad.any():
        i = np.unravel_index(np.argmax(err - rtol * np.abs(expected)), err.shape)
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} elements differ; worst at {i}: "
            f"{actual[i]} vs {expected[i]} (max abs err {err.max():.3g})")


def central_difference(f, flat, i, eps):
    """(f() at flat[i] + eps - f() at flat[i] - eps) / (2 eps): one element of a
    parameter (a view the model computes from) perturbed in place and restored;
    f is the scalar objective, evaluated in float64."""
    old = flat[i]
    flat[i] = old + eps
    fp = f()
    flat[i] = old - eps
    fm = f()
    flat[i] = old
    return (fp - fm) / (2 * eps)


def at_thread_counts(fn, counts=(1, 2)):
    """[fn() at ubdiff.set_num_threads(n) for n in counts], the thread count restored after."""
    import ubdiff
    n0 = ubdiff.get_num_threads()
    try:
        out = []
        for n in counts:
            ubdiff.set_num_threads(n)
            out.append(fn())
        return out
    finally:
        ubdiff.set_num_threads(n0)
