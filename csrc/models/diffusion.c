/* diffusion.c — schedule, v-prediction loss, training step and samplers of
 * the latent diffusion (see diffusion.h). The schedule is computed in float64
 * like GaussianDiffusion1D; per-element arithmetic is float32 with the
 * coefficients rounded to float, as PyTorch's float32 buffers are. Every
 * per-element loop is a backend op (diffusion_ops.h), so training and
 * sampling run where the model lives, reading back only their results. */
#include "diffusion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../arena.h"

#define SAMPLE_STREAM (1ULL << 62) /* sampling streams, apart from training's 4*step + k */
#define LOSS_SLOTS 64              /* micro-batch losses kept on the device before one read */

struct ubd_diffusion {
    const ubd_backend *be;
    ubd_denoiser net; /* owned: the 1-D U-Net (latent) or the 2-D U-Net (pixel DDPM) */
    int T, max_batch;
    size_t per; /* C * L floats per sample */
    double *sched[UBD_SCHED_NUM]; /* host, float64 */

    /* backend memory: one arena */
    ubd_arena arena;
    float *sa, *s1, *w;                        /* (T) schedule rows the ops read, as float */
    float *xt, *noise, *v, *pred, *dpred, *tf; /* (max_batch, C, L) x5, (max_batch) */
    int *ti;                                   /* (max_batch) */
    float *losses;                             /* (LOSS_SLOTS) micro-batch losses */
    float *norm;                               /* (1) gradient norm */
    float *per_sample;                         /* (max_batch) */
    ubd_sample_step *plan, *cur;               /* (T) steps of the current run, (1) the step running */
    int *k;                                    /* (1) steps the device has begun */
    float *xs;                                 /* (max_batch, C, L) the samples of the run */
    float *st_a, *st_b, *st_c, *st_t;          /* staging (NULL on the CPU): 3 x (max_batch, C, L), (max_batch) */
    int *st_ti;                                /* (max_batch) */

    /* host memory */
    float *h_tf;             /* (max_batch) */
    ubd_sample_step *h_plan; /* (T) */
    struct {
        int active, n, nsteps, done, use_ema;
    } run;
    int use_graphs;
    void *graph;           /* the captured step (backend's replay), for graph_n / graph_ema */
    int graph_n, graph_ema, graph_warm;
};

const char *ubd_sched_name(ubd_sched_array k) {
    static const char *n[UBD_SCHED_NUM] = {"betas",
                                           "alphas_cumprod",
                                           "alphas_cumprod_prev",
                                           "sqrt_alphas_cumprod",
                                           "sqrt_one_minus_alphas_cumprod",
                                           "sqrt_recip_alphas_cumprod",
                                           "sqrt_recipm1_alphas_cumprod",
                                           "posterior_variance",
                                           "posterior_log_variance_clipped",
                                           "posterior_mean_coef1",
                                           "posterior_mean_coef2",
                                           "loss_weight"};
    return (k >= 0 && k < UBD_SCHED_NUM) ? n[k] : "?";
}

/* cosine_beta_schedule(T, s=0.008) and the buffers GaussianDiffusion1D derives. */
static void make_schedule(ubd_diffusion *d) {
    const int T = d->T;
    const double s = 0.008, pi = 3.14159265358979323846;
    double **S = d->sched;
    double f0 = cos(s / (1 + s) * pi * 0.5);
    f0 *= f0;
    double prev = 1.0; /* alphas_cumprod (normalised) at x = 0 */
    double ac = 1.0;   /* running cumprod of (1 - beta) */
    for (int i = 0; i < T; i++) {
        double c = cos(((double)(i + 1) / T + s) / (1 + s) * pi * 0.5);
        double f = c * c / f0;
        double beta = 1.0 - f / prev;
        prev = f;
        if (beta < 0.0) beta = 0.0;
        if (beta > 0.999) beta = 0.999;
        double acp = ac;
        ac *= 1.0 - beta;
        S[UBD_SCHED_BETAS][i] = beta;
        S[UBD_SCHED_ALPHAS_CUMPROD][i] = ac;
        S[UBD_SCHED_ALPHAS_CUMPROD_PREV][i] = acp;
        S[UBD_SCHED_SQRT_ALPHAS_CUMPROD][i] = sqrt(ac);
        S[UBD_SCHED_SQRT_ONE_MINUS_ALPHAS_CUMPROD][i] = sqrt(1.0 - ac);
        S[UBD_SCHED_SQRT_RECIP_ALPHAS_CUMPROD][i] = sqrt(1.0 / ac);
        S[UBD_SCHED_SQRT_RECIPM1_ALPHAS_CUMPROD][i] = sqrt(1.0 / ac - 1.0);
        double pv = beta * (1.0 - acp) / (1.0 - ac);
        S[UBD_SCHED_POSTERIOR_VARIANCE][i] = pv;
        S[UBD_SCHED_POSTERIOR_LOG_VARIANCE_CLIPPED][i] = log(pv > 1e-20 ? pv : 1e-20);
        S[UBD_SCHED_POSTERIOR_MEAN_COEF1][i] = beta * sqrt(acp) / (1.0 - ac);
        S[UBD_SCHED_POSTERIOR_MEAN_COEF2][i] = (1.0 - acp) * sqrt(1.0 - beta) / (1.0 - ac);
        double snr = ac / (1.0 - ac);
        S[UBD_SCHED_LOSS_WEIGHT][i] = snr / (snr + 1.0);
    }
}

