"""CUDA twins of the norm and shape ops against the CPU (skipped, with the
reason, without a GPU); in a CUDA build on a GPU-less machine the cuda_*
bindings must raise, not crash.

Tolerances: both backends keep statistics in double and per-element math in
float32 with the same formulas, so they differ by float32 rounding of O(1)
values: atol 1e-5, rtol 1e-4 (tests/cuda_util.py default); reductions over
thousands of elements (parameter gradients) get atol 1e-3 relative to their
size. Data-movement ops must match exactly.
"""
import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu

import ubdiff
from ubdiff._native import lib

CUDA_BUILT = hasattr(lib, "cuda_batchnorm_forward_train")


def randn(rng, *shape, loc=0.0):
    return (loc + rng.standard_normal(shape)).astype(np.float32)


def both(name, *args):
    """Runs lib.<name> and lib.cuda_<name> on copies of args; returns the two arg lists after the calls."""
    a_cpu = [None if a is None else (a.copy() if isinstance(a, np.ndarray) else a) for a in args]
    a_gpu = [None if a is None else (a.copy() if isinstance(a, np.ndarray) else a) for a in args]
    getattr(lib, name)(*a_cpu)
    getattr(lib, "cuda_" + name)(*a_gpu)
    return a_cpu, a_gpu


def compare(name, args, outputs, atol=1e-5, rtol=1e-4):
    c, g = both(name, *args)
    for k in outputs:
        assert_gpu_matches_cpu(g[k], c[k], atol=atol, rtol=rtol, what=f"{name} arg {k}")


@pytest.mark.skipif(not CUDA_BUILT or ubdiff.gpu_count() > 0, reason="needs a CUDA build on a machine without GPU")
def test_cuda_bindings_raise_without_gpu():
    x = np.ones((4, 3, 5), np.float32)
    c = np.ones(3, np.float32)
    with pytest.raises(RuntimeError):
        lib.cuda_batchnorm_forward_eval(np.empty_like(x), x, c, c, c, c, 1e-5)
    with pytest.raises(ValueError, match="gamma has shape"):  # shapes are still checked first
        lib.cuda_batchnorm_forward_eval(np.empty_like(x), x, np.ones(4, np.float32), c, c, c, 1e-5)


# (B, C, S...) shapes: features, small maps, a map larger than one block, 1 channel with many values
BN_SHAPES = [(64, 640), (3, 5, 7), (4, 32, 20, 20), (16, 1, 70, 70)]


@requires_gpu
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_cuda_vs_cpu(rng, shape):
    C = shape[1]
    x, dout = randn(rng, *shape, loc=0.5), randn(rng, *shape)
    gamma, beta = randn(rng, C), randn(rng, C)
    rm, rv = randn(rng, C), (1 + rng.random(C)).astype(np.float32)
    out, mean, rstd = np.empty_like(x), np.empty(C, np.float32), np.empty(C, np.float32)
    compare("batchnorm_forward_train", [out, mean, rstd, rm, rv, x, gamma, beta, 0.1, 1e-5], [0, 1, 2, 3, 4])
    compare("batchnorm_forward_train", [out, mean, rstd, None, None, x, gamma, beta, 0.1, 1e-5], [0, 1, 2])
    compare("batchnorm_forward_eval", [out, x, gamma, beta, rm, rv, 1e-5], [0])
    lib.batchnorm_forward_train(out, mean, rstd, None, None, x, gamma, beta, 0.1, 1e-5)
    n = x.size // C
    grads = [np.ones_like(x), np.ones(C, np.float32), np.ones(C, np.float32)]  # += on non-zero start
    compare("batchnorm_backward", grads + [dout, x, gamma, mean, rstd], [0, 1, 2], atol=1e-4 + 1e-6 * n)
    compare("batchnorm_backward_eval", grads + [dout, x, gamma, rm, rv, 1e-5], [0, 1, 2], atol=1e-4 + 1e-6 * n)
    compare("batchnorm_backward", [None, grads[1], None, dout, x, gamma, mean, rstd], [1], atol=1e-4 + 1e-6 * n)


