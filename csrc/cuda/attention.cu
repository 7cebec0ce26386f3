// attention.cu — CUDA twins of cpu/softmax.c (forward, backward) and of the
// 1-D U-Net full attention forward (cpu/unet_attention.c). Same arguments as
// the CPU functions, device pointers. Products through cuBLAS.
#include <limits.h>
#include <math.h>

#include "../attention.h"
#include "common.cuh"

#define SM_BLOCK 128  // threads per softmax row (a multiple of 32)

// Reduction over the block: op = 0 max, 1 sum. Every thread gets the result.
__device__ float block_reduce(float v, int op) {
    __shared__ float part[SM_BLOCK / 32];
    __shared__ float result;
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = op ? v + w : fmaxf(v, w);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float r = part[0];
        for (int k = 1; k < SM_BLOCK / 32; k++) r = op ? r + part[k] : fmaxf(r, part[k]);
        result = r;
    }
    __syncthreads();
    float r = result;
    __syncthreads();  // `result` and `part` are reused by the next call
    return r;
}

// One block per row (grid-stride over rows): max, sum of exp, normalise.
__global__ void softmax_fwd_k(float *out, const float *inp, int N, int D) {
    for (long long r = blockIdx.x; r < N; r += gridDim.x) {
        const float *x = inp + (size_t)r * D;
        float *y = out + (size_t)r * D;
        float mx = -INFINITY;
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) mx = fmaxf(mx, x[i]);
        mx = block_reduce(mx, 0);
        float s = 0.0f;
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) {
            float e = expf(x[i] - mx);
            y[i] = e;
            s += e;
        }
        const float inv = 1.0f / block_reduce(s, 1);
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) y[i] *= inv;
    }
}

// dinp += out * (dout - sum(dout * out)), one block per row.
__global__ void softmax_bwd_k(float *dinp, const float *dout, const float *out, int N, int D) {
    for (long long r = blockIdx.x; r < N; r += gridDim.x) {
        const size_t o = (size_t)r * D;
        float s = 0.0f;
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) s += dout[o + i] * out[o + i];
        s = block_reduce(s, 1);
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) dinp[o + i] += out[o + i] * (dout[o + i] - s);
    }
}

static unsigned rows_grid(long long n) { return (unsigned)(n < 65535LL * 32 ? n : 65535LL * 32); }

extern "C" ubd_status ubd_cuda_softmax_forward(float *out, const float *inp, int N, int D) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(D);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    softmax_fwd_k<<<rows_grid(N), SM_BLOCK>>>(out, inp, N, D);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_softmax_backward(float *dinp, const float *dout, const float *out, int N, int D) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(D);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(out);
    if (!dinp) return UBD_OK;
    softmax_bwd_k<<<rows_grid(N), SM_BLOCK>>>(dinp, dout, out, N, D);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// Full attention, per batch b one strided-batched GEMM over the NH heads for
// each product. Row-major X (r, c) is column-major X^T, so (see the CPU file
// for the row-major formulas):
//   att_b[h] (L,L) row-major = col-major (scale * k^T q): A = k (col-major
//     L x HD, ld L), op N; B = q (col-major L x HD), op T.
//   out_b[h] (HD,L) row-major = col-major (att v^T) (L x HD): A = att
//     (col-major = att^T), op T; B = v (col-major L x HD), op N.
extern "C" ubd_status ubd_cuda_full_attention_forward(float *out, float *att, const float *qkv, int B, int NH, int HD,
                                                      int L, float scale) {
    UBD_REQUIRE(B > 0 && NH > 0 && HD > 0 && L > 0, UBD_ERR_VALUE,
                "%s: B, NH, HD, L must be positive, got B=%d NH=%d HD=%d L=%d", __func__, B, NH, HD, L);
    UBD_REQUIRE(isfinite(scale), UBD_ERR_VALUE, "%s: scale must be finite, got %g", __func__, (double)scale);
    UBD_REQUIRE((long long)L * L <= INT_MAX && (long long)HD * L <= INT_MAX && (long long)B * NH * L <= INT_MAX,
                UBD_ERR_VALUE, "%s: sizes too large (NH=%d HD=%d L=%d)", __func__, NH, HD, L);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(att);
    UBD_REQUIRE_PTR(qkv);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const long long head = (long long)HD * L, chunk = (long long)NH * head, sq = (long long)L * L;
    const float zero = 0.0f, one = 1.0f;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * 3 * chunk, *k = q + chunk;
        UBD_CUBLAS_TRY(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, L, L, HD, &scale, k, L, head, q, L,
                                                 head, &zero, att + (size_t)b * NH * sq, L, sq, NH));
    }
    UBD_TRY(ubd_cuda_softmax_forward(att, att, B * NH * L, L));
    for (int b = 0; b < B; b++) {
        const float *v = qkv + (size_t)b * 3 * chunk + 2 * chunk;
        UBD_CUBLAS_TRY(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, L, HD, L, &one,
                                                 att + (size_t)b * NH * sq, L, sq, v, L, head, &zero,
                                                 out + (size_t)b * chunk, L, head, NH));
    }
    return UBD_OK;
}