static void lay_out(ubd_diffusion *d, ubd_arena *a) {
    const size_t T = (size_t)d->T, mb = (size_t)d->max_batch, n = mb * d->per;
    ubd_arena_take(a, &d->sa, T, "sqrt_alphas_cumprod");
    ubd_arena_take(a, &d->s1, T, "sqrt_one_minus_alphas_cumprod");
    ubd_arena_take(a, &d->w, T, "loss_weight");
    ubd_arena_take(a, &d->xt, n, "x_t");
    ubd_arena_take(a, &d->noise, n, "noise");
    ubd_arena_take(a, &d->v, n, "v target");
    ubd_arena_take(a, &d->pred, n, "prediction");
    ubd_arena_take(a, &d->dpred, n, "d prediction");
    ubd_arena_take(a, &d->tf, mb, "times");
    ubd_arena_take_int(a, &d->ti, mb, "integer times");
    ubd_arena_take(a, &d->losses, LOSS_SLOTS, "micro-batch losses");
    ubd_arena_take(a, &d->norm, 1, "gradient norm");
    ubd_arena_take(a, &d->per_sample, mb, "per-sample losses");
    float *f = NULL;
    ubd_arena_take(a, &f, T * sizeof(ubd_sample_step) / sizeof(float), "sampling plan");
    d->plan = (ubd_sample_step *)f;
    ubd_arena_take(a, &f, sizeof(ubd_sample_step) / sizeof(float), "sampling step");
    d->cur = (ubd_sample_step *)f;
    ubd_arena_take_int(a, &d->k, 1, "sampling counter");
    ubd_arena_take(a, &d->xs, n, "samples");
    ubd_arena_stage(a, &d->st_a, n, "staging a");
    ubd_arena_stage(a, &d->st_b, n, "staging b");
    ubd_arena_stage(a, &d->st_c, n, "staging c");
    ubd_arena_stage(a, &d->st_t, mb, "staging times");
    ubd_arena_stage_int(a, &d->st_ti, mb, "staging integer times");
}

void ubd_diffusion_free(ubd_diffusion *d) {
    if (!d) return;
    if (d->graph) d->be->replay_free(d->graph);
    if (d->net.free) d->net.free(d->net.net);
    ubd_arena_release(&d->arena);
    for (int k = 0; k < UBD_SCHED_NUM; k++) free(d->sched[k]);
    free(d->h_tf), free(d->h_plan);
    free(d);
}

/* The schedule rows the ops read, rounded to float as the host loops did. */
static ubd_status upload_schedule(ubd_diffusion *d) {
    const ubd_sched_array rows[3] = {UBD_SCHED_SQRT_ALPHAS_CUMPROD, UBD_SCHED_SQRT_ONE_MINUS_ALPHAS_CUMPROD,
                                     UBD_SCHED_LOSS_WEIGHT};
    float *dst[3] = {d->sa, d->s1, d->w};
    float *h = malloc((size_t)d->T * sizeof(float));
    UBD_REQUIRE(h != NULL, UBD_ERR_MEMORY, "diffusion: out of memory");
    ubd_status s = UBD_OK;
    for (int r = 0; r < 3 && s == UBD_OK; r++) {
        for (int i = 0; i < d->T; i++) h[i] = (float)d->sched[rows[r]][i];
        s = d->be->copy(dst[r], h, (size_t)d->T * sizeof(float), UBD_H2D);
    }
    free(h);
    return s;
}

