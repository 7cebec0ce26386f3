/* time_mlp.h — the U-Nets' time conditioning (lucidrains' time_mlp), written once
 * for the 1-D (unet1d.c) and the 2-D (unet2d.c) U-Net:
 *   temb = SinusoidalPosEmb(dim)(t)                 (B, dim)
 *   t1 = Linear(dim, tdim)(temb), t1g = GELU(t1)     (B, tdim)  "time_mlp.1"
 *   t2 = Linear(tdim, tdim)(t1g)                     (B, tdim)  "time_mlp.3"
 *   ts = SiLU(t2)                                    (B, tdim)
 * ts is the first op of every ResnetBlock's mlp, so it is computed once and
 * shared; the blocks accumulate their gradient of it into d_ts. The model
 * registers the four parameters and takes the slices from its own arena; the
 * struct only names them. All pointers are memory of the model's backend. */
#ifndef UBD_TIME_MLP_H
#define UBD_TIME_MLP_H

#include "../backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t w1, b1, w2, b2;              /* offsets into the weights: time_mlp.1 and time_mlp.3 */
    float *temb, *t1, *t1g, *t2, *ts;   /* (B, dim), (B, tdim) x4 */
    float *d_ts, *d_t2, *d_t1g, *d_t1;  /* (B, tdim) gradients, accumulated (+=): the model zeroes them */
} ubd_time_mlp;

/* t (B) -> tm->ts (B, tdim) with weights W (one of the model's weight buffers). */
ubd_status ubd_time_mlp_forward(const ubd_backend *be, const ubd_time_mlp *tm, const float *t, const float *W, int B,
                                int dim, int tdim);
/* From tm->d_ts: parameter gradients += into G (same offsets as W); t gets no gradient. */
ubd_status ubd_time_mlp_backward(const ubd_backend *be, const ubd_time_mlp *tm, const float *W, float *G, int B,
                                 int dim, int tdim);

#ifdef __cplusplus
}
#endif
#endif
