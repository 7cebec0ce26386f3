/* batchnorm.c — BatchNorm over the channels of (B, C, S), S = H*W (S = 1 for
 * (B, C) features), as torch.nn.BatchNorm1d/2d.
 *
 * Statistics are two-pass and accumulated in double, so they stay accurate for
 * large B*S (a single-pass E[x^2] - E[x]^2 in float loses everything when the
 * mean is large against the spread). One channel is owned by one thread, so the
 * results do not depend on the thread count. */
#include <math.h>

#include "norm.h"

#define UBD_PAR_THRESHOLD 32768

static ubd_status check_sizes(const char *fn, int B, int C, int S) {
    UBD_REQUIRE(B > 0 && C > 0 && S > 0, UBD_ERR_VALUE, "%s: sizes must be positive, got B=%d C=%d S=%d", fn, B, C, S);
    return UBD_OK;
}

ubd_status ubd_cpu_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                           float *running_var, const float *inp, const float *gamma, const float *beta,
                                           int B, int C, int S, float momentum, float eps) {
    UBD_TRY(check_sizes(__func__, B, C, S));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(mean);
    UBD_REQUIRE_PTR(rstd);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(gamma);
    UBD_REQUIRE_PTR(beta);
    UBD_REQUIRE((running_mean == NULL) == (running_var == NULL), UBD_ERR_VALUE,
                "%s: running_mean and running_var must both be given or both be NULL", __func__);
    /* PyTorch refuses this too: one value per channel has no (unbiased) variance */
    UBD_REQUIRE((long long)B * S > 1, UBD_ERR_VALUE,
                "%s: training mode needs more than one value per channel, got B*S=%lld", __func__, (long long)B * S);
    UBD_REQUIRE(momentum >= 0.0f && momentum <= 1.0f, UBD_ERR_VALUE, "%s: momentum must lie in [0, 1], got %g",
                __func__, momentum);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    const double n = (double)B * S;
    const size_t cs = (size_t)C * S;
#pragma omp parallel for schedule(static) if ((long long)B * C * S > UBD_PAR_THRESHOLD)
    for (int c = 0; c < C; c++) {
        double sum = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + b * cs + (size_t)c * S;
#pragma omp simd reduction(+ : sum)
            for (int s = 0; s < S; s++) sum += x[s];
        }
        const double m = sum / n;
        double sq = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + b * cs + (size_t)c * S;
#pragma omp simd reduction(+ : sq)
            for (int s = 0; s < S; s++) {
                double d = x[s] - m;
                sq += d * d;
            }
        }
        const double var = sq / n; /* biased: used to normalise */
        const double r = 1.0 / sqrt(var + (double)eps);
        mean[c] = (float)m;
        rstd[c] = (float)r;
        const float sc = (float)(gamma[c] * r), sh = (float)(beta[c] - gamma[c] * r * m);
        for (int b = 0; b < B; b++) {
            const float *x = inp + b * cs + (size_t)c * S;
            float *y = out + b * cs + (size_t)c * S;
            for (int s = 0; s < S; s++) y[s] = x[s] * sc + sh;
        }
        if (running_mean) { /* unbiased variance for the running estimate, as PyTorch */
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * m);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * sq / (n - 1.0));
        }
    }
    return UBD_OK;
}

ubd_status ubd_cpu_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                          const float *running_mean, const float *running_var, int B, int C, int S,
                                          float eps) {
    UBD_TRY(check_sizes(__func__, B, C, S));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(gamma);
    UBD_REQUIRE_PTR(beta);
    UBD_REQUIRE_PTR(running_mean);
    UBD_REQUIRE_PTR(running_var);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    for (int c = 0; c < C; c++) /* before the parallel region: errors are thread-local */
        UBD_REQUIRE(running_var[c] >= 0.0f, UBD_ERR_VALUE, "%s: running_var[%d] = %g is negative", __func__, c,
                    running_var[c]);
    const size_t cs = (size_t)C * S;
#pragma omp parallel for collapse(2) schedule(static) if ((long long)B * C * S > UBD_PAR_THRESHOLD)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const double r = 1.0 / sqrt((double)running_var[c] + eps);
            const float sc = (float)(gamma[c] * r), sh = (float)(beta[c] - gamma[c] * r * running_mean[c]);
            const float *x = inp + b * cs + (size_t)c * S;
            float *y = out + b * cs + (size_t)c * S;
            for (int s = 0; s < S; s++) y[s] = x[s] * sc + sh;
        }
    return UBD_OK;
}

