/* ae_internal.h — the co-latent autoencoder's structures, shared by its
 * source files (not part of the public API; see autoencoder.h).
 *
 * Memory: parameters (params) and BatchNorm statistics (bufs) are ubd_params
 * tables on the model's backend; every activation, gradient scratch, loss
 * scalar and staging buffer is a slice of ONE arena (arena.h), planned by
 * ae_lay_out (ae_layout.c) for max_batch samples. All pointers below are
 * memory of m->be. */
#ifndef UBD_AE_INTERNAL_H
#define UBD_AE_INTERNAL_H

#include "../arena.h"
#include "autoencoder.h"
#include "block2d.h"

#define UBD_AE_NENC 15      /* conv blocks of E */
#define UBD_AE_NDECV 11     /* conv blocks of D_v (the crop sits before the last) */
#define UBD_AE_MAX_DEPTH 16 /* transformer blocks of D_s */
#define UBD_AE_VEL 70       /* velocity maps are 70 x 70 */
#define UBD_AE_CROP 5       /* D_v crops 80 -> 70 */
#define UBD_AE_BN_MOMENTUM 0.1f
#define UBD_AE_BN_EPS 1e-5f
#define UBD_AE_LN_EPS 1e-6f
#define UBD_AE_LEAKY 0.2f

/* Conv (or ConvTranspose) + BatchNorm2d + activation: the authors' ConvBlock,
 * DeconvBlock and ConvBlock_Tanh (module `.layers` = [conv, bn, act]), run by
 * the shared block2d (block2d.h) plus the num_batches_tracked counter. */
typedef struct {
    ubd_block2d k;                  /* geometry, activation (ReLU or Tanh), BatchNorm constants */
    size_t w, b, g, beta;           /* param offsets: conv weight, conv bias, bn weight, bn bias */
    size_t rm, rv, nbt;             /* buffer offsets: running_mean, running_var, num_batches_tracked */
    /* activations, allocated for max_batch samples: */
    float *z;                       /* (B, OC, OH, OW) conv output (BN input) */
    float *a;                       /* (B, OC, OH, OW) block output */
    float *y;                       /* (B, OC, OH, OW) BN output before tanh; NULL for ReLU blocks,
                                     * whose backward uses `a` (same sign, so the same derivative) */
    float *mean, *rstd;             /* (OC) batch statistics saved for backward */
} ae_block;

/* Linear + BatchNorm over features + LeakyReLU(0.2): the heads fc_v/fc_s. */
typedef struct {
    int ci, co;
    size_t w, b, g, beta, rm, rv, nbt;
    float *y, *a;       /* (B, co) linear output, head output (LeakyReLU keeps the sign: backward uses a) */
    float *mean, *rstd; /* (co) */
} ae_head;

/* One pre-norm transformer block of D_s (the authors' vit.Block). */
typedef struct {
    size_t ln1_g, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_g, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
    float *ln1;               /* (B*T, C) */
    float *ln1_mean, *ln1_rstd; /* (B*T) */
    float *qkv;               /* (B*T, 3C) */
    float *att;               /* (B, NH, T, T) */
    float *attout;            /* (B*T, C) */
    float *x1;                /* (B*T, C) x + proj(attout) */
    float *ln2;               /* (B*T, C) */
    float *ln2_mean, *ln2_rstd;
    float *h;                 /* (B*T, mlp_hidden) fc1 output */
    float *g;                 /* (B*T, mlp_hidden) GELU(h) */
    float *x2;                /* (B*T, C) x1 + fc2(g) = block output */
} ae_tblock;

/* Seismic decoder: TDecoder_S of the authors' code. */
typedef struct {
    int C, T, NH, hidden, depth, nout; /* width, tokens (2), heads, MLP width, blocks, shots*nt*nr */
    size_t cls, pos, pe_w, pe_b, norm_g, norm_b, out_w, out_b;
    ae_tblock blk[UBD_AE_MAX_DEPTH];
    float *tok;                /* (B, C) patch embedding of the head output */
    float *x0;                 /* (B*T, C) [cls; tok] + pos */
    float *xf, *xf_mean, *xf_rstd; /* (B*T, C), (B*T) final LayerNorm */
    float *sel;                /* (B, C) the non-class token */
    float *out;                /* (B, nout) seismic prediction */
} ae_seisdec;

/* Device scalars of one training step, read back together at its end. */
enum { AE_L1_V = 0, AE_MSE_V, AE_L1_S, AE_MSE_S, AE_NSCALARS };

