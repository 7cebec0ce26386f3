/* block2d.h — OpenFWI's building block: a Conv2d or ConvTranspose2d, then
 * BatchNorm2d, then an activation (ConvBlock, DeconvBlock, ConvBlock_Tanh of
 * OpenFWI's network.py, and the same three of the UB-Diff authors' VSNet).
 * The one such block of the code base: InversionNet and the co-latent
 * autoencoder's E and D_v are made of it.
 *
 * Training-mode forward keeps what backward needs as explicit outputs:
 *   z  (B, OC, OH, OW)  the convolution output (BatchNorm's input),
 *   y  (B, OC, OH, OW)  BatchNorm's output (the activation's input), or NULL
 *                       when the activation's derivative can be read off its
 *                       output (ReLU, LeakyReLU with slope > 0: the sign of the
 *                       output is the sign of the input),
 *   a  (B, OC, OH, OW)  the block output,
 *   mean, rstd (OC)     BatchNorm batch statistics.
 * Gradients accumulate (+=); NULL gradient pointers are skipped.
 * The compute functions run on backend `be` (first argument): every buffer is
 * that backend's memory; `k` (the geometry) stays on the host.
 */
#ifndef UBD_BLOCK2D_H
#define UBD_BLOCK2D_H

#include "backend.h"
#include "syncbn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int transposed;            /* 0: Conv2d, 1: ConvTranspose2d */
    int C, OC;                 /* input / output channels */
    int H, W;                  /* input spatial size (per sample) */
    int KH, KW, SH, SW, PH, PW;
    int OPH, OPW;              /* output_padding (transposed only) */
    ubd_act act;
    float act_param;           /* LeakyReLU slope */
    float bn_momentum, bn_eps; /* PyTorch defaults 0.1, 1e-5 */
    int OH, OW;                /* output spatial size: filled by ubd_block2d_check */
    const ubd_bn_sync *bn_sync; /* NULL: BatchNorm over this process's batch; else over all ranks (syncbn.h) */
} ubd_block2d;

/* Checks the geometry and fills OH, OW. */
ubd_status ubd_block2d_check(ubd_block2d *k);
/* Floats of im2col/col2im workspace a call with batch B needs (forward and
 * backward). */
size_t ubd_block2d_workspace(const ubd_block2d *k, int B);
/* Weight shape: (OC, C, KH, KW) for Conv2d, (C, OC, KH, KW) for ConvTranspose2d. */
size_t ubd_block2d_weight_size(const ubd_block2d *k);

typedef struct {
    const float *weight;       /* conv weight (see above) */
    const float *bias;         /* (OC) or NULL */
    const float *gamma, *beta; /* (OC) */
} ubd_block2d_weights;

typedef struct {
    float *dweight, *dbias, *dgamma, *dbeta; /* like the weights; any may be NULL */
} ubd_block2d_grads;

/* Training mode. x (B,C,H,W); z, a (B,OC,OH,OW); y as above (required for
 * tanh/SiLU/GELU); mean, rstd (OC); running_mean, running_var (OC) updated in
 * place (or NULL); work (ubd_block2d_workspace floats). */
ubd_status ubd_block2d_forward_train(const ubd_backend *be, float *a, float *z, float *y, float *mean, float *rstd,
                                     float *running_mean, float *running_var, const float *x, ubd_block2d_weights w,
                                     float *work, const ubd_block2d *k, int B);
/* Eval mode (running statistics). a (B,OC,OH,OW); z (B,OC,OH,OW) scratch for
 * the convolution output (may not alias a or x). */
ubd_status ubd_block2d_forward_eval(const ubd_backend *be, float *a, float *z, const float *x, ubd_block2d_weights w,
                                    const float *running_mean, const float *running_var, float *work,
                                    const ubd_block2d *k, int B);
/* Backward of the training-mode forward.
 * dx (B,C,H,W) += (NULL: not needed); g: parameter gradients (+=);
 * da (B,OC,OH,OW) the gradient of the block output — CLOBBERED (reused as
 * scratch for the BatchNorm input gradient, which saves one buffer);
 * dy (B,OC,OH,OW) scratch; z, y, a, mean, rstd, x: the forward's. */
ubd_status ubd_block2d_backward(const ubd_backend *be, float *dx, ubd_block2d_grads g, float *da, float *dy,
                                const float *x, const float *z, const float *y, const float *a, const float *mean,
                                const float *rstd, ubd_block2d_weights w, float *work, const ubd_block2d *k, int B);

#ifdef __cplusplus
}
#endif
#endif
