/* featnet.h — a small feature CNN: the reference network of ubdiff's FID/KID.
 *
 *   x (B, C, H, W) -> nblocks x [Conv2d (no bias) -> BatchNorm -> ReLU]
 *                  -> global average pooling -> feature (B, F), F = last OC
 *                  -> Linear head "cls" (B, n_classes)   (softmax cross-entropy)
 *                  -> Linear head "reg" (B, n_reg)       (MSE; optional, n_reg 0)
 *
 * The blocks' kernels and strides are free (a seismic net starts with a
 * (k, 1)-shaped, stride-(4, 1) block that shrinks time). FID/KID use the
 * pooled feature of the eval-mode forward; the heads only exist to train it.
 *
 * Parameter names (dotted, PyTorch-like): blocks.<i>.conv.weight (OC,C,KH,KW),
 * blocks.<i>.bn.weight / .bias (OC), head.cls.weight (K,F) / .bias (K),
 * head.reg.weight (R,F) / .bias (R); BatchNorm statistics (a second table):
 * blocks.<i>.bn.running_mean / .running_var (OC).
 *
 * The model lives on one backend (backend.h), chosen at creation: its
 * parameters, statistics and activations are that backend's memory, every op
 * goes through the table, and each block is the shared Conv + BatchNorm +
 * activation unit (block2d.h) with a bias-free conv and ReLU. The entry points
 * take host arrays (x, labels, targets, outputs) that cross over once per
 * call through staging slices of the arena; on the CPU they are used in place.
 * Forward, backward and a training step allocate nothing.
 *
 * Training is one call (ubd_featnet_train_step) or, for data-parallel
 * training where an all-reduce of the flat gradient buffer goes in between,
 * its two halves: ubd_featnet_accumulate (forward, losses, backward: grads +=)
 * and ubd_featnet_apply (AdamW over the flat buffers).
 */
#ifndef UBD_FEATNET_H
#define UBD_FEATNET_H

#include "arena.h"
#include "block2d.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UBD_FEATNET_MAX_BLOCKS 8

typedef struct {
    int OC, KH, KW, SH, SW, PH, PW;
} ubd_featnet_block;

typedef struct {
    int C, H, W;         /* input (per sample) */
    int nblocks;         /* 1..UBD_FEATNET_MAX_BLOCKS */
    ubd_featnet_block blocks[UBD_FEATNET_MAX_BLOCKS];
    int n_classes;       /* >= 1 */
    int n_reg;           /* >= 0 (0: no regression head) */
    int max_batch;       /* activation buffers are sized for this batch */
    float bn_momentum;   /* 0.1 */
    float bn_eps;        /* 1e-5 */
} ubd_featnet_config;

/* Every buffer below is memory of the model's backend `be`. */
typedef struct {
    ubd_featnet_config cfg;
    const ubd_backend *be; /* chosen at creation; every op goes through it */
    ubd_block2d blk[UBD_FEATNET_MAX_BLOCKS]; /* geometry of every block (input size, OH, OW) */
    int OH[UBD_FEATNET_MAX_BLOCKS], OW[UBD_FEATNET_MAX_BLOCKS];
    int F;               /* feature dimension (last block's OC) */
    /* offsets (floats) into params / stats */
    size_t w[UBD_FEATNET_MAX_BLOCKS], gamma[UBD_FEATNET_MAX_BLOCKS], beta[UBD_FEATNET_MAX_BLOCKS];
    size_t rmean[UBD_FEATNET_MAX_BLOCKS], rvar[UBD_FEATNET_MAX_BLOCKS];
    size_t cls_w, cls_b, reg_w, reg_b;
    ubd_params params;   /* param, grad, m, v */
    ubd_params stats;    /* running statistics in its param buffer */
    /* activations for max_batch, (max_batch, OC, OH, OW) each:
     * z conv output (BatchNorm's input), a block output (ReLU applied in place) */
    float *z[UBD_FEATNET_MAX_BLOCKS], *a[UBD_FEATNET_MAX_BLOCKS];
    float *mean[UBD_FEATNET_MAX_BLOCKS], *rstd[UBD_FEATNET_MAX_BLOCKS]; /* (OC) */
    float *feat, *logits, *probs, *reg;   /* (max_batch, F / K / K / R) */
    float *dfeat, *dlogits, *dreg;        /* gradients of the three outputs */
    float *g[3];         /* rotating gradient scratch, gsize floats each */
    size_t gsize;
    float *work;         /* conv workspace, wsize floats (max over blocks and batch sizes) */
    size_t wsize;
    float *loss;         /* (2) cross-entropy and MSE of the last accumulate */
    int *correct;        /* (1) correct arg-maxes of the last accumulate */
    float *x_in;         /* (max_batch, C, H, W) staged input; NULL on the CPU */
    int *labels_in;      /* (max_batch) staged labels; NULL on the CPU */
    float *reg_in;       /* (max_batch, R) staged regression targets; NULL on the CPU */
    ubd_arena arena;     /* the one allocation behind every activation buffer above */
    long long step;      /* AdamW steps taken (bias correction) */
    int last_train_B;    /* batch of the last training forward (0: none) */
} ubd_featnet;