ubd_status ubd_diffusion_create_with(ubd_diffusion **out, ubd_denoiser net, int T, uint64_t seed) {
    if (!out) { /* the denoiser is ours from here on, whatever happens */
        if (net.free) net.free(net.net);
        return ubd_fail(UBD_ERR_VALUE, "ubd_diffusion_create_with: out must not be NULL");
    }
    *out = NULL;
    ubd_diffusion *d = calloc(1, sizeof *d);
    if (!d) {
        if (net.free) net.free(net.net);
        return ubd_fail(UBD_ERR_MEMORY, "diffusion: out of memory");
    }
    d->net = net;
    d->be = net.be ? net.be : ubd_backend_cpu();
    ubd_arena_begin(&d->arena, d->be);
    d->use_graphs = 1;
    const int max_batch = net.max_batch;
    ubd_status s = UBD_OK;
    if (!net.net || !net.forward || !net.backward || !net.params || !net.init || !net.forget_forward || !net.free ||
        net.per == 0)
        s = ubd_fail(UBD_ERR_VALUE, "diffusion: incomplete denoiser");
    else if (T < 1 || T > 100000)
        s = ubd_fail(UBD_ERR_VALUE, "diffusion: timesteps must lie in 1..100000, got %d", T);
    if (!s) s = net.init(net.net, seed);
    if (!s) {
        d->T = T, d->max_batch = max_batch, d->per = net.per;
        int ok = 1;
        for (int k = 0; k < UBD_SCHED_NUM; k++) ok &= (d->sched[k] = malloc((size_t)T * sizeof(double))) != NULL;
        ok &= (d->h_tf = malloc((size_t)max_batch * sizeof(float))) != NULL;
        ok &= (d->h_plan = malloc((size_t)T * sizeof(ubd_sample_step))) != NULL;
        if (!ok) s = ubd_fail(UBD_ERR_MEMORY, "diffusion: out of memory");
    }
    if (!s) {
        char owner[64];
        snprintf(owner, sizeof owner, "diffusion (max_batch %d, T %d)", max_batch, T);
        lay_out(d, &d->arena);
        s = ubd_arena_commit(&d->arena, owner);
        if (!s) {
            lay_out(d, &d->arena);
            s = ubd_arena_end(&d->arena);
        }
    }
    if (!s) {
        make_schedule(d);
        s = upload_schedule(d);
    }
    if (s) {
        ubd_diffusion_free(d);
        return s;
    }
    *out = d;
    return UBD_OK;
}

/* The timesteps check comes first, as it did before the denoiser interface:
 * a bad T fails before any network is built. */
ubd_status ubd_diffusion_create(ubd_diffusion **out, ubd_unet1d_config cfg, int max_batch, int T, uint64_t seed,
                                const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_REQUIRE(T >= 1 && T <= 100000, UBD_ERR_VALUE, "diffusion: timesteps must lie in 1..100000, got %d", T);
    ubd_denoiser net;
    UBD_TRY(ubd_denoiser_unet1d(&net, cfg, max_batch, be ? be : ubd_backend_cpu()));
    return ubd_diffusion_create_with(out, net, T, seed);
}

ubd_status ubd_diffusion_create_unet2d(ubd_diffusion **out, const ubd_unet2d_config *cfg, int max_batch, int T,
                                       uint64_t seed, const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_REQUIRE(T >= 1 && T <= 100000, UBD_ERR_VALUE, "diffusion: timesteps must lie in 1..100000, got %d", T);
    ubd_denoiser net;
    UBD_TRY(ubd_denoiser_unet2d(&net, cfg, max_batch, be ? be : ubd_backend_cpu()));
    return ubd_diffusion_create_with(out, net, T, seed);
}

const ubd_denoiser *ubd_diffusion_denoiser(const ubd_diffusion *d) { return &d->net; }
ubd_params *ubd_diffusion_params(ubd_diffusion *d) { return d->net.params(d->net.net); }
ubd_status ubd_diffusion_init(ubd_diffusion *d, uint64_t seed) {
    UBD_REQUIRE_PTR(d);
    return d->net.init(d->net.net, seed);
}
void ubd_diffusion_forget_forward(ubd_diffusion *d) {
    if (d) d->net.forget_forward(d->net.net);
}
const ubd_backend *ubd_diffusion_backend(const ubd_diffusion *d) { return d->be; }
size_t ubd_diffusion_arena_floats(const ubd_diffusion *d) { return d->arena.bytes / sizeof(float); }
int ubd_diffusion_timesteps(const ubd_diffusion *d) { return d->T; }
const double *ubd_diffusion_schedule(const ubd_diffusion *d, ubd_sched_array k) {
    return (k >= 0 && k < UBD_SCHED_NUM) ? d->sched[k] : NULL;
}

