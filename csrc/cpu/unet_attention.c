/* unet_attention.c — full and linear attention of the 1-D U-Net, channels-first
 * layout, as lucidrains' denoising-diffusion-pytorch Unet1D `Attention` and
 * `LinearAttention` compute them between to_qkv (Conv1d k1, no bias) and to_out.
 *
 * qkv (B, 3*NH*HD, L) is chunked into q, k, v along channels and each chunk
 * split into heads ('b (h c) n -> b h c n'), so for batch b, head h:
 *   q = qkv + b*3*NH*HD*L + h*HD*L         (HD, L) row-major
 *   k = q + NH*HD*L,  v = q + 2*NH*HD*L
 * and out (B, NH*HD, L) holds head h at rows [h*HD, (h+1)*HD). Every
 * per-(batch, head) matrix is contiguous, so products run on it in place. */
#include <math.h>

#include "../attention.h"
#include "../blas.h"
#include "attn_par.h"
#include "softmax_row.h"

static ubd_status unet_check(int B, int NH, int HD, int L, float scale, const char *fn) {
    UBD_REQUIRE(B > 0 && NH > 0 && HD > 0 && L > 0, UBD_ERR_VALUE,
                "%s: B, NH, HD, L must be positive, got B=%d NH=%d HD=%d L=%d", fn, B, NH, HD, L);
    UBD_REQUIRE(isfinite(scale), UBD_ERR_VALUE, "%s: scale must be finite, got %g", fn, (double)scale);
    UBD_REQUIRE((long long)L * L <= INT_MAX && (long long)HD * L <= INT_MAX && 3LL * NH * HD <= INT_MAX,
                UBD_ERR_VALUE, "%s: sizes too large for 32-bit BLAS (NH=%d HD=%d L=%d)", fn, NH, HD, L);
    return UBD_OK;
}

/* ---- full attention --------------------------------------------------- */

/* out (B,NH*HD,L); att (B,NH,L,L); qkv (B,3*NH*HD,L) */
ubd_status ubd_cpu_full_attention_forward(float *out, float *att, const float *qkv, int B, int NH, int HD, int L,
                                          float scale) {
    UBD_TRY(unet_check(B, NH, HD, L, scale, __func__));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(att);
    UBD_REQUIRE_PTR(qkv);
    const size_t head = (size_t)HD * L, chunk = (size_t)NH * head;
    const long long pairs = (long long)B * NH;
    const int par = ubd_attn_parallel_pairs(pairs, (double)L * L * HD);
#pragma omp parallel for schedule(static) if (par)
    for (long long p = 0; p < pairs; p++) {
        const int b = (int)(p / NH), h = (int)(p % NH);
        const float *q = qkv + (size_t)b * 3 * chunk + (size_t)h * head; /* (HD, L) */
        const float *k = q + chunk, *v = q + 2 * chunk;
        float *a = att + (size_t)p * L * L; /* (L, L) */
        float *o = out + (size_t)p * head;  /* (HD, L) */
        /* a[i, j] = scale * sum_d q[d, i] k[d, j], softmax over j */
        ubd_sgemm(1, 0, L, L, HD, scale, q, L, k, L, 0.0f, a, L);
        for (int i = 0; i < L; i++) ubd_softmax_vec(a + (size_t)i * L, a + (size_t)i * L, L, 1, 1.0f);
        /* o[d, i] = sum_j v[d, j] a[i, j]  (o = v a^T) */
        ubd_sgemm(0, 1, HD, L, L, 1.0f, v, L, a, L, 0.0f, o, L);
    }
    return UBD_OK;
}

