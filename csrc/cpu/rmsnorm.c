/* rmsnorm.c — the 1-D U-Net's RMSNorm over the channels of (B, C, L):
 *   out = x / max(||x||_2, 1e-12) * g * sqrt(C)   (F.normalize(x, dim=1) * g * sqrt(C)).
 * Each (sample, position) is normalised by one thread; dg is per channel, one
 * channel per thread: no result depends on the thread count. */
#include <math.h>

#include "norm.h"

#define UBD_PAR_THRESHOLD 32768
#define UBD_NORMALIZE_EPS 1e-12 /* F.normalize's default clamp of the norm */

ubd_status ubd_cpu_rmsnorm_forward(float *out, float *rnorm, const float *inp, const float *g, int B, int C, int L) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(L);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(rnorm);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(g);
    const float sqc = (float)sqrt((double)C);
#pragma omp parallel for schedule(static) if ((long long)B * C * L > UBD_PAR_THRESHOLD)
    for (int bl = 0; bl < B * L; bl++) {
        const int b = bl / L, l = bl % L;
        const float *x = inp + (size_t)b * C * L + l;
        float *y = out + (size_t)b * C * L + l;
        double sq = 0.0;
        for (int c = 0; c < C; c++) sq += (double)x[(size_t)c * L] * x[(size_t)c * L];
        const double nrm = sqrt(sq);
        const float r = (float)(1.0 / (nrm > UBD_NORMALIZE_EPS ? nrm : UBD_NORMALIZE_EPS));
        rnorm[bl] = r;
        for (int c = 0; c < C; c++) y[(size_t)c * L] = x[(size_t)c * L] * r * g[c] * sqc;
    }
    return UBD_OK;
}

/* With u = dy g sqrt(C) and r = 1/||x||: dx = r (u - x r^2 (x . u)); where the
 * norm was clamped, r is a constant and dx = r u. dg = sqrt(C) sum_{b,l} dy x r. */
ubd_status ubd_cpu_rmsnorm_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                                    const float *rnorm, int B, int C, int L) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(L);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(rnorm);
    if (dinp) UBD_REQUIRE_PTR(g);
    const double sqc = sqrt((double)C);
    const int par = (long long)B * C * L > UBD_PAR_THRESHOLD;
    if (dinp) {
#pragma omp parallel for schedule(static) if (par)
        for (int bl = 0; bl < B * L; bl++) {
            const int b = bl / L, l = bl % L;
            const size_t o = (size_t)b * C * L + l;
            const double r = rnorm[bl];
            /* forward stored exactly (float)(1/eps) where it clamped the norm */
            const int clamped = rnorm[bl] >= (float)(1.0 / UBD_NORMALIZE_EPS);
            double xu = 0.0;
            if (!clamped)
                for (int c = 0; c < C; c++) xu += (double)inp[o + (size_t)c * L] * dout[o + (size_t)c * L] * g[c];
            const float a = (float)(r * sqc), bx = (float)(-r * r * r * sqc * xu);
            for (int c = 0; c < C; c++) {
                const size_t i = o + (size_t)c * L;
                dinp[i] += a * g[c] * dout[i] + bx * inp[i];
            }
        }
    }
    if (dg) {
#pragma omp parallel for schedule(static) if (par)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int b = 0; b < B; b++) {
                const float *x = inp + ((size_t)b * C + c) * L;
                const float *dy = dout + ((size_t)b * C + c) * L;
                const float *r = rnorm + (size_t)b * L;
#pragma omp simd reduction(+ : s)
                for (int l = 0; l < L; l++) s += (double)dy[l] * x[l] * r[l];
            }
            dg[c] += (float)(s * sqc);
        }
    }
    return UBD_OK;
}
