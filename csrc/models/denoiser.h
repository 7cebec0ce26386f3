/* denoiser.h — what the diffusion wrapper (diffusion.h) needs of its network:
 * a forward and a backward on backend memory, the parameter table, the
 * initialisation, and the shape of one sample. The latent diffusion runs the
 * 1-D U-Net (unet1d.h) through it, the pixel-space DDPM baseline the 2-D
 * U-Net (unet2d.h); the schedule, the v-prediction loss, the optimiser step and
 * the samplers work on flat arrays of `per` floats per sample and never look
 * inside the network.
 *
 * A denoiser owns its network: `free` releases it. Every array argument is
 * memory of the network's backend (the caller stages host arrays). */
#ifndef UBD_DENOISER_H
#define UBD_DENOISER_H

#include "../params.h"
#include "unet1d.h"
#include "unet2d.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    void *net;
    const char *kind;   /* "unet1d" | "unet2d" (for messages and the bindings) */
    int ndim;           /* dimensions of one sample: 2 (C, L) or 3 (C, H, W) */
    int shape[3];       /* the sample's shape, ndim entries */
    size_t per;         /* floats per sample: the product of shape */
    int max_batch;      /* largest batch forward / backward take */
    const ubd_backend *be;
    /* out (B, *shape) = net(x (B, *shape), t (B)) with the weights of buffer `weights` */
    ubd_status (*forward)(void *net, float *out, const float *x, const float *t, int B, ubd_buf_kind weights);
    /* backward of the last forward (same B): grad buffer +=, dx += (NULL: not wanted) */
    ubd_status (*backward)(void *net, float *dx, const float *dout, int B);
    ubd_params *(*params)(void *net);
    /* PyTorch-default initialisation from seed; EMA := params; grad, m, v zeroed */
    ubd_status (*init)(void *net, uint64_t seed);
    /* forgets the saved forward (backward then needs a new one): after any change of the
     * param or EMA buffer made outside forward / backward / init */
    void (*forget_forward)(void *net);
    size_t (*activation_floats)(const void *net);
    void (*free)(void *net);
} ubd_denoiser;

/* A denoiser around a new network for batches up to max_batch on backend be
 * (NULL: the CPU); parameters zero until init. On failure *out is zeroed and
 * nothing is held. */
ubd_status ubd_denoiser_unet1d(ubd_denoiser *out, ubd_unet1d_config cfg, int max_batch, const ubd_backend *be);
ubd_status ubd_denoiser_unet2d(ubd_denoiser *out, const ubd_unet2d_config *cfg, int max_batch,
                               const ubd_backend *be);

#ifdef __cplusplus
}
#endif
#endif
