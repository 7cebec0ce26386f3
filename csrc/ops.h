/* ops.h — basic ops of the C core: linear, activations, losses, optimiser,
 * random streams. This header holds their types and semantics; the
 * prototypes (ubd_cpu_<op>, ubd_cuda_<op>, one signature for both) come from
 * the list in backend.h, included at the end.
 *
 * Gradients accumulate (+=); a NULL gradient pointer is skipped.
 *
 *  linear_forward   out = inp @ weight^T + bias (PyTorch layout)
 *  act_forward      out = f(inp) elementwise; act_backward dinp += dout * f'(inp)
 *  l1_forward       loss = mean |pred - target|;  l1_backward  dpred += scale * sign(pred - target) / n
 *  mse_forward      loss = mean (pred - target)^2; mse_backward dpred += scale * 2 (pred - target) / n
 *  adam_update      one Adam(W) step number t (1-based, for bias correction) over n floats:
 *                   param, m, v updated in place, grad read only
 *  ema_update       ema = decay * ema + (1 - decay) * param
 *  grad_norm        norm = ||grad||_2, accumulated in double
 *  clip_grad_norm   scales grad so its L2 norm is at most max_norm (coef = max_norm / (norm + 1e-6),
 *                   as torch.nn.utils.clip_grad_norm_); norm receives the norm before
 *  rand_uniform, rand_normal, init_uniform, init_normal   Philox streams (philox.h)
 * The scalar outputs (loss, norm) are backend memory like every other
 * pointer: on a GPU nothing waits for the host until the model copies them out.
 */
#ifndef UBD_OPS_H
#define UBD_OPS_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Elementwise activations. */
typedef enum {
    UBD_ACT_RELU = 0,
    UBD_ACT_LEAKY_RELU = 1, /* param = negative slope */
    UBD_ACT_TANH = 2,
    UBD_ACT_SILU = 3,
    UBD_ACT_GELU = 4,       /* exact erf form */
    UBD_ACT_NUM
} ubd_act;

/* Adam(W) hyper-parameters. */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled; /* 1: AdamW (p -= lr*wd*p), 0: Adam with L2 (g += wd*p) */
} ubd_adam_hparams;

/* Ok when lr and weight_decay are finite and >= 0, betas in [0, 1) and eps
 * finite and > 0; else UBD_ERR_VALUE with a message prefixed by `who`. Every
 * training step runs it before it changes anything (cpu/optim.c). */
ubd_status ubd_adam_check(const char *who, ubd_adam_hparams hp);

#ifdef __cplusplus
}
#endif

#include "backend.h" /* the prototypes */
#endif
