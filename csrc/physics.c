/* physics.c — backend-independent parts of forward modelling: the Ricker
 * wavelet and the checks of parameters and velocity maps (physics.h). */
#include <math.h>

#include "physics.h"
#include "physics_math.h"

int ubd_ricker_length(float freq, float dt) {
    if (!(freq > 0.0f) || !(dt > 0.0f)) return 0;
    double per = 2.2 / ((double)freq * (double)dt); /* 2.2 periods of samples */
    return 2 * (int)floor(per / 2.0) + 1;
}

ubd_status ubd_ricker(float *w, int n, float freq, float dt) {
    UBD_REQUIRE(freq > 0.0f && isfinite(freq), UBD_ERR_VALUE, "ricker: freq must be positive, got %g", freq);
    UBD_REQUIRE(dt > 0.0f && isfinite(dt), UBD_ERR_VALUE, "ricker: dt must be positive, got %g", dt);
    UBD_REQUIRE(n >= 0, UBD_ERR_VALUE, "ricker: n must be >= 0, got %d", n);
    if (n > 0) UBD_REQUIRE_PTR(w);
    int nw = ubd_ricker_length(freq, dt);
    for (int k = 0; k < n; k++) w[k] = ubd_ricker_sample(k, nw, freq, dt);
    return UBD_OK;
}

ubd_status ubd_fwd_check_params(const ubd_fwd_params *p, int H, int W) {
    UBD_REQUIRE_PTR(p);
    UBD_REQUIRE_POSITIVE(H);
    UBD_REQUIRE_POSITIVE(W);
    UBD_REQUIRE(p->dx > 0.0f && isfinite(p->dx), UBD_ERR_VALUE, "forward_model: dx must be positive, got %g", p->dx);
    UBD_REQUIRE(p->dt > 0.0f && isfinite(p->dt), UBD_ERR_VALUE, "forward_model: dt must be positive, got %g", p->dt);
    UBD_REQUIRE(p->freq > 0.0f && isfinite(p->freq), UBD_ERR_VALUE, "forward_model: freq must be positive, got %g",
                p->freq);
    UBD_REQUIRE(p->nt > 0, UBD_ERR_VALUE, "forward_model: nt must be positive, got %d", p->nt);
    UBD_REQUIRE(p->nbc >= 2, UBD_ERR_VALUE, "forward_model: nbc must be >= 2 (the stencil reaches 2 cells), got %d",
                p->nbc);
    UBD_REQUIRE(p->ns > 0, UBD_ERR_VALUE, "forward_model: need at least one source, got %d", p->ns);
    UBD_REQUIRE(p->nr > 0, UBD_ERR_VALUE, "forward_model: need at least one receiver, got %d", p->nr);
    UBD_REQUIRE(p->src_z && p->src_x && p->rec_z && p->rec_x, UBD_ERR_VALUE,
                "forward_model: source/receiver position arrays must not be NULL");
    /* the padded grid must stay addressable with int indices */
    UBD_REQUIRE((long long)(H + 2LL * p->nbc) * (W + 2LL * p->nbc + 4) < (1LL << 30), UBD_ERR_VALUE,
                "forward_model: padded grid %lld x %lld is too large", H + 2LL * p->nbc, W + 2LL * p->nbc);
    for (int s = 0; s < p->ns; s++)
        UBD_REQUIRE(p->src_z[s] >= 0 && p->src_z[s] < H && p->src_x[s] >= 0 && p->src_x[s] < W, UBD_ERR_VALUE,
                    "forward_model: source %d at (z=%d, x=%d) lies outside the %d x %d map", s, p->src_z[s],
                    p->src_x[s], H, W);
    for (int r = 0; r < p->nr; r++)
        UBD_REQUIRE(p->rec_z[r] >= 0 && p->rec_z[r] < H && p->rec_x[r] >= 0 && p->rec_x[r] < W, UBD_ERR_VALUE,
                    "forward_model: receiver %d at (z=%d, x=%d) lies outside the %d x %d map", r, p->rec_z[r],
                    p->rec_x[r], H, W);
    return UBD_OK;
}

ubd_status ubd_fwd_check_velocity(const float *vel, int N, int H, int W, float dt, float dx) {
    UBD_REQUIRE_PTR(vel);
    UBD_REQUIRE_POSITIVE(N);
    double vmax_ok = UBD_FWD_MAX_CFL * (double)dx / (double)dt; /* largest stable velocity */
    size_t hw = (size_t)H * W;
    for (int m = 0; m < N; m++) {
        const float *v = vel + (size_t)m * hw;
        size_t imax = 0;
        for (size_t i = 0; i < hw; i++) {
            UBD_REQUIRE(isfinite(v[i]) && v[i] > 0.0f, UBD_ERR_VALUE,
                        "forward_model: velocity map %d has a non-positive or non-finite value %g at (z=%zu, x=%zu)",
                        m, v[i], i / W, i % W);
            if (v[i] > v[imax]) imax = i;
        }
        double cfl = (double)v[imax] * dt / dx;
        UBD_REQUIRE(cfl <= UBD_FWD_MAX_CFL, UBD_ERR_VALUE,
                    "forward_model: velocity map %d is unstable: max velocity %g m/s at (z=%zu, x=%zu) gives "
                    "v*dt/dx = %.4f > sqrt(3/8) = %.4f (lower dt or raise dx; largest stable velocity %.1f m/s)",
                    m, v[imax], imax / W, imax % W, cfl, UBD_FWD_MAX_CFL, vmax_ok);
    }
    return UBD_OK;
}
