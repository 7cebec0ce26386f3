/* diffusion.h — UB-Diff's latent diffusion: GaussianDiffusion1D (lucidrains,
 * as vendored by the UB-Diff authors) with the cosine schedule, the
 * v-prediction objective, Adam + gradient clipping + EMA training steps, and
 * ancestral DDPM / DDIM sampling, around a denoiser (denoiser.h): the 1-D
 * U-Net of unet1d.h for UB-Diff's latents, the 2-D U-Net of unet2d.h for the
 * pixel-space DDPM baseline on velocity maps (the same schedule, objective
 * and samplers; only the floats per sample differ: C*L or C*H*W).
 * Shapes below write one sample as (C, L); with the 2-D U-Net read (C, H, W)
 * and C*L as C*H*W.
 *
 * Devices. A model lives on the backend given at creation (backend.h): the
 * U-Net's parameters and activations, the schedule (uploaded once as floats),
 * the training draws and the sampling state are all backend memory, and every
 * step runs through the backend's ops. The entry points below take HOST
 * arrays: each input crosses to the device once per call, each output comes
 * back once (on the CPU both are the caller's arrays themselves). A training
 * step reads back only its losses and norm, at its end; a sampling run only
 * its samples.
 *
 * Randomness is Philox (philox.h), keyed so that runs are reproducible and
 * resumable and do not depend on how samples are grouped into calls:
 *  training step s, sample g (0 <= g < accum*B, over all micro-batches):
 *    t_g   = floor(T * u) with u element g of uniform stream (seed, 4s)
 *    noise = elements [g*C*L, (g+1)*C*L) of normal stream (seed, 4s + 1)
 *  sampling, sample n (global index over the N requested):
 *    x_T   = elements [n*C*L, ...) of normal stream (seed, 2^62)
 *    noise added at diffusion time tau: normal stream (seed, 2^62 + 1 + tau)
 */
#ifndef UBD_DIFFUSION_H
#define UBD_DIFFUSION_H

#include "../ops.h"
#include "denoiser.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    ubd_adam_hparams adam; /* paper: lr 8e-5, betas (0.9, 0.99), eps 1e-8, no weight decay */
    float max_grad_norm;   /* 1.0; 0 disables clipping */
    float ema_decay;       /* 0.995; 0 copies the weights (exactly) */
    int ema_every;         /* EMA update after steps ema_every, 2 ema_every, ...; 0 disables (the
                            * Python side picks both per step: ubdiff/models/diffusion.py) */
} ubd_diffusion_hparams;

typedef enum { UBD_SAMPLER_DDPM = 0, UBD_SAMPLER_DDIM = 1 } ubd_sampler;

/* Schedule arrays (length T, float64), as GaussianDiffusion1D registers them. */
typedef enum {
    UBD_SCHED_BETAS = 0,
    UBD_SCHED_ALPHAS_CUMPROD,
    UBD_SCHED_ALPHAS_CUMPROD_PREV,
    UBD_SCHED_SQRT_ALPHAS_CUMPROD,
    UBD_SCHED_SQRT_ONE_MINUS_ALPHAS_CUMPROD,
    UBD_SCHED_SQRT_RECIP_ALPHAS_CUMPROD,
    UBD_SCHED_SQRT_RECIPM1_ALPHAS_CUMPROD,
    UBD_SCHED_POSTERIOR_VARIANCE,
    UBD_SCHED_POSTERIOR_LOG_VARIANCE_CLIPPED,
    UBD_SCHED_POSTERIOR_MEAN_COEF1,
    UBD_SCHED_POSTERIOR_MEAN_COEF2,
    UBD_SCHED_LOSS_WEIGHT,
    UBD_SCHED_NUM
} ubd_sched_array;
const char *ubd_sched_name(ubd_sched_array k);

typedef struct ubd_diffusion ubd_diffusion;

/* Cosine schedule with T steps (s = 0.008, betas clipped to 0.999, float64)
 * around denoiser `net` (its backend, its max_batch), which is initialised
 * from `seed`. The diffusion owns `net` from the call on, also when it fails
 * (then net is freed). */
ubd_status ubd_diffusion_create_with(ubd_diffusion **out, ubd_denoiser net, int T, uint64_t seed);
/* The same around a new 1-D U-Net (the latent diffusion) / 2-D U-Net (the
 * pixel DDPM) for batches up to max_batch on backend `be` (NULL: the CPU). */
ubd_status ubd_diffusion_create(ubd_diffusion **out, ubd_unet1d_config cfg, int max_batch, int T, uint64_t seed,
                                const ubd_backend *be);
ubd_status ubd_diffusion_create_unet2d(ubd_diffusion **out, const ubd_unet2d_config *cfg, int max_batch, int T,
                                       uint64_t seed, const ubd_backend *be);
void ubd_diffusion_free(ubd_diffusion *d);
/* The denoiser (its kind, sample shape, max_batch), its parameter table, and
 * its re-initialisation (EMA := params; grad, m, v zeroed). */
const ubd_denoiser *ubd_diffusion_denoiser(const ubd_diffusion *d);
ubd_params *ubd_diffusion_params(ubd_diffusion *d);
ubd_status ubd_diffusion_init(ubd_diffusion *d, uint64_t seed);
/* Forgets the denoiser's saved forward: ubd_diffusion_net_backward raises until
 * a new ubd_diffusion_net_forward ran. The model calls it itself wherever the
 * weights change (init, apply_update, train_step) or a sampling run overwrites
 * the activations; a caller that writes the param or EMA buffer through the
 * table (ubd_params_write: set, load, an EMA copy) calls it too, or backward
 * would differentiate the activations of the old weights. */
