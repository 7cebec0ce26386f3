/* norm.h — BatchNorm, GroupNorm, LayerNorm, RMSNorm (forward + backward).
 * Semantics here; prototypes and shapes in backend.h (included at the end).
 *
 * Whatever backward needs is an explicit forward output (mean, rstd, ...).
 * Gradients accumulate (+=); NULL gradients are skipped. eps is an argument.
 *
 * batchnorm_forward_train: BatchNorm over channels of (B, C, S) where S = H*W
 *   (S = 1 for (B, C) or (B, C, 1, 1) features), batch statistics with the
 *   biased variance; running_mean/running_var (C), if not NULL, are updated in
 *   place: r = (1 - momentum) r + momentum * stat, with the UNBIASED variance
 *   (n / (n - 1), n = B*S) for running_var (PyTorch; momentum 0.1, eps 1e-5).
 *   mean, rstd (C) are saved for batchnorm_backward.
 * batchnorm_forward_eval: normalises with the running statistics;
 *   batchnorm_backward_eval is its backward (statistics are constants).
 * groupnorm_forward: (B, C, S) in G groups of C/G channels, affine gamma, beta
 *   (C); mean, rstd (B, G) saved for backward.
 * layernorm_forward: over the last axis of (N, C); mean, rstd (N).
 * rmsnorm_forward: RMSNorm of the 1-D U-Net, over channels of (B, C, L):
 *   out = x / max(||x||_2, 1e-12) * g * sqrt(C)   (F.normalize(x, dim=1) * g * sqrt(C));
 *   rnorm (B, L) = 1 / max(||x||, 1e-12) saved for backward.
 * (CUDA: batchnorm_forward_eval does not check running_var for negative values.)
 */
#ifndef UBD_NORM_H
#define UBD_NORM_H

#include "ubd.h"

#include "backend.h" /* the prototypes */
#endif
