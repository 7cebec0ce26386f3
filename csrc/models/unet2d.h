/* unet2d.h — the 2-D U-Net denoiser of the pixel-space DDPM baseline
 * (lucidrains' denoising-diffusion-pytorch `Unet`, release 1.8.0: the release
 * whose Unet1D is the one the UB-Diff authors vendored — plain convolutions,
 * RMSNorm with gain (1, C, 1, 1), no memory key/values).
 *
 * Architecture for dim, dim_mults (m_0..m_{n-1}), channel list
 * dims = (dim, dim*m_0, ..., dim*m_{n-1}):
 *   - init_conv Conv2d(channels -> dim, 7x7, pad 3);
 *   - time: sinusoidal(dim) -> Linear(dim -> 4dim) -> GELU -> Linear(4dim -> 4dim);
 *   - ResnetBlock(ci -> co): SiLU + Linear(4dim -> 2co) gives (scale, shift);
 *     Conv2d(3x3) -> GroupNorm(groups) -> x*(1+scale)+shift -> SiLU; Conv2d(3x3) ->
 *     GroupNorm -> SiLU; plus a 1x1 conv residual where ci != co;
 *   - attention block (residual: x + attn(x)), the norm inside it:
 *     linear: RMSNorm -> to_qkv (1x1, no bias) -> linear attention -> to_out
 *     (1x1 conv, then RMSNorm); full: RMSNorm -> to_qkv -> softmax attention ->
 *     to_out (1x1 conv); `full_attn[i]` picks full attention at level i (the
 *     module's default (False, ..., False, True): the lowest resolution);
 *   - down level i (ci = dims[i], co = dims[i+1]): ResnetBlock(ci, ci) twice
 *     (a skip after each; the second after the attention), attention at ci,
 *     then Downsample = pixel-unshuffle x2 + Conv2d(4ci -> co, 1x1), the last
 *     level Conv2d(ci -> co, 3x3) instead;
 *   - middle: ResnetBlock, full attention, ResnetBlock at dims[n];
 *   - up level j (i = n-1-j): concat skip -> ResnetBlock(co+ci -> co), concat
 *     skip -> ResnetBlock(co+ci -> co), attention at co, then Upsample = nearest
 *     x2 + Conv2d(co -> ci, 3x3), the last level Conv2d(co -> ci, 3x3);
 *   - concat the init_conv output -> ResnetBlock(2dim -> dim) -> Conv2d(dim -> channels, 1x1).
 *
 * Map size. Each of the n-1 downsamplings halves the map, so the network
 * needs sides divisible by 2^(n-1). A (B, channels, height, width) input is
 * zero-padded to the next multiple of 2^(n-1) on each axis — split evenly,
 * the odd cell at the bottom/right — and the output cropped back to
 * (height, width). The paper's 70 x 70 velocity maps with 4 levels (factor
 * 8) become 72 x 72 (one cell per side; 80 would waste 30% more pixels for
 * nothing): 72 -> 36 -> 18 -> 9.
 *
 * Parameter names are EXACTLY the state_dict keys of
 *   Unet(dim, dim_mults=..., channels=..., resnet_block_groups=groups, full_attn=...)
 * in PyTorch's registration order, with PyTorch's shapes (conv weights
 * (OC, C, KH, KW), RMSNorm gains (1, C, 1, 1)), so a PyTorch module loads
 * them with load_state_dict(strict=True); inside GaussianDiffusion the same
 * keys carry the prefix "model.".
 *
 * Memory and devices. The model lives on one backend (backend.h) chosen at
 * creation: parameters (param, grad, Adam m and v, EMA) in a ubd_params table
 * on it, every activation, gradient, scratch and staging buffer in ONE arena
 * (arena.h) planned for max_batch. Forward stores what backward needs;
 * backward uses the activations of the LAST forward (same batch) and
 * accumulates parameter gradients (+=) into the grad buffer.
 */
#ifndef UBD_UNET2D_H
#define UBD_UNET2D_H

#include "../params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UBD_UNET2D_MAX_LEVELS 6

typedef struct {
    int dim;                              /* base width (paper: 64) */
    int nlevels;                          /* number of multipliers (paper: 4) */
    int mults[UBD_UNET2D_MAX_LEVELS];     /* dim_mults (paper: 1, 2, 4, 8) */
    int full_attn[UBD_UNET2D_MAX_LEVELS]; /* 1: full attention at that level (paper: 0, 0, 0, 1) */
    int channels;                         /* input and output channels (paper: 1, a velocity map) */
    int height, width;                    /* the maps taken and returned (paper: 70 x 70) */
    int groups;                           /* GroupNorm groups (paper: 8) */
    int heads, dim_head;                  /* attention heads x width (paper: 4 x 32) */
} ubd_unet2d_config;