struct ubd_ae {
    ubd_ae_config cfg;
    const ubd_backend *be;     /* where params, bufs and the arena live and every op runs */
    ubd_params params, bufs;
    size_t group_off[UBD_AE_NGROUPS], group_n[UBD_AE_NGROUPS];
    long long steps[UBD_AE_NGROUPS];
    ae_block enc[UBD_AE_NENC];
    ae_head hv, hs;
    ae_block decv[UBD_AE_NDECV];
    ae_seisdec ds;
    size_t work_n;             /* floats of conv workspace for max_batch (largest block) */
    size_t gmax;               /* floats of the largest conv-block activation (or head output) */
    /* the arena and its slices (ae_lay_out) */
    ubd_arena arena;
    float *crop;               /* (B, dim1, 70, 70) D_v after cropping */
    float *work;               /* (work_n) conv im2col workspace */
    float *g0, *g1, *g2, *g3;  /* (gmax) backward scratch of the conv paths */
    float *dz;                 /* (B, latent) */
    float *dhv, *dhs;          /* (B, hv.co), (B, hs.co) */
    float *dvel;               /* (B, 1, 70, 70) */
    float *dseis;              /* (B, nout) */
    float *dX, *dln, *dattout, *dxf; /* (B*T, C) */
    float *dqkv;               /* (B*T, 3C) */
    float *datt;               /* (B, NH, T, T) */
    float *dh, *dg;            /* (B*T, hidden) */
    float *dsel, *dtok;        /* (B, C) */
    float *loss;               /* (AE_NSCALARS) L1 and MSE of each modality */
    float *one;                /* (1) the constant 1: num_batches_tracked += 1 is axpy(nbt, one, 1, 1) */
    float *vel_in, *seis_in, *z_in; /* staging (NULL on the CPU): (B,1,70,70), (B, nout), (B, latent) */
    int enc_train_B;           /* batch of the last training-mode run of E (0: none): encode_backward needs it */
    ubd_bn_sync bn_sync;       /* every training-mode BatchNorm over all ranks when fn != NULL (ubd_ae_set_bn_sync) */
};

/* ae_layout.c: fills params, bufs (names, shapes), every layer's geometry and
 * offsets, work_n and gmax; allocates nothing. */
ubd_status ae_layout(ubd_ae *m);
/* ae_layout.c: every activation slice for cfg.max_batch samples (arena.h:
 * run once to plan, once to bind). */
void ae_lay_out(ubd_ae *m, ubd_arena *a);

/* ae_blocks.c: the conv blocks (block2d + num_batches_tracked) and the heads.
 * Backward is only ever run through training-mode BatchNorm: frozen parts
 * (eval-mode BN) are never differentiated. */
ubd_status ae_block_forward(ae_block *k, ubd_ae *m, const float *x, int B, int training);
/* da (B, co, OH, OW) is the output gradient, CLOBBERED (block2d reuses it as
 * scratch); dx (B, ci, H, W) += (NULL: not needed). Scratch: m->g2. */
ubd_status ae_block_backward(ae_block *k, ubd_ae *m, float *dx, float *da, const float *x, int B);
ubd_status ae_head_forward(ae_head *h, ubd_ae *m, const float *x, int B, int training);
/* Scratch: m->g2, m->g3. */
ubd_status ae_head_backward(ae_head *h, ubd_ae *m, float *dx, const float *da, const float *x, int B);

/* encoder.c, vel_decoder.c, seis_decoder.c: whole parts; every pointer is
 * backend memory. */
ubd_status ae_encoder_forward(ubd_ae *m, const float *vel, int B, int training);
const float *ae_encoder_output(const ubd_ae *m); /* (B, latent) */
/* dz (B, latent) is clobbered. */
ubd_status ae_encoder_backward(ubd_ae *m, float *dz, const float *vel, int B);
ubd_status ae_veldec_forward(ubd_ae *m, const float *zv, int B, int training);
const float *ae_veldec_output(const ubd_ae *m); /* (B, 1, 70, 70) */
/* dvel (B,1,70,70) is clobbered. */
ubd_status ae_veldec_backward(ubd_ae *m, float *dzv, float *dvel, const float *zv, int B);
/* out: where the prediction goes, (B, nout); NULL: the model's own buffer */
ubd_status ae_seisdec_forward(ubd_ae *m, float *out, const float *zs, int B);
ubd_status ae_seisdec_backward(ubd_ae *m, float *dzs, const float *dout, const float *zs, int B);

/* ae_train.c: L1 and MSE of pred vs target (n) into l1[0], mse[0] (backend
 * memory); dpred = g1 dL1/dpred + g2 dMSE/dpred (overwritten). */
ubd_status ae_modality_loss(const ubd_backend *be, float *l1, float *mse, float *dpred, const float *pred,
                            const float *target, size_t n, float g1, float g2);

/* Helpers */
static inline float *ae_p(ubd_ae *m, size_t off) { return m->params.buf[UBD_BUF_PARAM] + off; }
static inline float *ae_g(ubd_ae *m, size_t off) { return m->params.buf[UBD_BUF_GRAD] + off; }
static inline float *ae_b(ubd_ae *m, size_t off) { return m->bufs.buf[UBD_BUF_PARAM] + off; }

#endif
