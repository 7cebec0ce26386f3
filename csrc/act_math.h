/* act_math.h — scalar activation formulas and derivatives, shared verbatim
 * by the CPU loops (cpu/activations.c) and the CUDA kernels; the CPU's SiLU
 * alone uses its own vectorisable exp (cpu/activations.c, silu_expf). */
#ifndef UBD_ACT_MATH_H
#define UBD_ACT_MATH_H

#include <math.h>

#include "ops.h"
#include "philox.h" /* UBD_HD */

/* NaN propagates as in PyTorch: relu(NaN) = NaN (the test is written so that
 * NaN takes the x branch; `x > 0 ? x : 0` would turn NaN into 0 and let a bad
 * input pass as finite), leaky_relu(NaN) = param * NaN = NaN. */
UBD_HD float ubd_act_f(float x, int act, float param) {
    switch (act) {
    case UBD_ACT_RELU: return x <= 0.0f ? 0.0f : x;
    case UBD_ACT_LEAKY_RELU: return x > 0.0f ? x : param * x;
    case UBD_ACT_TANH: return tanhf(x);
    case UBD_ACT_SILU: return x / (1.0f + expf(-x));
    case UBD_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    default: return x;
    }
}

/* d f / d x at x. At x = NaN as PyTorch's threshold_backward (x <= 0 ? 0 :
 * grad) and leaky_relu_backward (x > 0 ? grad : grad * slope): the incoming
 * gradient passes (the NaN is already in the forward output). */
UBD_HD float ubd_act_df(float x, int act, float param) {
    switch (act) {
    case UBD_ACT_RELU: return x <= 0.0f ? 0.0f : 1.0f;
    case UBD_ACT_LEAKY_RELU: return x > 0.0f ? 1.0f : param;
    case UBD_ACT_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    case UBD_ACT_SILU: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    case UBD_ACT_GELU: { /* Phi(x) + x phi(x) */
        float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        return cdf + x * pdf;
    }
    default: return 1.0f;
    }
}

/* One Adam(W) element update; shared by CPU and CUDA.
 * bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. */
UBD_HD void ubd_adam_elem(float *p, float *m, float *v, float g, ubd_adam_hparams hp, float bc1, float bc2) {
    if (hp.decoupled)
        *p -= hp.lr * hp.weight_decay * *p;
    else
        g += hp.weight_decay * *p;
    *m = hp.beta1 * *m + (1.0f - hp.beta1) * g;
    *v = hp.beta2 * *v + (1.0f - hp.beta2) * g * g;
    float mhat = *m / bc1;
    float vhat = *v / bc2;
    *p -= hp.lr * mhat / (sqrtf(vhat) + hp.eps);
}

#endif
