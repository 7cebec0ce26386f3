/* seis_encoder.h — the seismic encoder of the baselines (SD-seismic and
 * MT-Diffusion, issue 11): an InversionNet-style conv encoder of a seismic
 * record (B, in_channels, nt, nx) to a latent z (B, latent) in (-1, 1), the
 * same 128-d latent as the UB-Diff encoder E.
 *
 * The layers ARE InversionNet's encoder: the first UBD_SEISENC_BLOCKS rows of
 * ubd_invnet_layout (convblock1 ... convblock8, OpenFWI's module names) for an
 * InversionNet whose dim5 is `latent`, run by the shared block2d. The one
 * change: convblock8 ends in Tanh instead of LeakyReLU (as E's last block), so
 * z lies in (-1, 1) like E's latents and the same diffusion applies.
 *
 * Layer table (paper sizes: dims 32, 64, 128, 256, latent 128, input 5 x 1000 x 70;
 * every block Conv2d + BatchNorm2d + LeakyReLU(0.2), the last + Tanh):
 *   convblock1    5 ->  32  k(7,1) s(2,1) p(3,0)   1000x70 -> 500x70
 *   convblock2_1  32 -> 64  k(3,1) s(2,1) p(1,0)    500x70 -> 250x70
 *   convblock2_2  64 -> 64  k(3,1) s(1,1) p(1,0)    250x70
 *   convblock3_1  64 -> 64  k(3,1) s(2,1) p(1,0)    250x70 -> 125x70
 *   convblock3_2  64 -> 64  k(3,1) s(1,1) p(1,0)    125x70
 *   convblock4_1  64 -> 128 k(3,1) s(2,1) p(1,0)    125x70 -> 63x70
 *   convblock4_2 128 -> 128 k(3,1) s(1,1) p(1,0)     63x70
 *   convblock5_1 128 -> 128 k3 s2 p1                 63x70 -> 32x35
 *   convblock5_2 128 -> 128 k3 s1 p1                 32x35
 *   convblock6_1 128 -> 256 k3 s2 p1                 32x35 -> 16x18
 *   convblock6_2 256 -> 256 k3 s1 p1                 16x18
 *   convblock7_1 256 -> 256 k3 s2 p1                 16x18 -> 8x9
 *   convblock7_2 256 -> 256 k3 s1 p1                  8x9
 *   convblock8   256 -> 128 k(8,9) (the whole map)    8x9 -> 1x1, Tanh
 * Parameters (conv weight + bias + BN gamma + beta): 4,842,304 at paper sizes
 * (tests/test_seis_encoder.py checks the count against this table).
 *
 * Memory follows the backend recipe: params (param, grad, m, v) and stats
 * (BatchNorm running mean / var) are ubd_params tables on the model's backend;
 * every activation, scratch and staging slice is one arena. The compute calls
 * take host arrays, staged once per call.
 */
#ifndef UBD_SEIS_ENCODER_H
#define UBD_SEIS_ENCODER_H

#include "arena.h"
#include "inversionnet.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UBD_SEISENC_BLOCKS 14 /* InversionNet's encoder: convblock1 .. convblock8 */

typedef struct {
    int dim[4];        /* dim1..dim4 of InversionNet's encoder: 32, 64, 128, 256 */
    int latent;        /* convblock8's width = z's size (InversionNet's dim5): 128 */
    int in_channels;   /* shots: 5 */
    int nt, nx;        /* time samples and receivers: 1000, 70 */
    int max_batch;     /* activations are sized for this batch */
    float slope;       /* LeakyReLU slope: 0.2 */
    float bn_momentum; /* 0.1 */
    float bn_eps;      /* 1e-5 */
} ubd_seisenc_config;

/* The blocks of cfg (UBD_SEISENC_BLOCKS entries; geometry checked). */
ubd_status ubd_seisenc_layout(ubd_invnet_block *blocks, const ubd_seisenc_config *cfg);
/* Parameter and statistics tables of cfg (names "<block>.layers.0.weight", ...
 * as InversionNet's), without allocating their buffers. */
ubd_status ubd_seisenc_tables(ubd_params *params, ubd_params *stats, const ubd_seisenc_config *cfg);

typedef struct {
    ubd_seisenc_config cfg;
    const ubd_backend *be;  /* chosen at creation; every op goes through it */
    ubd_invnet_block blocks[UBD_SEISENC_BLOCKS];
    ubd_invnet_state st[UBD_SEISENC_BLOCKS]; /* offsets + activations, as InversionNet's */
    ubd_params params;      /* param, grad, m, v */
    ubd_params stats;       /* running_mean / running_var */
    float *g[3];            /* gradient scratch, gsize floats each */
    size_t gsize;
    float *work;            /* conv workspace, wsize floats */
    size_t wsize;
    float *seis_in;         /* (max_batch, in_channels, nt, nx) staging; NULL on the CPU */
    ubd_arena arena;        /* one allocation behind every activation slice */
    long long step;         /* AdamW steps taken (bias correction) */
    int last_train_B;       /* batch of the last training forward (0: none) */
} ubd_seisenc;

/* A model on backend be (NULL: the CPU); parameters zero until ubd_seisenc_init. */
ubd_status ubd_seisenc_create(ubd_seisenc **out, const ubd_seisenc_config *cfg, const ubd_backend *be);
void ubd_seisenc_free(ubd_seisenc *m);
/* Re-sizes the activations for batches up to max_batch; on failure the model is unchanged. */
ubd_status ubd_seisenc_reserve(ubd_seisenc *m, int max_batch);
/* PyTorch's default initialisation from Philox streams of seed (block l: weight
 * stream 2l, bias 2l+1, as InversionNet); BN gamma 1, beta 0, running mean 0,
 * var 1; Adam state and step reset. */
ubd_status ubd_seisenc_init(ubd_seisenc *m, uint64_t seed);

/* Host arrays below. z_out (B, latent); seis (B, in_channels, nt, nx);
 * train = 1: batch statistics (running ones updated, B >= 2), keeps what
 * backward needs; train = 0: running statistics. */
ubd_status ubd_seisenc_forward(ubd_seisenc *m, float *z_out, const float *seis, int B, int train);
/* Backward of the last training forward (same seis, same B): parameter
 * gradients += dL/dparams for dz (B, latent) = dL/dz. No input gradient (the
 * records are data). */
ubd_status ubd_seisenc_backward(ubd_seisenc *m, const float *dz, const float *seis, int B);
/* Forgets the saved training forward: the next backward raises until a new
 * one ran. The model calls it itself wherever its parameters or statistics
 * change (init, apply_update) or its activations move (reserve); a caller
 * that writes the param or statistics buffers through the tables
 * (ubd_params_write, a load) calls it too, or backward would differentiate
 * the activations of the old weights. Writes to grad, m and v do not concern
 * the forward. */
void ubd_seisenc_forget_forward(ubd_seisenc *m);
/* AdamW on every parameter from the gradient buffer as it stands; step += 1. */
ubd_status ubd_seisenc_apply_update(ubd_seisenc *m, ubd_adam_hparams adam);

#ifdef __cplusplus
}
#endif
#endif
