/* norm.h — BatchNorm, GroupNorm, LayerNorm, RMSNorm (forward + backward).
 *
 * Whatever backward needs is an explicit forward output (mean, rstd, ...).
 * Gradients accumulate (+=); NULL gradients are skipped. eps is an argument.
 */
#ifndef UBD_NORM_H
#define UBD_NORM_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* BatchNorm over channels of (B, C, S) where S = H*W (S = 1 for (B, C) or
 * (B, C, 1, 1) features). Training mode: batch statistics with the biased
 * variance; running_mean/running_var (C), if not NULL, are updated in place:
 *   r = (1 - momentum) r + momentum * stat, with the UNBIASED variance
 *   (n / (n - 1), n = B*S) for running_var (PyTorch; momentum 0.1, eps 1e-5).
 * out (B,C,S); mean (C), rstd (C) saved for backward; inp (B,C,S); gamma, beta (C) */
ubd_status ubd_cpu_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                           float *running_var, const float *inp, const float *gamma,
                                           const float *beta, int B, int C, int S, float momentum, float eps);
/* Eval mode: normalise with running statistics. */
ubd_status ubd_cpu_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                          const float *running_mean, const float *running_var, int B, int C, int S,
                                          float eps);
/* Backward of training mode. dinp (B,C,S) +=; dgamma, dbeta (C) += */
ubd_status ubd_cpu_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                      const float *gamma, const float *mean, const float *rstd, int B, int C, int S);
/* Backward of eval mode (statistics are constants). */
ubd_status ubd_cpu_batchnorm_backward_eval(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                           const float *inp, const float *gamma, const float *running_mean,
                                           const float *running_var, int B, int C, int S, float eps);

/* GroupNorm: inp (B, C, S) in G groups of C/G channels; affine gamma, beta (C).
 * mean, rstd (B, G) saved for backward. */
ubd_status ubd_cpu_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                     const float *beta, int B, int C, int S, int G, float eps);
ubd_status ubd_cpu_groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                      const float *gamma, const float *mean, const float *rstd, int B, int C, int S,
                                      int G);

/* LayerNorm over the last axis of (N, C); gamma, beta (C); mean, rstd (N). */
ubd_status ubd_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                     const float *beta, int N, int C, float eps);
ubd_status ubd_cpu_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                      const float *gamma, const float *mean, const float *rstd, int N, int C);

/* RMSNorm of the 1-D U-Net, over channels of (B, C, L):
 *   out = x / max(||x||_2, 1e-12) * g * sqrt(C)   (F.normalize(x, dim=1) * g * sqrt(C))
 * g (C); rnorm (B, L) = 1 / max(||x||, 1e-12) saved for backward. */
ubd_status ubd_cpu_rmsnorm_forward(float *out, float *rnorm, const float *inp, const float *g, int B, int C, int L);
ubd_status ubd_cpu_rmsnorm_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                                    const float *rnorm, int B, int C, int L);

/* ---- CUDA twins (csrc/cuda/norm.cu); device pointers, same arguments ---- */
#ifdef UBDIFF_WITH_CUDA
ubd_status ubd_cuda_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                            float *running_var, const float *inp, const float *gamma,
                                            const float *beta, int B, int C, int S, float momentum, float eps);
/* (running_var is not checked for negative values on the device) */
ubd_status ubd_cuda_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                           const float *running_mean, const float *running_var, int B, int C, int S,
                                           float eps);
ubd_status ubd_cuda_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                       const float *gamma, const float *mean, const float *rstd, int B, int C, int S);
ubd_status ubd_cuda_batchnorm_backward_eval(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                            const float *inp, const float *gamma, const float *running_mean,
                                            const float *running_var, int B, int C, int S, float eps);
ubd_status ubd_cuda_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                      const float *beta, int B, int C, int S, int G, float eps);
ubd_status ubd_cuda_groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                       const float *gamma, const float *mean, const float *rstd, int B, int C, int S,
                                       int G);
ubd_status ubd_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                      const float *beta, int N, int C, float eps);
ubd_status ubd_cuda_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                       const float *gamma, const float *mean, const float *rstd, int N, int C);
ubd_status ubd_cuda_rmsnorm_forward(float *out, float *rnorm, const float *inp, const float *g, int B, int C, int L);
ubd_status ubd_cuda_rmsnorm_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                                     const float *rnorm, int B, int C, int L);
#endif

#ifdef __cplusplus
}
#endif
#endif
