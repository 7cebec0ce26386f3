/* concat.c — channel concatenation a (B,C1,S) ++ b (B,C2,S) -> (B,C1+C2,S)
 * (torch.cat(dim=1), the U-Net's skip connections) and its backward split. */
#include <string.h>

#include "shape_ops.h"

#define UBD_PAR_THRESHOLD 32768

static ubd_status check(const char *fn, int B, int C1, int C2, int S) {
    UBD_REQUIRE(B > 0 && C1 > 0 && C2 > 0 && S > 0, UBD_ERR_VALUE,
                "%s: sizes must be positive, got B=%d C1=%d C2=%d S=%d", fn, B, C1, C2, S);
    return UBD_OK;
}

ubd_status ubd_cpu_concat_forward(float *out, const float *a, const float *b, int B, int C1, int C2, int S) {
    UBD_TRY(check(__func__, B, C1, C2, S));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(a);
    UBD_REQUIRE_PTR(b);
    const size_t na = (size_t)C1 * S, nb = (size_t)C2 * S;
#pragma omp parallel for schedule(static) if ((long long)B * (na + nb) > UBD_PAR_THRESHOLD)
    for (int i = 0; i < B; i++) {
        float *y = out + (size_t)i * (na + nb);
        memcpy(y, a + (size_t)i * na, na * sizeof(float));
        memcpy(y + na, b + (size_t)i * nb, nb * sizeof(float));
    }
    return UBD_OK;
}

ubd_status ubd_cpu_concat_backward(float *da, float *db, const float *dout, int B, int C1, int C2, int S) {
    UBD_TRY(check(__func__, B, C1, C2, S));
    UBD_REQUIRE_PTR(dout);
    const size_t na = (size_t)C1 * S, nb = (size_t)C2 * S;
#pragma omp parallel for schedule(static) if ((long long)B * (na + nb) > UBD_PAR_THRESHOLD)
    for (int i = 0; i < B; i++) {
        const float *dy = dout + (size_t)i * (na + nb);
        if (da) {
            float *d = da + (size_t)i * na;
            for (size_t k = 0; k < na; k++) d[k] += dy[k];
        }
        if (db) {
            float *d = db + (size_t)i * nb;
            for (size_t k = 0; k < nb; k++) d[k] += dy[na + k];
        }
    }
    return UBD_OK;
}
