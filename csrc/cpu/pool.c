/* pool.c — global average pooling (backend.h: mean_pool_forward / _backward),
 * the feature net's step from its last feature maps to the feature vector.
 *
 * Each mean is summed in double, in order, one row per iteration, so the
 * result does not depend on the thread count (and matches the CUDA twin,
 * which sums each row the same way). */
#include "backend.h"

ubd_status ubd_cpu_mean_pool_forward(float *out, const float *inp, int N, int S) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(S);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
#pragma omp parallel for schedule(static) if ((long long)N * S > 65536)
    for (int i = 0; i < N; i++) {
        const float *r = inp + (size_t)i * S;
        double s = 0.0;
        for (int j = 0; j < S; j++) s += r[j];
        out[i] = (float)(s / S);
    }
    return UBD_OK;
}

ubd_status ubd_cpu_mean_pool_backward(float *dinp, const float *dout, int N, int S) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(S);
    UBD_REQUIRE_PTR(dinp);
    UBD_REQUIRE_PTR(dout);
    const float inv = 1.0f / (float)S; /* every position of a row gets dout / S */
#pragma omp parallel for schedule(static) if ((long long)N * S > 65536)
    for (int i = 0; i < N; i++) {
        float *r = dinp + (size_t)i * S;
        const float g = dout[i] * inv;
        for (int j = 0; j < S; j++) r[j] += g;
    }
    return UBD_OK;
}
