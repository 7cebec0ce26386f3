/* groupnorm.c — GroupNorm over (B, C, S) in G groups of C/G channels, with a
 * per-channel affine (torch.nn.GroupNorm). A group of one sample is a
 * contiguous block of (C/G)*S floats; its statistics are two-pass in double.
 * Each (sample, group) and, in backward, each channel's parameter gradient is
 * owned by one thread: results do not depend on the thread count. */
#include <math.h>

#include "norm.h"

#define UBD_PAR_THRESHOLD 32768

static ubd_status check(const char *fn, int B, int C, int S, int G) {
    UBD_REQUIRE(B > 0 && C > 0 && S > 0 && G > 0, UBD_ERR_VALUE, "%s: sizes must be positive, got B=%d C=%d S=%d G=%d",
                fn, B, C, S, G);
    UBD_REQUIRE(C % G == 0, UBD_ERR_VALUE, "%s: channels C=%d are not divisible by groups G=%d", fn, C, G);
    return UBD_OK;
}

ubd_status ubd_cpu_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                     const float *beta, int B, int C, int S, int G, float eps) {
    UBD_TRY(check(__func__, B, C, S, G));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(mean);
    UBD_REQUIRE_PTR(rstd);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(gamma);
    UBD_REQUIRE_PTR(beta);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    const int cpg = C / G;
    const size_t gsize = (size_t)cpg * S;
#pragma omp parallel for schedule(static) if ((long long)B * C * S > UBD_PAR_THRESHOLD)
    for (int bg = 0; bg < B * G; bg++) {
        const float *x = inp + (size_t)bg * gsize;
        float *y = out + (size_t)bg * gsize;
        double sum = 0.0, sq = 0.0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < gsize; i++) sum += x[i];
        const double m = sum / (double)gsize;
#pragma omp simd reduction(+ : sq)
        for (size_t i = 0; i < gsize; i++) {
            double d = x[i] - m;
            sq += d * d;
        }
        const double r = 1.0 / sqrt(sq / (double)gsize + (double)eps);
        mean[bg] = (float)m;
        rstd[bg] = (float)r;
        const int c0 = (bg % G) * cpg;
        for (int k = 0; k < cpg; k++) {
            const float sc = (float)(gamma[c0 + k] * r), sh = (float)(beta[c0 + k] - gamma[c0 + k] * r * m);
            const float *xc = x + (size_t)k * S;
            float *yc = y + (size_t)k * S;
            for (int s = 0; s < S; s++) yc[s] = xc[s] * sc + sh;
        }
    }
    return UBD_OK;
}

/* Per (sample, group) with xhat = (x - mean) rstd, g = gamma of x's channel:
 *   dx = rstd (g dy - mean(g dy) - xhat mean(g dy xhat)),
 * and per channel dgamma = sum_{b,s} dy xhat, dbeta = sum_{b,s} dy. */
ubd_status ubd_cpu_groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                      const float *gamma, const float *mean, const float *rstd, int B, int C, int S,
                                      int G) {
    UBD_TRY(check(__func__, B, C, S, G));
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(mean);
    UBD_REQUIRE_PTR(rstd);
    if (dinp) UBD_REQUIRE_PTR(gamma);
    const int cpg = C / G;
    const size_t gsize = (size_t)cpg * S;
    const int par = (long long)B * C * S > UBD_PAR_THRESHOLD;
    if (dinp) {
#pragma omp parallel for schedule(static) if (par)
        for (int bg = 0; bg < B * G; bg++) {
            const float *x = inp + (size_t)bg * gsize;
            const float *dy = dout + (size_t)bg * gsize;
            float *dx = dinp + (size_t)bg * gsize;
            const double m = mean[bg], r = rstd[bg];
            const int c0 = (bg % G) * cpg;
            double sg = 0.0, sgx = 0.0; /* sums of g dy and g dy xhat */
            for (int k = 0; k < cpg; k++) {
                const double g = gamma[c0 + k];
                double a = 0.0, ax = 0.0;
#pragma omp simd reduction(+ : a, ax)
                for (int s = 0; s < S; s++) {
                    const size_t i = (size_t)k * S + s;
                    a += dy[i];
                    ax += dy[i] * (x[i] - m);
                }
                sg += g * a;
                sgx += g * ax * r;
            }
            const float fm = (float)m, fr = (float)r;
            const float off = (float)(-r * sg / (double)gsize), bx = (float)(-r * r * sgx / (double)gsize);
            for (int k = 0; k < cpg; k++) {
                const float a = gamma[c0 + k] * fr;
                for (int s = 0; s < S; s++) {
                    const size_t i = (size_t)k * S + s;
                    dx[i] += a * dy[i] + off + bx * (x[i] - fm);
                }
            }
        }
    }
    if (dgamma || dbeta) {
#pragma omp parallel for schedule(static) if (par)
        for (int c = 0; c < C; c++) {
            double sdy = 0.0, sdyx = 0.0;
            for (int b = 0; b < B; b++) {
                const int bg = b * G + c / cpg;
                const double m = mean[bg], r = rstd[bg];
                const float *x = inp + ((size_t)b * C + c) * S;
                const float *dy = dout + ((size_t)b * C + c) * S;
                double a = 0.0, ax = 0.0;
#pragma omp simd reduction(+ : a, ax)
                for (int s = 0; s < S; s++) {
                    a += dy[s];
                    ax += dy[s] * (x[s] - m);
                }
                sdy += a;
                sdyx += ax * r;
            }
            if (dbeta) dbeta[c] += (float)sdy;
            if (dgamma) dgamma[c] += (float)sdyx;
        }
    }
    return UBD_OK;
}
