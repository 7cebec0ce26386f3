/* physics.c — backend-independent parts of forward modelling: the Ricker
 * wavelet, the checks of parameters and velocity maps, and the one run
 * function that stages a batch onto any backend (physics.h). */
#include <math.h>

#include "arena.h"
#include "physics.h"
#include "physics_math.h"

int ubd_ricker_length(float freq, float dt) {
    if (!(freq > 0.0f) || !(dt > 0.0f)) return 0;
    double per = 2.2 / ((double)freq * (double)dt); /* 2.2 periods of samples */
    /* freq and dt arrive as float32: 25 Hz x 2 ms gives 43.999998 instead of
     * 44, so allow a relative 1e-6 before flooring. */
    return 2 * (int)floor(per / 2.0 * (1.0 + 1e-6)) + 1;
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

ubd_status ubd_fwd_check_stats(int map, float vmin, float vmax, float emax, const ubd_fwd_params *p) {
    const double r = (double)p->dt / (double)p->dx;
    double cfl = (double)vmax * r;
    UBD_REQUIRE(cfl <= UBD_FWD_MAX_CFL, UBD_ERR_VALUE,
                "forward_model: velocity map %d is unstable: max velocity %g m/s gives v*dt/dx = %.4f > "
                "sqrt(3/8) = %.4f (lower dt or raise dx; largest stable velocity %.1f m/s)",
                map, vmax, cfl, UBD_FWD_MAX_CFL, UBD_FWD_MAX_CFL / r);
    float kmax = ubd_fwd_kappa(p->nbc - 1, vmin, p->dx, p->dt, p->nbc);
    double lim = ubd_fwd_cfl_limit(kmax);
    UBD_REQUIRE((double)emax * r <= lim, UBD_ERR_VALUE,
                "forward_model: velocity map %d is unstable in the absorbing padding: border velocity %g m/s "
                "gives v*dt/dx = %.4f, but with the damping at the outer edge (kappa = %.4f, nbc = %d) the limit "
                "is sqrt(3/8 - 3 kappa/16) = %.4f (lower dt, or raise nbc)",
                map, emax, (double)emax * r, kmax, p->nbc, lim);
    return UBD_OK;
}

ubd_status ubd_fwd_check_velocity(const float *vel, int N, int H, int W, const ubd_fwd_params *p) {
    UBD_REQUIRE_PTR(vel);
    UBD_REQUIRE_PTR(p);
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(H);
    UBD_REQUIRE_POSITIVE(W);
    size_t hw = (size_t)H * W;
    for (int m = 0; m < N; m++) {
        const float *v = vel + (size_t)m * hw;
        float vmin = v[0], vmax = v[0], emax = v[0];
        for (size_t i = 0; i < hw; i++) {
            size_t z = i / W, x = i % W;
            UBD_REQUIRE(isfinite(v[i]) && v[i] > 0.0f, UBD_ERR_VALUE,
                        "forward_model: velocity map %d has a non-positive or non-finite value %g at (z=%zu, x=%zu)",
                        m, v[i], z, x);
            vmin = v[i] < vmin ? v[i] : vmin;
            vmax = v[i] > vmax ? v[i] : vmax;
            if ((z == 0 || z == (size_t)H - 1 || x == 0 || x == (size_t)W - 1) && v[i] > emax) emax = v[i];
        }
        UBD_TRY(ubd_fwd_check_stats(m, vmin, vmax, emax, p));
    }
    return UBD_OK;
}

/* The work of one run: the backend's workspace, plus staging for the maps
 * and the records where the backend's memory is not host memory. */
static void run_layout(ubd_arena *a, float **work, float **vel_in, float **seis_out, size_t nw, size_t nvel,
                       size_t nseis) {
    ubd_arena_take(a, work, nw, "forward modelling workspace");
    ubd_arena_stage(a, vel_in, nvel, "velocity staging");
    ubd_arena_stage(a, seis_out, nseis, "record staging");
}

ubd_status ubd_forward_model_run(const ubd_backend *be, float *seis, const float *vel, int N, int H, int W,
                                 const ubd_fwd_params *p) {
    if (!be) be = ubd_backend_cpu();
    UBD_REQUIRE_PTR(seis);
    UBD_REQUIRE_PTR(vel);
    UBD_REQUIRE_POSITIVE(N);
    UBD_TRY(ubd_fwd_check_params(p, H, W));
    const size_t nvel = (size_t)N * H * W, nseis = (size_t)N * p->ns * p->nt * p->nr;
    size_t nw = 0;
    UBD_TRY(be->forward_model_work(&nw, N, H, W, p));
    float *work = NULL, *vel_in = NULL, *seis_out = NULL;
    ubd_arena a;
    ubd_arena_begin(&a, be);
    run_layout(&a, &work, &vel_in, &seis_out, nw, nvel, nseis);
    UBD_TRY(ubd_arena_commit(&a, "forward modelling"));
    run_layout(&a, &work, &vel_in, &seis_out, nw, nvel, nseis);
    ubd_status s = ubd_arena_end(&a);
    const float *dv = NULL;
    float *ds = ubd_stage_out(be, seis_out, seis);
    if (s == UBD_OK) s = ubd_stage_in(be, &dv, vel_in, vel, nvel);
    if (s == UBD_OK) s = be->forward_model(ds, dv, N, H, W, p, work, nw);
    if (s == UBD_OK) s = be->copy(seis, ds, nseis * sizeof(float), UBD_D2H); /* on the CPU: the same address */
    ubd_arena_release(&a);
    return s;
}
