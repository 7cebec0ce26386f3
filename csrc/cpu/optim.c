/* optim.c — Adam(W), EMA and gradient-norm clipping over flat buffers. */
#include <math.h>

#include "act_math.h"
#include "ops.h"

/* The one check of Adam's hyper-parameters, run by every training step before
 * it changes anything (comparisons are written so that NaN fails them). */
ubd_status ubd_adam_check(const char *who, ubd_adam_hparams hp) {
    UBD_REQUIRE(isfinite(hp.lr) && hp.lr >= 0.0f, UBD_ERR_VALUE, "%s: lr must be finite and >= 0, got %g", who,
                hp.lr);
    UBD_REQUIRE(hp.beta1 >= 0.0f && hp.beta1 < 1.0f && hp.beta2 >= 0.0f && hp.beta2 < 1.0f, UBD_ERR_VALUE,
                "%s: betas must lie in [0, 1), got (%g, %g)", who, hp.beta1, hp.beta2);
    UBD_REQUIRE(isfinite(hp.eps) && hp.eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and > 0, got %g", who,
                hp.eps);
    UBD_REQUIRE(isfinite(hp.weight_decay) && hp.weight_decay >= 0.0f, UBD_ERR_VALUE,
                "%s: weight_decay must be finite and >= 0, got %g", who, hp.weight_decay);
    return UBD_OK;
}

static ubd_status check_hp(ubd_adam_hparams hp, long long t) {
    UBD_REQUIRE(t >= 1, UBD_ERR_VALUE, "adam_update: step t must be >= 1, got %lld", t);
    return ubd_adam_check("adam_update", hp);
}

ubd_status ubd_cpu_adam_update(float *param, float *m, float *v, const float *grad, size_t n, ubd_adam_hparams hp,
                               long long t) {
    UBD_TRY(check_hp(hp, t));
    UBD_REQUIRE((param && m && v && grad) || n == 0, UBD_ERR_VALUE, "adam_update: NULL buffer");
    const float bc1 = (float)(1.0 - pow(hp.beta1, (double)t));
    const float bc2 = (float)(1.0 - pow(hp.beta2, (double)t));
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) ubd_adam_elem(&param[i], &m[i], &v[i], grad[i], hp, bc1, bc2);
    return UBD_OK;
}

ubd_status ubd_cpu_ema_update(float *ema, const float *param, size_t n, float decay) {
    UBD_REQUIRE(decay >= 0.0f && decay <= 1.0f, UBD_ERR_VALUE, "ema_update: decay must lie in [0, 1], got %g", decay);
    UBD_REQUIRE((ema && param) || n == 0, UBD_ERR_VALUE, "ema_update: NULL buffer");
    const float a = 1.0f - decay;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) ema[i] += a * (param[i] - ema[i]);
    return UBD_OK;
}

ubd_status ubd_cpu_grad_norm(float *norm, const float *grad, size_t n) {
    UBD_REQUIRE_PTR(norm);
    UBD_REQUIRE(grad || n == 0, UBD_ERR_VALUE, "grad_norm: NULL buffer");
    /* Fixed blocks summed in a fixed order (not an OpenMP reduction, whose
     * partial sums follow the thread count): the norm scales every gradient
     * when clipping, so it must not change the bits at another thread count. */
    enum { NB = 64 };
    double part[NB];
    const size_t per = (n + NB - 1) / NB;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int k = 0; k < NB; k++) {
        const size_t lo = (size_t)k * per, hi = lo + per < n ? lo + per : n;
        double t = 0.0;
        for (size_t i = lo; i < hi; i++) t += (double)grad[i] * (double)grad[i];
        part[k] = t;
    }
    double s = 0.0;
    for (int k = 0; k < NB; k++) s += part[k];
    *norm = (float)sqrt(s);
    return UBD_OK;
}

ubd_status ubd_cpu_clip_grad_norm(float *norm, float *grad, size_t n, float max_norm) {
    UBD_REQUIRE(isfinite(max_norm) && max_norm > 0.0f, UBD_ERR_VALUE,
                "clip_grad_norm: max_norm must be finite and positive, got %g", max_norm);
    UBD_TRY(ubd_cpu_grad_norm(norm, grad, n));
    const float coef = max_norm / (*norm + 1e-6f);
    if (coef < 1.0f) {
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) grad[i] *= coef;
    }
    return UBD_OK;
}