static ubd_status check_batch(const ubd_diffusion *d, int B, const char *fn) {
    UBD_REQUIRE(B >= 1 && B <= d->max_batch, UBD_ERR_VALUE, "%s: batch %d outside 1..%d (max_batch)", fn, B,
                d->max_batch);
    return UBD_OK;
}

/* ---- the U-Net on host arrays ------------------------------------------- */

ubd_status ubd_diffusion_net_forward(ubd_diffusion *d, float *out, const float *x, const float *t, int B,
                                     ubd_buf_kind weights) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE_PTR(t);
    UBD_TRY(check_batch(d, B, "net_forward"));
    const ubd_backend *be = d->be;
    const size_t n = (size_t)B * d->per;
    const float *xd, *td;
    UBD_TRY(ubd_stage_in(be, &xd, d->st_a, x, n));
    UBD_TRY(ubd_stage_in(be, &td, d->st_t, t, (size_t)B));
    float *od = ubd_stage_out(be, d->st_c, out);
    UBD_TRY(d->net.forward(d->net.net, od, xd, td, B, weights));
    return be->copy(out, od, n * sizeof(float), UBD_D2H);
}

ubd_status ubd_diffusion_net_backward(ubd_diffusion *d, float *dx, const float *dout, int B) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(dout);
    UBD_TRY(check_batch(d, B, "net_backward"));
    const ubd_backend *be = d->be;
    const size_t n = (size_t)B * d->per;
    const float *gd;
    UBD_TRY(ubd_stage_in(be, &gd, d->st_a, dout, n));
    float *dxd = NULL;
    if (dx) { /* dx +=: the device copy starts from the caller's values */
        dxd = ubd_stage_out(be, d->st_c, dx);
        UBD_TRY(be->copy(dxd, dx, n * sizeof(float), UBD_H2D));
    }
    UBD_TRY(d->net.backward(d->net.net, dxd, gd, B));
    return dx ? be->copy(dx, dxd, n * sizeof(float), UBD_D2H) : UBD_OK;
}

/* ---- loss and training -------------------------------------------------- */

/* The v-prediction loss of z0, t, noise (backend memory) into loss (1) and
 * per_sample (B) or NULL; grad_scale > 0 also runs backward of
 * grad_scale * loss into the grad buffer (+=). tf (B) = (float) ti. */
static ubd_status vloss(ubd_diffusion *d, float *loss, float *per_sample, const float *z0, const int *ti,
                        const float *tf, const float *noise, int B, float grad_scale) {
    const ubd_backend *be = d->be;
    const size_t per = d->per;
    UBD_TRY(be->diffusion_q_sample(d->xt, d->v, z0, noise, ti, d->sa, d->s1, B, per));
    UBD_TRY(d->net.forward(d->net.net, d->pred, d->xt, tf, B, UBD_BUF_PARAM));
    UBD_TRY(be->diffusion_vloss_forward(loss, per_sample, d->pred, d->v, ti, d->w, B, per));
    if (!(grad_scale > 0.0f)) return UBD_OK;
    UBD_TRY(be->zero(d->dpred, (size_t)B * per));
    UBD_TRY(be->diffusion_vloss_backward(d->dpred, d->pred, d->v, ti, d->w, B, per, grad_scale));
    return d->net.backward(d->net.net, NULL, d->dpred, B);
}

