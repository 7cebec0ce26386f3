/* attention.h — softmax and the three attention variants of UB-Diff.
 * Gradients accumulate (+=); NULL gradients are skipped. Scratch buffers are
 * caller-owned. Semantics here; prototypes and shapes in backend.h (included
 * at the end). CUDA twins: cuda/softmax.cu, mhsa.cu, unet_attention.cu (scratch
 * on the device too).
 *
 * softmax_forward: numerically stable softmax over the last axis of (N, D).
 *   Backward uses out: dinp += out * (dout - sum(dout * out)).
 *
 * mhsa_forward: multi-head self-attention core of the seismic transformer,
 *   token layout. qkv (B, T, 3C) = [q | k | v] from the qkv Linear
 *   (C = NH * HD); out (B, T, C) = concat_h softmax(q_h k_h^T / sqrt(HD)) v_h
 *   (no mask); att (B, NH, T, T) the softmax probabilities, saved for
 *   backward. The qkv and output projections are ordinary linear layers.
 *   mhsa_backward: dqkv (B,T,3C) +=; datt (B,NH,T,T) is scratch.
 *
 * full_attention_forward: full attention of the 1-D U-Net, channels-first.
 *   qkv (B, 3*NH*HD, L) from Conv1d(C -> 3*NH*HD, k1, no bias), chunks q, k,
 *   v, each (B, NH, HD, L); sim = (q * scale)^T k over HD -> (B, NH, L, L),
 *   att = softmax over the last axis, out (B, NH*HD, L) = v att^T
 *   (out[h, d, i] = sum_j att[h, i, j] v[h, d, j]). att saved for backward.
 *   full_attention_backward: dqkv (B,3*NH*HD,L) +=; datt (B,NH,L,L) scratch.
 *
 * linear_attention_forward: linear attention of the 1-D U-Net (lucidrains'
 *   LinearAttention): qkv (B, 3*NH*HD, L) chunks q, k, v each (B, NH, HD, L);
 *   qs = softmax(q) over HD (the feature axis), times scale;
 *   ks = softmax(k) over L (the sequence axis);
 *   context (B, NH, HD, HD)[d, e] = sum_n ks[d, n] v[e, n];
 *   out (B, NH*HD, L)[h, e, n] = sum_d context[d, e] qs[d, n].
 *   Saved for backward: qs, ks (B, NH*HD, L) each, context (B, NH, HD, HD).
 *   linear_attention_backward: dqkv (B,3*NH*HD,L) +=; work scratch of
 *   2*B*NH*HD*L + B*NH*HD*HD floats.
 */
#ifndef UBD_ATTENTION_H
#define UBD_ATTENTION_H

#include "ubd.h"

#include "backend.h" /* the prototypes */
#endif
