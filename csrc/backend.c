/* backend.c — choosing a backend by name, and staging host inputs. See backend.h. */
#include "backend.h"

#include <string.h>

#ifdef UBDIFF_WITH_CUDA
#include "cuda_api.h"
#endif

extern const ubd_backend ubd_backend_table_cpu; /* cpu/backend_cpu.c */
#ifdef UBDIFF_WITH_CUDA
extern const ubd_backend ubd_backend_table_cuda; /* cuda/backend_cuda.cu */
#endif

const ubd_backend *ubd_backend_cpu(void) { return &ubd_backend_table_cpu; }

ubd_status ubd_backend_find(const char *device, const ubd_backend **out) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_REQUIRE(device != NULL, UBD_ERR_VALUE, "device must be 'cpu', 'cuda' or 'auto', got NULL");
    const int cpu = strcmp(device, "cpu") == 0, cuda = strcmp(device, "cuda") == 0, autom = strcmp(device, "auto") == 0;
    UBD_REQUIRE(cpu || cuda || autom, UBD_ERR_VALUE, "device must be 'cpu', 'cuda' or 'auto', got '%s'", device);
    if (cpu) {
        *out = &ubd_backend_table_cpu;
        return UBD_OK;
    }
#ifdef UBDIFF_WITH_CUDA
    if (ubd_cuda_device_count() > 0) {
        *out = &ubd_backend_table_cuda;
        return UBD_OK;
    }
    UBD_REQUIRE(autom, UBD_ERR_RUNTIME,
                "device='cuda': this ubdiff was built with CUDA but no CUDA GPU is visible (no GPU, no driver, or "
                "CUDA_VISIBLE_DEVICES hides them); use device='cpu' or 'auto'");
#else
    UBD_REQUIRE(autom, UBD_ERR_RUNTIME,
                "device='cuda': this ubdiff was built without CUDA (UBDIFF_CUDA=0, or no nvcc at build time); "
                "use device='cpu' or 'auto', or reinstall with nvcc on PATH");
#endif
    *out = &ubd_backend_table_cpu; /* "auto" without a GPU */
    return UBD_OK;
}

const ubd_backend *ubd_backend_get(const char *device) {
    const ubd_backend *be = NULL;
    return ubd_backend_find(device, &be) == UBD_OK ? be : NULL;
}

ubd_status ubd_stage_in(const ubd_backend *be, const float **dev, float *stage, const float *host, size_t n) {
    UBD_REQUIRE(be && dev, UBD_ERR_VALUE, "stage_in: NULL backend or destination");
    UBD_REQUIRE(host != NULL || n == 0, UBD_ERR_VALUE, "stage_in: NULL host array");
    if (be->host_memory) {
        *dev = host;
        return UBD_OK;
    }
    UBD_REQUIRE(stage != NULL || n == 0, UBD_ERR_RUNTIME, "stage_in: no staging buffer on %s", be->name);
    if (n) UBD_TRY(be->copy(stage, host, n * sizeof(float), UBD_H2D));
    *dev = stage;
    return UBD_OK;
}

ubd_status ubd_stage_in_int(const ubd_backend *be, const int **dev, int *stage, const int *host, size_t n) {
    UBD_REQUIRE(be && dev, UBD_ERR_VALUE, "stage_in_int: NULL backend or destination");
    UBD_REQUIRE(host != NULL || n == 0, UBD_ERR_VALUE, "stage_in_int: NULL host array");
    if (be->host_memory) {
        *dev = host;
        return UBD_OK;
    }
    UBD_REQUIRE(stage != NULL || n == 0, UBD_ERR_RUNTIME, "stage_in_int: no staging buffer on %s", be->name);
    if (n) UBD_TRY(be->copy(stage, host, n * sizeof(int), UBD_H2D));
    *dev = stage;
    return UBD_OK;
}

float *ubd_stage_out(const ubd_backend *be, float *stage, float *host) { return be->host_memory ? host : stage; }