ubd_status ubd_diffusion_loss(ubd_diffusion *d, float *loss, float *per_sample, const float *z0, const int *t,
                              const float *noise, int B, float grad_scale) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(loss);
    UBD_REQUIRE_PTR(z0);
    UBD_REQUIRE_PTR(t);
    UBD_REQUIRE_PTR(noise);
    UBD_TRY(check_batch(d, B, "diffusion_loss"));
    for (int b = 0; b < B; b++) {
        UBD_REQUIRE(t[b] >= 0 && t[b] < d->T, UBD_ERR_VALUE, "diffusion_loss: t[%d] = %d outside 0..%d", b, t[b],
                    d->T - 1);
        d->h_tf[b] = (float)t[b];
    }
    const ubd_backend *be = d->be;
    const size_t n = (size_t)B * d->per;
    const float *zd, *nd, *tfd;
    const int *tid;
    UBD_TRY(ubd_stage_in(be, &zd, d->st_a, z0, n));
    UBD_TRY(ubd_stage_in(be, &nd, d->st_b, noise, n));
    UBD_TRY(ubd_stage_in_int(be, &tid, d->st_ti, t, (size_t)B));
    UBD_TRY(ubd_stage_in(be, &tfd, d->st_t, d->h_tf, (size_t)B));
    UBD_TRY(vloss(d, d->losses, per_sample ? d->per_sample : NULL, zd, tid, tfd, nd, B, grad_scale));
    UBD_TRY(be->copy(loss, d->losses, sizeof(float), UBD_D2H));
    return per_sample ? be->copy(per_sample, d->per_sample, (size_t)B * sizeof(float), UBD_D2H) : UBD_OK;
}

static ubd_status check_hparams(ubd_diffusion_hparams hp) {
    UBD_TRY(ubd_adam_check("train_step", hp.adam));
    UBD_REQUIRE(isfinite(hp.max_grad_norm) && hp.max_grad_norm >= 0.0f, UBD_ERR_VALUE,
                "train_step: max_grad_norm must be finite and >= 0 (0 = off), got %g", hp.max_grad_norm);
    UBD_REQUIRE(hp.ema_decay >= 0.0f && hp.ema_decay <= 1.0f, UBD_ERR_VALUE,
                "train_step: ema_decay must lie in [0, 1], got %g", hp.ema_decay);
    UBD_REQUIRE(hp.ema_every >= 0, UBD_ERR_VALUE, "train_step: ema_every must be >= 0 (0 = off), got %d",
                hp.ema_every);
    return UBD_OK;
}

static ubd_status check_step_args(const ubd_diffusion *d, int B, int accum, long long step) {
    UBD_TRY(check_batch(d, B, "train_step"));
    UBD_REQUIRE(accum >= 1, UBD_ERR_VALUE, "train_step: accum must be >= 1, got %d", accum);
    UBD_REQUIRE(step >= 0, UBD_ERR_VALUE, "train_step: step must be >= 0, got %lld", step);
    return UBD_OK;
}

ubd_status ubd_diffusion_forward_backward(ubd_diffusion *d, float *loss, const float *z0, int B, int accum,
                                          uint64_t seed, long long step, long long first) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(loss);
    UBD_REQUIRE_PTR(z0);
    UBD_TRY(check_step_args(d, B, accum, step));
    UBD_REQUIRE(first >= 0, UBD_ERR_VALUE, "forward_backward: first (the batch position of sample 0) must be >= 0, "
                "got %lld", first);
    const ubd_backend *be = d->be;
    ubd_params *P = ubd_diffusion_params(d);
    const size_t per = d->per;
    UBD_TRY(be->zero(P->buf[UBD_BUF_GRAD], P->n));
    /* the micro-batch losses stay on the device, LOSS_SLOTS at a time, and are
     * added on the host in micro-batch order, in double as before */
    double total = 0.0;
    float host[LOSS_SLOTS];
    for (int a = 0; a < accum; a++) {
        const uint64_t g0 = (uint64_t)first + (uint64_t)a * B; /* batch position of the micro-batch's sample 0 */
        UBD_TRY(be->rand_uniform(d->tf, (size_t)B, seed, 4 * (uint64_t)step, g0));
        UBD_TRY(be->diffusion_timesteps(d->ti, d->tf, B, d->T));
        UBD_TRY(be->rand_normal(d->noise, (size_t)B * per, seed, 4 * (uint64_t)step + 1, g0 * per));
        const float *zd;
        UBD_TRY(ubd_stage_in(be, &zd, d->st_a, z0 + (size_t)a * B * per, (size_t)B * per));
        const int slot = a % LOSS_SLOTS;
        UBD_TRY(vloss(d, d->losses + slot, NULL, zd, d->ti, d->tf, d->noise, B, 1.0f / (float)accum));
        if (slot == LOSS_SLOTS - 1 || a == accum - 1) {
            UBD_TRY(be->copy(host, d->losses, (size_t)(slot + 1) * sizeof(float), UBD_D2H));
            for (int i = 0; i <= slot; i++) total += host[i];
        }
    }
    *loss = (float)(total / accum);
    return UBD_OK;
}