/* Checks a config (geometry of every block). */
ubd_status ubd_featnet_check(const ubd_featnet_config *cfg);
/* Adds the parameter and statistic views of `cfg` (no buffer allocated). */
ubd_status ubd_featnet_tables(ubd_params *params, ubd_params *stats, const ubd_featnet_config *cfg);

/* A model for `cfg` on backend `be` (ubd_backend_get; NULL: the CPU).
 * Parameters are zero: call ubd_featnet_init. */
ubd_status ubd_featnet_create(ubd_featnet **out, const ubd_featnet_config *cfg, const ubd_backend *be);
void ubd_featnet_free(ubd_featnet *m);
/* Initialisation from Philox streams of `seed` (one stream per tensor):
 * conv weights N(0, 2/fan_in) (He, for ReLU), heads U(+-1/sqrt(F)) with zero
 * bias, BN gamma 1 beta 0, running mean 0 var 1. Resets Adam and the step. */
ubd_status ubd_featnet_init(ubd_featnet *m, uint64_t seed);

/* Host arrays: x, feat, logits, reg, dfeat, dlogits, dreg, labels, reg_target, out below.
 * Forward pass of x (B, C, H, W), B <= max_batch. train = 1: batch
 * statistics (running statistics updated) and everything backward needs is
 * kept; train = 0: running statistics. Copies of the outputs go to feat
 * (B, F), logits (B, K), reg (B, R) where not NULL. */
ubd_status ubd_featnet_forward(ubd_featnet *m, float *feat, float *logits, float *reg, const float *x, int B,
                               int train);
/* Backward of the last training forward (same x, same B): parameter gradients
 * += into params.buf[UBD_BUF_GRAD], given the gradients of the outputs
 * (any may be NULL = zero): dfeat (B, F), dlogits (B, K), dreg (B, R). */
ubd_status ubd_featnet_backward(ubd_featnet *m, const float *dfeat, const float *dlogits, const float *dreg,
                                const float *x, int B);
/* Forgets the saved training forward: the next backward raises until a new
 * one ran. The model calls it itself wherever its parameters or statistics
 * change (init, apply, train_step); a caller that writes the param or
 * statistics buffers through the tables (ubd_params_write, a load) calls it
 * too, or backward would differentiate the activations of the old weights.
 * Writes to grad, m and v do not concern the forward. */
void ubd_featnet_forget_forward(ubd_featnet *m);

typedef struct {
    float lr, beta1, beta2, eps, weight_decay; /* AdamW (decoupled weight decay) */
    float w_reg;                               /* loss = xent + w_reg * mse(reg, reg_target) */
} ubd_featnet_hparams;

/* One training step: zero grads, ubd_featnet_accumulate, ubd_featnet_apply.
 * out (4) = (loss, xent, mse, batch accuracy) before the update.
 * x (B,C,H,W); labels (B) in [0, n_classes); reg_target (B, R), NULL iff n_reg = 0. */
ubd_status ubd_featnet_train_step(ubd_featnet *m, float *out, const float *x, const int *labels,
                                  const float *reg_target, int B, ubd_featnet_hparams hp);
/* The first half: training forward, loss = xent + w_reg * mse, backward;
 * parameter gradients += (zero them first for a fresh step). out (4) as above. */
ubd_status ubd_featnet_accumulate(ubd_featnet *m, float *out, const float *x, const int *labels,
                                  const float *reg_target, int B, float w_reg);
/* The second half: one AdamW step of the flat buffers with the gradients as
 * they are (summed or averaged by the caller, e.g. after an all-reduce). */
ubd_status ubd_featnet_apply(ubd_featnet *m, ubd_featnet_hparams hp);

#ifdef __cplusplus
}
#endif
#endif
