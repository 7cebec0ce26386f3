/* syncbn.c — BatchNorm2d with statistics over all data-parallel ranks; see syncbn.h.
 * The per-channel sums are taken in double, as ubd_cpu_batchnorm_* take them, two
 * passes (mean, then squared deviations) so the variance does not cancel. */
#include "syncbn.h"

#include <math.h>
#include <stdlib.h>

static ubd_status reduce(const ubd_bn_sync *sync, double *buf, size_t n, const char *what) {
    UBD_REQUIRE(sync->fn(buf, n, sync->ctx) == 0, UBD_ERR_VALUE, "syncbn: the all-reduce of the %s failed", what);
    return UBD_OK;
}

static ubd_status check(const ubd_bn_sync *sync, int B, int C, int S) {
    UBD_REQUIRE(sync != NULL && sync->fn != NULL, UBD_ERR_VALUE, "syncbn: no all-reduce hook");
    UBD_REQUIRE(B > 0 && C > 0 && S > 0, UBD_ERR_VALUE, "syncbn: sizes must be positive, got B=%d C=%d S=%d", B, C, S);
    return UBD_OK;
}

ubd_status ubd_syncbn_forward_train(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                    const float *inp, const float *gamma, const float *beta, int B, int C, int S,
                                    float momentum, float eps, const ubd_bn_sync *sync) {
    UBD_TRY(check(sync, B, C, S));
    UBD_REQUIRE(out && mean && rstd && inp && gamma && beta, UBD_ERR_VALUE, "syncbn_forward_train: NULL buffer");
    UBD_REQUIRE((running_mean == NULL) == (running_var == NULL), UBD_ERR_VALUE,
                "syncbn_forward_train: running_mean and running_var must both be given or both be NULL");
    UBD_REQUIRE(eps > 0.0f && momentum >= 0.0f && momentum <= 1.0f, UBD_ERR_VALUE,
                "syncbn_forward_train: need eps > 0 and momentum in [0, 1], got %g, %g", eps, momentum);
    const size_t cs = (size_t)C * S;
    /* buf: per-channel sums (then squared deviations), the count; mu: the global means in double */
    double *buf = malloc((2 * (size_t)C + 1) * sizeof(double));
    UBD_REQUIRE(buf != NULL, UBD_ERR_MEMORY, "syncbn: out of memory");
    double *mu = buf + C + 1;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sum = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + b * cs + (size_t)c * S;
            for (int s = 0; s < S; s++) sum += x[s];
        }
        buf[c] = sum;
    }
    buf[C] = (double)B * S;
    ubd_status st = reduce(sync, buf, (size_t)C + 1, "BatchNorm sums");
    const double n = buf[C];
    if (st == UBD_OK && !(n > 1.0)) st = ubd_fail(UBD_ERR_VALUE, "syncbn: training mode needs more than one value "
                                                                 "per channel over all ranks, got %g", n);
    if (st != UBD_OK) {
        free(buf);
        return st;
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double m = buf[c] / n;
        mu[c] = m;
        mean[c] = (float)m;
        double sq = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + b * cs + (size_t)c * S;
            for (int s = 0; s < S; s++) {
                const double d = x[s] - m;
                sq += d * d;
            }
        }
        buf[c] = sq;
    }
    st = reduce(sync, buf, (size_t)C, "BatchNorm squared deviations");
    if (st != UBD_OK) {
        free(buf);
        return st;
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double m = mu[c], sq = buf[c];
        const double r = 1.0 / sqrt(sq / n + (double)eps);
        rstd[c] = (float)r;
        const float sc = (float)(gamma[c] * r), sh = (float)(beta[c] - gamma[c] * r * m);
        for (int b = 0; b < B; b++) {
            const float *x = inp + b * cs + (size_t)c * S;
            float *y = out + b * cs + (size_t)c * S;
            for (int s = 0; s < S; s++) y[s] = x[s] * sc + sh;
        }
        if (running_mean) { /* unbiased variance of the global batch, as PyTorch */
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * m);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * sq / (n - 1.0));
        }
    }
    free(buf);
    return UBD_OK;
}

ubd_status ubd_syncbn_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                               const float *gamma, const float *mean, const float *rstd, int B, int C, int S,
                               const ubd_bn_sync *sync) {
    UBD_TRY(check(sync, B, C, S));
    UBD_REQUIRE(dout && inp && mean && rstd && (gamma || !dinp), UBD_ERR_VALUE, "syncbn_backward: NULL buffer");
    const size_t cs = (size_t)C * S;
    double *buf = malloc((2 * (size_t)C + 1) * sizeof(double)); /* sum dy, sum dy * xhat per channel; count */
    UBD_REQUIRE(buf != NULL, UBD_ERR_MEMORY, "syncbn: out of memory");
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double m = mean[c], r = rstd[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + b * cs + (size_t)c * S;
            const float *dy = dout + b * cs + (size_t)c * S;
            for (int s = 0; s < S; s++) {
                sdy += dy[s];
                sdyx += dy[s] * ((x[s] - m) * r);
            }
        }
        if (dbeta) dbeta[c] += (float)sdy; /* this rank's: the flat-buffer all-reduce sums them */
        if (dgamma) dgamma[c] += (float)sdyx;
        buf[2 * c] = sdy;
        buf[2 * c + 1] = sdyx;
    }
    buf[2 * C] = (double)B * S;
    ubd_status st = reduce(sync, buf, 2 * (size_t)C + 1, "BatchNorm gradient sums");
    if (st == UBD_OK && dinp) {
        const double n = buf[2 * C];
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            const double r = rstd[c], k = gamma[c] * r;
            const float a = (float)k, off = (float)(-k * buf[2 * c] / n), bx = (float)(-k * buf[2 * c + 1] / n * r);
            const float fm = mean[c];
            for (int b = 0; b < B; b++) {
                const float *x = inp + b * cs + (size_t)c * S;
                const float *dy = dout + b * cs + (size_t)c * S;
                float *dx = dinp + b * cs + (size_t)c * S;
                for (int s = 0; s < S; s++) dx[s] += a * dy[s] + off + bx * (x[s] - fm);
            }
        }
    }
    free(buf);
    return st;
}
