// softmax.cu — CUDA twins of cpu/softmax.c and the softmax kernels of the
// attention twins (softmax.cuh). The formulas are those of cpu/softmax_row.h;
// only the summation order of a row differs (a block tree instead of a loop).
#include "../attention.h"
#include "common.cuh"
#include "softmax.cuh"

#define SM_BLOCK 128  // threads per softmax row (a multiple of 32)

// Reduction over the block: op = 0 max, 1 sum. Every thread gets the result.
// blockDim.x must be SM_BLOCK.
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
// y row r is packed; x row r lies at ubd_item_offset(gx, r, D). Each element
// is read before its own thread overwrites it, so y == x works.
__global__ void softmax_rows_k(float *y, const float *x, ubd_groups gx, long long rows, int D, float a) {
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + ubd_item_offset(gx, r, D);
        float *yr = y + (size_t)r * D;
        float mx = -INFINITY;
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) mx = fmaxf(mx, xr[i]);
        mx = block_reduce(mx, 0);
        float s = 0.0f;
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) {
            float e = expf(xr[i] - mx);
            yr[i] = e;
            s += e;
        }
        const float inv = a / block_reduce(s, 1);
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) yr[i] *= inv;
    }
}

// dx (+)= y (dy - sum(y dy) / a), one block per row; dy, y packed, dx row at
// ubd_item_offset(gdx, r, D). The sum is complete (block_reduce synchronises)
// before any thread writes, so dx == dy works without accumulate.
__global__ void softmax_rows_bwd_k(float *dx, ubd_groups gdx, const float *dy, const float *y, long long rows, int D,
                                   float a, int accumulate) {
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const size_t o = (size_t)r * D;
        float s = 0.0f;
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) s += y[o + i] * dy[o + i];
        const float dot = block_reduce(s, 1) / a;
        float *dxr = dx + ubd_item_offset(gdx, r, D);
        for (int i = threadIdx.x; i < D; i += SM_BLOCK) {
            const float g = y[o + i] * (dy[o + i] - dot);
            if (accumulate)
                dxr[i] += g;
            else
                dxr[i] = g;
        }
    }
}

// One thread per column (m, j) of the (n, L) matrices: the CPU loop of
// ubd_softmax_vec with stride L, in its order (threads of a warp read
// neighbouring columns, so the loads are coalesced).
__global__ void softmax_cols_k(float *y, const float *x, ubd_groups gx, long long mats, int n, int L, float a) {
    const size_t item = (size_t)n * L;
    UBD_GRID_STRIDE(t, (size_t)mats * L) {
        const long long m = (long long)(t / L);
        const int j = (int)(t % L);
        const float *xc = x + ubd_item_offset(gx, m, item) + j;
        float *yc = y + (size_t)m * item + j;
        float mx = xc[0];
        for (int i = 1; i < n; i++) mx = fmaxf(mx, xc[(size_t)i * L]);
        float sum = 0.0f;
        for (int i = 0; i < n; i++) {
            const float e = expf(xc[(size_t)i * L] - mx);
            yc[(size_t)i * L] = e;
            sum += e;
        }
        const float inv = a / sum;
        for (int i = 0; i < n; i++) yc[(size_t)i * L] *= inv;
    }
}

// ubd_softmax_vec_backward with stride L, one thread per column.
__global__ void softmax_cols_bwd_k(float *dx, ubd_groups gdx, const float *dy, const float *y, long long mats, int n,
                                   int L, float a, int accumulate) {
    const size_t item = (size_t)n * L;
    UBD_GRID_STRIDE(t, (size_t)mats * L) {
        const long long m = (long long)(t / L);
        const int j = (int)(t % L);
        const float *dyc = dy + (size_t)m * item + j, *yc = y + (size_t)m * item + j;
        float *dxc = dx + ubd_item_offset(gdx, m, item) + j;
        float dot = 0.0f;
        for (int i = 0; i < n; i++) dot += yc[(size_t)i * L] * dyc[(size_t)i * L];
        dot /= a;
        for (int i = 0; i < n; i++) {
            const float g = yc[(size_t)i * L] * (dyc[(size_t)i * L] - dot);
            if (accumulate)
                dxc[(size_t)i * L] += g;
            else
                dxc[(size_t)i * L] = g;
        }
    }
}

static unsigned rows_grid(long long n) { return (unsigned)(n < 65535LL * 32 ? n : 65535LL * 32); }

ubd_status ubd_cuda_softmax_rows(float *y, const float *x, ubd_groups gx, long long rows, int D, float a) {
    softmax_rows_k<<<rows_grid(rows), SM_BLOCK, 0, ubd_cuda_stream()>>>(y, x, gx, rows, D, a);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

ubd_status ubd_cuda_softmax_rows_backward(float *dx, ubd_groups gdx, const float *dy, const float *y, long long rows,
                                          int D, float a, int accumulate) {
    softmax_rows_bwd_k<<<rows_grid(rows), SM_BLOCK, 0, ubd_cuda_stream()>>>(dx, gdx, dy, y, rows, D, a, accumulate);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

ubd_status ubd_cuda_softmax_cols(float *y, const float *x, ubd_groups gx, long long mats, int n, int L, float a) {
    softmax_cols_k<<<ubd_grid((size_t)mats * L, 128), 128, 0, ubd_cuda_stream()>>>(y, x, gx, mats, n, L, a);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

ubd_status ubd_cuda_softmax_cols_backward(float *dx, ubd_groups gdx, const float *dy, const float *y, long long mats,
                                          int n, int L, float a, int accumulate) {
    softmax_cols_bwd_k<<<ubd_grid((size_t)mats * L, 128), 128, 0, ubd_cuda_stream()>>>(dx, gdx, dy, y, mats, n, L, a, accumulate);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// ---- public twins of cpu/softmax.c ------------------------------------------

extern "C" ubd_status ubd_cuda_softmax_forward(float *out, const float *inp, int N, int D) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(D);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    return ubd_cuda_softmax_rows(out, inp, ubd_packed(), N, D, 1.0f);
}

extern "C" ubd_status ubd_cuda_softmax_backward(float *dinp, const float *dout, const float *out, int N, int D) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(D);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(out);
    if (!dinp) return UBD_OK;
    return ubd_cuda_softmax_rows_backward(dinp, ubd_packed(), dout, out, N, D, 1.0f, 1);
}
