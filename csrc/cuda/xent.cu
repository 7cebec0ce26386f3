// xent.cu — CUDA twin of cpu/xent.c (softmax cross-entropy, xent.h). Same
// arguments, device pointers: loss (1), probs, logits, labels (B) int32 and
// correct (1) int or NULL all live on the device.
//
// Labels are checked first, as on the CPU, because a bad label would index
// outside its row: a small kernel finds the first bad row and the host reads
// it back (one 4-byte copy, so each call synchronises once). The forward runs
// the CPU's per-row loop body unchanged, one thread per row, in a single block
// so that the batch sum (double) and the hit count are one deterministic block
// reduction without scratch memory; B*K is small for a classifier head.
#include <limits.h>
#include <math.h>

#include <mutex>

#include "../xent.h"
#include "common.cuh"
#include "reduce.cuh"

#define XENT_BLOCK UBD_NORM_BLOCK

// First row with a label outside [0, K) (INT_MAX: none). Static device memory
// as in sums.cu; the lock keeps one check's reset-launch-read sequence whole
// when several host threads call at once.
__device__ int g_bad_row;
static std::mutex g_bad_row_lock;

__global__ void find_bad_label_k(const int *labels, int B, int K) {
    UBD_GRID_STRIDE(b, (size_t)B) {
        if (labels[b] < 0 || labels[b] >= K) atomicMin(&g_bad_row, (int)b);
    }
}

static ubd_status check_labels(const char *who, const int *labels, int B, int K) {
    const int none = INT_MAX;
    std::lock_guard<std::mutex> lock(g_bad_row_lock);
    UBD_CUDA_TRY(cudaMemcpyToSymbol(g_bad_row, &none, sizeof none));
    find_bad_label_k<<<ubd_grid((size_t)B, 256), 256, 0, ubd_cuda_stream()>>>(labels, B, K);
    UBD_CUDA_LAUNCHED();
    int bad = none;
    UBD_CUDA_TRY(cudaMemcpyFromSymbol(&bad, g_bad_row, sizeof bad));
    if (bad == none) return UBD_OK;
    int label = 0;
    UBD_CUDA_TRY(cudaMemcpy(&label, labels + bad, sizeof label, cudaMemcpyDeviceToHost));
    return ubd_fail(UBD_ERR_VALUE, "%s: label %d of row %d is outside [0, %d)", who, label, bad, K);
}

// The body of the CPU loop over rows, for rows b = threadIdx.x, +blockDim.x, ...
__global__ void xent_forward_k(float *loss, float *probs, int *correct, const float *logits, const int *labels, int B,
                               int K) {
    double total = 0.0, hits = 0.0;
    for (int b = threadIdx.x; b < B; b += blockDim.x) {
        const float *l = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (l[k] > l[arg]) arg = k;
        const float mx = l[arg];
        double s = 0.0;
        for (int k = 0; k < K; k++) {
            p[k] = expf(l[k] - mx);
            s += p[k];
        }
        const float inv = (float)(1.0 / s);
        for (int k = 0; k < K; k++) p[k] *= inv;
        total += log(s) - (double)(l[labels[b]] - mx);
        hits += arg == labels[b];
    }
    total = ubd_block_sum(total);
    hits = ubd_block_sum(hits);  // exact: an integer far below 2^53
    if (threadIdx.x == 0) {
        *loss = (float)(total / B);
        if (correct) *correct = (int)hits;
    }
}

// dlogits (B, K) += k1 (probs - onehot(labels)), one thread per element
__global__ void xent_backward_k(float *dlogits, const float *probs, const int *labels, int B, int K, float k1) {
    UBD_GRID_STRIDE(i, (size_t)B * K) {
        const size_t b = i / K;
        const int k = (int)(i % K);
        dlogits[i] += k1 * (probs[i] - (k == labels[b] ? 1.0f : 0.0f));
    }
}

extern "C" ubd_status ubd_cuda_xent_forward(float *loss, float *probs, int *correct, const float *logits,
                                            const int *labels, int B, int K) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(K);
    UBD_REQUIRE_PTR(loss);
    UBD_REQUIRE_PTR(probs);
    UBD_REQUIRE_PTR(logits);
    UBD_REQUIRE_PTR(labels);
    UBD_TRY(check_labels("xent_forward", labels, B, K));
    xent_forward_k<<<1, XENT_BLOCK, 0, ubd_cuda_stream()>>>(loss, probs, correct, logits, labels, B, K);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_xent_backward(float *dlogits, const float *probs, const int *labels, int B, int K,
                                             float scale) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(K);
    UBD_REQUIRE_PTR(dlogits);
    UBD_REQUIRE_PTR(probs);
    UBD_REQUIRE_PTR(labels);
    UBD_TRY(check_labels("xent_backward", labels, B, K));
    xent_backward_k<<<ubd_grid((size_t)B * K, 256), 256, 0, ubd_cuda_stream()>>>(dlogits, probs, labels, B, K, scale / (float)B);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}
