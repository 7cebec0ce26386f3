/* diffusion_ops.h — the latent diffusion's own small ops (models/diffusion.c):
 * what used to be host loops over the batch, now backend ops so that training
 * and sampling run on the model's device with no host round trip. Types and
 * semantics here; the prototypes (ubd_cpu_<op>, ubd_cuda_<op>) come from the
 * list in backend.h, included at the end.
 *
 * Training (t (B) ints on the backend; sa, s1, w (T) the schedule rows
 * sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod and loss_weight, uploaded
 * once as floats):
 *  diffusion_timesteps      tf (B) holds uniforms u on entry; then t = min(floor(T u), T - 1),
 *                           ti = t, tf = (float)t  (the U-Net's time input)
 *  diffusion_q_sample       xt = sa[t] z0 + s1[t] noise, v = sa[t] noise - s1[t] z0   per sample
 *  diffusion_vloss_forward  per_sample[b] = w[t_b] * mean_i (pred - v)^2 (sums in double),
 *                           loss = mean_b per_sample[b]; per_sample may be NULL
 *  diffusion_vloss_backward dpred += scale * d loss / d pred = scale * w[t_b] * 2 (pred - v) / (per B)
 *
 * Sampling: the reverse steps of one run are a plan of ubd_sample_step rows in
 * backend memory, computed on the host once per run; a backend int k counts
 * the steps taken. Step k is
 *  diffusion_step_begin     cur = plan[k], tf (B) = cur.time, k += 1
 *  (the U-Net: pred = net(x, tf))
 *  diffusion_step_update    x advanced by cur from pred
 * so one step reads nothing from the host and its ops are the same every step:
 * the step can be captured once and replayed (backend.h, `replay`).
 */
#ifndef UBD_DIFFUSION_OPS_H
#define UBD_DIFFUSION_OPS_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    UBD_STEP_DDPM = 0, /* ancestral DDPM: x = c_x0 x0 + c_x x [+ sd z] */
    UBD_STEP_DDIM = 1, /* DDIM: eps = (r1 x - x0) / rm1, x = c_x0 x0 + c_x eps [+ sd z] */
    UBD_STEP_X0 = 2    /* the last DDIM step: x = x0 */
} ubd_step_kind;

/* One reverse step, for all samples of a run. The net's v prediction pred
 * gives x0 = clamp(sa x - s1 pred, -1, 1); the noise z of element i is element
 * (offset + i) of the Philox normal stream (seed, stream) (philox.h). The
 * coefficients are the float32 values the host computed from the float64
 * schedule, exactly as before the ops existed. 64 bytes, the same layout in C
 * and CUDA (no padding). */
typedef struct {
    uint64_t seed, stream, offset; /* the step's noise */
    int time;                      /* diffusion time t of the step: the U-Net's input */
    int kind;                      /* ubd_step_kind */
    int noisy;                     /* 1: add sd z (DDPM t > 0, DDIM sigma > 0) */
    float sa, s1;                  /* x0 = clamp(sa x - s1 pred) */
    float c_x0, c_x;               /* DDPM: posterior mean coefficients; DDIM: sqrt(abar_next), c */
    float r1, rm1;                 /* DDIM: sqrt(1/abar), sqrt(1/abar - 1) */
    float sd;                      /* DDPM: posterior std; DDIM: sigma */
} ubd_sample_step;

#ifdef __cplusplus
}
#endif

#include "backend.h" /* the prototypes */
#endif
