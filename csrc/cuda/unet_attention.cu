// unet_attention.cu — CUDA twins of cpu/unet_attention.c: full and linear
// attention of the 1-D U-Net, channels-first layout. Same arguments, device
// pointers.
//
// The code mirrors the CPU file line for line: each ubd_sgemm of the CPU's
// per-(batch b, head h) loop is the same ubd_rm_sgemm_pairs call (same M, N,
// K, transposes, leading dimensions) with the pair offsets written as (b, h)
// strides, and each per-pair softmax loop is one launch over all pairs. With
// head = HD*L and chunk = NH*head, pair (b, h) = p = b*NH + h reads
//   q = qkv + b*3*chunk + h*head, k = q + chunk, v = q + 2*chunk   (HD, L)
//   per-pair outputs/scratch X + p*size                            (packed)
#include <limits.h>
#include <math.h>

#include "../attention.h"
#include "common.cuh"
#include "softmax.cuh"

static ubd_status unet_check(int B, int NH, int HD, int L, float scale, const char *fn) {
    UBD_REQUIRE(B > 0 && NH > 0 && HD > 0 && L > 0, UBD_ERR_VALUE,
                "%s: B, NH, HD, L must be positive, got B=%d NH=%d HD=%d L=%d", fn, B, NH, HD, L);
    UBD_REQUIRE(isfinite(scale), UBD_ERR_VALUE, "%s: scale must be finite, got %g", fn, (double)scale);
    UBD_REQUIRE((long long)L * L <= INT_MAX && (long long)HD * L <= INT_MAX && 3LL * NH * HD <= INT_MAX,
                UBD_ERR_VALUE, "%s: sizes too large for 32-bit BLAS (NH=%d HD=%d L=%d)", fn, NH, HD, L);
    return UBD_OK;
}

// (b, h) strides: of q/k/v (and dq/dk/dv) inside qkv, and of a packed family
// of per-pair matrices of `size` floats.
static ubd_pair_strides in_qkv(int NH, int HD, int L) {
    return ubd_pair_strides{3LL * NH * HD * L, (long long)HD * L};
}
static ubd_pair_strides packed(int NH, long long size) { return ubd_pair_strides{NH * size, size}; }
// The same q/k/v layout as item groups for the softmax kernels: the NH heads
// (matrices) or NH*HD rows of one sample are packed, samples 3*chunk apart.
static ubd_groups heads_in_qkv(int NH, int HD, int L) { return ubd_groups{NH, 3LL * NH * HD * L}; }
static ubd_groups rows_in_qkv(int NH, int HD, int L) { return ubd_groups{(long long)NH * HD, 3LL * NH * HD * L}; }

// ---- full attention -------------------------------------------------------

/* out (B,NH*HD,L); att (B,NH,L,L); qkv (B,3*NH*HD,L) */
extern "C" ubd_status ubd_cuda_full_attention_forward(float *out, float *att, const float *qkv, int B, int NH, int HD,
                                                      int L, float scale) {
    UBD_TRY(unet_check(B, NH, HD, L, scale, __func__));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(att);
    UBD_REQUIRE_PTR(qkv);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const size_t chunk = (size_t)NH * HD * L;
    const ubd_pair_strides sq = in_qkv(NH, HD, L), sa = packed(NH, (long long)L * L);
    const ubd_pair_strides so = packed(NH, (long long)HD * L);
    const float *q = qkv, *k = q + chunk, *v = q + 2 * chunk;
    // a[i, j] = scale * sum_d q[d, i] k[d, j], softmax over j
    UBD_TRY(ubd_rm_sgemm_pairs(h, 1, 0, L, L, HD, scale, q, L, sq, k, L, sq, 0.0f, att, L, sa, B, NH));
    UBD_TRY(ubd_cuda_softmax_rows(att, att, ubd_packed(), (long long)B * NH * L, L, 1.0f));
    // o[d, i] = sum_j v[d, j] a[i, j]  (o = v a^T)
    return ubd_rm_sgemm_pairs(h, 0, 1, HD, L, L, 1.0f, v, L, sq, att, L, sa, 0.0f, out, L, so, B, NH);
}

/* dqkv (B,3*NH*HD,L) +=; datt (B,NH,L,L) scratch; dout (B,NH*HD,L) */
extern "C" ubd_status ubd_cuda_full_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                                       const float *att, int B, int NH, int HD, int L, float scale) {
    UBD_TRY(unet_check(B, NH, HD, L, scale, __func__));
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(qkv);
    UBD_REQUIRE_PTR(att);
    if (!dqkv) return UBD_OK;
    UBD_REQUIRE_PTR(datt);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const size_t chunk = (size_t)NH * HD * L;
    const ubd_pair_strides sq = in_qkv(NH, HD, L), sa = packed(NH, (long long)L * L);
    const ubd_pair_strides so = packed(NH, (long long)HD * L);
    const float *q = qkv, *k = q + chunk, *v = q + 2 * chunk;
    float *dq = dqkv, *dk = dq + chunk, *dv = dq + 2 * chunk;
    const float *go = dout;
    // o = v a^T: da = dout^T v ; dv += dout a
    UBD_TRY(ubd_rm_sgemm_pairs(h, 1, 0, L, L, HD, 1.0f, go, L, so, v, L, sq, 0.0f, datt, L, sa, B, NH));
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 0, HD, L, L, 1.0f, go, L, so, att, L, sa, 1.0f, dv, L, sq, B, NH));
    // through the row softmax, in place
    UBD_TRY(ubd_cuda_softmax_rows_backward(datt, ubd_packed(), datt, att, (long long)B * NH * L, L, 1.0f, 0));
    // scores = scale q^T k: dq += scale k ds^T ; dk += scale q ds
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 1, HD, L, L, scale, k, L, sq, datt, L, sa, 1.0f, dq, L, sq, B, NH));
    return ubd_rm_sgemm_pairs(h, 0, 0, HD, L, L, scale, q, L, sq, datt, L, sa, 1.0f, dk, L, sq, B, NH);
}

