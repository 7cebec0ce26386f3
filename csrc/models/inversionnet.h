/* inversionnet.h — InversionNet (Wu & Lin 2019; OpenFWI's network.py), the
 * evaluator of the paper: seismic (B, in_channels, nt, nx) -> velocity
 * (B, 1, 70, 70) in [-1, 1].
 *
 * Architecture (shared/specs/paper_config.md): 14 encoder blocks (conv + BN +
 * LeakyReLU 0.2) down to (dim5, 1, 1), 10 decoder blocks (5 ConvTranspose
 * blocks up 1 -> 5 -> 10 -> 20 -> 40 -> 80, each followed by a 3x3 conv block),
 * a crop of 5 cells per side (80 -> 70) and a conv + BN + Tanh block.
 *
 * The single source of truth for the layers is ubd_invnet_layout(): it lists
 * the blocks with OpenFWI's module names (convblock1 ... deconv6) and their
 * geometry for a config; the parameter and buffer tables (names exactly as the
 * keys of OpenFWI's state_dict: "<block>.layers.0.weight", ".layers.0.bias",
 * ".layers.1.weight", ".layers.1.bias", ".layers.1.running_mean",
 * ".layers.1.running_var") are generated from it.
 *
 * One difference from network.py, by design: convblock8's kernel is the
 * spatial size of its input (so the encoder always ends at 1 x 1), computed
 * from nt and nx; network.py hard-codes (8, ceil(70 * sample_spatial / 8)),
 * which is the same (8, 9) for the paper's nt = 1000, nx = 70.
 */
#ifndef UBD_INVERSIONNET_H
#define UBD_INVERSIONNET_H

#include "arena.h"
#include "block2d.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UBD_INVNET_BLOCKS 25 /* 14 encoder + 11 decoder blocks */
#define UBD_INVNET_OUT 70    /* output maps are 70 x 70 */
#define UBD_INVNET_CROP 5    /* cells cropped per side before deconv6 */

typedef struct {
    int dim[5];          /* dim1..dim5 of network.py: 32, 64, 128, 256, 512 */
    int in_channels;     /* shots: 5 */
    int nt, nx;          /* seismic time samples and receivers: 1000, 70 */
    int max_batch;       /* activation buffers are sized for this batch */
    float slope;         /* LeakyReLU negative slope: 0.2 */
    float bn_momentum;   /* 0.1 */
    float bn_eps;        /* 1e-5 */
} ubd_invnet_config;

typedef struct {
    char name[24];       /* OpenFWI module name, e.g. "convblock2_1", "deconv6" */
    int crop_before;     /* 1: the input is the previous output cropped by UBD_INVNET_CROP per side */
    ubd_block2d k;
} ubd_invnet_block;

/* The blocks of `cfg` (geometry checked; OH/OW filled). blocks has
 * UBD_INVNET_BLOCKS entries. Allocates nothing. */
ubd_status ubd_invnet_layout(ubd_invnet_block *blocks, const ubd_invnet_config *cfg);
/* Adds the parameter views (to params) and BatchNorm running-statistic views
 * (to stats) of `cfg`, in state_dict order. Allocates no buffer. */
ubd_status ubd_invnet_tables(ubd_params *params, ubd_params *stats, const ubd_invnet_config *cfg);

typedef struct {
    /* offsets (floats) into params / stats of one block's tensors */
    size_t w, b, gamma, beta, rmean, rvar;
    /* activations for max_batch: (max_batch, OC, OH, OW) each; y only for tanh */
    float *z, *y, *a;
    float *mean, *rstd; /* (OC) batch statistics of the last training forward */
} ubd_invnet_state;

/* Every buffer below is memory of the model's backend `be` (device memory on a
 * GPU); the host arguments of the calls (seis, vel, out, dout, losses_out)
 * cross over once per call through the staging slices of the arena. */
