// device.cu — device discovery, the shared cuBLAS handle, and host<->device
// helpers the binding uses to compare CUDA ops with their CPU twins.
#include <cuda_runtime.h>
#include <curand.h>
#include <stdio.h>

#include <mutex>

#include "../cuda_api.h"
#include "common.cuh"

static cublasHandle_t g_handle = nullptr;
static std::mutex g_handle_lock;  // two host threads may make the first call at once

extern "C" ubd_status ubd_cuda_blas_handle(cublasHandle_t *h) {
    std::lock_guard<std::mutex> lock(g_handle_lock);
    if (!g_handle) UBD_CUBLAS_TRY(cublasCreate(&g_handle));  // failure leaves it NULL: the next call retries
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
