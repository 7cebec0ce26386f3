/* diffusion_ops.c — CPU versions of the latent diffusion's ops (diffusion_ops.h).
 * Each loop is the host loop models/diffusion.c ran before these were ops, in
 * the same order and with the same float / double expressions, so results keep
 * their bits. */
#include "diffusion_ops.h"

#include <math.h>

ubd_status ubd_cpu_diffusion_timesteps(int *ti, float *tf, int B, int T) {
    UBD_REQUIRE(ti && tf, UBD_ERR_VALUE, "diffusion_timesteps: NULL buffer");
    UBD_REQUIRE(B >= 0 && T >= 1, UBD_ERR_VALUE, "diffusion_timesteps: need B >= 0 and T >= 1, got %d, %d", B, T);
    for (int b = 0; b < B; b++) {
        int t = (int)(tf[b] * (float)T);
        ti[b] = t < T ? t : T - 1; /* u < 1, but T u may round up to T */
        tf[b] = (float)ti[b];
    }
    return UBD_OK;
}

ubd_status ubd_cpu_diffusion_q_sample(float *xt, float *v, const float *z0, const float *noise, const int *t,
                                      const float *sa, const float *s1, int B, size_t per) {
    UBD_REQUIRE(xt && v && z0 && noise && t && sa && s1, UBD_ERR_VALUE, "diffusion_q_sample: NULL buffer");
    for (int b = 0; b < B; b++) {
        const float a = sa[t[b]], c = s1[t[b]];
        const float *z = z0 + b * per, *e = noise + b * per;
        float *x = xt + b * per, *vb = v + b * per;
        for (size_t i = 0; i < per; i++) {
            x[i] = a * z[i] + c * e[i];
            vb[i] = a * e[i] - c * z[i];
        }
    }
    return UBD_OK;
}

ubd_status ubd_cpu_diffusion_vloss_forward(float *loss, float *per_sample, const float *pred, const float *v,
                                           const int *t, const float *w, int B, size_t per) {
    UBD_REQUIRE(loss && pred && v && t && w, UBD_ERR_VALUE, "diffusion_vloss_forward: NULL buffer");
    UBD_REQUIRE(B >= 1 && per >= 1, UBD_ERR_VALUE, "diffusion_vloss_forward: empty batch");
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *p = pred + b * per, *vb = v + b * per;
        const double wt = w[t[b]];
        double se = 0.0;
        for (size_t i = 0; i < per; i++) se += (double)(p[i] - vb[i]) * (p[i] - vb[i]);
        const double term = wt * se / (double)per;
        if (per_sample) per_sample[b] = (float)term;
        total += term;
    }
    *loss = (float)(total / B);
    return UBD_OK;
}

ubd_status ubd_cpu_diffusion_vloss_backward(float *dpred, const float *pred, const float *v, const int *t,
                                            const float *w, int B, size_t per, float scale) {
    UBD_REQUIRE(dpred && pred && v && t && w, UBD_ERR_VALUE, "diffusion_vloss_backward: NULL buffer");
    for (int b = 0; b < B; b++) {
        const double wt = w[t[b]];
        /* d/dp of scale * w * mean((p - v)^2) / B */
        const float c = (float)(scale * wt * 2.0 / ((double)per * B));
        const float *p = pred + b * per, *vb = v + b * per;
        float *dp = dpred + b * per;
        for (size_t i = 0; i < per; i++) dp[i] += c * (p[i] - vb[i]);
    }
    return UBD_OK;
}

ubd_status ubd_cpu_diffusion_step_begin(ubd_sample_step *cur, float *tf, int *k, const ubd_sample_step *plan, int B) {
    UBD_REQUIRE(cur && tf && k && plan, UBD_ERR_VALUE, "diffusion_step_begin: NULL buffer");
    *cur = plan[*k];
    for (int b = 0; b < B; b++) tf[b] = (float)cur->time;
    *k += 1;
    return UBD_OK;
}

static float clampf(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

ubd_status ubd_cpu_diffusion_step_update(float *x, const float *pred, const ubd_sample_step *cur, size_t n,
                                         float *noise) {
    UBD_REQUIRE(x && pred && cur, UBD_ERR_VALUE, "diffusion_step_update: NULL buffer");
    const ubd_sample_step s = *cur;
    UBD_REQUIRE(s.kind >= UBD_STEP_DDPM && s.kind <= UBD_STEP_X0, UBD_ERR_VALUE,
                "diffusion_step_update: unknown step kind %d", s.kind);
    if (s.kind == UBD_STEP_X0) { /* the last DDIM step returns the prediction itself */
        for (size_t i = 0; i < n; i++) x[i] = clampf(s.sa * x[i] - s.s1 * pred[i]);
        return UBD_OK;
    }
    if (s.noisy) {
        UBD_REQUIRE(noise != NULL, UBD_ERR_VALUE, "diffusion_step_update: a noisy step needs the noise scratch");
        UBD_TRY(ubd_cpu_rand_normal(noise, n, s.seed, s.stream, s.offset));
    }
    if (s.kind == UBD_STEP_DDPM) {
        for (size_t i = 0; i < n; i++) {
            const float x0 = clampf(s.sa * x[i] - s.s1 * pred[i]);
            const float mean = s.c_x0 * x0 + s.c_x * x[i];
            x[i] = s.noisy ? mean + s.sd * noise[i] : mean; /* no noise at t = 0 */
        }
        return UBD_OK;
    }
    for (size_t i = 0; i < n; i++) {
        const float x0 = clampf(s.sa * x[i] - s.s1 * pred[i]);
        const float eps = (s.r1 * x[i] - x0) / s.rm1; /* noise implied by the clamped x0 */
        x[i] = x0 * s.c_x0 + s.c_x * eps + (s.noisy ? s.sd * noise[i] : 0.0f);
    }
    return UBD_OK;
}
