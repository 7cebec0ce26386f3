/* attention.h — softmax and the three attention variants of UB-Diff.
 * Gradients accumulate (+=); NULL gradients are skipped. Scratch buffers are
 * caller-owned and named in each comment. */
#ifndef UBD_ATTENTION_H
#define UBD_ATTENTION_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Numerically stable softmax over the last axis of (N, D). Backward uses out:
 * dinp += out * (dout - sum(dout * out)). */
ubd_status ubd_cpu_softmax_forward(float *out, const float *inp, int N, int D);
ubd_status ubd_cpu_softmax_backward(float *dinp, const float *dout, const float *out, int N, int D);

/* Multi-head self-attention core of the seismic transformer, token layout.
 * qkv (B, T, 3C) = [q | k | v] from the qkv Linear (C = NH * HD);
 * out (B, T, C) = concat_h softmax(q_h k_h^T / sqrt(HD)) v_h (no mask);
 * att (B, NH, T, T) the softmax probabilities, saved for backward.
 * The qkv and output projections are ordinary linear layers (ops.h). */
ubd_status ubd_cpu_mhsa_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/* dqkv (B,T,3C) +=; datt (B,NH,T,T) is scratch */
ubd_status ubd_cpu_mhsa_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att,
                                 int B, int T, int C, int NH);

/* Full attention of the 1-D U-Net, channels-first layout.
 * qkv (B, 3*NH*HD, L) from Conv1d(C -> 3*NH*HD, k1, no bias), chunks q, k, v,
 * each (B, NH, HD, L); sim = (q * scale)^T k over HD -> (B, NH, L, L),
 * att = softmax over the last axis, out (B, NH*HD, L) = v att^T
 * (out[h, d, i] = sum_j att[h, i, j] v[h, d, j]). att saved for backward. */
ubd_status ubd_cpu_full_attention_forward(float *out, float *att, const float *qkv, int B, int NH, int HD, int L,
                                          float scale);
/* dqkv (B,3*NH*HD,L) +=; datt (B,NH,L,L) scratch */
ubd_status ubd_cpu_full_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                           const float *att, int B, int NH, int HD, int L, float scale);

/* Linear attention of the 1-D U-Net (lucidrains' LinearAttention):
 * qkv (B, 3*NH*HD, L) chunks q, k, v each (B, NH, HD, L);
 * qs = softmax(q) over HD (the feature axis), times scale;
 * ks = softmax(k) over L (the sequence axis);
 * context (B, NH, HD, HD)[d, e] = sum_n ks[d, n] v[e, n];
 * out (B, NH*HD, L)[h, e, n] = sum_d context[d, e] qs[d, n].
 * Saved for backward: qs, ks (B, NH*HD, L) each, context (B, NH, HD, HD). */
ubd_status ubd_cpu_linear_attention_forward(float *out, float *qs, float *ks, float *context, const float *qkv, int B,
                                            int NH, int HD, int L, float scale);
/* dqkv (B,3*NH*HD,L) +=; work scratch of 2*B*NH*HD*L + B*NH*HD*HD floats */
ubd_status ubd_cpu_linear_attention_backward(float *dqkv, float *work, const float *dout, const float *qkv,
                                             const float *qs, const float *ks, const float *context, int B, int NH,
                                             int HD, int L, float scale);

/* ---- CUDA twins (csrc/cuda/softmax.cu, mhsa.cu, unet_attention.cu); same
 * arguments, device pointers (scratch included) ----------------------------- */
#ifdef UBDIFF_WITH_CUDA
ubd_status ubd_cuda_softmax_forward(float *out, const float *inp, int N, int D);
ubd_status ubd_cuda_softmax_backward(float *dinp, const float *dout, const float *out, int N, int D);
ubd_status ubd_cuda_mhsa_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
ubd_status ubd_cuda_mhsa_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att,
                                  int B, int T, int C, int NH);
ubd_status ubd_cuda_full_attention_forward(float *out, float *att, const float *qkv, int B, int NH, int HD, int L,
                                           float scale);
ubd_status ubd_cuda_full_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                            const float *att, int B, int NH, int HD, int L, float scale);
ubd_status ubd_cuda_linear_attention_forward(float *out, float *qs, float *ks, float *context, const float *qkv, int B,
                                             int NH, int HD, int L, float scale);
ubd_status ubd_cuda_linear_attention_backward(float *dqkv, float *work, const float *dout, const float *qkv,
                                              const float *qs, const float *ks, const float *context, int B, int NH,
                                              int HD, int L, float scale);
#endif

#ifdef __cplusplus
}
#endif
#endif
