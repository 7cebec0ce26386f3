/* autoencoder.h — the co-latent autoencoder of UB-Diff (VSNet of the authors'
 * code): encoder E (velocity -> z), two heads (z -> each modality's latent),
 * velocity decoder D_v (CNN) and seismic decoder D_s (2-block transformer +
 * one large Linear). One C call per training step, on the backend chosen at
 * creation (backend.h: "cpu" or "cuda"); every op goes through its table.
 *
 * Shapes of the paper configuration are in shared/specs/paper_config.md.
 * A model owns:
 *  - params: ONE flat ubd_params (param, grad, m, v buffers) whose views carry
 *    the authors' PyTorch state_dict names. The views are ordered in five
 *    contiguous groups   [E | head_v | D_v | head_s | D_s]
 *    (a training mode updates a set of them: E + the velocity side, the
 *    seismic side, ...).
 *  - bufs: a second ubd_params holding the BatchNorm running statistics
 *    (running_mean, running_var, num_batches_tracked), never trained.
 *  - activations, scratch, loss scalars and input staging for `max_batch`
 *    samples: one arena (arena.h), allocated once at creation.
 * All of them are memory of the model's backend. The compute calls below take
 * and return HOST arrays: inputs are staged onto the backend once per call (on
 * the CPU used in place), outputs and losses copied back once.
 */
#ifndef UBD_AUTOENCODER_H
#define UBD_AUTOENCODER_H

