/* backend.c — choosing a backend by name, and staging host inputs. See backend.h. */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#ifdef UBDIFF_WITH_CUDA
#include "cuda_api.h"
#endif

extern const ubd_backend ubd_backend_table_cpu; /* cpu/backend_cpu.c */
#ifdef UBDIFF_WITH_CUDA
/* cuda/backend_cuda.cu: one table per math mode, indexed by ubd_math_mode */
extern const ubd_backend ubd_backend_table_cuda, ubd_backend_table_cuda_tf32_conv, ubd_backend_table_cuda_tf32;
#endif

const ubd_backend *ubd_backend_cpu(void) { return &ubd_backend_table_cpu; }

static const char *const MATH_NAMES[UBD_MATH_NUM] = {"fp32", "tf32-conv", "tf32"};

const char *ubd_math_mode_name(int math) { return math >= 0 && math < UBD_MATH_NUM ? MATH_NAMES[math] : NULL; }

int ubd_math_mode_parse(const char *name) {
    for (int k = 0; name && k < UBD_MATH_NUM; k++)
        if (strcmp(name, MATH_NAMES[k]) == 0) return k;
    return -1;
}

/* -1: not read yet (UBDIFF_MATH decides on first use). A plain int: set from
 * Python under the GIL, read when a model is created. */
static int current_math = -1;

ubd_math_mode ubd_get_math_mode(void) {
    if (current_math < 0) {
        const int m = ubd_math_mode_parse(getenv("UBDIFF_MATH"));
        current_math = m < 0 ? UBD_MATH_FP32 : m; /* an unknown value: the strict default */
    }
    return (ubd_math_mode)current_math;
}

ubd_status ubd_set_math_mode(ubd_math_mode math) {
    UBD_REQUIRE((int)math >= 0 && math < UBD_MATH_NUM, UBD_ERR_VALUE,
                "math mode must be 'fp32', 'tf32-conv' or 'tf32' (0, 1, 2), got %d", (int)math);
    current_math = (int)math;
    return UBD_OK;
}

ubd_status ubd_backend_find(const char *device, const ubd_backend **out) {
    return ubd_backend_find_math(device, ubd_get_math_mode(), out);
}

ubd_status ubd_backend_find_math(const char *device, ubd_math_mode math, const ubd_backend **out) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_REQUIRE(device != NULL, UBD_ERR_VALUE, "device must be 'cpu', 'cuda' or 'auto', got NULL");
    const int cpu = strcmp(device, "cpu") == 0, cuda = strcmp(device, "cuda") == 0, autom = strcmp(device, "auto") == 0;
    UBD_REQUIRE(cpu || cuda || autom, UBD_ERR_VALUE, "device must be 'cpu', 'cuda' or 'auto', got '%s'", device);
    UBD_REQUIRE((int)math >= 0 && math < UBD_MATH_NUM, UBD_ERR_VALUE, "unknown math mode %d", (int)math);
    if (cpu) {
        *out = &ubd_backend_table_cpu;
        return UBD_OK;
    }
#ifdef UBDIFF_WITH_CUDA
    if (ubd_cuda_device_count() > 0) {
        static const ubd_backend *const by_math[UBD_MATH_NUM] = {
            &ubd_backend_table_cuda, &ubd_backend_table_cuda_tf32_conv, &ubd_backend_table_cuda_tf32};
        *out = by_math[math];
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