/* dqkv (B,3*NH*HD,L) +=; datt (B,NH,L,L) scratch; dout (B,NH*HD,L) */
ubd_status ubd_cpu_full_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                           const float *att, int B, int NH, int HD, int L, float scale) {
    UBD_TRY(unet_check(B, NH, HD, L, scale, __func__));
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(qkv);
    UBD_REQUIRE_PTR(att);
    if (!dqkv) return UBD_OK;
    UBD_REQUIRE_PTR(datt);
    const size_t head = (size_t)HD * L, chunk = (size_t)NH * head;
    const long long pairs = (long long)B * NH;
    const int par = ubd_attn_parallel_pairs(pairs, (double)L * L * HD);
#pragma omp parallel for schedule(static) if (par)
    for (long long p = 0; p < pairs; p++) {
        const int b = (int)(p / NH), h = (int)(p % NH);
        const size_t qoff = (size_t)b * 3 * chunk + (size_t)h * head;
        const float *q = qkv + qoff, *k = q + chunk, *v = q + 2 * chunk; /* (HD, L) */
        float *dq = dqkv + qoff, *dk = dq + chunk, *dv = dq + 2 * chunk;  /* (HD, L) */
        const float *a = att + (size_t)p * L * L;                        /* (L, L) */
        float *da = datt + (size_t)p * L * L;                            /* (L, L) */
        const float *go = dout + (size_t)p * head;                       /* (HD, L) */
        /* o = v a^T: da = dout^T v ; dv += dout a */
        ubd_sgemm(1, 0, L, L, HD, 1.0f, go, L, v, L, 0.0f, da, L);
        ubd_sgemm(0, 0, HD, L, L, 1.0f, go, L, a, L, 1.0f, dv, L);
        for (int i = 0; i < L; i++)
            ubd_softmax_vec_backward(da + (size_t)i * L, da + (size_t)i * L, a + (size_t)i * L, L, 1, 1.0f, 0);
        /* scores = scale q^T k: dq += scale k ds^T ; dk += scale q ds */
        ubd_sgemm(0, 1, HD, L, L, scale, k, L, da, L, 1.0f, dq, L);
        ubd_sgemm(0, 0, HD, L, L, scale, q, L, da, L, 1.0f, dk, L);
    }
    return UBD_OK;
}

/* ---- linear attention --------------------------------------------------- */

/* out (B,NH*HD,L); qs, ks (B,NH*HD,L); context (B,NH,HD,HD); qkv (B,3*NH*HD,L) */
ubd_status ubd_cpu_linear_attention_forward(float *out, float *qs, float *ks, float *context, const float *qkv, int B,
                                            int NH, int HD, int L, float scale) {
    UBD_TRY(unet_check(B, NH, HD, L, scale, __func__));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(qs);
    UBD_REQUIRE_PTR(ks);
    UBD_REQUIRE_PTR(context);
    UBD_REQUIRE_PTR(qkv);
    const size_t head = (size_t)HD * L, chunk = (size_t)NH * head;
    const long long pairs = (long long)B * NH;
    const int par = ubd_attn_parallel_pairs(pairs, (double)HD * HD * L);
#pragma omp parallel for schedule(static) if (par)
    for (long long p = 0; p < pairs; p++) {
        const int b = (int)(p / NH), h = (int)(p % NH);
        const float *q = qkv + (size_t)b * 3 * chunk + (size_t)h * head; /* (HD, L) */
        const float *k = q + chunk, *v = q + 2 * chunk;
        float *qsp = qs + (size_t)p * head, *ksp = ks + (size_t)p * head; /* (HD, L) */
        float *ctx = context + (size_t)p * HD * HD;                       /* (HD, HD) */
        /* qs: softmax over the feature axis d (a strided column), times scale */
        for (int n = 0; n < L; n++) ubd_softmax_vec(qsp + n, q + n, HD, (size_t)L, scale);
        /* ks: softmax over the sequence axis n (a row) */
        for (int d = 0; d < HD; d++) ubd_softmax_vec(ksp + (size_t)d * L, k + (size_t)d * L, L, 1, 1.0f);
        /* ctx[d, e] = sum_n ks[d, n] v[e, n]  (ks v^T) */
        ubd_sgemm(0, 1, HD, HD, L, 1.0f, ksp, L, v, L, 0.0f, ctx, HD);
        /* out[e, n] = sum_d ctx[d, e] qs[d, n]  (ctx^T qs) */
        ubd_sgemm(1, 0, HD, L, HD, 1.0f, ctx, HD, qsp, L, 0.0f, out + (size_t)p * head, L);
    }
    return UBD_OK;
}