ubd_status ubd_diffusion_apply_update(ubd_diffusion *d, float *grad_norm, long long step, ubd_diffusion_hparams hp) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE(step >= 0, UBD_ERR_VALUE, "train_step: step must be >= 0, got %lld", step);
    UBD_TRY(check_hparams(hp));
    const ubd_backend *be = d->be;
    ubd_params *P = ubd_diffusion_params(d);
    if (hp.max_grad_norm > 0.0f)
        UBD_TRY(be->clip_grad_norm(d->norm, P->buf[UBD_BUF_GRAD], P->n, hp.max_grad_norm));
    else
        UBD_TRY(be->grad_norm(d->norm, P->buf[UBD_BUF_GRAD], P->n));
    ubd_diffusion_forget_forward(d); /* the weights move: the saved forward is the old weights' */
    UBD_TRY(be->adam_update(P->buf[UBD_BUF_PARAM], P->buf[UBD_BUF_M], P->buf[UBD_BUF_V], P->buf[UBD_BUF_GRAD], P->n,
                            hp.adam, step + 1));
    /* decay 0 is a copy, done as one: ema + (p - ema) may miss p by an ulp, and the
     * warm-up of ema-pytorch (ubdiff/models/diffusion.py) copies exactly */
    if (hp.ema_every > 0 && (step + 1) % hp.ema_every == 0) {
        if (hp.ema_decay == 0.0f)
            UBD_TRY(be->copy(P->buf[UBD_BUF_EMA], P->buf[UBD_BUF_PARAM], P->n * sizeof(float), UBD_D2D));
        else
            UBD_TRY(be->ema_update(P->buf[UBD_BUF_EMA], P->buf[UBD_BUF_PARAM], P->n, hp.ema_decay));
    }
    return grad_norm ? be->copy(grad_norm, d->norm, sizeof(float), UBD_D2H) : be->sync();
}

ubd_status ubd_diffusion_train_step(ubd_diffusion *d, float *loss, float *grad_norm, const float *z0, int B,
                                    int accum, uint64_t seed, long long step, ubd_diffusion_hparams hp) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(loss);
    UBD_REQUIRE_PTR(z0);
    UBD_TRY(check_step_args(d, B, accum, step));
    UBD_TRY(check_hparams(hp)); /* before anything changes */
    UBD_TRY(ubd_diffusion_forward_backward(d, loss, z0, B, accum, seed, step, 0));
    return ubd_diffusion_apply_update(d, grad_norm, step, hp);
}

/* ---- sampling --------------------------------------------------------------- */

ubd_status ubd_diffusion_sampler_steps(const ubd_diffusion *d, ubd_sampler sampler, int steps, int *nsteps) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(nsteps);
    if (sampler == UBD_SAMPLER_DDPM) {
        *nsteps = d->T;
        return UBD_OK;
    }
    UBD_REQUIRE(sampler == UBD_SAMPLER_DDIM, UBD_ERR_VALUE, "sample: sampler must be ddpm (0) or ddim (1), got %d",
                (int)sampler);
    UBD_REQUIRE(steps >= 1 && steps <= d->T, UBD_ERR_VALUE, "sample: ddim steps must lie in 1..%d (T), got %d", d->T,
                steps);
    *nsteps = steps;
    return UBD_OK;
}

/* times[k] of GaussianDiffusion1D.ddim_sample: torch.linspace(-1, T-1,
 * steps+1) (float32, torch's two-sided formula), truncated to int, reversed.
 * Pair k is (times(k), times(k+1)). */
static int ddim_time(int T, int steps, int k) {
    const int n = steps + 1, idx = n - 1 - k; /* reversed */
    const float start = -1.0f, end = (float)(T - 1);
    const float step = (end - start) / (float)(n - 1);
    float v = idx < n / 2 ? start + step * (float)idx : end - step * (float)(n - idx - 1);
    return (int)v; /* truncation toward zero, as Tensor.int() */
}

/* Step k of a run: its time, coefficients (float64 schedule, rounded to float
 * as the per-step host code always did) and noise keys. */
