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


# ---- backward passes and the other two attention variants -------------------------
# Tolerances: every output is a chain of fp32 products over HD or L (T) terms of
# O(1) values plus a softmax; cuBLAS and OpenBLAS differ only by summation
# order, so outputs agree to a few 1e-6 absolute. atol 1e-4 / rtol 1e-4 leaves
# a margin for the longest sums here (L = 300) and for cancellation in the
# softmax backward (dy - sum y dy), whose error is absolute, not relative.

def _gpu_grad_matches(gpu, cpu, what):
    assert_gpu_matches_cpu(gpu, cpu, atol=1e-4, rtol=1e-4, what=what)


# (B, NH): batched over b (B >= NH) and over h (NH > B), both cuBLAS paths
@pytest.mark.parametrize("B,NH,HD,L", [(1, 1, 3, 2), (1, 4, 8, 16), (5, 2, 5, 7), (3, 3, 16, 300)])
def test_full_attention_backward_cuda_vs_cpu(rng, B, NH, HD, L):
    qkv = rng.standard_normal((B, 3 * NH * HD, L)).astype(np.float32)
    scale = HD ** -0.5
    _, att = A.full_attention_forward(qkv, NH, scale)
    dout = rng.standard_normal((B, NH * HD, L)).astype(np.float32)
    cpu = 1.0 + A.full_attention_backward(dout, qkv, att, scale)
    gpu = np.ones_like(qkv)  # += into dqkv
    lib.cuda_full_attention_backward(gpu, np.empty_like(att), dout, qkv, att, scale)
    _gpu_grad_matches(gpu, cpu, "full attention dqkv")
    lib.cuda_full_attention_backward(None, np.empty_like(att), dout, qkv, att, scale)  # no gradient asked: no-op


@pytest.mark.parametrize("B,T,C,NH", [(1, 1, 4, 1), (2, 7, 12, 3), (1, 20, 32, 8), (6, 130, 16, 2)])
def test_mhsa_cuda_vs_cpu(rng, B, T, C, NH):
    qkv = rng.standard_normal((B, T, 3 * C)).astype(np.float32)
    out, att = A.mhsa_forward(qkv, NH)
    gout, gatt = np.empty_like(out), np.empty_like(att)
    lib.cuda_mhsa_forward(gout, gatt, qkv)
    assert_gpu_matches_cpu(gatt, att, atol=1e-5, rtol=1e-4, what="mhsa att")
    assert_gpu_matches_cpu(gout, out, atol=1e-4, rtol=1e-4, what="mhsa out")
    dout = rng.standard_normal(out.shape).astype(np.float32)
    cpu = 1.0 + A.mhsa_backward(dout, qkv, att)
    gpu = np.ones_like(qkv)
    lib.cuda_mhsa_backward(gpu, np.empty_like(att), dout, qkv, att)
    _gpu_grad_matches(gpu, cpu, "mhsa dqkv")


@pytest.mark.parametrize("B,NH,HD,L", [(1, 1, 3, 2), (1, 4, 32, 16), (5, 2, 5, 7), (2, 3, 8, 300)])
def test_linear_attention_cuda_vs_cpu(rng, B, NH, HD, L):
    qkv = (2 * rng.standard_normal((B, 3 * NH * HD, L))).astype(np.float32)
    scale = HD ** -0.5
    out, qs, ks, ctx = A.linear_attention_forward(qkv, NH, scale)
    g = [np.empty_like(out), np.empty_like(qs), np.empty_like(ks), np.empty_like(ctx)]
    lib.cuda_linear_attention_forward(*g, qkv, scale)
    # qs, ks: one softmax each (expf within 2 ulp on the GPU; the normaliser a float
    # sum of up to L = 300 terms, in order on the CPU, as a tree on the GPU: the
    # CPU's worst-case rounding is (L-1) * 6e-8 = 2e-5 relative); context, out:
    # sums of O(1) terms
    assert_gpu_matches_cpu(g[1], qs, atol=1e-7, rtol=3e-5, what="qs")
    assert_gpu_matches_cpu(g[2], ks, atol=1e-7, rtol=3e-5, what="ks")
    assert_gpu_matches_cpu(g[3], ctx, atol=1e-5, rtol=1e-4, what="context")
    assert_gpu_matches_cpu(g[0], out, atol=1e-5, rtol=1e-4, what="out")
    dout = rng.standard_normal(out.shape).astype(np.float32)
    cpu = 1.0 + A.linear_attention_backward(dout, qkv, qs, ks, ctx, scale)
    gpu = np.ones_like(qkv)
    work = np.empty(A.linear_attention_work_size(B, NH, HD, L), np.float32)
    lib.cuda_linear_attention_backward(gpu, work, dout, qkv, qs, ks, ctx, scale)
    _gpu_grad_matches(gpu, cpu, "linear attention dqkv")


def test_cuda_attention_backward_errors(rng):
    qkv = rng.standard_normal((1, 6, 4)).astype(np.float32)
    _, qs, ks, ctx = A.linear_attention_forward(qkv, 1, 0.5)
    work = np.empty(A.linear_attention_work_size(1, 1, 2, 4), np.float32)
    with pytest.raises(ValueError, match="scale must be non-zero"):
        lib.cuda_linear_attention_backward(np.zeros_like(qkv), work, np.ones((1, 2, 4), np.float32), qkv, qs, ks,
                                           ctx, 0.0)
    with pytest.raises(ValueError, match="work is too small"):
        lib.cuda_linear_attention_backward(np.zeros_like(qkv), work[:-1], np.ones((1, 2, 4), np.float32), qkv, qs,
                                           ks, ctx, 0.5)
