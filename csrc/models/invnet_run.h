/* invnet_run.h — a run of InversionNet blocks (Conv/ConvTranspose + BatchNorm +
 * activation, block2d.h) with their parameter tables, activation slices,
 * initialisation, forward and backward: written once for the two models made of
 * them, InversionNet (all 25 blocks, with the crop before deconv6) and the
 * seismic encoder (the first 14, the last one Tanh).
 *
 * A model keeps ubd_invnet_block blocks[n] (geometry, from ubd_invnet_layout)
 * and ubd_invnet_state st[n] (offsets + activation pointers) and describes
 * them to the calls below with a ubd_invnet_run built on the spot. All
 * pointers are memory of r->be.
 */
#ifndef UBD_INVNET_RUN_H
#define UBD_INVNET_RUN_H

#include "inversionnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const ubd_backend *be;
    const ubd_invnet_block *blocks; /* (n) */
    const ubd_invnet_state *st;     /* (n): offsets into params / stats, activations for max_batch */
    int n;
    ubd_params *params;             /* param, grad (and Adam m, v) buffers */
    ubd_params *stats;              /* running_mean / running_var in its param buffer */
    float *work;                    /* conv workspace, wsize floats */
    size_t wsize;
    float *crop;                    /* (B, C, H, W) of a block with crop_before; NULL when none has */
    float *const *g;                /* g[3]: gradient scratch, each the largest (B * activation) */
} ubd_invnet_run;

/* Adds each block's "<name>.layers.0.weight" (PyTorch layout: Conv2d (OC, C, KH, KW),
 * ConvTranspose2d (C, OC, KH, KW)), ".layers.0.bias", ".layers.1.weight", ".layers.1.bias"
 * to params and ".layers.1.running_mean" / "running_var" to stats, in this order; st (n) or
 * NULL receives the offsets. */
ubd_status ubd_invnet_run_tables(ubd_params *params, ubd_params *stats, ubd_invnet_state *st,
                                 const ubd_invnet_block *blocks, int n);
/* The floats of one gradient scratch buffer (the largest block input or output) and of the
 * conv workspace, for batches up to B. */
void ubd_invnet_run_sizes(const ubd_invnet_block *blocks, int n, size_t B, size_t *gsize, size_t *wsize);
/* Each block's activation slices for batches up to B (arena.h: run to plan, then to bind):
 * z, a (B, OC, OH, OW); y likewise for Tanh blocks only; mean, rstd (OC). */
void ubd_invnet_run_lay_out(ubd_arena *a, ubd_invnet_state *st, const ubd_invnet_block *blocks, int n, size_t B);
/* PyTorch's defaults from Philox streams (seed, 2l) and (seed, 2l + 1) of block l: weight and
 * bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = weight.shape[1] * KH * KW; BatchNorm gamma 1,
 * beta 0, running mean 0, running var 1. Gradient and Adam buffers are zeroed. */
ubd_status ubd_invnet_run_init(const ubd_invnet_run *r, uint64_t seed);
/* Forward of x (B, C, H, W) of block 0 through the n blocks; the output stays in st[n-1].a.
 * train: batch statistics (running ones updated) and everything backward needs. */
ubd_status ubd_invnet_run_forward(const ubd_invnet_run *r, const float *x, int B, int train);
/* Backward of the last training forward of x: g[ig] holds dL/d(output of block n-1)
 * (clobbered, like the other two scratch buffers); parameter gradients +=. x's own gradient
 * is not computed. */
ubd_status ubd_invnet_run_backward(const ubd_invnet_run *r, int ig, const float *x, int B);

#ifdef __cplusplus
}
#endif
#endif