@requires_gpu
@pytest.mark.parametrize("shape,G", [((16, 256, 32), 8), ((2, 6, 5), 3), ((3, 4, 7, 9), 2), ((2, 512, 16), 8)])
def test_groupnorm_cuda_vs_cpu(rng, shape, G):
    C = shape[1]
    x, dout = randn(rng, *shape, loc=-0.3), randn(rng, *shape)
    gamma, beta = randn(rng, C), randn(rng, C)
    out, mean, rstd = np.empty_like(x), np.empty((shape[0], G), np.float32), np.empty((shape[0], G), np.float32)
    compare("groupnorm_forward", [out, mean, rstd, x, gamma, beta, 1e-5], [0, 1, 2])
    lib.groupnorm_forward(out, mean, rstd, x, gamma, beta, 1e-5)
    grads = [np.ones_like(x), np.ones(C, np.float32), np.ones(C, np.float32)]
    compare("groupnorm_backward", grads + [dout, x, gamma, mean, rstd], [0, 1, 2], atol=1e-3)


@requires_gpu
@pytest.mark.parametrize("shape", [(128, 640), (3, 5), (2, 2, 1000)])
def test_layernorm_cuda_vs_cpu(rng, shape):
    C = shape[-1]
    N = int(np.prod(shape[:-1]))
    x, dout = randn(rng, *shape, loc=1.0), randn(rng, *shape)
    gamma, beta = randn(rng, C), randn(rng, C)
    out, mean, rstd = np.empty_like(x), np.empty(N, np.float32), np.empty(N, np.float32)
    compare("layernorm_forward", [out, mean, rstd, x, gamma, beta, 1e-6], [0, 1, 2])
    lib.layernorm_forward(out, mean, rstd, x, gamma, beta, 1e-6)
    grads = [np.ones_like(x), np.ones(C, np.float32), np.ones(C, np.float32)]
    compare("layernorm_backward", grads + [dout, x, gamma, mean, rstd], [0, 1, 2], atol=1e-3)


@requires_gpu
@pytest.mark.parametrize("shape", [(16, 128, 128), (2, 3, 5), (4, 512, 16)])
def test_rmsnorm_cuda_vs_cpu(rng, shape):
    B, C, L = shape
    x, dout, g = randn(rng, *shape), randn(rng, *shape), randn(rng, C)
    x[0, :, 0] = 0  # a clamped column
    out, rnorm = np.empty_like(x), np.empty((B, L), np.float32)
    compare("rmsnorm_forward", [out, rnorm, x, g], [0, 1])
    lib.rmsnorm_forward(out, rnorm, x, g)
    # dx of the clamped column is ~1e12 * dout: compare relative there
    compare("rmsnorm_backward", [np.ones_like(x), np.ones(C, np.float32), dout, x, g, rnorm], [0, 1], atol=1e-3)


@requires_gpu
def test_shape_ops_cuda_vs_cpu(rng):
    x1, x2 = randn(rng, 3, 5, 7), randn(rng, 2, 3, 5, 6)
    for args, outs in [
        (("upsample1d_forward", np.empty((3, 5, 14), np.float32), x1), [0]),
        (("upsample1d_backward", np.ones_like(x1), randn(rng, 3, 5, 14)), [0]),
        (("upsample2d_forward", np.empty((2, 3, 10, 12), np.float32), x2), [0]),
        (("upsample2d_backward", np.ones_like(x2), randn(rng, 2, 3, 10, 12)), [0]),
        (("crop2d_forward", np.empty((2, 3, 2, 9), np.float32), x2, 2, 1, -1, -2), [0]),
        (("crop2d_backward", np.ones_like(x2), randn(rng, 2, 3, 2, 9), 2, 1, -1, -2), [0]),
        (("concat_forward", np.empty((3, 9, 7), np.float32), x1, randn(rng, 3, 4, 7)), [0]),
        (("concat_backward", np.ones_like(x1), None, randn(rng, 3, 9, 7), 5), [0]),
        (("concat_backward", np.ones_like(x1), np.ones((3, 4, 7), np.float32), randn(rng, 3, 9, 7), 5), [0, 1]),
        (("scale_shift_forward", np.empty_like(x1), x1, randn(rng, 3, 10)), [0]),
    ]:
        name, rest = args[0], list(args[1:])
        tol = 0 if name.startswith(("upsample", "crop", "concat")) else 1e-6
        compare(name, rest, outs, atol=tol, rtol=tol)
    compare("scale_shift_backward", [np.ones_like(x1), np.ones((3, 10), np.float32), randn(rng, 3, 5, 7), x1,
                                     randn(rng, 3, 10)], [0, 1])
    compare("time_embedding", [np.empty((5, 128), np.float32), np.array([0, 1, 7, 100, 255], np.float32)], [0],
            atol=1e-6, rtol=0)
    big = randn(rng, 1_000_003)
    compare("axpy", [big.copy(), randn(rng, 1_000_003), 0.25], [0], atol=1e-6, rtol=1e-6)