#include "../backend.h"
#include "../ops.h"
#include "../params.h"
#include "syncbn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes of a co-latent autoencoder; ubd_ae_config_paper() gives the paper's.
 * The velocity map is always 1 x 70 x 70 (the strides of E and D_v are fixed
 * to that size, as in the authors' code). */
typedef struct {
    int dim1, dim2, dim3, dim4; /* channel widths of E and D_v (32, 64, 128, 256) */
    int latent;                 /* z size, E's last width "dim5" (128) */
    int head_width;             /* vit_latent_dim (128): head_v outputs dd_v*head_width, head_s shots*head_width */
    int dd_v;                   /* velocity head multiplier (1) */
    int shots, nt, nr;          /* seismic record (5, 1000, 70) */
    int heads, depth, mlp_hidden; /* D_s transformer: 8 heads, 2 blocks, MLP 3200 */
    int max_batch;              /* activations are allocated for this many samples (64) */
} ubd_ae_config;

/* Parameter groups, in buffer order. */
typedef enum { UBD_AE_ENC = 0, UBD_AE_HEAD_V, UBD_AE_DEC_V, UBD_AE_HEAD_S, UBD_AE_DEC_S, UBD_AE_NGROUPS } ubd_ae_group;

typedef enum {
    UBD_AE_STEP1 = 1,  /* E + head_v + D_v on the velocity loss */
    UBD_AE_STEP2 = 2,  /* (1-F) l_v + l_s; F=1 trains head_s + D_s only (E, head_v, D_v frozen, BN eval) */
    UBD_AE_WO_OPT = 3, /* whole network on both losses (same computation as STEP2 with F=0) */
    UBD_AE_SEIS_FIRST = 4, /* E + head_s + D_s on the seismic loss (seismic-first variant, Eq. 3 first) */
    UBD_AE_VEL_AFTER = 5   /* head_v + D_v on the velocity loss, E frozen (BN eval): its Eq. 2 after */
} ubd_ae_mode;

typedef struct {
    ubd_adam_hparams adam;   /* lr, betas, eps, weight decay; decoupled = 1 for AdamW */
    float l1_v, mse_v;       /* gamma weights of the velocity loss (1, 1) */
    float l1_s, mse_s;       /* gamma weights of the seismic loss (1, 1) */
} ubd_ae_hparams;

/* losses_out layout (NaN where not computed in this mode) */
enum { UBD_AE_LOSS_TOTAL = 0, UBD_AE_LOSS_V, UBD_AE_LOSS_S, UBD_AE_L1_V, UBD_AE_MSE_V, UBD_AE_L1_S, UBD_AE_MSE_S,
       UBD_AE_NLOSSES };

typedef struct ubd_ae ubd_ae; /* opaque */

ubd_ae_config ubd_ae_config_paper(void);
/* Validates sizes (every layer's geometry) without allocating anything. */
ubd_status ubd_ae_config_check(const ubd_ae_config *cfg);
/* Builds the parameter table (params) and the BatchNorm-buffer table (bufs)
 * of `cfg` without allocating their buffers; group_off/group_n (UBD_AE_NGROUPS)
 * receive each group's range. Callers own and free the tables. */
ubd_status ubd_ae_build_spec(const ubd_ae_config *cfg, ubd_params *params, ubd_params *bufs, size_t *group_off,
                             size_t *group_n);

/* Creates a model on backend `be` (NULL: the CPU): tables, param/grad/m/v
 * buffers, BN buffers, activations. Parameters are initialised as PyTorch
 * would (seeded Philox streams: the same values on every backend). */
ubd_status ubd_ae_create(ubd_ae **out, const ubd_ae_config *cfg, uint64_t seed, const ubd_backend *be);
void ubd_ae_free(ubd_ae *model);
/* Re-initialises parameters and BN statistics (PyTorch defaults): conv/linear
 * weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform a=sqrt 5),
 * norms gamma 1 beta 0, class token and position embedding 0, running_var 1.
 * View i draws from Philox stream (seed, i). Also resets the optimiser. */
ubd_status ubd_ae_init(ubd_ae *model, uint64_t seed);
/* Zeroes Adam m, v and the per-group step counters (a fresh optimiser). */
ubd_status ubd_ae_reset_optimizer(ubd_ae *model);

const ubd_ae_config *ubd_ae_get_config(const ubd_ae *model);
/* The backend the model was created on. */
const ubd_backend *ubd_ae_backend(const ubd_ae *model);
ubd_params *ubd_ae_params(ubd_ae *model);
ubd_params *ubd_ae_buffers(ubd_ae *model);
void ubd_ae_group_range(const ubd_ae *model, int group, size_t *off, size_t *n);
long long ubd_ae_group_steps(const ubd_ae *model, int group);
/* Restores a group's Adam step counter (checkpoints); steps >= 0. */
ubd_status ubd_ae_set_group_steps(ubd_ae *model, int group, long long steps);

/* Training-mode BatchNorm statistics over all data-parallel ranks (SyncBatchNorm,
 * syncbn.h) in every BatchNorm of the model: E's and D_v's conv blocks and the two
 * heads (D_s has LayerNorms only). fn sums doubles over the ranks (NULL: per-process
 * statistics, the default); the caller keeps fn and ctx valid while set. CPU only. */
ubd_status ubd_ae_set_bn_sync(ubd_ae *model, ubd_allreduce_fn fn, void *ctx);

/* z_out (B, latent) = E(vel); vel (B, 1, 70, 70). training: BatchNorm on batch
 * statistics, updating running statistics (needs B >= 2); else eval mode. */
ubd_status ubd_ae_encode(ubd_ae *model, float *z_out, const float *vel, int B, int training);
/* Eval-mode decoding of z (B, latent): vel_out (B, 1, 70, 70) and/or
 * seis_out (B, shots, nt, nr); either may be NULL. */
ubd_status ubd_ae_decode(ubd_ae *model, float *vel_out, float *seis_out, const float *z, int B);

/* The training step, split for data-parallel training (an all-reduce of the
 * gradient range fits between the two calls):
 *
 * ubd_ae_forward_backward: forward + backward WITHOUT the optimiser update;
 * the gradient buffer of the trained groups' range (ubd_ae_trained_range) is
 * zeroed, then the trained groups' gradient filled; BatchNorm runs in training
 * mode (running statistics updated). vel (B,1,70,70), seis (B, shots, nt, nr)
 * normalised host arrays (seis may be NULL in STEP1 and VEL_AFTER only).
 * freeze = F of STEP2 (ignored in the other modes).
 * losses_out (UBD_AE_NLOSSES), host: NaN where the mode computes none. */
ubd_status ubd_ae_forward_backward(ubd_ae *model, float *losses_out, const float *vel, const float *seis, int B,
                                   ubd_ae_mode mode, int freeze, const ubd_ae_hparams *hp);
/* AdamW (adam: decoupled = 1) on the groups `mode`/`freeze` train, from the
 * gradient buffer as it stands; each group's step counter, for the bias
 * correction, counts its own updates. */
ubd_status ubd_ae_apply_update(ubd_ae *model, ubd_ae_mode mode, int freeze, const ubd_adam_hparams *adam);
/* [*off, *off + *n): the floats of the flat buffers from the mode's first to
 * its last trained group: the gradient range to all-reduce (for SEIS_FIRST it
 * also spans head_v and D_v, whose gradient is zero there and not applied). */
ubd_status ubd_ae_trained_range(const ubd_ae *model, ubd_ae_mode mode, int freeze, size_t *off, size_t *n);
/* One step: forward_backward, a check that every computed loss is finite
 * (else an error and nothing updated), apply_update. */
ubd_status ubd_ae_train_step(ubd_ae *model, float *losses_out, const float *vel, const float *seis, int B,
                             ubd_ae_mode mode, int freeze, const ubd_ae_hparams *hp);

/* The parts driven from outside (ae_latent.c; the baselines SD-seismic and
 * MT-Diffusion, whose latent is not E's alone). Host arrays.
 *
 * ubd_ae_decode_backward: z (B, latent) through head_v + D_v when vel
 * (B,1,70,70) is given and head_s + D_s when seis (B, shots, nt, nr) is given,
 * BatchNorm in training mode (running statistics updated; B >= 2); loss
 * l = l_v + l_s of the given modalities (hp's gammas; hp->adam unused);
 * parameter gradients of the heads and decoders run += (NOT zeroed first);
 * dz_out (B, latent) = dl/dz (overwritten). losses_out (UBD_AE_NLOSSES) as
 * forward_backward's, NaN for a modality not given. */
ubd_status ubd_ae_decode_backward(ubd_ae *model, float *losses_out, float *dz_out, const float *z, const float *vel,
                                  const float *seis, int B, const ubd_ae_hparams *hp);
/* After ubd_ae_encode(training = 1) of the same vel (B,1,70,70) and B, with no
 * other run of E in between: E's parameter gradients += for dz (B, latent) = dl/dz. */
ubd_status ubd_ae_encode_backward(ubd_ae *model, const float *dz, const float *vel, int B);
/* Forgets E's saved training forward: ubd_ae_encode_backward raises until a
 * new training-mode encode (or forward_backward that trains E) ran. The model
 * calls it itself wherever its parameters or BatchNorm statistics change
 * (init, apply_update, train_step); a caller that writes the param or
 * statistics buffers through the tables (ubd_params_write, a load) calls it
 * too, or encode_backward would differentiate the activations of the old
 * weights. Writes to grad, m and v do not concern the forward. (The other
 * backward passes run in the same call as their forward.) */
void ubd_ae_forget_forward(ubd_ae *model);

#ifdef __cplusplus
}
#endif
#endif
