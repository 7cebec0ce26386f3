// memory.cu — the CUDA backend's memory entries (backend.h): device memory
// from cudaMalloc, copies in the direction asked, sync = device synchronise.
// ubd_cuda_free lives in device.cu (the binding's host round trips use it too).
#include "../backend.h"
#include "common.cuh"

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

extern "C" ubd_status ubd_cuda_alloc(void **p, size_t bytes) {
    UBD_REQUIRE_PTR(p);
    *p = NULL;
    // cudaMalloc aligns to at least 256 bytes
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 64);
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();  // an allocation failure is not sticky: clear it
        return ubd_fail(e == cudaErrorMemoryAllocation ? UBD_ERR_MEMORY : UBD_ERR_CUDA,
                        "cuda: cannot allocate %.1f MiB of device memory: %s", (double)bytes / (1 << 20),
                        cudaGetErrorString(e));
    }
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_zero(float *p, size_t n) {
    UBD_REQUIRE(p != NULL || n == 0, UBD_ERR_VALUE, "zero: p is NULL");
    if (n) UBD_CUDA_TRY(cudaMemsetAsync(p, 0, n * sizeof(float), ubd_cuda_stream()));
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_copy(void *dst, const void *src, size_t bytes, ubd_copy_dir dir) {
    UBD_REQUIRE(dir == UBD_H2D || dir == UBD_D2H || dir == UBD_D2D, UBD_ERR_VALUE, "copy: bad direction %d",
                (int)dir);
    UBD_REQUIRE((dst && src) || bytes == 0, UBD_ERR_VALUE, "copy: NULL %s", dst ? "source" : "destination");
    if (bytes == 0 || dst == src) return UBD_OK;
    const cudaMemcpyKind kind = dir == UBD_H2D   ? cudaMemcpyHostToDevice
                                : dir == UBD_D2H ? cudaMemcpyDeviceToHost
                                                 : cudaMemcpyDeviceToDevice;
    // synchronous for host memory (pageable: the host buffer may be reused at once), queued on the device
    if (dir == UBD_D2D)
        UBD_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, ubd_cuda_stream()));
    else
        UBD_CUDA_TRY(cudaMemcpy(dst, src, bytes, kind));
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_sync(void) {
    UBD_CUDA_TRY(cudaDeviceSynchronize());
    return UBD_OK;
}

__global__ void fill_k(float *p, size_t n, float value) { GRID_STRIDE(i, n) p[i] = value; }

extern "C" ubd_status ubd_cuda_fill(float *p, size_t n, float value) {
    UBD_REQUIRE(p != NULL || n == 0, UBD_ERR_VALUE, "fill: p is NULL");
    if (n == 0) return UBD_OK;
    fill_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(p, n, value);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}