/* With xhat = (x - mean) rstd and y = gamma xhat + beta (batch statistics):
 *   dbeta = sum dy, dgamma = sum dy xhat,
 *   dx = gamma rstd / n * (n dy - sum dy - xhat sum dy xhat). */
ubd_status ubd_cpu_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                      const float *gamma, const float *mean, const float *rstd, int B, int C, int S) {
    UBD_TRY(check_sizes(__func__, B, C, S));
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(mean);
    UBD_REQUIRE_PTR(rstd);
    if (dinp) UBD_REQUIRE_PTR(gamma);
    const double n = (double)B * S;
    const size_t cs = (size_t)C * S;
#pragma omp parallel for schedule(static) if ((long long)B * C * S > UBD_PAR_THRESHOLD)
    for (int c = 0; c < C; c++) {
        const double m = mean[c], r = rstd[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + b * cs + (size_t)c * S;
            const float *dy = dout + b * cs + (size_t)c * S;
#pragma omp simd reduction(+ : sdy, sdyx)
            for (int s = 0; s < S; s++) {
                sdy += dy[s];
                sdyx += dy[s] * ((x[s] - m) * r);
            }
        }
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dinp) {
            const double k = gamma[c] * r;
            const float a = (float)k, off = (float)(-k * sdy / n), bx = (float)(-k * sdyx / n * r);
            /* dx = a dy + off + bx (x - m) */
            const float fm = (float)m;
            for (int b = 0; b < B; b++) {
                const float *x = inp + b * cs + (size_t)c * S;
                const float *dy = dout + b * cs + (size_t)c * S;
                float *dx = dinp + b * cs + (size_t)c * S;
                for (int s = 0; s < S; s++) dx[s] += a * dy[s] + off + bx * (x[s] - fm);
            }
        }
    }
    return UBD_OK;
}

/* Eval mode: running statistics are constants, so BatchNorm is an affine map. */
ubd_status ubd_cpu_batchnorm_backward_eval(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                           const float *inp, const float *gamma, const float *running_mean,
                                           const float *running_var, int B, int C, int S, float eps) {
    UBD_TRY(check_sizes(__func__, B, C, S));
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(running_var);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    if (dinp) UBD_REQUIRE_PTR(gamma);
    if (dgamma) {
        UBD_REQUIRE_PTR(inp);
        UBD_REQUIRE_PTR(running_mean);
    }
    for (int c = 0; c < C; c++)
        UBD_REQUIRE(running_var[c] >= 0.0f, UBD_ERR_VALUE, "%s: running_var[%d] = %g is negative", __func__, c,
                    running_var[c]);
    const size_t cs = (size_t)C * S;
#pragma omp parallel for schedule(static) if ((long long)B * C * S > UBD_PAR_THRESHOLD)
    for (int c = 0; c < C; c++) {
        const double r = 1.0 / sqrt((double)running_var[c] + eps);
        double sdy = 0.0, sdyx = 0.0;
        const float a = dinp ? (float)(gamma[c] * r) : 0.0f;
        const double m = dgamma ? running_mean[c] : 0.0;
        for (int b = 0; b < B; b++) {
            const float *dy = dout + b * cs + (size_t)c * S;
            if (dinp) {
                float *dx = dinp + b * cs + (size_t)c * S;
                for (int s = 0; s < S; s++) dx[s] += a * dy[s];
            }
            if (dbeta) {
#pragma omp simd reduction(+ : sdy)
                for (int s = 0; s < S; s++) sdy += dy[s];
            }
            if (dgamma) {
                const float *x = inp + b * cs + (size_t)c * S;
#pragma omp simd reduction(+ : sdyx)
                for (int s = 0; s < S; s++) sdyx += dy[s] * ((x[s] - m) * r);
            }
        }
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
    }
    return UBD_OK;
}
