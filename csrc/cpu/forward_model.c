/* forward_model.c — CPU acoustic forward modelling (physics.h,
 * shared/specs/forward_modeling.md).
 *
 * One (map, shot) simulation per OpenMP thread at a time, each one sequential,
 * so the output does not depend on the thread count. Per simulation the state
 * is two pressure fields (the new field overwrites p(n-1) in place, then the
 * pointers swap) plus per-map coefficients small enough to stay in L2:
 *  - alpha = (v dt/dx)^2 only for the H interior rows, padded along x
 *    (rows of the top/bottom padding repeat the first/last interior row);
 *  - kappa = kx[x] + mx[x] kz[z]: the x profile in the left/right strips
 *    (corners included), the z profile elsewhere (mx = 1 on interior columns).
 *    One of the two terms is always exactly zero, so this is exact.
 * The periodic wrap of the padded grid is handled with two ghost rows and two
 * ghost columns on each side, refreshed before every step, so the inner x
 * loop is branch-free and vectorises. Rows start on 64-byte boundaries
 * (measured: +25% over rows offset by the two ghost cells).
 * Tried and dropped: updating two rows per pass to share vertical loads (no
 * gain measured).
 */
#include <omp.h>
#include <string.h>
#if defined(__SSE3__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include "physics.h"
#include "physics_math.h"

#define GHOST 2
#define ALIGN_F 16 /* floats: 64-byte rows */
#define LEAD ALIGN_F /* floats before column 0 of a row: column 0 is 64-byte aligned, ghosts just before it */

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Geometry of one simulation's buffers. */
typedef struct {
    int H, W, NZ, NX, nbc;
    int S;          /* row stride of a field, >= LEAD + NX + GHOST, a multiple of 16 */
    int SA;         /* row stride of the alpha rows */
    size_t field;   /* floats of one field incl. ghost rows */
    size_t alpha;   /* floats of the alpha rows (H, NX) */
    size_t slot;    /* floats of one slot */
} geom;

static geom make_geom(int H, int W, int nbc) {
    geom g;
    g.H = H;
    g.W = W;
    g.nbc = nbc;
    g.NZ = H + 2 * nbc;
    g.NX = W + 2 * nbc;
    g.S = (int)round_up((size_t)LEAD + g.NX + GHOST, ALIGN_F);
    g.SA = (int)round_up((size_t)g.NX, ALIGN_F);
    g.field = (size_t)(g.NZ + 2 * GHOST) * g.S;
    g.alpha = (size_t)H * g.SA;
    /* two fields, alpha rows, kx, mx, kz */
    g.slot = 2 * g.field + g.alpha + 2 * round_up(g.NX, ALIGN_F) + round_up(g.NZ, ALIGN_F);
    return g;
}

size_t ubd_cpu_forward_model_workspace(int H, int W, const ubd_fwd_params *p, int slots) {
    if (!p || H <= 0 || W <= 0 || p->nbc < 0 || p->nt <= 0 || slots <= 0) return 0;
    geom g = make_geom(H, W, p->nbc);
    /* + ALIGN_F: room to align the start to 64 bytes */
    return ALIGN_F + round_up((size_t)p->nt, ALIGN_F) + (size_t)slots * g.slot;
}

/* Per-map coefficients of one slot. vel (H, W); alpha (H, NX); kx, mx (NX); kz (NZ). */
static void build_coefs(float *alpha, float *kx, float *mx, float *kz, const float *vel, const geom *g,
                        const ubd_fwd_params *p) {
    float vmin = vel[0];
    for (size_t i = 1; i < (size_t)g->H * g->W; i++) vmin = vel[i] < vmin ? vel[i] : vmin;
    for (int z = 0; z < g->H; z++)
        for (int x = 0; x < g->NX; x++)
            alpha[(size_t)z * g->SA + x] =
                ubd_fwd_alpha(vel[(size_t)z * g->W + ubd_fwd_clamp(x, g->W, g->nbc)], p->dt, p->dx);
    for (int x = 0; x < g->NX; x++) {
        int i = ubd_fwd_strip(x, g->W, g->nbc);
        kx[x] = i < 0 ? 0.0f : ubd_fwd_kappa(i, vmin, p->dx, p->dt, g->nbc);
        mx[x] = i < 0 ? 1.0f : 0.0f;
    }
    for (int z = 0; z < g->NZ; z++) {
        int i = ubd_fwd_strip(z, g->H, g->nbc);
        kz[z] = i < 0 ? 0.0f : ubd_fwd_kappa(i, vmin, p->dx, p->dt, g->nbc);
    }
}

