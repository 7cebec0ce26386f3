"""CUDA convolutions against their CPU twins (skipped, with the reason, without a GPU).

Shapes cover every GEMM tiling of cpu/conv_plan.h: grouped samples (small
maps), one sample cut into bands (large maps, many channels), pointwise.
"""
import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu

from ubdiff._native import lib

pytestmark = requires_gpu

# fp32 GEMMs on both sides with different summation orders: 1e-4 relative,
# absolute scaled by the O(sqrt(K)) size of the sums
ATOL, RTOL = 1e-3, 1e-4


def _r(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _both(name, outs, ins, **kw):
    """Runs lib.<name> and lib.cuda_<name> on copies of the outputs; returns both results."""
    cpu = [None if o is None else o.copy() for o in outs]
    gpu = [None if o is None else o.copy() for o in outs]
    getattr(lib, name)(*cpu, *ins, **kw)
    getattr(lib, "cuda_" + name)(*gpu, *ins, **kw)
    return cpu, gpu


CONV = [  # B, C, H, W, OC, k, s, p
    (3, 4, 7, 6, 5, (3, 3), (2, 2), (1, 1)),
    (2, 5, 40, 35, 6, (7, 1), (2, 1), (3, 0)),
    (1, 64, 110, 20, 3, (3, 3), (1, 1), (1, 1)),  # bands
    (2, 8, 50, 48, 4, (1, 1), (1, 1), (0, 0)),    # pointwise, one sample per GEMM
    (4, 16, 3, 3, 8, (1, 1), (1, 1), (0, 0)),     # pointwise, grouped
    (2, 6, 9, 10, 4, (8, 9), (1, 1), (0, 0)),
]


@pytest.mark.parametrize("B,C,H,W,OC,k,s,p", CONV)
def test_conv2d_cuda_vs_cpu(rng, B, C, H, W, OC, k, s, p):
    x, w, b = _r(rng, B, C, H, W), _r(rng, OC, C, *k), _r(rng, OC)
    oh, ow = (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros((B, OC, oh, ow), np.float32)
    (c,), (g,) = _both("conv2d_forward", [out], [x, w, b], stride=s, padding=p)
    assert_gpu_matches_cpu(g, c, ATOL, RTOL, what="conv2d fwd")
    dout = _r(rng, B, OC, oh, ow)
    grads = [np.ones_like(x), np.ones_like(w), np.ones_like(b)]  # non-zero: checks +=
    cpu, gpu = _both("conv2d_backward", grads, [dout, x, w], stride=s, padding=p)
    for c, g, n in zip(cpu, gpu, ("dx", "dw", "db")):
        assert_gpu_matches_cpu(g, c, ATOL, RTOL, what="conv2d " + n)


CONVT = [  # B, C, H, W, OC, k, s, p, op
    (3, 4, 3, 3, 5, (4, 4), (2, 2), (1, 1), (0, 0)),
    (2, 8, 1, 1, 6, (5, 5), (2, 2), (0, 0), (0, 0)),
    (1, 16, 50, 44, 32, (4, 4), (2, 2), (1, 1), (1, 1)),  # bands
    (2, 3, 4, 5, 2, (3, 2), (3, 2), (1, 0), (2, 1)),
]


@pytest.mark.parametrize("B,C,H,W,OC,k,s,p,op", CONVT)
def test_convt2d_cuda_vs_cpu(rng, B, C, H, W, OC, k, s, p, op):
    x, w, b = _r(rng, B, C, H, W), _r(rng, C, OC, *k), _r(rng, OC)
    oh = (H - 1) * s[0] - 2 * p[0] + k[0] + op[0]
    ow = (W - 1) * s[1] - 2 * p[1] + k[1] + op[1]
    kw = dict(stride=s, padding=p, output_padding=op)
    (c,), (g,) = _both("convt2d_forward", [np.zeros((B, OC, oh, ow), np.float32)], [x, w, b], **kw)
    assert_gpu_matches_cpu(g, c, ATOL, RTOL, what="convt2d fwd")
    dout = _r(rng, B, OC, oh, ow)
    cpu, gpu = _both("convt2d_backward", [np.ones_like(x), np.ones_like(w), np.ones_like(b)], [dout, x, w], **kw)
    for c, g, n in zip(cpu, gpu, ("dx", "dw", "db")):
        assert_gpu_matches_cpu(g, c, ATOL, RTOL, what="convt2d " + n)


@pytest.mark.parametrize("B,C,L,OC,K,s,p", [(16, 128, 64, 128, 3, 1, 1), (4, 3, 33, 5, 4, 2, 1), (2, 1, 128, 8, 7, 1, 3)])
def test_conv1d_cuda_vs_cpu(rng, B, C, L, OC, K, s, p):
    x, w, b = _r(rng, B, C, L), _r(rng, OC, C, K), _r(rng, OC)
    ol = (L + 2 * p - K) // s + 1
    (c,), (g,) = _both("conv1d_forward", [np.zeros((B, OC, ol), np.float32)], [x, w, b], stride=s, padding=p)
    assert_gpu_matches_cpu(g, c, ATOL, RTOL, what="conv1d fwd")
    dout = _r(rng, B, OC, ol)
    cpu, gpu = _both("conv1d_backward", [np.zeros_like(x), None, np.zeros_like(b)], [dout, x, w], stride=s, padding=p)
    assert gpu[1] is None
    for c, g, n in ((cpu[0], gpu[0], "dx"), (cpu[2], gpu[2], "db")):
        assert_gpu_matches_cpu(g, c, ATOL, RTOL, what="conv1d " + n)


def test_cuda_conv_errors_match_cpu(rng):
    x, w = _r(rng, 1, 2, 5, 5), _r(rng, 3, 2, 6, 3)
    with pytest.raises(ValueError, match="larger than the padded input"):
        lib.cuda_conv2d_forward(np.empty((1, 3, 1, 3), np.float32), x, w, None)
