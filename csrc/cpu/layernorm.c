/* layernorm.c — LayerNorm over the last axis of (N, C) (torch.nn.LayerNorm(C);
 * the transformer decoder uses eps 1e-6). Rows are independent, so rows are
 * split over threads; the parameter gradients are per column, one column per
 * thread, so no result depends on the thread count. */
#include <math.h>

#include "norm.h"

#define UBD_PAR_THRESHOLD 32768

ubd_status ubd_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                     const float *beta, int N, int C, float eps) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(mean);
    UBD_REQUIRE_PTR(rstd);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(gamma);
    UBD_REQUIRE_PTR(beta);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
#pragma omp parallel for schedule(static) if ((long long)N * C > UBD_PAR_THRESHOLD)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double sum = 0.0, sq = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < C; c++) sum += x[c];
        const double m = sum / C;
#pragma omp simd reduction(+ : sq)
        for (int c = 0; c < C; c++) {
            double d = x[c] - m;
            sq += d * d;
        }
        const double r = 1.0 / sqrt(sq / C + (double)eps);
        mean[n] = (float)m;
        rstd[n] = (float)r;
        const float fm = (float)m, fr = (float)r;
        for (int c = 0; c < C; c++) y[c] = (x[c] - fm) * fr * gamma[c] + beta[c];
    }
    return UBD_OK;
}

/* dx = rstd (g dy - mean_c(g dy) - xhat mean_c(g dy xhat)); dgamma = sum_n dy xhat; dbeta = sum_n dy. */
ubd_status ubd_cpu_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                      const float *gamma, const float *mean, const float *rstd, int N, int C) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(mean);
    UBD_REQUIRE_PTR(rstd);
    if (dinp) UBD_REQUIRE_PTR(gamma);
    const int par = (long long)N * C > UBD_PAR_THRESHOLD;
    if (dinp) {
#pragma omp parallel for schedule(static) if (par)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            const float m = mean[n], r = rstd[n];
            double sg = 0.0, sgx = 0.0;
#pragma omp simd reduction(+ : sg, sgx)
            for (int c = 0; c < C; c++) {
                const double gdy = (double)gamma[c] * dy[c];
                sg += gdy;
                sgx += gdy * ((x[c] - m) * r);
            }
            const float mg = (float)(sg / C), mgx = (float)(sgx / C);
            for (int c = 0; c < C; c++) {
                const float xh = (x[c] - m) * r;
                dx[c] += r * (gamma[c] * dy[c] - mg - xh * mgx);
            }
        }
    }
    if (dgamma || dbeta) {
#pragma omp parallel for schedule(static) if (par)
        for (int c = 0; c < C; c++) {
            double sdy = 0.0, sdyx = 0.0;
            for (int n = 0; n < N; n++) {
                const float dy = dout[(size_t)n * C + c];
                sdy += dy;
                sdyx += (double)dy * ((inp[(size_t)n * C + c] - mean[n]) * rstd[n]);
            }
            if (dbeta) dbeta[c] += (float)sdy;
            if (dgamma) dgamma[c] += (float)sdyx;
        }
    }
    return UBD_OK;
}