/* Periodic ghosts of field f (origin = padded cell (0, 0)). Only the cross of
 * the stencil is read, so corners need no ghosts. */
static void fill_ghosts(float *f, const geom *g) {
    const int S = g->S, NZ = g->NZ, NX = g->NX;
    size_t row = (size_t)NX * sizeof(float);
    for (int k = 1; k <= GHOST; k++) {
        memcpy(f - (ptrdiff_t)k * S, f + (ptrdiff_t)(NZ - k) * S, row); /* above row 0: rows NZ-1, NZ-2 */
        memcpy(f + (ptrdiff_t)(NZ - 1 + k) * S, f + (ptrdiff_t)(k - 1) * S, row); /* below NZ-1: rows 0, 1 */
    }
    for (int z = 0; z < NZ; z++) {
        float *r = f + (ptrdiff_t)z * S;
        r[-2] = r[NX - 2];
        r[-1] = r[NX - 1];
        r[NX] = r[0];
        r[NX + 1] = r[1];
    }
}

/* One time step for padded row z: o = new field (holds p(n-1) on entry),
 * c = p(n) with valid ghosts. The rows above/below are separate pointers and
 * x is 64-bit: Python's build flags include -fwrapv, under which int index
 * arithmetic like c[x - S] can wrap, and GCC then falls back to gathers. */
static void step_row(float *restrict o, const float *restrict c, const float *restrict al,
                     const float *restrict kx, const float *restrict mx, float kz, ptrdiff_t NX, ptrdiff_t S) {
    const float *restrict u1 = c - S, *restrict u2 = c - 2 * S;
    const float *restrict d1 = c + S, *restrict d2 = c + 2 * S;
    for (ptrdiff_t x = 0; x < NX; x++) {
        float kap = kx[x] + mx[x] * kz;
        float a = al[x];
        float s1 = (c[x - 1] + c[x + 1]) + (u1[x] + d1[x]);
        float s2 = (c[x - 2] + c[x + 2]) + (u2[x] + d2[x]);
        float lap = UBD_FD_C1 * s1 + UBD_FD_C2 * s2;
        o[x] = (2.0f - 5.0f * a - kap) * c[x] - (1.0f - kap) * o[x] + a * lap;
    }
}

/* One (map, shot) simulation. seis (nt, nr); vel (H, W); w (nt). */
static void simulate(float *seis, const float *vel, const float *w, int shot, const ubd_fwd_params *p, const geom *g,
                     float *slot, int coefs_ready) {
    float *f0 = slot, *f1 = slot + g->field;
    float *alpha = slot + 2 * g->field;
    float *kx = alpha + g->alpha;
    float *mx = kx + round_up(g->NX, ALIGN_F);
    float *kz = mx + round_up(g->NX, ALIGN_F);
    if (!coefs_ready) build_coefs(alpha, kx, mx, kz, vel, g, p);
    memset(f0, 0, 2 * g->field * sizeof(float));
    const int S = g->S, NX = g->NX, NZ = g->NZ, nbc = g->nbc;
    const ptrdiff_t origin = (ptrdiff_t)GHOST * S + LEAD; /* padded cell (0, 0), 64-byte aligned */
    float *prev = f0 + origin, *cur = f1 + origin;         /* p(n-1), p(n) */

    const int sz = p->src_z[shot] + nbc, sx = p->src_x[shot] + nbc;
    const float vs = vel[(size_t)p->src_z[shot] * g->W + p->src_x[shot]];
    const float amp = (float)((double)vs * vs * (double)p->dt * (double)p->dt);
    const ptrdiff_t src = (ptrdiff_t)sz * S + sx;

    for (int n = 0; n < p->nt; n++) {
        fill_ghosts(cur, g);
        for (int z = 0; z < NZ; z++) {
            const float *al = alpha + (size_t)ubd_fwd_clamp(z, g->H, nbc) * g->SA;
            step_row(prev + (ptrdiff_t)z * S, cur + (ptrdiff_t)z * S, al, kx, mx, kz[z], NX, S);
        }
        prev[src] += amp * w[n]; /* inject into p(n+1) */
        float *trace = seis + (size_t)n * p->nr;
        for (int r = 0; r < p->nr; r++)
            trace[r] = prev[(ptrdiff_t)(p->rec_z[r] + nbc) * S + p->rec_x[r] + nbc];
        float *t = prev; /* rotate: p(n+1) becomes current */
        prev = cur;
        cur = t;
    }
}

