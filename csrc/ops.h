/* ops.h — basic ops of the C core: linear, activations, losses, optimiser,
 * random streams. Every CPU op ubd_cpu_X has a CUDA twin ubd_cuda_X with the
 * same argument list (device pointers) where csrc/cuda implements it.
 *
 * Gradients accumulate (+=); a NULL gradient pointer is skipped.
 */
#ifndef UBD_OPS_H
#define UBD_OPS_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- linear: out = inp @ weight^T + bias (PyTorch layout) ------------- */
/* out (B, OC); inp (B, C); weight (OC, C); bias (OC) or NULL */
ubd_status ubd_cpu_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int C,
                                  int OC);
/* dinp (B, C) += ; dweight (OC, C) += ; dbias (OC) += ; dout (B, OC) */
ubd_status ubd_cpu_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                   const float *weight, int B, int C, int OC);

/* ---- elementwise activations: out (n), inp (n) ------------------------ */
typedef enum {
    UBD_ACT_RELU = 0,
    UBD_ACT_LEAKY_RELU = 1, /* param = negative slope */
    UBD_ACT_TANH = 2,
    UBD_ACT_SILU = 3,
    UBD_ACT_GELU = 4,       /* exact erf form */
    UBD_ACT_NUM
} ubd_act;

ubd_status ubd_cpu_act_forward(float *out, const float *inp, size_t n, ubd_act act, float param);
/* dinp (n) += dout * f'(inp) */
ubd_status ubd_cpu_act_backward(float *dinp, const float *dout, const float *inp, size_t n, ubd_act act, float param);

/* ---- losses (means over n elements) ------------------------------------ */
/* loss (1) = mean |pred - target| ; dpred (n) += scale * sign(pred-target) / n */
ubd_status ubd_cpu_l1_forward(float *loss, const float *pred, const float *target, size_t n);
ubd_status ubd_cpu_l1_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);
/* loss (1) = mean (pred - target)^2 ; dpred (n) += scale * 2 (pred-target) / n */
ubd_status ubd_cpu_mse_forward(float *loss, const float *pred, const float *target, size_t n);
ubd_status ubd_cpu_mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

/* ---- optimiser over flat buffers --------------------------------------- */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled; /* 1: AdamW (p -= lr*wd*p), 0: Adam with L2 (g += wd*p) */
} ubd_adam_hparams;

/* Ok when lr and weight_decay are finite and >= 0, betas in [0, 1) and eps
 * finite and > 0; else UBD_ERR_VALUE with a message prefixed by `who`. */
ubd_status ubd_adam_check(const char *who, ubd_adam_hparams hp);
/* One Adam(W) step number t (1-based, for bias correction) over n floats.
 * param, m, v (n) updated in place; grad (n) read only. */
ubd_status ubd_cpu_adam_update(float *param, float *m, float *v, const float *grad, size_t n, ubd_adam_hparams hp,
                               long long t);
/* ema (n) = decay * ema + (1 - decay) * param */
ubd_status ubd_cpu_ema_update(float *ema, const float *param, size_t n, float decay);
/* norm (1) = ||grad||_2, accumulated in double */
ubd_status ubd_cpu_grad_norm(float *norm, const float *grad, size_t n);
/* Scales grad so its L2 norm is at most max_norm (coef = max_norm/(norm+1e-6),
 * as torch.nn.utils.clip_grad_norm_); norm (1) receives the norm before. */
ubd_status ubd_cpu_clip_grad_norm(float *norm, float *grad, size_t n, float max_norm);

/* ---- random streams (philox.h) ------------------------------------------ */
ubd_status ubd_cpu_rand_uniform(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
ubd_status ubd_cpu_rand_normal(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

/* ---- CUDA twins (csrc/cuda); device pointers --------------------------- */
#ifdef UBDIFF_WITH_CUDA
ubd_status ubd_cuda_act_forward(float *out, const float *inp, size_t n, ubd_act act, float param);
ubd_status ubd_cuda_act_backward(float *dinp, const float *dout, const float *inp, size_t n, ubd_act act, float param);
ubd_status ubd_cuda_adam_update(float *param, float *m, float *v, const float *grad, size_t n, ubd_adam_hparams hp,
                                long long t);
ubd_status ubd_cuda_ema_update(float *ema, const float *param, size_t n, float decay);
ubd_status ubd_cuda_rand_uniform(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
ubd_status ubd_cuda_rand_normal(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
ubd_status ubd_cuda_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int C,
                                   int OC);
ubd_status ubd_cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                    const float *weight, int B, int C, int OC);
/* loss and norm (1) are device floats: nothing waits for the host */
ubd_status ubd_cuda_l1_forward(float *loss, const float *pred, const float *target, size_t n);
ubd_status ubd_cuda_l1_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);
ubd_status ubd_cuda_mse_forward(float *loss, const float *pred, const float *target, size_t n);
ubd_status ubd_cuda_mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);
ubd_status ubd_cuda_grad_norm(float *norm, const float *grad, size_t n);
ubd_status ubd_cuda_clip_grad_norm(float *norm, float *grad, size_t n, float max_norm);
#endif

#ifdef __cplusplus
}
#endif
#endif
