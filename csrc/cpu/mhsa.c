/* mhsa.c — multi-head self-attention core of the seismic transformer, token
 * layout, as timm's ViT Attention computes it between its qkv and proj
 * Linear layers: qkv (B, T, 3C) is qkv.reshape(B, T, 3, NH, HD), so head h of
 * q/k/v is the column block [s*C + h*HD, s*C + (h+1)*HD) for s = 0/1/2.
 * The q, k, v, out matrices of one (batch, head) are read in place with a
 * leading dimension of 3C (or C for out), so no copies are needed. */
#include <math.h>

#include "../attention.h"
#include "../blas.h"
#include "attn_par.h"
#include "softmax_row.h"

static ubd_status mhsa_check(int B, int T, int C, int NH, const char *fn) {
    UBD_REQUIRE(B > 0 && T > 0 && C > 0 && NH > 0, UBD_ERR_VALUE,
                "%s: B, T, C, NH must be positive, got B=%d T=%d C=%d NH=%d", fn, B, T, C, NH);
    UBD_REQUIRE(C % NH == 0, UBD_ERR_VALUE, "%s: C=%d is not divisible by NH=%d", fn, C, NH);
    UBD_REQUIRE(3LL * C <= INT_MAX && (long long)T * T <= INT_MAX, UBD_ERR_VALUE,
                "%s: sizes too large for 32-bit BLAS (C=%d, T=%d)", fn, C, T);
    return UBD_OK;
}

/* out (B,T,C); att (B,NH,T,T); qkv (B,T,3C) */
ubd_status ubd_cpu_mhsa_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    UBD_TRY(mhsa_check(B, T, C, NH, __func__));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(att);
    UBD_REQUIRE_PTR(qkv);
    const int HD = C / NH, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)HD);
    const long long pairs = (long long)B * NH;
    const int par = ubd_attn_parallel_pairs(pairs, (double)T * T * HD);
#pragma omp parallel for schedule(static) if (par)
    for (long long p = 0; p < pairs; p++) {
        const int b = (int)(p / NH), h = (int)(p % NH);
        const float *q = qkv + (size_t)b * T * ld + (size_t)h * HD; /* (T, HD), ld 3C */
        const float *k = q + C, *v = q + 2 * C;
        float *a = att + (size_t)p * T * T;                         /* (T, T) */
        float *o = out + (size_t)b * T * C + (size_t)h * HD;        /* (T, HD), ld C */
        /* a = scale * q k^T, then softmax over keys (rows) */
        ubd_sgemm(0, 1, T, T, HD, scale, q, ld, k, ld, 0.0f, a, T);
        for (int i = 0; i < T; i++) ubd_softmax_vec(a + (size_t)i * T, a + (size_t)i * T, T, 1, 1.0f);
        /* o = a v */
        ubd_sgemm(0, 0, T, HD, T, 1.0f, a, T, v, ld, 0.0f, o, C);
    }
    return UBD_OK;
}

/* dqkv (B,T,3C) +=; datt (B,NH,T,T) scratch; dout (B,T,C); qkv (B,T,3C); att (B,NH,T,T) */
ubd_status ubd_cpu_mhsa_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att,
                                 int B, int T, int C, int NH) {
    UBD_TRY(mhsa_check(B, T, C, NH, __func__));
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(qkv);
    UBD_REQUIRE_PTR(att);
    if (!dqkv) return UBD_OK;
    UBD_REQUIRE_PTR(datt);
    const int HD = C / NH, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)HD);
    const long long pairs = (long long)B * NH;
    const int par = ubd_attn_parallel_pairs(pairs, (double)T * T * HD);
#pragma omp parallel for schedule(static) if (par)
    for (long long p = 0; p < pairs; p++) {
        const int b = (int)(p / NH), h = (int)(p % NH);
        const size_t qoff = (size_t)b * T * ld + (size_t)h * HD;
        const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;   /* (T, HD), ld 3C */
        float *dq = dqkv + qoff, *dk = dq + C, *dv = dq + 2 * C;   /* (T, HD), ld 3C */
        const float *a = att + (size_t)p * T * T;                  /* (T, T) */
        float *da = datt + (size_t)p * T * T;                      /* (T, T) */
        const float *go = dout + (size_t)b * T * C + (size_t)h * HD; /* (T, HD), ld C */
        /* da = dout v^T ; dv += a^T dout */
        ubd_sgemm(0, 1, T, T, HD, 1.0f, go, C, v, ld, 0.0f, da, T);
        ubd_sgemm(1, 0, T, HD, T, 1.0f, a, T, go, C, 1.0f, dv, ld);
        /* da <- d(scores) through the row softmax */
        for (int i = 0; i < T; i++)
            ubd_softmax_vec_backward(da + (size_t)i * T, da + (size_t)i * T, a + (size_t)i * T, T, 1, 1.0f, 0);
        /* scores = scale q k^T: dq += scale da k ; dk += scale da^T q */
        ubd_sgemm(0, 0, T, HD, T, scale, da, T, k, ld, 1.0f, dq, ld);
        ubd_sgemm(1, 0, T, HD, T, scale, da, T, q, ld, 1.0f, dk, ld);
    }
    return UBD_OK;
}
