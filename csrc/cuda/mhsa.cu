// mhsa.cu — CUDA twin of cpu/mhsa.c (the seismic transformer's attention
// core, token layout). Same arguments, device pointers.
//
// The code mirrors the CPU file line for line: the CPU loops over (batch b,
// head h) pairs and calls ubd_sgemm on matrices read in place; here every one
// of those ubd_sgemm calls is the same ubd_rm_sgemm_pairs call (same M, N, K,
// transposes and leading dimensions) with the per-pair pointer offsets written
// as (b, h) strides, and the row softmaxes run over all pairs at once. With
// ld = 3C, pair (b, h) reads
//   q = qkv + b*T*ld + h*HD, k = q + C, v = q + 2C   (T, HD), ld 3C
//   a = att + (b*NH + h)*T*T                          (T, T)
//   o = out + b*T*C + h*HD                            (T, HD), ld C
#include <limits.h>
#include <math.h>

#include "../attention.h"
#include "common.cuh"
#include "softmax.cuh"

static ubd_status mhsa_check(int B, int T, int C, int NH, const char *fn) {
    UBD_REQUIRE(B > 0 && T > 0 && C > 0 && NH > 0, UBD_ERR_VALUE,
                "%s: B, T, C, NH must be positive, got B=%d T=%d C=%d NH=%d", fn, B, T, C, NH);
    UBD_REQUIRE(C % NH == 0, UBD_ERR_VALUE, "%s: C=%d is not divisible by NH=%d", fn, C, NH);
    UBD_REQUIRE(3LL * C <= INT_MAX && (long long)T * T <= INT_MAX, UBD_ERR_VALUE,
                "%s: sizes too large for 32-bit BLAS (C=%d, T=%d)", fn, C, T);
    return UBD_OK;
}

// (b, h) strides of the operands above
struct mhsa_strides {
    ubd_pair_strides qkv, att, out;
};
static mhsa_strides strides_of(int T, int C, int NH) {
    const int HD = C / NH, ld = 3 * C;
    return mhsa_strides{{(long long)T * ld, HD}, {(long long)NH * T * T, (long long)T * T}, {(long long)T * C, HD}};
}

/* out (B,T,C); att (B,NH,T,T); qkv (B,T,3C) */
extern "C" ubd_status ubd_cuda_mhsa_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    UBD_TRY(mhsa_check(B, T, C, NH, __func__));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(att);
    UBD_REQUIRE_PTR(qkv);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const int HD = C / NH, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)HD);
    const mhsa_strides s = strides_of(T, C, NH);
    const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
    // a = scale * q k^T, then softmax over keys (rows)
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 1, T, T, HD, scale, q, ld, s.qkv, k, ld, s.qkv, 0.0f, att, T, s.att, B, NH));
    UBD_TRY(ubd_cuda_softmax_rows(att, att, ubd_packed(), (long long)B * NH * T, T, 1.0f));
    // o = a v
    return ubd_rm_sgemm_pairs(h, 0, 0, T, HD, T, 1.0f, att, T, s.att, v, ld, s.qkv, 0.0f, out, C, s.out, B, NH);
}

/* dqkv (B,T,3C) +=; datt (B,NH,T,T) scratch; dout (B,T,C); qkv (B,T,3C); att (B,NH,T,T) */
extern "C" ubd_status ubd_cuda_mhsa_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                             const float *att, int B, int T, int C, int NH) {
    UBD_TRY(mhsa_check(B, T, C, NH, __func__));
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE_PTR(qkv);
    UBD_REQUIRE_PTR(att);
    if (!dqkv) return UBD_OK;
    UBD_REQUIRE_PTR(datt);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const int HD = C / NH, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)HD);
    const mhsa_strides s = strides_of(T, C, NH);
    const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
    float *dq = dqkv, *dk = dqkv + C, *dv = dqkv + 2 * C;
    const float *go = dout;
    // da = dout v^T ; dv += a^T dout
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 1, T, T, HD, 1.0f, go, C, s.out, v, ld, s.qkv, 0.0f, datt, T, s.att, B, NH));
    UBD_TRY(ubd_rm_sgemm_pairs(h, 1, 0, T, HD, T, 1.0f, att, T, s.att, go, C, s.out, 1.0f, dv, ld, s.qkv, B, NH));
    // da <- d(scores) through the row softmax (in place, no accumulation)
    UBD_TRY(ubd_cuda_softmax_rows_backward(datt, ubd_packed(), datt, att, (long long)B * NH * T, T, 1.0f, 0));
    // scores = scale q k^T: dq += scale da k ; dk += scale da^T q
    UBD_TRY(ubd_rm_sgemm_pairs(h, 0, 0, T, HD, T, scale, datt, T, s.att, k, ld, s.qkv, 1.0f, dq, ld, s.qkv, B, NH));
    return ubd_rm_sgemm_pairs(h, 1, 0, T, HD, T, scale, datt, T, s.att, q, ld, s.qkv, 1.0f, dk, ld, s.qkv, B, NH);
}