/* dqkv (B,3*NH*HD,L) +=; work scratch (2*B*NH*HD*L + B*NH*HD*HD); dout (B,NH*HD,L).
 * Needs scale != 0: the q softmax is recovered from qs = scale * softmax(q). */
ubd_status ubd_cpu_linear_attention_backward(float *dqkv, float *work, const float *dout, const float *qkv,
                                             const float *qs, const float *ks, const float *context, int B, int NH,
                                             int HD, int L, float scale) {
    UBD_TRY(unet_check(B, NH, HD, L, scale, __func__));
    UBD_REQUIRE(scale != 0.0f, UBD_ERR_VALUE, "%s: scale must be non-zero", __func__);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(qkv);
    UBD_REQUIRE_PTR(qs);
    UBD_REQUIRE_PTR(ks);
    UBD_REQUIRE_PTR(context);
    if (!dqkv) return UBD_OK;
    UBD_REQUIRE_PTR(work);
    const size_t head = (size_t)HD * L, chunk = (size_t)NH * head;
    const long long pairs = (long long)B * NH;
    /* work = [dqs (B*NH, HD, L) | dks (B*NH, HD, L) | dctx (B*NH, HD, HD)] */
    float *dqs_all = work, *dks_all = work + (size_t)pairs * head, *dctx_all = work + 2 * (size_t)pairs * head;
    const int par = ubd_attn_parallel_pairs(pairs, (double)HD * HD * L);
#pragma omp parallel for schedule(static) if (par)
    for (long long p = 0; p < pairs; p++) {
        const int b = (int)(p / NH), h = (int)(p % NH);
        const size_t qoff = (size_t)b * 3 * chunk + (size_t)h * head;
        const float *v = qkv + qoff + 2 * chunk;                           /* (HD, L) */
        float *dq = dqkv + qoff, *dk = dq + chunk, *dv = dq + 2 * chunk;   /* (HD, L) */
        const float *qsp = qs + (size_t)p * head, *ksp = ks + (size_t)p * head;
        const float *ctx = context + (size_t)p * HD * HD;                  /* (HD, HD) */
        const float *go = dout + (size_t)p * head;                         /* (HD, L) */
        float *dqs = dqs_all + (size_t)p * head, *dks = dks_all + (size_t)p * head;
        float *dctx = dctx_all + (size_t)p * HD * HD;
        /* out = ctx^T qs: dctx = qs dout^T ; dqs = ctx dout */
        ubd_sgemm(0, 1, HD, HD, L, 1.0f, qsp, L, go, L, 0.0f, dctx, HD);
        ubd_sgemm(0, 0, HD, L, HD, 1.0f, ctx, HD, go, L, 0.0f, dqs, L);
        /* ctx = ks v^T: dks = dctx v ; dv += dctx^T ks */
        ubd_sgemm(0, 0, HD, L, HD, 1.0f, dctx, HD, v, L, 0.0f, dks, L);
        ubd_sgemm(1, 0, HD, L, HD, 1.0f, dctx, HD, ksp, L, 1.0f, dv, L);
        /* through the two softmaxes */
        for (int n = 0; n < L; n++) ubd_softmax_vec_backward(dq + n, dqs + n, qsp + n, HD, (size_t)L, scale, 1);
        for (int d = 0; d < HD; d++)
            ubd_softmax_vec_backward(dk + (size_t)d * L, dks + (size_t)d * L, ksp + (size_t)d * L, L, 1, 1.0f, 1);
    }
    return UBD_OK;
}
