// sums.cu — CUDA twins of the ops that reduce a whole buffer to one number:
// the mean L1 and mean squared error (cpu/loss.c, with their backward) and the
// gradient norm and clipping (cpu/optim.c). Same arguments as the CPU, device
// pointers; the scalar results (loss, norm) are device floats too, so a
// training step never waits for the host.
//
// Sums are taken in double, as on the CPU, in two deterministic passes: a
// fixed number of blocks (a function of n only) each sums a grid-stride slice
// into one double partial, then one block adds the partials in a fixed tree.
// The order depends only on n, so a result is reproducible run to run; it
// differs from the CPU's OpenMP order only by double rounding.
#include <math.h>

#include <mutex>

#include "../ops.h"
#include "common.cuh"
#include "reduce.cuh"

#define SUM_BLOCK UBD_NORM_BLOCK  // threads per block (a multiple of 32)
#define SUM_MAX_BLOCKS 1024
#define SUM_PER_THREAD 8  // about this many elements per thread before more blocks are used

// The partial sums of pass 1. Static device memory, so the ops need no
// scratch argument. Safe because the ops run on one stream at a time (the
// backend's, common.cuh; graphs captured elsewhere are launched on it), which
// executes launches in the order they were issued, and g_partial_lock makes
// the two launches of one sum a unit in that order when several host threads
// call at once. (Ops running on several streams at once would need a scratch
// argument instead.)
__device__ double g_partial[SUM_MAX_BLOCKS];
static std::mutex g_partial_lock;

enum sum_term { TERM_ABS_DIFF = 0, TERM_SQ_DIFF = 1, TERM_SQ = 2 };

template <int TERM>
__device__ __forceinline__ double term(const float *a, const float *b, size_t i) {
    if (TERM == TERM_ABS_DIFF) return fabsf(a[i] - b[i]);  // float difference, as cpu/loss.c
    if (TERM == TERM_SQ_DIFF) {
        const double d = (double)a[i] - (double)b[i];
        return d * d;
    }
    return (double)a[i] * (double)a[i];
}

template <int TERM>
__global__ void partial_k(const float *a, const float *b, size_t n) {
    double s = 0.0;
    UBD_GRID_STRIDE(i, n) s += term<TERM>(a, b, i);
    s = ubd_block_sum(s);
    if (threadIdx.x == 0) g_partial[blockIdx.x] = s;
}

// out (1) = (float)(sum / n) (mean) or (float)sqrt(sum) (norm)
__global__ void finish_k(float *out, int nblocks, size_t n, int root) {
    double s = 0.0;
    for (int k = threadIdx.x; k < nblocks; k += blockDim.x) s += g_partial[k];
    s = ubd_block_sum(s);
    if (threadIdx.x == 0) *out = root ? (float)sqrt(s) : (float)(s / (double)n);
}

static unsigned sum_blocks(size_t n) {
    size_t g = (n + (size_t)SUM_BLOCK * SUM_PER_THREAD - 1) / ((size_t)SUM_BLOCK * SUM_PER_THREAD);
    return (unsigned)(g < 1 ? 1 : (g > SUM_MAX_BLOCKS ? SUM_MAX_BLOCKS : g));
}

template <int TERM>
static ubd_status sum_to(float *out, const float *a, const float *b, size_t n, int root) {
    const unsigned g = sum_blocks(n);
    std::lock_guard<std::mutex> lock(g_partial_lock);
    partial_k<TERM><<<g, SUM_BLOCK, 0, ubd_cuda_stream()>>>(a, b, n);
    UBD_CUDA_LAUNCHED();
    finish_k<<<1, SUM_BLOCK, 0, ubd_cuda_stream()>>>(out, (int)g, n, root);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// ---- losses (cpu/loss.c) ------------------------------------------------------

static ubd_status check_loss(const char *who, const void *a, const void *b, const void *c, size_t n) {
    UBD_REQUIRE(n > 0, UBD_ERR_VALUE, "%s: empty input", who);
    UBD_REQUIRE(a && b && c, UBD_ERR_VALUE, "%s: NULL buffer", who);
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_l1_forward(float *loss, const float *pred, const float *target, size_t n) {
    UBD_TRY(check_loss("l1_forward", loss, pred, target, n));
    return sum_to<TERM_ABS_DIFF>(loss, pred, target, n, 0);
}

extern "C" ubd_status ubd_cuda_mse_forward(float *loss, const float *pred, const float *target, size_t n) {
    UBD_TRY(check_loss("mse_forward", loss, pred, target, n));
    return sum_to<TERM_SQ_DIFF>(loss, pred, target, n, 0);
}

// dpred += k sign(pred - target), with sign(NaN) = NaN as torch.sign: a NaN
// difference makes a NaN gradient instead of vanishing silently.
__global__ void l1_backward_k(float *dpred, const float *pred, const float *target, size_t n, float k) {
    UBD_GRID_STRIDE(i, n) {
        const float d = pred[i] - target[i];
        dpred[i] += d > 0.0f ? k : (d < 0.0f ? -k : (d == 0.0f ? 0.0f : d));
    }
}

__global__ void mse_backward_k(float *dpred, const float *pred, const float *target, size_t n, float k) {
    UBD_GRID_STRIDE(i, n) dpred[i] += k * (pred[i] - target[i]);
}

extern "C" ubd_status ubd_cuda_l1_backward(float *dpred, const float *pred, const float *target, size_t n,
                                           float scale) {
    UBD_TRY(check_loss("l1_backward", dpred, pred, target, n));
    l1_backward_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(dpred, pred, target, n, scale / (float)n);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_mse_backward(float *dpred, const float *pred, const float *target, size_t n,
                                            float scale) {
    UBD_TRY(check_loss("mse_backward", dpred, pred, target, n));
    mse_backward_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(dpred, pred, target, n, 2.0f * scale / (float)n);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// ---- gradient norm and clipping (cpu/optim.c) ------------------------------------

extern "C" ubd_status ubd_cuda_grad_norm(float *norm, const float *grad, size_t n) {
    UBD_REQUIRE_PTR(norm);
    UBD_REQUIRE(grad || n == 0, UBD_ERR_VALUE, "grad_norm: NULL buffer");
    if (n == 0) {  // the norm of nothing is 0 (all-zero bits are 0.0f)
        UBD_CUDA_TRY(cudaMemsetAsync(norm, 0, sizeof(float), ubd_cuda_stream()));
        return UBD_OK;
    }
    return sum_to<TERM_SQ>(norm, grad, grad, n, 1);
}

// grad *= coef when coef = max_norm / (norm + 1e-6) < 1; the norm is read on
// the device. A NaN norm gives a NaN coef, which fails `< 1`: no scaling, as
// on the CPU.
__global__ void clip_k(float *grad, const float *norm, size_t n, float max_norm) {
    const float coef = max_norm / (*norm + 1e-6f);
    if (!(coef < 1.0f)) return;
    UBD_GRID_STRIDE(i, n) grad[i] *= coef;
}

extern "C" ubd_status ubd_cuda_clip_grad_norm(float *norm, float *grad, size_t n, float max_norm) {
    UBD_REQUIRE(max_norm > 0.0f, UBD_ERR_VALUE, "clip_grad_norm: max_norm must be positive, got %g", max_norm);
    UBD_TRY(ubd_cuda_grad_norm(norm, grad, n));
    if (n == 0) return UBD_OK;
    clip_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(grad, norm, n, max_norm);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}
