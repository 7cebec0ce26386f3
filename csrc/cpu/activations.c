/* activations.c — elementwise activations (formulas in act_math.h).
 *
 * One loop per kind: with the kind a constant, the switch in act_math.h folds
 * away and the piecewise-linear kinds (ReLU, LeakyReLU) vectorise as selects. A
 * runtime switch inside the loop kept them scalar and branchy, mispredicting on
 * the sign of every element: LeakyReLU backward was 8 % of autoencoder step 1
 * (paper, batch 8, 1 thread). Same formulas as act_math.h, except SiLU's
 * exponential (silu_expf below). */
#include <stdint.h>

#include "act_math.h"
#include "ops.h"

#define UBD_PAR_THRESHOLD 32768

/* exp(x) for SiLU, written so that the loops vectorise (libm's expf is a call
 * the compiler cannot vectorise without -ffast-math): Cephes' expf — x = n ln 2
 * + r, |r| <= ln 2 / 2, a degree-5 polynomial for e^r, 2^n by the exponent
 * bits. Relative error <= 2 ulp (tests/test_ops_basic.py measures it against
 * float64 over the float range). Arguments are clamped to [-87.3, 88.7], so
 * e^x stays finite and normal there (libm: 0 / inf beyond, which SiLU turns into
 * the same -0 / x up to ~1e-37); NaN propagates. Used by the CPU SiLU only; the
 * CUDA kernels keep act_math.h's expf. */
static inline float silu_expf(float x) {
    const float xc = x > 88.7f ? 88.7f : x < -87.3f ? -87.3f : x;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick (floorf does not vectorise) */
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float er = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } two_n = {((int32_t)n + 127) << 23}; /* 2^n, n in [-126, 128): a normal float */
    return x != x ? x : er * two_n.f;
}

static inline float silu_f(float x) { return x / (1.0f + silu_expf(-x)); }
static inline float silu_df(float x) {
    const float s = 1.0f / (1.0f + silu_expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

static ubd_status check_act(ubd_act act) {
    UBD_REQUIRE(act >= 0 && act < UBD_ACT_NUM, UBD_ERR_VALUE, "activation: unknown kind %d", (int)act);
    return UBD_OK;
}

/* LOOP(kind) instantiated for every kind */
#define PER_KIND(act, LOOP)                                  \
    switch (act) {                                           \
    case UBD_ACT_RELU: LOOP(UBD_ACT_RELU); break;            \
    case UBD_ACT_LEAKY_RELU: LOOP(UBD_ACT_LEAKY_RELU); break; \
    case UBD_ACT_TANH: LOOP(UBD_ACT_TANH); break;            \
    case UBD_ACT_SILU: LOOP##_SILU; break;                   \
    default: LOOP(UBD_ACT_GELU); break;                      \
    }

#define FWD_LOOP(K)                                                        \
    _Pragma("omp parallel for schedule(static) if (n > UBD_PAR_THRESHOLD)") \
    for (size_t i = 0; i < n; i++) out[i] = ubd_act_f(inp[i], K, param)

#define FWD_LOOP_SILU                                                      \
    _Pragma("omp parallel for schedule(static) if (n > UBD_PAR_THRESHOLD)") \
    for (size_t i = 0; i < n; i++) out[i] = silu_f(inp[i])

#define BWD_LOOP_SILU                                                      \
    _Pragma("omp parallel for schedule(static) if (n > UBD_PAR_THRESHOLD)") \
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * silu_df(inp[i])

#define BWD_LOOP(K)                                                        \
    _Pragma("omp parallel for schedule(static) if (n > UBD_PAR_THRESHOLD)") \
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * ubd_act_df(inp[i], K, param)

ubd_status ubd_cpu_act_forward(float *out, const float *inp, size_t n, ubd_act act, float param) {
    UBD_TRY(check_act(act));
    UBD_REQUIRE((out && inp) || n == 0, UBD_ERR_VALUE, "act_forward: NULL buffer");
    PER_KIND(act, FWD_LOOP);
    return UBD_OK;
}

ubd_status ubd_cpu_act_backward(float *dinp, const float *dout, const float *inp, size_t n, ubd_act act,
                                float param) {
    UBD_TRY(check_act(act));
    UBD_REQUIRE((dinp && dout && inp) || n == 0, UBD_ERR_VALUE, "act_backward: NULL buffer");
    PER_KIND(act, BWD_LOOP);
    return UBD_OK;
}