typedef struct {
    ubd_invnet_config cfg;
    const ubd_backend *be; /* chosen at creation; every op goes through it */
    ubd_invnet_block blocks[UBD_INVNET_BLOCKS];
    ubd_invnet_state st[UBD_INVNET_BLOCKS];
    ubd_params params;   /* param, grad, m, v */
    ubd_params stats;    /* running_mean / running_var in its param buffer */
    float *crop;         /* (max_batch, dim1, 70, 70) cropped decoder features */
    float *g[3];         /* gradient scratch, gsize floats each */
    size_t gsize;
    float *work;         /* conv workspace, wsize floats */
    size_t wsize;
    float *seis_in;      /* (max_batch, in_channels, nt, nx) staged input; NULL on the CPU */
    float *vel_in;       /* (max_batch, 1, 70, 70) staged target; NULL on the CPU */
    float *loss;         /* (2) L1 and MSE of the last training step */
    ubd_arena arena;     /* one allocation behind all activation buffers above */
    ubd_bn_sync bn_sync; /* the blocks' BatchNorm all-reduce hook when fn != NULL (ubd_invnet_set_bn_sync) */
    long long step;      /* AdamW steps taken (bias correction) */
    int last_train_B;    /* batch of the last training forward (0: none; backward needs one) */
} ubd_invnet;

/* Allocates a model for `cfg` on backend `be` (ubd_backend_get; NULL: the
 * CPU). Parameters are zero: call ubd_invnet_init. */
ubd_status ubd_invnet_create(ubd_invnet **out, const ubd_invnet_config *cfg, const ubd_backend *be);
void ubd_invnet_free(ubd_invnet *m);
/* Re-sizes the activation buffers for batches up to max_batch (parameters,
 * statistics and optimiser state stay where they are; a pending backward is
 * forgotten). On failure the model is unchanged. */
ubd_status ubd_invnet_reserve(ubd_invnet *m, int max_batch);
/* PyTorch's default initialisation, drawn from Philox streams of `seed`:
 * conv weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in =
 * weight.shape[1] * KH * KW (as torch, also for ConvTranspose), BN gamma 1,
 * beta 0, running mean 0, running var 1. Resets Adam state and step. */
ubd_status ubd_invnet_init(ubd_invnet *m, uint64_t seed);

/* Host arrays: out, seis, dout, vel, losses_out, vel_out below.
 * Forward pass. out (B,1,70,70); seis (B,in_channels,nt,nx); B <= max_batch.
 * train = 1: batch statistics (running stats updated), saves what backward
 * needs; train = 0: running statistics (eval). */
ubd_status ubd_invnet_forward(ubd_invnet *m, float *out, const float *seis, int B, int train);
/* Backward of the last training forward (same seis, same B): parameter
 * gradients += into m->params.buf[UBD_BUF_GRAD]. dout (B,1,70,70). */
ubd_status ubd_invnet_backward(ubd_invnet *m, const float *dout, const float *seis, int B);
/* Forgets the saved training forward: the next backward raises until a new
 * one ran. The model calls it itself wherever its parameters or statistics
 * change (init, train_step, apply_update) or its activations move (reserve);
 * a caller that writes the param or statistics buffers through the tables
 * (ubd_params_write, a load) calls it too, or backward would differentiate
 * the activations of the old weights. Writes to grad, m and v do not concern
 * the forward. */
void ubd_invnet_forget_forward(ubd_invnet *m);

typedef struct {
    float lr, beta1, beta2, eps, weight_decay; /* AdamW (decoupled weight decay) */
    float w_l1, w_mse;                         /* loss = w_l1 * L1 + w_mse * MSE */
} ubd_invnet_hparams;

/* One training step: zero grads, training forward, loss, backward, AdamW.
 * losses_out (3) = (loss, l1, mse) before the update; vel (B,1,70,70). */
ubd_status ubd_invnet_train_step(ubd_invnet *m, float *losses_out, const float *seis, const float *vel, int B,
                                 ubd_invnet_hparams hp);
/* The update half of a split step (for data-parallel training, after an
 * all-reduce of the gradient buffer): one AdamW step (adam.decoupled = 1 for
 * AdamW) of the flat buffers with the gradients as they stand, step number
 * step + 1 (bias correction); the step counter advances. */
ubd_status ubd_invnet_apply_update(ubd_invnet *m, ubd_adam_hparams adam);
/* Training-mode BatchNorm over all data-parallel ranks (syncbn.h): fn sums doubles over the
 * ranks; fn = NULL returns to per-process statistics. Eval mode is not affected. */
ubd_status ubd_invnet_set_bn_sync(ubd_invnet *m, ubd_allreduce_fn fn, void *ctx);
/* Eval-mode forward: vel_out (B,1,70,70). */
ubd_status ubd_invnet_predict(ubd_invnet *m, float *vel_out, const float *seis, int B);

#ifdef __cplusplus
}
#endif
#endif