static ubd_sample_step plan_step(const ubd_diffusion *d, ubd_sampler sampler, int nsteps, float eta, int k,
                                 long long first, uint64_t seed) {
    const int T = d->T;
    const int time = sampler == UBD_SAMPLER_DDPM ? T - 1 - k : ddim_time(T, nsteps, k);
    const int next = sampler == UBD_SAMPLER_DDPM ? time - 1 : ddim_time(T, nsteps, k + 1);
    double *const *S = d->sched;
    ubd_sample_step s;
    memset(&s, 0, sizeof s);
    s.seed = seed;
    s.stream = SAMPLE_STREAM + 1 + (uint64_t)time;
    s.offset = (uint64_t)first * d->per;
    s.time = time;
    /* x0 = sqrt(abar) x - sqrt(1 - abar) v, clamped to [-1, 1] */
    s.sa = (float)S[UBD_SCHED_SQRT_ALPHAS_CUMPROD][time];
    s.s1 = (float)S[UBD_SCHED_SQRT_ONE_MINUS_ALPHAS_CUMPROD][time];
    if (sampler == UBD_SAMPLER_DDPM) {
        s.kind = UBD_STEP_DDPM;
        s.c_x0 = (float)S[UBD_SCHED_POSTERIOR_MEAN_COEF1][time];
        s.c_x = (float)S[UBD_SCHED_POSTERIOR_MEAN_COEF2][time];
        s.sd = (float)exp(0.5 * S[UBD_SCHED_POSTERIOR_LOG_VARIANCE_CLIPPED][time]);
        s.noisy = time > 0; /* no noise at t = 0 */
        return s;
    }
    if (next < 0) { /* the last DDIM step returns the prediction itself */
        s.kind = UBD_STEP_X0;
        return s;
    }
    const double a = S[UBD_SCHED_ALPHAS_CUMPROD][time], an = S[UBD_SCHED_ALPHAS_CUMPROD][next];
    const double sig = eta * sqrt((1.0 - a / an) * (1.0 - an) / (1.0 - a));
    const double cc = 1.0 - an - sig * sig;
    s.kind = UBD_STEP_DDIM;
    s.sd = (float)sig;
    s.c_x = (float)sqrt(cc > 0.0 ? cc : 0.0);
    s.c_x0 = (float)sqrt(an);
    s.r1 = (float)S[UBD_SCHED_SQRT_RECIP_ALPHAS_CUMPROD][time];
    s.rm1 = (float)S[UBD_SCHED_SQRT_RECIPM1_ALPHAS_CUMPROD][time];
    s.noisy = s.sd > 0.0f;
    return s;
}

ubd_status ubd_diffusion_sample_begin(ubd_diffusion *d, int n, long long first, uint64_t seed, ubd_sampler sampler,
                                      int steps, float eta, int use_ema) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE(n >= 1 && n <= d->max_batch, UBD_ERR_VALUE, "sample: chunk %d outside 1..%d (max_batch)", n,
                d->max_batch);
    UBD_REQUIRE(first >= 0, UBD_ERR_VALUE, "sample: first must be >= 0");
    UBD_REQUIRE(eta >= 0.0f && isfinite(eta), UBD_ERR_VALUE, "sample: eta must be finite and >= 0, got %g", eta);
    int nsteps = 0;
    UBD_TRY(ubd_diffusion_sampler_steps(d, sampler, steps, &nsteps));
    const ubd_backend *be = d->be;
    d->run.active = 0;
    for (int k = 0; k < nsteps; k++) d->h_plan[k] = plan_step(d, sampler, nsteps, eta, k, first, seed);
    UBD_TRY(be->copy(d->plan, d->h_plan, (size_t)nsteps * sizeof(ubd_sample_step), UBD_H2D));
    const int zero = 0;
    UBD_TRY(be->copy(d->k, &zero, sizeof zero, UBD_H2D));
    UBD_TRY(be->rand_normal(d->xs, (size_t)n * d->per, seed, SAMPLE_STREAM, (uint64_t)first * d->per));
    d->run.active = 1, d->run.n = n, d->run.nsteps = nsteps, d->run.done = 0, d->run.use_ema = use_ema ? 1 : 0;
    return UBD_OK;
}

/* One reverse step of the current run, every value it needs in backend
 * memory: the same ops every step, so it may be captured once and replayed. */
static ubd_status sample_one_step(void *ctx) {
    ubd_diffusion *d = ctx;
    const ubd_backend *be = d->be;
    const int n = d->run.n;
    UBD_TRY(be->diffusion_step_begin(d->cur, d->tf, d->k, d->plan, n));
    UBD_TRY(d->net.forward(d->net.net, d->pred, d->xs, d->tf, n, d->run.use_ema ? UBD_BUF_EMA : UBD_BUF_PARAM));
    return be->diffusion_step_update(d->xs, d->pred, d->cur, (size_t)n * d->per, d->noise);
}

