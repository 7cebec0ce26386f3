/* diffusion.c — schedule, v-prediction loss, training step and samplers of
 * the latent diffusion (see diffusion.h). The schedule is computed in float64
 * like GaussianDiffusion1D; per-element arithmetic is float32 with the
 * coefficients rounded to float, as PyTorch's float32 buffers are. */
#include "diffusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_STREAM (1ULL << 62) /* sampling streams, apart from training's 4*step + k */

struct ubd_diffusion {
    ubd_unet1d *net;
    ubd_unet1d_config cfg;
    int T, max_batch;
    size_t per; /* C * L floats per sample */
    double *sched[UBD_SCHED_NUM];
    float *xt, *noise, *v, *pred, *dpred, *tf; /* (max_batch, C, L) x5, (max_batch) */
    int *ti;                                   /* (max_batch) */
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

void ubd_diffusion_free(ubd_diffusion *d) {
    if (!d) return;
    ubd_unet1d_free(d->net);
    for (int k = 0; k < UBD_SCHED_NUM; k++) free(d->sched[k]);
    free(d->xt), free(d->noise), free(d->v), free(d->pred), free(d->dpred), free(d->tf), free(d->ti);
    free(d);
}

ubd_status ubd_diffusion_create(ubd_diffusion **out, ubd_unet1d_config cfg, int max_batch, int T, uint64_t seed) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_REQUIRE(T >= 1 && T <= 100000, UBD_ERR_VALUE, "diffusion: timesteps must lie in 1..100000, got %d", T);
    ubd_diffusion *d = calloc(1, sizeof *d);
    UBD_REQUIRE(d != NULL, UBD_ERR_MEMORY, "diffusion: out of memory");
    ubd_status s = ubd_unet1d_create(&d->net, cfg, max_batch);
    if (!s) s = ubd_unet1d_init(d->net, seed);
    if (!s) {
        d->cfg = cfg, d->T = T, d->max_batch = max_batch, d->per = (size_t)cfg.channels * cfg.seq_len;
        const size_t n = (size_t)max_batch * d->per;
        int ok = 1;
        for (int k = 0; k < UBD_SCHED_NUM; k++) ok &= (d->sched[k] = malloc((size_t)T * sizeof(double))) != NULL;
        ok &= (d->xt = malloc(n * sizeof(float))) != NULL;
        ok &= (d->noise = malloc(n * sizeof(float))) != NULL;
        ok &= (d->v = malloc(n * sizeof(float))) != NULL;
        ok &= (d->pred = malloc(n * sizeof(float))) != NULL;
        ok &= (d->dpred = malloc(n * sizeof(float))) != NULL;
        ok &= (d->tf = malloc((size_t)max_batch * sizeof(float))) != NULL;
        ok &= (d->ti = malloc((size_t)max_batch * sizeof(int))) != NULL;
        if (!ok) s = ubd_fail(UBD_ERR_MEMORY, "diffusion: out of memory");
    }
    if (s) {
        ubd_diffusion_free(d);
        return s;
    }
    make_schedule(d);
    *out = d;
    return UBD_OK;
}

ubd_unet1d *ubd_diffusion_net(ubd_diffusion *d) { return d->net; }
int ubd_diffusion_timesteps(const ubd_diffusion *d) { return d->T; }
const double *ubd_diffusion_schedule(const ubd_diffusion *d, ubd_sched_array k) {
    return (k >= 0 && k < UBD_SCHED_NUM) ? d->sched[k] : NULL;
}

/* ---- loss and training -------------------------------------------------- */

ubd_status ubd_diffusion_loss(ubd_diffusion *d, float *loss, float *per_sample, const float *z0, const int *t,
                              const float *noise, int B, float grad_scale) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(loss);
    UBD_REQUIRE_PTR(z0);
    UBD_REQUIRE_PTR(t);
    UBD_REQUIRE_PTR(noise);
    UBD_REQUIRE(B >= 1 && B <= d->max_batch, UBD_ERR_VALUE, "diffusion_loss: batch %d outside 1..%d (max_batch)", B,
                d->max_batch);
    for (int b = 0; b < B; b++)
        UBD_REQUIRE(t[b] >= 0 && t[b] < d->T, UBD_ERR_VALUE, "diffusion_loss: t[%d] = %d outside 0..%d", b, t[b],
                    d->T - 1);
    const size_t per = d->per;
    double **S = d->sched;
    for (int b = 0; b < B; b++) {
        const float sa = (float)S[UBD_SCHED_SQRT_ALPHAS_CUMPROD][t[b]];
        const float s1 = (float)S[UBD_SCHED_SQRT_ONE_MINUS_ALPHAS_CUMPROD][t[b]];
        const float *z = z0 + b * per, *e = noise + b * per;
        float *x = d->xt + b * per, *v = d->v + b * per;
        for (size_t i = 0; i < per; i++) {
            x[i] = sa * z[i] + s1 * e[i];
            v[i] = sa * e[i] - s1 * z[i];
        }
        d->tf[b] = (float)t[b];
    }
    UBD_TRY(ubd_unet1d_forward(d->net, d->pred, d->xt, d->tf, B, UBD_BUF_PARAM));
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *p = d->pred + b * per, *v = d->v + b * per;
        const double w = (float)S[UBD_SCHED_LOSS_WEIGHT][t[b]];
        double se = 0.0;
        for (size_t i = 0; i < per; i++) se += (double)(p[i] - v[i]) * (p[i] - v[i]);
        double term = w * se / (double)per;
        if (per_sample) per_sample[b] = (float)term;
        total += term;
        if (grad_scale > 0.0f) {
            /* d/dp of grad_scale * w * mean((p - v)^2) / B */
            const float c = (float)(grad_scale * w * 2.0 / ((double)per * B));
            float *dp = d->dpred + b * per;
            for (size_t i = 0; i < per; i++) dp[i] = c * (p[i] - v[i]);
        }
    }
    *loss = (float)(total / B);
    if (grad_scale > 0.0f) UBD_TRY(ubd_unet1d_backward(d->net, NULL, d->dpred, B));
    return UBD_OK;
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

