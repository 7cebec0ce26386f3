/* cuda_api.h — host-side CUDA services callable from plain C (the binding,
 * models): device discovery and memory. Implemented in cuda/device.cu; in a
 * CPU-only build none of this exists and UBDIFF_WITH_CUDA is undefined. */
#ifndef UBD_CUDA_API_H
#define UBD_CUDA_API_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

int ubd_cuda_device_count(void); /* 0 when no driver / no GPU */
ubd_status ubd_cuda_device_name(int dev, char *buf, size_t len);
ubd_status ubd_cuda_runtime_version(int *v);
ubd_status ubd_cuda_malloc(void **p, size_t bytes);
ubd_status ubd_cuda_free(void *p);
ubd_status ubd_cuda_memcpy(void *dst, const void *src, size_t bytes, int to_device);
ubd_status ubd_cuda_synchronize(void);
ubd_status ubd_cuda_curand_philox_uniform(float *dev_out, size_t n, unsigned long long seed);

#ifdef __cplusplus
}
#endif
#endif
