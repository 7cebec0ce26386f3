// device.cu — device discovery, the backend's stream, the shared cuBLAS
// handle, and host<->device helpers the binding uses to compare CUDA ops with
// their CPU twins.
#include <cuda_runtime.h>
#include <curand.h>
#include <stdio.h>

#include <mutex>

#include "../cuda_api.h"
#include "common.cuh"

// ---- the backend's stream (common.cuh) ----------------------------------------------
static cudaStream_t g_stream = nullptr;
static std::once_flag g_stream_once;
static thread_local cudaStream_t t_override = nullptr;  // a capture in progress on this thread

// Blocking (cudaStreamDefault), so legacy-stream work stays ordered with it. If
// it cannot be created the ops fall back to the legacy stream, which is still
// correct (graphs are captured on a stream of their own and may be launched
// on the legacy stream).
static cudaStream_t backend_stream() {
    std::call_once(g_stream_once, [] {
        cudaStream_t s = nullptr;
        if (cudaStreamCreateWithFlags(&s, cudaStreamDefault) != cudaSuccess) {
            cudaGetLastError();
            s = cudaStreamLegacy;
        }
        g_stream = s;
    });
    return g_stream;
}

extern "C" cudaStream_t ubd_cuda_stream(void) { return t_override ? t_override : backend_stream(); }

extern "C" cudaStream_t ubd_cuda_set_stream(cudaStream_t s) {
    cudaStream_t prev = t_override;
    t_override = s;
    return prev;
}

// ---- the shared cuBLAS handle ----------------------------------------------------------
// Bound to the current stream before each use (only when that changed: a
// capture, and back) and to a workspace of its own: cublasSetStream resets the
// workspace to cuBLAS's internal pool, which allocates per captured graph.
// 32 MiB is cuBLAS's recommendation for Hopper (4 MiB elsewhere). One host
// thread at a time should drive the CUDA backend: the handle is shared.
#define BLAS_WORKSPACE_BYTES ((size_t)32 << 20)
static cublasHandle_t g_handle = nullptr;
static void *g_workspace = nullptr;
static cudaStream_t g_handle_stream = nullptr;
static bool g_handle_bound = false;
static std::mutex g_handle_lock;  // two host threads may make the first call at once

extern "C" ubd_status ubd_cuda_blas_handle(cublasHandle_t *h) {
    std::lock_guard<std::mutex> lock(g_handle_lock);
    if (!g_handle) {  // failure leaves it NULL: the next call retries
        UBD_CUBLAS_TRY(cublasCreate(&g_handle));
        cudaError_t e = cudaMalloc(&g_workspace, BLAS_WORKSPACE_BYTES);
        if (e != cudaSuccess) {
            cudaGetLastError();
            cublasDestroy(g_handle);
            g_handle = nullptr;
            g_workspace = nullptr;
            return ubd_fail(UBD_ERR_MEMORY, "cuda: cannot allocate the %zu MiB cuBLAS workspace: %s",
                            BLAS_WORKSPACE_BYTES >> 20, cudaGetErrorString(e));
        }
        g_handle_bound = false;
    }
    cudaStream_t s = ubd_cuda_stream();
    if (!g_handle_bound || s != g_handle_stream) {
        UBD_CUBLAS_TRY(cublasSetStream(g_handle, s));
        UBD_CUBLAS_TRY(cublasSetWorkspace(g_handle, g_workspace, BLAS_WORKSPACE_BYTES));
        g_handle_stream = s;
        g_handle_bound = true;
    }
    *h = g_handle;
    return UBD_OK;
}

extern "C" int ubd_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver" error
        return 0;
    }
    return n;
}

extern "C" ubd_status ubd_cuda_device_name(int dev, char *buf, size_t len) {
    cudaDeviceProp p;
    UBD_CUDA_TRY(cudaGetDeviceProperties(&p, dev));
    snprintf(buf, len, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor, p.totalGlobalMem / 1073741824.0);
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_runtime_version(int *v) {
    UBD_CUDA_TRY(cudaRuntimeGetVersion(v));
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_malloc(void **p, size_t bytes) {
    UBD_CUDA_TRY(cudaMalloc(p, bytes ? bytes : 4));
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_free(void *p) {
    UBD_CUDA_TRY(cudaFree(p));
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_memcpy(void *dst, const void *src, size_t bytes, int to_device) {
    UBD_CUDA_TRY(cudaMemcpy(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost));
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_synchronize(void) {
    UBD_CUDA_TRY(cudaDeviceSynchronize());
    return UBD_OK;
}

// cuRAND's own Philox, exposed so tests can compare its raw stream with ours.
extern "C" ubd_status ubd_cuda_curand_philox_uniform(float *dev_out, size_t n, unsigned long long seed) {
    UBD_REQUIRE(dev_out != NULL || n == 0, UBD_ERR_VALUE, "%s: dev_out is NULL", __func__);
    if (n == 0) return UBD_OK;
    curandGenerator_t g;
    curandStatus_t s = curandCreateGenerator(&g, CURAND_RNG_PSEUDO_PHILOX4_32_10);
    UBD_REQUIRE(s == CURAND_STATUS_SUCCESS, UBD_ERR_CUDA, "%s: curandCreateGenerator failed (%d)", __func__, (int)s);
    s = curandSetPseudoRandomGeneratorSeed(g, seed);
    if (s == CURAND_STATUS_SUCCESS) s = curandGenerateUniform(g, dev_out, n);
    curandDestroyGenerator(g);
    UBD_REQUIRE(s == CURAND_STATUS_SUCCESS, UBD_ERR_CUDA, "%s: cuRAND seeding or generation failed (%d)", __func__,
                (int)s);
    return UBD_OK;
}
