"""CUDA softmax and full attention against their CPU twins (skipped, with the
reason, without a GPU)."""
import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu

from ubdiff import attn_ops as A
from ubdiff._native import lib

pytestmark = requires_gpu


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (3, 300), (1000, 16), (2, 3, 129)])
def test_softmax_cuda_vs_cpu(rng, shape):
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    g = np.empty_like(x)
    lib.cuda_softmax_forward(g, x)
    cpu = A.softmax(x)
    assert_gpu_matches_cpu(g, cpu, atol=1e-6, rtol=1e-5, what="softmax")
    d = rng.standard_normal(shape).astype(np.float32)
    gd = np.ones_like(x)  # checks += as well
    lib.cuda_softmax_backward(gd, d, cpu)
    assert_gpu_matches_cpu(gd, 1.0 + A.softmax_backward(d, cpu), atol=1e-5, rtol=1e-5, what="softmax backward")


# (B, NH, HD, L): odd sizes, and the U-Net middle (4 heads x 32, L = 16)
@pytest.mark.parametrize("B,NH,HD,L", [(1, 1, 3, 2), (2, 3, 5, 7), (4, 4, 32, 16), (2, 2, 8, 129)])
def test_full_attention_cuda_vs_cpu(rng, B, NH, HD, L):
    qkv = rng.standard_normal((B, 3 * NH * HD, L)).astype(np.float32)
    scale = HD ** -0.5
    out, att = A.full_attention_forward(qkv, NH, scale)
    gout = np.empty_like(out)
    gatt = np.empty_like(att)
    lib.cuda_full_attention_forward(gout, gatt, qkv, scale)
    # cuBLAS may use another summation order (and TF32 is off by default for
    # cublasSgemm): float32 rounding over HD or L terms of O(1) values.
    assert_gpu_matches_cpu(gatt, att, atol=1e-5, rtol=1e-4, what="att")
    assert_gpu_matches_cpu(gout, out, atol=1e-4, rtol=1e-4, what="out")


def test_cuda_full_attention_errors():
    z = np.zeros
    with pytest.raises(ValueError, match="3\\*NH\\*HD"):
        lib.cuda_full_attention_forward(z((1, 6, 5), np.float32), z((1, 4, 5, 5), np.float32),
                                        z((1, 18, 5), np.float32), 1.0)