ubd_status ubd_cpu_forward_model(float *seis, const float *vel, int N, int H, int W, const ubd_fwd_params *p,
                                 float *work, size_t work_floats) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_TRY(ubd_fwd_check_params(p, H, W));
    UBD_REQUIRE_PTR(seis);
    UBD_REQUIRE_PTR(work);
    UBD_TRY(ubd_fwd_check_velocity(vel, N, H, W, p));
    geom g = make_geom(H, W, p->nbc);
    /* 64-byte aligned start, so that every row of every slot is aligned */
    size_t lead = (size_t)((64 - (uintptr_t)work % 64) % 64);
    UBD_REQUIRE(lead % sizeof(float) == 0, UBD_ERR_VALUE, "forward_model: work must be float-aligned");
    lead /= sizeof(float);
    size_t head = lead + round_up((size_t)p->nt, ALIGN_F);
    UBD_REQUIRE(work_floats >= head + g.slot, UBD_ERR_VALUE,
                "forward_model: workspace of %zu floats is too small, need at least %zu", work_floats,
                head + g.slot);
    long long tasks = (long long)N * p->ns;
    int threads = omp_get_max_threads();
    long long slots = (long long)((work_floats - head) / g.slot);
    if (slots > threads) slots = threads;
    if (slots > tasks) slots = tasks;

    float *w = work + lead;
    UBD_TRY(ubd_ricker(w, p->nt, p->freq, p->dt));
    size_t trace_floats = (size_t)p->nt * p->nr;

#pragma omp parallel num_threads((int)slots)
    {
        float *slot = work + head + (size_t)omp_get_thread_num() * g.slot;
#if defined(__SSE3__)
        /* Ahead of the wave the stencil leaves values that decay through the
         * subnormal range, which are slow on many x86 cores; flushing them
         * changes results only below 1.2e-38. Restored after the loop. */
        unsigned csr = _mm_getcsr();
        _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
        _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
        long long map_in_slot = -1; /* coefficients are reused across shots of one map */
#pragma omp for schedule(dynamic, 1)
        for (long long t = 0; t < tasks; t++) {
            long long m = t / p->ns;
            int s = (int)(t % p->ns);
            simulate(seis + (size_t)t * trace_floats, vel + (size_t)m * H * W, w, s, p, &g, slot,
                     m == map_in_slot);
            map_in_slot = m;
        }
#if defined(__SSE3__)
        _mm_setcsr(csr);
#endif
    }
    return UBD_OK;
}

ubd_status ubd_cpu_forward_model_work(size_t *floats, int N, int H, int W, const ubd_fwd_params *p) {
    UBD_REQUIRE_PTR(floats);
    UBD_REQUIRE_PTR(p);
    UBD_REQUIRE_POSITIVE(N);
    UBD_TRY(ubd_fwd_check_params(p, H, W));
    /* one slot per thread, no more slots than simulations */
    long long slots = ubd_get_num_threads();
    if (slots > (long long)N * p->ns) slots = (long long)N * p->ns;
    *floats = ubd_cpu_forward_model_workspace(H, W, p, (int)slots);
    return UBD_OK;
}
