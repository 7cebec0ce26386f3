/* random.c — fill buffers from a Philox stream (see philox.h), OpenMP-parallel
 * over blocks of 4, so the result does not depend on the thread count. */
#include <math.h>

#include "ops.h"
#include "philox.h"

/* out[i] = uniform (0,1) element (offset + i) of stream (seed, stream). */
ubd_status ubd_cpu_rand_uniform(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    UBD_REQUIRE(out != NULL || n == 0, UBD_ERR_VALUE, "rand_uniform: out is NULL");
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint64_t k = offset + i;
        ubd_u32x4 r = ubd_philox_block(seed, stream, k >> 2);
        out[i] = ubd_u32_to_uniform(r.v[k & 3]);
    }
    return UBD_OK;
}

/* out[i] = standard normal element (offset + i) of stream (seed, stream). */
ubd_status ubd_cpu_rand_normal(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    UBD_REQUIRE(out != NULL || n == 0, UBD_ERR_VALUE, "rand_normal: out is NULL");
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint64_t k = offset + i;
        ubd_u32x4 r = ubd_philox_block(seed, stream, k >> 2);
        float n0, n1;
        int pair = (int)(k & 2); /* lanes (0,1) or (2,3) */
        ubd_box_muller(r.v[pair], r.v[pair + 1], &n0, &n1);
        out[i] = (k & 1) ? n1 : n0;
    }
    return UBD_OK;
}

/* out[i] = (2 u - 1) * bound with u the rand_uniform element: PyTorch's default
 * initialisation U(-bound, bound), in the expression every model used to
 * apply after rand_uniform (so parameters keep their bits). */
ubd_status ubd_cpu_init_uniform(float *out, size_t n, float bound, uint64_t seed, uint64_t stream, uint64_t offset) {
    UBD_REQUIRE(out != NULL || n == 0, UBD_ERR_VALUE, "init_uniform: out is NULL");
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint64_t k = offset + i;
        ubd_u32x4 r = ubd_philox_block(seed, stream, k >> 2);
        out[i] = (2.0f * ubd_u32_to_uniform(r.v[k & 3]) - 1.0f) * bound;
    }
    return UBD_OK;
}

/* out[i] = std * standard normal element (offset + i): the scaled normal
 * initialisation (He: std = sqrt(2 / fan_in)); the same value rand_normal
 * followed by a multiplication by std gives. */
ubd_status ubd_cpu_init_normal(float *out, size_t n, float std, uint64_t seed, uint64_t stream, uint64_t offset) {
    UBD_REQUIRE(out != NULL || n == 0, UBD_ERR_VALUE, "init_normal: out is NULL");
    UBD_REQUIRE(std >= 0.0f && isfinite(std), UBD_ERR_VALUE, "init_normal: std must be finite and >= 0, got %g", std);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint64_t k = offset + i;
        ubd_u32x4 r = ubd_philox_block(seed, stream, k >> 2);
        float n0, n1;
        int pair = (int)(k & 2);
        ubd_box_muller(r.v[pair], r.v[pair + 1], &n0, &n1);
        out[i] = ((k & 1) ? n1 : n0) * std;
    }
    return UBD_OK;
}
