/* unet1d.h — the 1-D U-Net denoiser of UB-Diff (lucidrains' Unet1D as the
 * authors vendored it: plain Conv1d in the blocks, no memory key/values,
 * RMSNorm gain of shape (1, C, 1), sinusoidal time embedding).
 *
 * Parameter names are EXACTLY the state_dict keys of
 *   Unet1D(dim, dim_mults, channels=1)
 * (inside GaussianDiffusion1D the same keys carry the prefix "model.", and in
 * the authors' UB_Diff wrapper "unet." / "diffusion.model."; a converter strips
 * the prefix). Order of registration = PyTorch's state_dict order.
 *
 * The model lives on one backend (backend.h), chosen at creation: its flat
 * parameter buffers (param, grad, m, v, ema) and one arena (arena.h) with all
 * activation / gradient scratch for batches up to max_batch, so forward and
 * backward never allocate, and every op goes through the backend's table.
 * Forward stores whatever backward needs; backward uses the activations of
 * the LAST forward call (same batch size) and accumulates parameter gradients
 * (+=) into the grad buffer. The array arguments of forward and backward are
 * memory of the model's backend (host memory on the CPU); the caller stages.
 */
#ifndef UBD_UNET1D_H
#define UBD_UNET1D_H

#include "../params.h"
#include "../ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UBD_UNET_MAX_LEVELS 6

typedef struct {
    int dim;                          /* base width (paper: 128) */
    int nlevels;                      /* number of multipliers (paper: 4) */
    int mults[UBD_UNET_MAX_LEVELS];   /* paper: 1, 2, 2, 4 */
    int channels;                     /* input/output channels (paper: 1) */
    int seq_len;                      /* paper: 128; must be divisible by 2^(nlevels-1) */
    int groups;                       /* GroupNorm groups (paper: 8) */
    int heads, dim_head;              /* attention (paper: 4 x 32) */
} ubd_unet1d_config;

/* The paper's configuration and our small test configuration
 * (dim 32, mults 1,2,2,2, seq 128; same structure, ~1/16 of the width). */
ubd_unet1d_config ubd_unet1d_config_paper(void);
ubd_unet1d_config ubd_unet1d_config_small(void);

typedef struct ubd_unet1d ubd_unet1d; /* opaque; see unet1d_impl.h */

/* Builds the parameter table, allocates param/grad/m/v/ema buffers and the
 * activations for batches up to max_batch on backend `be` (NULL: the CPU).
 * *out is NULL on failure. */
ubd_status ubd_unet1d_create(ubd_unet1d **out, ubd_unet1d_config cfg, int max_batch, const ubd_backend *be);
void ubd_unet1d_free(ubd_unet1d *m);

ubd_params *ubd_unet1d_params(ubd_unet1d *m);
ubd_unet1d_config ubd_unet1d_get_config(const ubd_unet1d *m);
int ubd_unet1d_max_batch(const ubd_unet1d *m);
const ubd_backend *ubd_unet1d_backend(const ubd_unet1d *m);
/* Floats held in the activation arena (for reporting). */
size_t ubd_unet1d_activation_floats(const ubd_unet1d *m);

/* PyTorch-default initialisation from Philox stream (seed, view index):
 * conv/linear weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (what
 * kaiming_uniform_(a=sqrt(5)) gives), GroupNorm weight 1 / bias 0, RMSNorm g 1.
 * Copies the parameters into the EMA buffer and zeroes grad, m, v. */
ubd_status ubd_unet1d_init(ubd_unet1d *m, uint64_t seed);

/* out (B, channels, L) = net(x (B, channels, L), t (B)) with the parameters of
 * buffer `weights` (UBD_BUF_PARAM or UBD_BUF_EMA). 1 <= B <= max_batch. */
ubd_status ubd_unet1d_forward(ubd_unet1d *m, float *out, const float *x, const float *t, int B,
                              ubd_buf_kind weights);
/* Backward of the last forward (which must have used UBD_BUF_PARAM and the same B):
 * grad buffer +=, dx (B, channels, L) += (NULL: not needed); dout (B, channels, L). */
ubd_status ubd_unet1d_backward(ubd_unet1d *m, float *dx, const float *dout, int B);
/* Forgets the saved forward: the next backward raises ("needs a preceding
 * forward") until a new forward ran. The model calls it itself wherever its
 * parameters change (init); a caller that writes the param or EMA buffer
 * through the table (ubd_params_write, an optimiser step of its own, a load)
 * calls it too, or backward would differentiate the activations of the old
 * weights. Writes to grad, m and v do not concern the forward. */
void ubd_unet1d_forget_forward(ubd_unet1d *m);

#ifdef __cplusplus
}
#endif
#endif