// ---- linear attention -------------------------------------------------------

/* out (B,NH*HD,L); qs, ks (B,NH*HD,L); context (B,NH,HD,HD); qkv (B,3*NH*HD,L) */
extern "C" ubd_status ubd_cuda_linear_attention_forward(float *out, float *qs, float *ks, float *context,
                                                        const float *qkv, int B, int NH, int HD, int L, float scale) {
    UBD_TRY(unet_check(B, NH, HD, L, scale, __func__));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(qs);
    UBD_REQUIRE_PTR(ks);
    UBD_REQUIRE_PTR(context);
    UBD_REQUIRE_PTR(qkv);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const size_t chunk = (size_t)NH * HD * L;
    const long long pairs = (long long)B * NH;
    const ubd_pair_strides sq = in_qkv(NH, HD, L), sh = packed(NH, (long long)HD * L);
    const ubd_pair_strides sc = packed(NH, (long long)HD * HD);
    const float *q = qkv, *k = q + chunk, *v = q + 2 * chunk;
    // qs: softmax over the feature axis d (the columns of each (HD, L) q), times scale
    UBD_TRY(ubd_cuda_softmax_cols(qs, q, heads_in_qkv(NH, HD, L), pairs, HD, L, scale));
    // ks: softmax over the sequence axis n (the HD rows of each k)
    UBD_TRY(ubd_cuda_softmax_rows(ks, k, rows_in_qkv(NH, HD, L), pairs * HD, L, 1.0f));
    // ctx[d, e] = sum_n ks[d, n] v[e, n]  (ks v^T)
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 1, HD, HD, L, 1.0f, ks, L, sh, v, L, sq, 0.0f, context, HD, sc, B, NH));
    // out[e, n] = sum_d ctx[d, e] qs[d, n]  (ctx^T qs)
    return ubd_rm_sgemm_pairs(h, 1, 0, HD, L, HD, 1.0f, context, HD, sc, qs, L, sh, 0.0f, out, L, sh, B, NH);
}

/* dqkv (B,3*NH*HD,L) +=; work scratch (2*B*NH*HD*L + B*NH*HD*HD); dout (B,NH*HD,L).
 * Needs scale != 0: the q softmax is recovered from qs = scale * softmax(q). */
extern "C" ubd_status ubd_cuda_linear_attention_backward(float *dqkv, float *work, const float *dout,
                                                         const float *qkv, const float *qs, const float *ks,
                                                         const float *context, int B, int NH, int HD, int L,
                                                         float scale) {
    UBD_TRY(unet_check(B, NH, HD, L, scale, __func__));
    UBD_REQUIRE(scale != 0.0f, UBD_ERR_VALUE, "%s: scale must be non-zero", __func__);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(qkv);
    UBD_REQUIRE_PTR(qs);
    UBD_REQUIRE_PTR(ks);
    UBD_REQUIRE_PTR(context);
    if (!dqkv) return UBD_OK;
    UBD_REQUIRE_PTR(work);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const size_t head = (size_t)HD * L, chunk = (size_t)NH * head;
    const long long pairs = (long long)B * NH;
    const ubd_pair_strides sq = in_qkv(NH, HD, L), sh = packed(NH, (long long)head);
    const ubd_pair_strides sc = packed(NH, (long long)HD * HD);
    const float *v = qkv + 2 * chunk;
    float *dq = dqkv, *dk = dq + chunk, *dv = dq + 2 * chunk;
    const float *go = dout;
    // work = [dqs (B*NH, HD, L) | dks (B*NH, HD, L) | dctx (B*NH, HD, HD)]
    float *dqs = work, *dks = work + (size_t)pairs * head, *dctx = work + 2 * (size_t)pairs * head;
    // out = ctx^T qs: dctx = qs dout^T ; dqs = ctx dout
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 1, HD, HD, L, 1.0f, qs, L, sh, go, L, sh, 0.0f, dctx, HD, sc, B, NH));
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 0, HD, L, HD, 1.0f, context, HD, sc, go, L, sh, 0.0f, dqs, L, sh, B, NH));
    // ctx = ks v^T: dks = dctx v ; dv += dctx^T ks
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 0, HD, L, HD, 1.0f, dctx, HD, sc, v, L, sq, 0.0f, dks, L, sh, B, NH));
    UBD_TRY(ubd_rm_sgemm_pairs(h, 1, 0, HD, L, HD, 1.0f, dctx, HD, sc, ks, L, sh, 1.0f, dv, L, sq, B, NH));
    // through the two softmaxes, accumulating into dq and dk inside dqkv
    UBD_TRY(ubd_cuda_softmax_cols_backward(dq, heads_in_qkv(NH, HD, L), dqs, qs, pairs, HD, L, scale, 1));
    return ubd_cuda_softmax_rows_backward(dk, rows_in_qkv(NH, HD, L), dks, ks, pairs * HD, L, 1.0f, 1);
}