ubd_status ubd_diffusion_sample_run(ubd_diffusion *d, int count, int wait) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE(d->run.active, UBD_ERR_VALUE, "sample: no sampling run begun (sample_begin)");
    UBD_REQUIRE(count >= 0 && count <= d->run.nsteps - d->run.done, UBD_ERR_VALUE,
                "sample: %d steps asked, %d of %d left in this run", count, d->run.nsteps - d->run.done,
                d->run.nsteps);
    const ubd_backend *be = d->be;
    const int n = d->run.n, ema = d->run.use_ema;
    /* the steps overwrite the denoiser's activations, and a replayed graph does not tell
     * the host so: a sampling run leaves no forward to differentiate (here, and below
     * for the steps run without a graph, which record themselves as the last forward) */
    if (count > 0) ubd_diffusion_forget_forward(d);
    if (d->graph_n != n || d->graph_ema != ema) { /* the graph holds the batch size and the weights */
        if (d->graph) UBD_TRY(be->replay_free(d->graph));
        d->graph = NULL;
        d->graph_n = n, d->graph_ema = ema, d->graph_warm = 0;
    }
    for (int i = 0; i < count; i++) {
        /* A run is one call of up to T steps (a minute on a CPU): in adaptive mode the
         * thread count is re-decided every step, not fixed by whatever ran at its start
         * (a competitor that was passing then, e.g. another library's spinning threads,
         * held a whole generation to one thread). Rate-limited; bits do not depend on it. */
        if (be->host_memory) ubd_threads_adapt();
        if (d->use_graphs && d->graph_warm) {
            const ubd_status s = be->replay(&d->graph, sample_one_step, d);
            /* A device whose capture failed (graph still NULL) ran nothing of the step: the run
             * goes on without graphs (ubd_diffusion_graphs then reads 0), rather than failing
             * on a speed-up. On the CPU replay ran the step itself: its error stands. */
            if (s != UBD_OK && !be->host_memory && d->graph == NULL) {
                d->use_graphs = 0;
                UBD_TRY(sample_one_step(d));
            } else {
                UBD_TRY(s);
            }
        } else {
            UBD_TRY(sample_one_step(d));
            d->graph_warm = 1;
        }
        d->run.done++;
    }
    if (count > 0) ubd_diffusion_forget_forward(d);
    return wait ? be->sync() : UBD_OK;
}

ubd_status ubd_diffusion_sample_read(ubd_diffusion *d, float *x, int n) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE(d->run.active, UBD_ERR_VALUE, "sample: no sampling run begun (sample_begin)");
    UBD_REQUIRE(n == d->run.n, UBD_ERR_VALUE, "sample_read: x holds %d samples, the run draws %d", n, d->run.n);
    return d->be->copy(x, d->xs, (size_t)d->run.n * d->per * sizeof(float), UBD_D2H);
}

void ubd_diffusion_sample_progress(const ubd_diffusion *d, int *done, int *total) {
    *done = d->run.active ? d->run.done : 0;
    *total = d->run.active ? d->run.nsteps : 0;
}

int ubd_diffusion_graphs(ubd_diffusion *d, int use) {
    if (use >= 0) d->use_graphs = use ? 1 : 0;
    return d->use_graphs;
}

ubd_status ubd_diffusion_sample(ubd_diffusion *d, float *z, int N, uint64_t seed, ubd_sampler sampler, int steps,
                                float eta, int use_ema) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(z);
    UBD_REQUIRE(N >= 1, UBD_ERR_VALUE, "sample: N must be positive, got %d", N);
    UBD_REQUIRE(eta >= 0.0f && isfinite(eta), UBD_ERR_VALUE, "sample: eta must be finite and >= 0, got %g", eta);
    int nsteps = 0;
    UBD_TRY(ubd_diffusion_sampler_steps(d, sampler, steps, &nsteps));
    for (int first = 0; first < N; first += d->max_batch) {
        const int n = N - first < d->max_batch ? N - first : d->max_batch;
        UBD_TRY(ubd_diffusion_sample_begin(d, n, first, seed, sampler, steps, eta, use_ema));
        UBD_TRY(ubd_diffusion_sample_run(d, nsteps, 0));
        UBD_TRY(ubd_diffusion_sample_read(d, z + (size_t)first * d->per, n));
    }
    return UBD_OK;
}
