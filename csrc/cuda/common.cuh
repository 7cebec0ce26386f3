// common.cuh — error checks and launch helpers shared by the CUDA sources.
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

static inline unsigned ubd_grid(size_t n, unsigned block) {
    size_t g = (n + block - 1) / block;
    return (unsigned)(g > 65535u * 32u ? 65535u * 32u : g);  // grid-stride loops cover the rest
}

// The process-wide cuBLAS handle (created on first use).
extern "C" ubd_status ubd_cuda_blas_handle(cublasHandle_t *h);

#endif