void ubd_diffusion_forget_forward(ubd_diffusion *d);
const ubd_backend *ubd_diffusion_backend(const ubd_diffusion *d);
/* Floats of the diffusion's own arena (the denoiser's: its activation_floats). */
size_t ubd_diffusion_arena_floats(const ubd_diffusion *d);

/* The denoiser on host arrays: out (B, *S) = net(x (B, *S), t (B)) with the
 * weights of buffer `weights` (S: the sample shape, (C, L) or (C, H, W));
 * backward of the last forward, dx (B, *S) += (NULL: not wanted), dout (B, *S). */
ubd_status ubd_diffusion_net_forward(ubd_diffusion *d, float *out, const float *x, const float *t, int B,
                                     ubd_buf_kind weights);
ubd_status ubd_diffusion_net_backward(ubd_diffusion *d, float *dx, const float *dout, int B);
int ubd_diffusion_timesteps(const ubd_diffusion *d);
const double *ubd_diffusion_schedule(const ubd_diffusion *d, ubd_sched_array k);

/* The v-prediction loss for given t (B) and noise (B, C, L) on z0 (B, C, L):
 *   x_t = sqrt(abar) z0 + sqrt(1-abar) noise, v = sqrt(abar) noise - sqrt(1-abar) z0,
 *   loss = mean_b [ w_t * mean_{c,l} (net(x_t, t) - v)^2 ],  w_t = snr / (snr + 1).
 * per_sample (B) receives the weighted per-sample terms (NULL: not wanted).
 * grad_scale > 0 also runs backward of grad_scale * loss into the grad buffer (+=). */
ubd_status ubd_diffusion_loss(ubd_diffusion *d, float *loss, float *per_sample, const float *z0, const int *t,
                              const float *noise, int B, float grad_scale);

/* One optimiser step on z0 (accum*B, C, L): accum micro-batches of B, gradient
 * = mean over micro-batches, clipped, Adam step number step+1, EMA when
 * (step+1) % ema_every == 0. loss (1): mean of the micro-batch losses;
 * grad_norm (1): the norm before clipping (NULL: not wanted).
 * = ubd_diffusion_forward_backward then ubd_diffusion_apply_update (the same
 * bits), split so that data-parallel training can all-reduce the gradient
 * buffer in between. */
ubd_status ubd_diffusion_train_step(ubd_diffusion *d, float *loss, float *grad_norm, const float *z0, int B,
                                    int accum, uint64_t seed, long long step, ubd_diffusion_hparams hp);
/* The gradient half: grad buffer = mean over the accum micro-batches of the
 * loss gradients (zeroed first), t and noise drawn as documented above for
 * training step `step`; loss (1) = mean of the micro-batch losses. Sample j of
 * z0 draws as sample g = first + j of the step's batch (train_step: first 0), so
 * a data-parallel rank holding samples [first, first + accum*B) of a global
 * batch draws the t and noise a single process would give them. */
ubd_status ubd_diffusion_forward_backward(ubd_diffusion *d, float *loss, const float *z0, int B, int accum,
                                          uint64_t seed, long long step, long long first);
/* The update half, from the grad buffer as it stands: clip to hp.max_grad_norm
 * (0: no clipping), Adam step number step+1, EMA with hp.ema_decay when
 * hp.ema_every > 0 and (step+1) % hp.ema_every == 0 (decay 0 copies exactly).
 * grad_norm (1): the norm before clipping (NULL: not wanted). */
ubd_status ubd_diffusion_apply_update(ubd_diffusion *d, float *grad_norm, long long step, ubd_diffusion_hparams hp);

/* Number of reverse steps a sampler takes (DDPM: T; DDIM: steps, 1..T). */
ubd_status ubd_diffusion_sampler_steps(const ubd_diffusion *d, ubd_sampler sampler, int steps, int *nsteps);
/* A sampling run of one chunk of n <= max_batch samples whose first has global
 * index `first`, held on the device until read: begin draws x_T and uploads
 * the run's plan of steps; run advances `count` steps (wait: then waits for
 * the device, so progress reports are true); read copies the chunk x (n, C, L)
 * (n: the run's) to the host (the finished samples once all steps ran). Between these calls
 * nothing crosses to the host. ubd_diffusion_sample = begin, run all, read,
 * per chunk. A new begin ends the previous run. */
ubd_status ubd_diffusion_sample_begin(ubd_diffusion *d, int n, long long first, uint64_t seed, ubd_sampler sampler,
                                      int steps, float eta, int use_ema);
ubd_status ubd_diffusion_sample_run(ubd_diffusion *d, int count, int wait);
ubd_status ubd_diffusion_sample_read(ubd_diffusion *d, float *x, int n);
/* Steps taken and in all by the current run (0, 0 when none). */
void ubd_diffusion_sample_progress(const ubd_diffusion *d, int *done, int *total);
/* z (N, C, L): DDPM over all T steps (steps ignored) or DDIM with `steps`
 * steps and eta; x0 predictions clamped to [-1, 1]; chunks of max_batch. */
ubd_status ubd_diffusion_sample(ubd_diffusion *d, float *z, int N, uint64_t seed, ubd_sampler sampler, int steps,
                                float eta, int use_ema);
/* Whether sampling replays each step as one captured graph (backend.h,
 * `replay`; on by default; the CPU has no graphs and runs the ops either
 * way). The first step with a new batch size or weight buffer runs without
 * (it warms up the kernels and cuBLAS), the second is captured, the rest
 * replay it. A failed capture turns the setting off (the run goes on op by
 * op). use < 0 only reads the setting. Returns the setting. */
int ubd_diffusion_graphs(ubd_diffusion *d, int use);

#ifdef __cplusplus
}
#endif
#endif