ubd_status ubd_diffusion_train_step(ubd_diffusion *d, float *loss, float *grad_norm, const float *z0, int B,
                                    int accum, uint64_t seed, long long step, ubd_diffusion_hparams hp) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(loss);
    UBD_REQUIRE_PTR(z0);
    UBD_REQUIRE(B >= 1 && B <= d->max_batch, UBD_ERR_VALUE, "train_step: batch %d outside 1..%d (max_batch)", B,
                d->max_batch);
    UBD_REQUIRE(accum >= 1, UBD_ERR_VALUE, "train_step: accum must be >= 1, got %d", accum);
    UBD_REQUIRE(step >= 0, UBD_ERR_VALUE, "train_step: step must be >= 0, got %lld", step);
    UBD_TRY(check_hparams(hp));
    ubd_params *P = ubd_unet1d_params(d->net);
    const size_t per = d->per;
    memset(P->buf[UBD_BUF_GRAD], 0, P->n * sizeof(float));
    double total = 0.0;
    for (int a = 0; a < accum; a++) {
        const uint64_t g0 = (uint64_t)a * B;
        UBD_TRY(ubd_cpu_rand_uniform(d->tf, (size_t)B, seed, 4 * (uint64_t)step, g0));
        for (int b = 0; b < B; b++) {
            int t = (int)(d->tf[b] * (float)d->T);
            d->ti[b] = t < d->T ? t : d->T - 1;
        }
        UBD_TRY(ubd_cpu_rand_normal(d->noise, (size_t)B * per, seed, 4 * (uint64_t)step + 1, g0 * per));
        float l = 0.0f;
        UBD_TRY(ubd_diffusion_loss(d, &l, NULL, z0 + g0 * per, d->ti, d->noise, B, 1.0f / (float)accum));
        total += l;
    }
    *loss = (float)(total / accum);
    float norm = 0.0f;
    if (hp.max_grad_norm > 0.0f)
        UBD_TRY(ubd_cpu_clip_grad_norm(&norm, P->buf[UBD_BUF_GRAD], P->n, hp.max_grad_norm));
    else
        UBD_TRY(ubd_cpu_grad_norm(&norm, P->buf[UBD_BUF_GRAD], P->n));
    if (grad_norm) *grad_norm = norm;
    UBD_TRY(ubd_cpu_adam_update(P->buf[UBD_BUF_PARAM], P->buf[UBD_BUF_M], P->buf[UBD_BUF_V], P->buf[UBD_BUF_GRAD],
                                P->n, hp.adam, step + 1));
    /* decay 0 is a copy, done as one: ema + (p - ema) may miss p by an ulp, and the
     * warm-up of ema-pytorch (ubdiff/models/diffusion.py) copies exactly */
    if (hp.ema_every > 0 && (step + 1) % hp.ema_every == 0) {
        if (hp.ema_decay == 0.0f)
            memcpy(P->buf[UBD_BUF_EMA], P->buf[UBD_BUF_PARAM], P->n * sizeof(float));
        else
            UBD_TRY(ubd_cpu_ema_update(P->buf[UBD_BUF_EMA], P->buf[UBD_BUF_PARAM], P->n, hp.ema_decay));
    }
    return UBD_OK;
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

ubd_status ubd_diffusion_sample_init(ubd_diffusion *d, float *x, int n, long long first, uint64_t seed) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE(n >= 1 && n <= d->max_batch, UBD_ERR_VALUE, "sample: chunk %d outside 1..%d (max_batch)", n,
                d->max_batch);
    UBD_REQUIRE(first >= 0, UBD_ERR_VALUE, "sample: first must be >= 0");
    return ubd_cpu_rand_normal(x, (size_t)n * d->per, seed, SAMPLE_STREAM, (uint64_t)first * d->per);
}

