/* softmax.c — numerically stable softmax over the last axis, forward and backward. */
#include "../attention.h"
#include "softmax_row.h"

/* Rows are independent: parallel over rows once there is enough work. */
#define UBD_SOFTMAX_PAR_MIN 32768LL

ubd_status ubd_cpu_softmax_forward(float *out, const float *inp, int N, int D) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(D);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
#pragma omp parallel for schedule(static) if ((long long)N * D > UBD_SOFTMAX_PAR_MIN)
    for (int r = 0; r < N; r++) ubd_softmax_vec(out + (size_t)r * D, inp + (size_t)r * D, D, 1, 1.0f);
    return UBD_OK;
}

/* dinp (N, D) += out * (dout - sum(dout * out)); dout, out (N, D) */
ubd_status ubd_cpu_softmax_backward(float *dinp, const float *dout, const float *out, int N, int D) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(D);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(out);
    if (!dinp) return UBD_OK;
#pragma omp parallel for schedule(static) if ((long long)N * D > UBD_SOFTMAX_PAR_MIN)
    for (int r = 0; r < N; r++) {
        size_t o = (size_t)r * D;
        ubd_softmax_vec_backward(dinp + o, dout + o, out + o, D, 1, 1.0f, 1);
    }
    return UBD_OK;
}
