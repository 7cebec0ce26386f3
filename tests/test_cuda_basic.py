"""CUDA ops against their CPU twins (skipped, with the reason, without a GPU)."""
import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu

import ubdiff
from ubdiff import ops
from ubdiff._native import lib

pytestmark = requires_gpu


@pytest.mark.parametrize("kind,param", [("relu", 0), ("leaky_relu", 0.2), ("tanh", 0), ("silu", 0), ("gelu", 0)])
def test_activation_cuda_vs_cpu(rng, kind, param):
    x = rng.standard_normal(100_001).astype(np.float32)
    k = ops.ACTIVATIONS[kind]
    g = np.empty_like(x)
    lib.cuda_act_forward(g, x, k, param)
    assert_gpu_matches_cpu(g, ops.act_forward(x, kind, param), what=kind)
    d = rng.standard_normal(x.shape).astype(np.float32)
    gd = np.zeros_like(x)
    lib.cuda_act_backward(gd, d, x, k, param)
    assert_gpu_matches_cpu(gd, ops.act_backward(d, x, kind, param), what=kind + " backward")


def test_adam_cuda_vs_cpu(rng):
    n = 12345
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    pc, mc, vc = p.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
    pg, mg, vg = p.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
    for t in (1, 2, 3):
        ops.adam_update(pc, mc, vc, g, t, lr=1e-3, weight_decay=1e-4)
        lib.cuda_adam_update(pg, mg, vg, g, t, 1e-3, 0.9, 0.999, 1e-8, 1e-4, True)
    assert_gpu_matches_cpu(pg, pc, what="adam")


def test_philox_streams_identical_on_gpu():
    a = np.empty(100_003, np.float32)
    lib.cuda_rand_uniform(a, 5, 0, 17)
    np.testing.assert_array_equal(a, ops.rand_uniform(a.shape, 5, 0, 17))
    z = np.empty(100_003, np.float32)
    lib.cuda_rand_normal(z, 5, 2, 0)
    assert_gpu_matches_cpu(z, ops.rand_normal(z.shape, 5, 2, 0), atol=1e-5, rtol=1e-5, what="normal")


def test_linear_cuda_vs_cpu(rng):
    x = rng.standard_normal((33, 65)).astype(np.float32)
    w = rng.standard_normal((17, 65)).astype(np.float32)
    b = rng.standard_normal(17).astype(np.float32)
    out = np.empty((33, 17), np.float32)
    lib.cuda_linear_forward(out, x, w, b)
    assert_gpu_matches_cpu(out, ops.linear_forward(x, w, b), atol=1e-4, rtol=1e-4, what="linear")


def test_gpu_named_in_build_info():
    assert ubdiff.build_info()["gpus"]