/* The paper's configuration (Unet(dim=64, dim_mults=(1, 2, 4, 8),
 * channels=1) on 70 x 70 maps: 35,703,937 parameters) and the small one for
 * laptops and tests (the same at dim=16: 2,430,241 parameters). */
ubd_unet2d_config ubd_unet2d_config_paper(void);
ubd_unet2d_config ubd_unet2d_config_small(void);

/* Checks a config and gives the padded map (PH, PW) and the padding before
 * the first row / column (top, left). */
ubd_status ubd_unet2d_geometry(const ubd_unet2d_config *c, int *PH, int *PW, int *top, int *left);
/* The parameter views of `c` (names, shapes, state_dict order) added to `p`;
 * no buffer is allocated. */
ubd_status ubd_unet2d_tables(ubd_params *p, const ubd_unet2d_config *c);

typedef struct ubd_unet2d ubd_unet2d; /* opaque; see unet2d_impl.h */

/* A model for `cfg` on backend `be` (NULL: the CPU) with param, grad, m, v
 * and EMA buffers (zero: call ubd_unet2d_init) and activations for batches up
 * to max_batch. *out is NULL on failure. */
ubd_status ubd_unet2d_create(ubd_unet2d **out, const ubd_unet2d_config *cfg, int max_batch, const ubd_backend *be);
void ubd_unet2d_free(ubd_unet2d *m);
/* Re-plans the activation arena for batches up to max_batch; parameters stay
 * where they are, a pending backward is forgotten. On failure the model is
 * unchanged. */
ubd_status ubd_unet2d_reserve(ubd_unet2d *m, int max_batch);

ubd_params *ubd_unet2d_params(ubd_unet2d *m);
const ubd_backend *ubd_unet2d_backend(const ubd_unet2d *m);
ubd_unet2d_config ubd_unet2d_get_config(const ubd_unet2d *m);
int ubd_unet2d_max_batch(const ubd_unet2d *m);
/* Floats of the activation arena (activations, gradients, scratch, staging). */
size_t ubd_unet2d_activation_floats(const ubd_unet2d *m);
/* Optimiser steps taken by ubd_unet2d_train_step (Adam bias correction). */
long long ubd_unet2d_get_step(const ubd_unet2d *m);
ubd_status ubd_unet2d_set_step(ubd_unet2d *m, long long step);

/* PyTorch's default initialisation from Philox stream (seed, view index):
 * conv and linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * GroupNorm weight 1 and bias 0, RMSNorm gains 1. Copies the parameters into
 * the EMA buffer; zeroes grad, m, v and the step. */
ubd_status ubd_unet2d_init(ubd_unet2d *m, uint64_t seed);

/* Backend memory (device pointers on a GPU):
 * out (B, channels, height, width) = net(x (B, channels, height, width), t (B))
 * with the weights of buffer `weights` (UBD_BUF_PARAM or UBD_BUF_EMA);
 * 1 <= B <= max_batch. x and t are read during the call only. */
ubd_status ubd_unet2d_forward_dev(ubd_unet2d *m, float *out, const float *x, const float *t, int B,
                                  ubd_buf_kind weights);
/* Backward of the last forward (UBD_BUF_PARAM, same B): grad buffer +=;
 * dx (B, channels, height, width) += (NULL: not needed); dout likewise shaped. */
ubd_status ubd_unet2d_backward_dev(ubd_unet2d *m, float *dx, const float *dout, int B);
/* Forgets the saved forward: the next backward raises ("needs a preceding
 * forward") until a new forward ran. The model calls it itself wherever its
 * parameters change (init, train_step) or its activations move (reserve); a
 * caller that writes the param or EMA buffer through the table
 * (ubd_params_write, a load, an optimiser step of its own) calls it too, or
 * backward would differentiate the activations of the old weights. Writes to
 * grad, m and v do not concern the forward. */
void ubd_unet2d_forget_forward(ubd_unet2d *m);

/* The same with host arrays, staged through the arena (in place on the CPU). */
ubd_status ubd_unet2d_forward(ubd_unet2d *m, float *out, const float *x, const float *t, int B, ubd_buf_kind weights);
ubd_status ubd_unet2d_backward(ubd_unet2d *m, float *dx, const float *dout, int B);

/* One regression step on host arrays: zero grads, forward, loss =
 * mean (out - target)^2, backward, clip the gradient norm to max_grad_norm
 * (<= 0: no clipping), Adam(W) step `step + 1`. losses_out (2) = (loss, gradient
 * norm before clipping). */
typedef struct {
    ubd_adam_hparams adam;
    float max_grad_norm;
} ubd_unet2d_hparams;
ubd_status ubd_unet2d_train_step(ubd_unet2d *m, float *losses_out, const float *x, const float *t,
                                 const float *target, int B, ubd_unet2d_hparams hp);

#ifdef __cplusplus
}
#endif
#endif
