"""The threading mechanism: ubdiff's own split of the products (csrc/cpu/gemm.c),
the adaptive default thread count (csrc/cpu/threads_auto.c) and the OpenMP wait
policy set before the runtime starts (ubdiff/_native.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import ubdiff
from ubdiff import conv_ops as C
from ubdiff import ops


@pytest.fixture
def threads():
    """Restores the thread mode and count after a test."""
    adaptive, n = ubdiff.threads_adaptive(), ubdiff.get_num_threads()
    yield
    if adaptive:
        ubdiff.set_num_threads_adaptive(n)
    else:
        ubdiff.set_num_threads(n)


def _at(n, fn):
    ubdiff.set_num_threads(n)
    return fn()


# Shapes that the split cuts into several blocks (>= 2 MFLOP): by columns (N >= M)
# and by rows (M > N), each with a ragged last block, for all three transposes
# that linear uses (forward: B^T; dx: none; dW: A^T).
SPLIT_SHAPES = [(20, 300, 5003), (3001, 100, 70), (64, 640, 3200), (130, 257, 129)]


@pytest.mark.parametrize("B,Cin,OC", SPLIT_SHAPES)
def test_split_products_match_numpy(rng, B, Cin, OC, threads):
    x = rng.standard_normal((B, Cin), dtype=np.float32)
    w = rng.standard_normal((OC, Cin), dtype=np.float32)
    b = rng.standard_normal(OC, dtype=np.float32)
    dout = rng.standard_normal((B, OC), dtype=np.float32)
    x64, w64, d64 = x.astype(np.float64), w.astype(np.float64), dout.astype(np.float64)
    for n in (1, 2):
        ubdiff.set_num_threads(n)
        y = ops.linear_forward(x, w, b)
        dx, dw, db = ops.linear_backward(dout, x, w)
        # float32 products of length K against float64: |error| <= ~K eps |x||w|;
        # 1e-5 of the largest magnitude is far above that and far below a wrong block.
        for got, ref in ((y, x64 @ w64.T + b), (dx, d64 @ w64), (dw, d64.T @ x64), (db, d64.sum(0))):
            assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("B,Cin,OC", SPLIT_SHAPES)
def test_split_products_same_bits_at_any_thread_count(rng, B, Cin, OC, threads):
    x = rng.standard_normal((B, Cin), dtype=np.float32)
    w = rng.standard_normal((OC, Cin), dtype=np.float32)
    dout = rng.standard_normal((B, OC), dtype=np.float32)
    run = lambda: (ops.linear_forward(x, w), *ops.linear_backward(dout, x, w, bias=False)[:2])  # noqa: E731
    for a, b in zip(_at(1, run), _at(2, run)):
        np.testing.assert_array_equal(a, b)


def test_conv_same_bits_at_any_thread_count(rng, threads):
    """A paper-sized layer (32 -> 32 channels, 3x3, 70x70), forward and backward,
    and a transposed one: the blocks depend on the shape only."""
    x = rng.standard_normal((2, 32, 70, 70), dtype=np.float32)
    w = rng.standard_normal((32, 32, 3, 3), dtype=np.float32) * 0.1
    b = rng.standard_normal(32, dtype=np.float32)
    xt = rng.standard_normal((3, 64, 20, 20), dtype=np.float32)
    wt = rng.standard_normal((64, 32, 4, 4), dtype=np.float32) * 0.1

    def run():
        y = C.conv2d(x, w, b, 1, 1)
        yt = C.conv_transpose2d(xt, wt, b, 2, 1)
        return [y, *C.conv2d_backward(y, x, w, True, 1, 1), yt, *C.conv_transpose2d_backward(yt, xt, wt, True, 2, 1)]

    for a, b_ in zip(_at(1, run), _at(2, run)):
        np.testing.assert_array_equal(a, b_)


def test_training_same_bits_at_any_thread_count(threads):
    """Seeded training steps (autoencoder, diffusion with gradient clipping) give
    the same parameters at 1 and 2 threads, so the adaptive thread count changes
    speed only."""
    from ubdiff.models import LatentDiffusion
    from ubdiff.models.autoencoder import CoLatentAutoencoder

    rng = np.random.default_rng(0)
    vel = np.tanh(rng.standard_normal((4, 1, 70, 70))).astype(np.float32)
    z0 = rng.uniform(-1, 1, (8, 1, 128)).astype(np.float32)

    def run():
        ae = CoLatentAutoencoder("small", seed=0, max_batch=4, device="cpu")
        losses = [ae.train_step(vel, mode="step1")["total"] for _ in range(2)]
        d = LatentDiffusion("small", seed=0, max_batch=4, device="cpu")
        out = [d.train_step(z0, accum=2, max_grad_norm=1e-3)["grad_norm"] for _ in range(2)]
        return ae.flat().copy(), d.flat().copy(), losses, out

    r1, r2 = _at(1, run), _at(2, run)
    np.testing.assert_array_equal(r1[0], r2[0])
    np.testing.assert_array_equal(r1[1], r2[1])
    assert r1[2] == r2[2] and r1[3] == r2[3]


def test_adaptive_mode(threads):
    ubdiff.set_num_threads_adaptive(2)
    whole = len(os.sched_getaffinity(0)) == os.cpu_count()
    assert ubdiff.threads_adaptive() == whole  # only adapts when it sees the whole machine
    n = ubdiff._lib.threads_adapt()
    assert 1 <= n <= 2 and ubdiff.get_num_threads() == n
    ubdiff.set_num_threads(1)  # an explicit count ends adaptive mode
    assert not ubdiff.threads_adaptive() and ubdiff.get_num_threads() == 1
    with pytest.raises(ValueError, match="max must be >= 1"):
        ubdiff.set_num_threads_adaptive(0)
    with pytest.raises(TypeError, match="max_threads must be an int"):
        ubdiff.set_num_threads_adaptive(1.5)


def _fresh(code, env):
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_defaults_at_import():
    """Adaptive up to the cores unless OMP_NUM_THREADS fixes a count; OpenMP
    waits passively unless the user chose a policy (set before the runtime starts)."""
    code = ("import os, ubdiff; print(ubdiff.threads_adaptive(), ubdiff.get_num_threads(), "
            "os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    cores = str(len(os.sched_getaffinity(0)))
    whole = str(len(os.sched_getaffinity(0)) == os.cpu_count())  # adapts only when it sees the whole machine
    assert _fresh(code, env) == [whole, cores, "passive"]  # the count adapts at the first long call
    assert _fresh(code, dict(env, OMP_NUM_THREADS="1")) == ["False", "1", "passive"]
    assert _fresh(code, dict(env, OMP_WAIT_POLICY="active")) == [whole, cores, "active"]
    assert _fresh(code, dict(env, GOMP_SPINCOUNT="1000")) == [whole, cores, "None"]
