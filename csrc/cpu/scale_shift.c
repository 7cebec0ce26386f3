/* scale_shift.c — the U-Net ResBlock's modulation x * (1 + scale) + shift with
 * ss (B, 2C) = [scale | shift] per sample (chunk(2, dim=1) order), and axpy for
 * residual adds. Each (sample, channel) row is owned by one thread. */
#include "shape_ops.h"

#define UBD_PAR_THRESHOLD 32768

ubd_status ubd_cpu_scale_shift_forward(float *out, const float *x, const float *ss, int B, int C, int L) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(L);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE_PTR(ss);
#pragma omp parallel for schedule(static) if ((long long)B * C * L > UBD_PAR_THRESHOLD)
    for (long long r = 0; r < (long long)B * C; r++) {
        const long long b = r / C, c = r % C;
        const float sc = 1.0f + ss[b * 2 * C + c], sh = ss[b * 2 * C + C + c];
        const float *xr = x + r * L;
        float *y = out + r * L;
        for (int l = 0; l < L; l++) y[l] = xr[l] * sc + sh;
    }
    return UBD_OK;
}

/* dx += dout (1 + scale); dscale += sum_l dout x; dshift += sum_l dout. */
ubd_status ubd_cpu_scale_shift_backward(float *dx, float *dss, const float *dout, const float *x, const float *ss,
                                        int B, int C, int L) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(L);
    UBD_REQUIRE_PTR(dout);
    if (dx) UBD_REQUIRE_PTR(ss);
    if (dss) UBD_REQUIRE_PTR(x);
#pragma omp parallel for schedule(static) if ((long long)B * C * L > UBD_PAR_THRESHOLD)
    for (long long r = 0; r < (long long)B * C; r++) {
        const long long b = r / C, c = r % C;
        const float *dy = dout + r * L;
        if (dx) {
            const float sc = 1.0f + ss[b * 2 * C + c];
            float *d = dx + r * L;
            for (int l = 0; l < L; l++) d[l] += dy[l] * sc;
        }
        if (dss) {
            const float *xr = x + r * L;
            double s1 = 0.0, s0 = 0.0;
#pragma omp simd reduction(+ : s1, s0)
            for (int l = 0; l < L; l++) {
                s1 += (double)dy[l] * xr[l];
                s0 += dy[l];
            }
            dss[b * 2 * C + c] += (float)s1;
            dss[b * 2 * C + C + c] += (float)s0;
        }
    }
    return UBD_OK;
}

ubd_status ubd_cpu_axpy(float *y, const float *x, size_t n, float a) {
    UBD_REQUIRE((y && x) || n == 0, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
#pragma omp parallel for schedule(static) if (n > UBD_PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
    return UBD_OK;
}