static float clampf(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

ubd_status ubd_diffusion_sample_step(ubd_diffusion *d, float *x, int n, long long first, uint64_t seed,
                                     ubd_sampler sampler, int steps, float eta, int k, int use_ema) {
    UBD_REQUIRE_PTR(d);
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE(n >= 1 && n <= d->max_batch, UBD_ERR_VALUE, "sample: chunk %d outside 1..%d (max_batch)", n,
                d->max_batch);
    UBD_REQUIRE(first >= 0, UBD_ERR_VALUE, "sample: first must be >= 0");
    int nsteps = 0;
    UBD_TRY(ubd_diffusion_sampler_steps(d, sampler, steps, &nsteps));
    UBD_REQUIRE(k >= 0 && k < nsteps, UBD_ERR_VALUE, "sample: step %d outside 0..%d", k, nsteps - 1);
    UBD_REQUIRE(eta >= 0.0f && isfinite(eta), UBD_ERR_VALUE, "sample: eta must be finite and >= 0, got %g", eta);
    const int T = d->T;
    const int time = sampler == UBD_SAMPLER_DDPM ? T - 1 - k : ddim_time(T, nsteps, k);
    const int next = sampler == UBD_SAMPLER_DDPM ? time - 1 : ddim_time(T, nsteps, k + 1);
    const size_t N = (size_t)n * d->per;
    double **S = d->sched;
    for (int b = 0; b < n; b++) d->tf[b] = (float)time;
    UBD_TRY(ubd_unet1d_forward(d->net, d->pred, x, d->tf, n, use_ema ? UBD_BUF_EMA : UBD_BUF_PARAM));
    /* x0 = sqrt(abar) x - sqrt(1 - abar) v, clamped to [-1, 1] */
    const float sa = (float)S[UBD_SCHED_SQRT_ALPHAS_CUMPROD][time];
    const float s1 = (float)S[UBD_SCHED_SQRT_ONE_MINUS_ALPHAS_CUMPROD][time];
    float *x0 = d->v;
    for (size_t i = 0; i < N; i++) x0[i] = clampf(sa * x[i] - s1 * d->pred[i]);
    const uint64_t noff = (uint64_t)first * d->per, nstream = SAMPLE_STREAM + 1 + (uint64_t)time;
    if (sampler == UBD_SAMPLER_DDPM) {
        const float c1 = (float)S[UBD_SCHED_POSTERIOR_MEAN_COEF1][time];
        const float c2 = (float)S[UBD_SCHED_POSTERIOR_MEAN_COEF2][time];
        const float sd = (float)exp(0.5 * S[UBD_SCHED_POSTERIOR_LOG_VARIANCE_CLIPPED][time]);
        if (time > 0) UBD_TRY(ubd_cpu_rand_normal(d->noise, N, seed, nstream, noff));
        for (size_t i = 0; i < N; i++) {
            float mean = c1 * x0[i] + c2 * x[i];
            x[i] = time > 0 ? mean + sd * d->noise[i] : mean; /* no noise at t = 0 */
        }
        return UBD_OK;
    }
    if (next < 0) { /* the last DDIM step returns the prediction itself */
        memcpy(x, x0, N * sizeof(float));
        return UBD_OK;
    }
    const double a = S[UBD_SCHED_ALPHAS_CUMPROD][time], an = S[UBD_SCHED_ALPHAS_CUMPROD][next];
    const double sig = eta * sqrt((1.0 - a / an) * (1.0 - an) / (1.0 - a));
    const double cc = 1.0 - an - sig * sig;
    const float sigma = (float)sig, c = (float)sqrt(cc > 0.0 ? cc : 0.0), san = (float)sqrt(an);
    const float r1 = (float)S[UBD_SCHED_SQRT_RECIP_ALPHAS_CUMPROD][time];
    const float rm1 = (float)S[UBD_SCHED_SQRT_RECIPM1_ALPHAS_CUMPROD][time];
    if (sigma > 0.0f) UBD_TRY(ubd_cpu_rand_normal(d->noise, N, seed, nstream, noff));
    for (size_t i = 0; i < N; i++) {
        float eps = (r1 * x[i] - x0[i]) / rm1; /* noise implied by the clamped x0 */
        x[i] = x0[i] * san + c * eps + (sigma > 0.0f ? sigma * d->noise[i] : 0.0f);
    }
    return UBD_OK;
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
        float *x = z + (size_t)first * d->per;
        UBD_TRY(ubd_diffusion_sample_init(d, x, n, first, seed));
        for (int k = 0; k < nsteps; k++)
            UBD_TRY(ubd_diffusion_sample_step(d, x, n, first, seed, sampler, steps, eta, k, use_ema));
    }
    return UBD_OK;
}
