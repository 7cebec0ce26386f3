// common.cuh — error checks, launch helpers and the row-major cuBLAS products
// shared by the CUDA sources.
//
// Streams. Every op queues its work (kernels, cuBLAS products, memsets, D2D
// copies) on the backend's current stream, ubd_cuda_stream(), so consecutive
// calls are ordered without explicit synchronisation. That stream is one the
// backend owns (created on first use), unless this host thread is capturing a
// graph (ubd_cuda_replay, graph.cu), which points it at the capture stream for
// the length of the capture; it is never the legacy default stream, on which
// no graph can be captured. It is a blocking stream: work anyone queues on the
// legacy stream (synchronous cudaMemcpy, code not yet passing a stream) stays
// ordered with it, and while a capture runs such work fails the capture
// instead of running outside the graph.
#ifndef UBD_CUDA_COMMON_CUH
#define UBD_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../ubd.h"

#define UBD_CUDA_TRY(call)                                                                        \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess)                                                                    \
            return ubd_fail(UBD_ERR_CUDA, "%s: %s failed: %s", __func__, #call, cudaGetErrorString(e_)); \
    } while (0)

#define UBD_CUBLAS_TRY(call)                                                                      \
    do {                                                                                          \
        cublasStatus_t s_ = (call);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                          \
            return ubd_fail(UBD_ERR_CUDA, "%s: %s failed with cuBLAS status %d", __func__, #call, (int)s_); \
    } while (0)

// Launch check: kernel launches report errors asynchronously.
#define UBD_CUDA_LAUNCHED() UBD_CUDA_TRY(cudaGetLastError())

#define UBD_GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// Blocks for a grid-stride loop over n elements. gridDim.x may reach 2^31 - 1;
// the cap only bounds the launch, the loops cover the rest.
static inline unsigned ubd_grid(size_t n, unsigned block) {
    size_t g = (n + block - 1) / block;
    if (g == 0) g = 1;
    return (unsigned)(g > 65535u * 32u ? 65535u * 32u : g);
}

// The backend's current stream (see above).
extern "C" cudaStream_t ubd_cuda_stream(void);
// Points this host thread's current stream at `s` (NULL: back to the backend's
// own stream); returns the previous override (NULL if none).
extern "C" cudaStream_t ubd_cuda_set_stream(cudaStream_t s);

// The process-wide cuBLAS handle (created on first use, thread-safe), bound to
// the current stream and to a workspace of its own (cublasSetStream resets the
// workspace to cuBLAS's pool, which would allocate inside a graph capture).
extern "C" ubd_status ubd_cuda_blas_handle(cublasHandle_t *h);

// Whether the calling thread's float32 products run on TF32 tensor cores:
// set for the duration of one op by the entries of the TF32 tables
// (backend_cuda.cu, "Math modes" in backend.h), read by the two product
// helpers below. Per call (cublasGemmEx's compute type), not the shared
// handle's math mode, so models of different modes on different threads
// never see each other's setting.
extern "C" int ubd_cuda_tf32_get(void);
extern "C" void ubd_cuda_tf32_set(int on);

// Row-major C (M,N) = alpha op(A) op(B) + beta C with the argument list of
// the CPU's ubd_sgemm (blas.h), so a CUDA op can repeat the CPU call line for
// line. cuBLAS is column-major: row-major C is column-major C^T, and
// C^T = op(B)^T op(A)^T, i.e. the operands swap and keep their op flags.
static inline ubd_status ubd_rm_sgemm(cublasHandle_t h, int ta, int tb, int M, int N, int K, float alpha,
                                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                                      int ldc) {
    const cublasOperation_t opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    // strict: cublasSgemm; TF32: the same product with the operands rounded to TF32 on tensor cores
    cublasStatus_t s = ubd_cuda_tf32_get()
                           ? cublasGemmEx(h, opB, opA, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta,
                                          C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT)
                           : cublasSgemm(h, opB, opA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc);
    if (s != CUBLAS_STATUS_SUCCESS)
        return ubd_fail(UBD_ERR_CUDA, "%s (M=%d N=%d K=%d) failed with cuBLAS status %d",
                        ubd_cuda_tf32_get() ? "cublasGemmEx (TF32)" : "cublasSgemm", M, N, K, (int)s);
    return UBD_OK;
}

// Where matrix (b, h) of a (batch, head) family starts: base + b*sb + h*sh.
struct ubd_pair_strides {
    long long sb, sh;
};

// The same row-major product for every (batch b < nb, head h < nh) pair,
// operand X of pair (b, h) at X + b*sX.sb + h*sX.sh — the per-pair loop of the
// CPU attention code. cuBLAS batches over whichever of b, h is larger (one
// strided-batched call per value of the other), so the launches stay few.
// Pairs must write disjoint parts of C.
static inline ubd_status ubd_rm_sgemm_pairs(cublasHandle_t h, int ta, int tb, int M, int N, int K, float alpha,
                                            const float *A, int lda, ubd_pair_strides sA, const float *B, int ldb,
                                            ubd_pair_strides sB, float beta, float *C, int ldc, ubd_pair_strides sC,
                                            int nb, int nh) {
    const bool over_b = nb >= nh;
    const int batch = over_b ? nb : nh, outer = over_b ? nh : nb;
    const long long bA = over_b ? sA.sb : sA.sh, bB = over_b ? sB.sb : sB.sh, bC = over_b ? sC.sb : sC.sh;
    const long long oA = over_b ? sA.sh : sA.sb, oB = over_b ? sB.sh : sB.sb, oC = over_b ? sC.sh : sC.sb;
    for (int o = 0; o < outer; o++) {
        const cublasOperation_t opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
        cublasStatus_t s =
            ubd_cuda_tf32_get()
                ? cublasGemmStridedBatchedEx(h, opB, opA, N, M, K, &alpha, B + o * oB, CUDA_R_32F, ldb, bB, A + o * oA,
                                             CUDA_R_32F, lda, bA, &beta, C + o * oC, CUDA_R_32F, ldc, bC, batch,
                                             CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT)
                : cublasSgemmStridedBatched(h, opB, opA, N, M, K, &alpha, B + o * oB, ldb, bB, A + o * oA, lda, bA,
                                            &beta, C + o * oC, ldc, bC, batch);
        if (s != CUBLAS_STATUS_SUCCESS)
            return ubd_fail(UBD_ERR_CUDA,
                            "%s (M=%d N=%d K=%d, batch %d) failed with cuBLAS status %d",
                            ubd_cuda_tf32_get() ? "cublasGemmStridedBatchedEx (TF32)" : "cublasSgemmStridedBatched", M, N,
                            K, batch, (int)s);
    }
    return UBD_OK;
}

#endif
