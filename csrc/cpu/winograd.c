/* winograd.c — the Winograd convolution driver (winograd.h): which shapes,
 * how a call is cut into chunks, the weight transforms and the GEMMs.
 *
 * work layout (floats): U (nxi, OC, C) | wslots x dU (nxi, OC, C) | slots x [V (nxi, C, Tc) | M (nxi, OC, Tc)].
 * A chunk is several whole samples (small maps) or a band of tile rows of one
 * sample (large maps), so that V + M stay under WINO_CAP floats while the GEMMs
 * keep Tc columns (hundreds to thousands); an item is a chunk's samples with all
 * their bands. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../blas.h"
#include "winograd.h"
#include "winograd_xform.h"

/* V + M of one chunk at most, in floats (1 MB): within a core's L2, so that the
 * GEMMs read the transforms from cache; but at least WINO_MIN_TILES tiles, so the
 * GEMMs stay wide for many-channel layers. Measured on paper layers, 1 thread
 * (Xeon, 2 MB L2): 2^16..2^18 best, 2^22 (V and M through memory) 10-30 % slower. */
#define WINO_CAP ((size_t)1 << 18)
#define WINO_MIN_TILES 256

/* Fewer channels than this: the GEMMs are matrix-vector products and the
 * transforms' traffic (nxi planes per channel) would outweigh the saved flops. */
#define WINO_MIN_CHANNELS 16
/* The 1-D forms ((1, 3), (3, 1): F(4, 3)) need this many channels in and out: at
 * 64 their backward lost to im2col (InversionNet's 64-channel (3, 1) layers,
 * batch 64, 1 thread: 0.88-0.98x backward, 1.14-1.31x forward); 128-channel
 * layers win both ways (1.2-1.7x). */
#define WINO_MIN_CHANNELS_1D 128
/* Fewer tiles than this in the whole call: the GEMMs are too narrow to win (conv1d
 * 512 -> 512, L = 16, batch 16: 64 tiles, 0.96x im2col backward at 1 thread). */
#define WINO_MIN_CALL_TILES 128
/* GEMM column blocks per transform matrix: at least this many columns each. */
#define WINO_BLOCK_COLS 256
#define WINO_MAX_BLOCKS 4
/* Below this many flops in a chunk's GEMMs, or elements in its transforms, one
 * thread does it (a 256-tile chunk of a 32-channel layer: 8 MFLOP, 131 K elements). */
#define WINO_PAR_FLOPS (1.0 * 1024 * 1024)
#define WINO_PAR_ELEMS 32768
/* Items (sample groups) run side by side, one per thread, each in its own slot
 * of scratch, when there are at least as many slots as threads: one parallel
 * region per call instead of three per chunk, and each chunk's V and M stay in
 * the cache of the core that uses them. At most WINO_SLOTS slots; weight-gradient
 * accumulators (nxi * OC * C floats each) within WINO_DU_BUDGET floats (8 MB). */
#define WINO_SLOTS 8
#define WINO_DU_BUDGET ((size_t)1 << 21)

/* ---- the algorithm setting ---------------------------------------------------------- */
static int conv_algo = UBD_CONV_AUTO;

__attribute__((constructor)) static void conv_algo_init(void) {
    const char *e = getenv("UBDIFF_CONV");
    conv_algo = e && !strcmp(e, "im2col") ? UBD_CONV_IM2COL : UBD_CONV_AUTO;
}

ubd_status ubd_conv_set_algo(int algo) {
    UBD_REQUIRE(algo == UBD_CONV_AUTO || algo == UBD_CONV_IM2COL, UBD_ERR_VALUE,
                "conv algorithm must be UBD_CONV_AUTO (0) or UBD_CONV_IM2COL (1), got %d", algo);
    conv_algo = algo;
    return UBD_OK;
}

int ubd_conv_get_algo(void) { return conv_algo; }

/* ---- plan ------------------------------------------------------------------------------ */
typedef struct {
    ubd_wino_tiles k; /* k.Tc: the largest chunk's columns */
    int g, band;      /* samples per chunk; tile rows per chunk */
    int items;        /* work items: groups of g samples, each with all its bands */
    int slots;        /* scratch slots (V, M), items run in slot (item % slots) */
    int wslots;       /* weight-gradient accumulators: backward runs item i in slot (i % wslots) */
} wino_plan;

static ubd_wino_axis make_axis(int r, int other_r, int P, int len) {
    ubd_wino_axis a;
    a.P = P, a.nin = len, a.nout = len + 2 * P - r + 1;
    if (r == 1) {
        a.kind = UBD_WINO_ID, a.m = 1, a.alpha = 1;
    } else if (other_r == 3) { /* 3x3: F(2, 3) on both axes keeps the transforms small and accurate */
        a.kind = UBD_WINO_F23, a.m = 2, a.alpha = 4;
    } else {
        a.kind = UBD_WINO_F43, a.m = 4, a.alpha = 6;
    }
    a.nt = (a.nout + a.m - 1) / a.m;
    return a;
}

static int make_plan(ubd_conv2d_shape s, wino_plan *p) {
    const int k33 = s.KH == 3 && s.KW == 3, k13 = s.KH == 1 && s.KW == 3, k31 = s.KH == 3 && s.KW == 1;
    if (!(k33 || k13 || k31) || s.SH != 1 || s.SW != 1) return 0;
    const int min_ch = k33 ? WINO_MIN_CHANNELS : WINO_MIN_CHANNELS_1D;
    if (s.C < min_ch || s.OC < min_ch) return 0;
    p->k.h = make_axis(s.KH, s.KW, s.PH, s.H);
    p->k.w = make_axis(s.KW, s.KH, s.PW, s.W);
    p->k.nxi = p->k.h.alpha * p->k.w.alpha;
    size_t cap = WINO_CAP / ((size_t)p->k.nxi * (s.C + s.OC)); /* tiles per chunk */
    if (cap < WINO_MIN_TILES) cap = WINO_MIN_TILES;
    const size_t TW = (size_t)p->k.w.nt, T = (size_t)p->k.h.nt * TW;
    if (TW > cap) return 0; /* one tile row would not fit */
    if (T * s.B < WINO_MIN_CALL_TILES) return 0;
    if (T <= cap) {
        p->g = (int)(cap / T < (size_t)s.B ? cap / T : (size_t)s.B);
        p->band = p->k.h.nt;
    } else {
        p->g = 1;
        p->band = (int)(cap / TW);
    }
    p->k.Tc = (size_t)p->g * p->band * TW;
    p->k.rows = 0;
    p->items = (s.B + p->g - 1) / p->g;
    p->slots = p->items < WINO_SLOTS ? p->items : WINO_SLOTS;
    const size_t du = (size_t)p->k.nxi * s.OC * s.C, by_budget = WINO_DU_BUDGET / du;
    p->wslots = by_budget < 1 ? 1 : by_budget < (size_t)p->slots ? (int)by_budget : p->slots;
    return 1;
}

/* V (nxi, C, Tc) and M (nxi, OC, Tc) of one slot */
static size_t scratch_floats(const wino_plan *p, ubd_conv2d_shape s) {
    return (size_t)p->k.nxi * (s.C + s.OC) * p->k.Tc;
}

int ubd_winograd_applies(ubd_conv2d_shape s) {
    wino_plan p;
    return conv_algo == UBD_CONV_AUTO && make_plan(s, &p);
}

size_t ubd_winograd_workspace(ubd_conv2d_shape s) {
    wino_plan p;
    if (!make_plan(s, &p)) return 0;
    const size_t nxi = (size_t)p.k.nxi;
    return nxi * s.OC * s.C * (1 + (size_t)p.wslots) + (size_t)p.slots * scratch_floats(&p, s);
}

/* ---- weights: U = G_h w G_w^T and its adjoint ---------------------------------------- */
/* Blocks of WB (oc, c) pairs, transposed on the stack so the passes run over WB lanes. */
#define WB 64

static void weight_transform(float *U, const float *w, ubd_conv2d_shape s, const ubd_wino_tiles *k) {
    const int Ah = k->h.alpha, Aw = k->w.alpha, KH = s.KH, KW = s.KW, KK = KH * KW;
    const long OCC = (long)s.OC * s.C;
#pragma omp parallel for schedule(static) if (OCC * k->nxi > 65536 && !omp_in_parallel())
    for (long o0 = 0; o0 < OCC; o0 += WB) {
        const int n = OCC - o0 < WB ? (int)(OCC - o0) : WB;
        float g[9][WB], th[6][3][WB]; /* g[(i, j)][p]; th[a][j][p] = sum_i G_h[a][i] g[(i, j)][p] */
        for (int p = 0; p < n; p++)
            for (int ij = 0; ij < KK; ij++) g[ij][p] = w[(o0 + p) * KK + ij];
        for (int a = 0; a < Ah; a++)
            for (int j = 0; j < KW; j++) {
                for (int p = 0; p < n; p++) th[a][j][p] = 0.0f;
                for (int i = 0; i < KH; i++) {
                    const float c = ubd_wino_g(k->h.kind, a, i);
                    if (c != 0.0f)
                        for (int p = 0; p < n; p++) th[a][j][p] += c * g[i * KW + j][p];
                }
            }
        for (int a = 0; a < Ah; a++)
            for (int b = 0; b < Aw; b++) {
                float *u = U + (size_t)(a * Aw + b) * OCC + o0;
                for (int p = 0; p < n; p++) u[p] = 0.0f;
                for (int j = 0; j < KW; j++) {
                    const float c = ubd_wino_g(k->w.kind, b, j);
                    if (c != 0.0f)
                        for (int p = 0; p < n; p++) u[p] += c * th[a][j][p];
                }
            }
    }
}

static void weight_adjoint(float *dw, const float *dU, ubd_conv2d_shape s, const ubd_wino_tiles *k) {
    const int Ah = k->h.alpha, Aw = k->w.alpha, KH = s.KH, KW = s.KW, KK = KH * KW;
    const long OCC = (long)s.OC * s.C;
#pragma omp parallel for schedule(static) if (OCC * k->nxi > 65536 && !omp_in_parallel())
    for (long o0 = 0; o0 < OCC; o0 += WB) {
        const int n = OCC - o0 < WB ? (int)(OCC - o0) : WB;
        float th[6][3][WB], g[9][WB]; /* th[a][j][p] = sum_b G_w[b][j] dU[(a, b)][p]; g = G_h^T th */
        for (int a = 0; a < Ah; a++)
            for (int j = 0; j < KW; j++) {
                for (int p = 0; p < n; p++) th[a][j][p] = 0.0f;
                for (int b = 0; b < Aw; b++) {
                    const float c = ubd_wino_g(k->w.kind, b, j);
                    const float *u = dU + (size_t)(a * Aw + b) * OCC + o0;
                    if (c != 0.0f)
                        for (int p = 0; p < n; p++) th[a][j][p] += c * u[p];
                }
            }
        for (int i = 0; i < KH; i++)
            for (int j = 0; j < KW; j++) {
                for (int p = 0; p < n; p++) g[i * KW + j][p] = 0.0f;
                for (int a = 0; a < Ah; a++) {
                    const float c = ubd_wino_g(k->h.kind, a, i);
                    if (c != 0.0f)
                        for (int p = 0; p < n; p++) g[i * KW + j][p] += c * th[a][j][p];
                }
            }
        for (int p = 0; p < n; p++)
            for (int ij = 0; ij < KK; ij++) dw[(o0 + p) * KK + ij] += g[ij][p];
    }
}

/* ---- the nxi GEMMs of a chunk -------------------------------------------------------- */
static int col_blocks(size_t cols) {
    size_t nb = cols / WINO_BLOCK_COLS;
    return nb < 1 ? 1 : nb > WINO_MAX_BLOCKS ? WINO_MAX_BLOCKS : (int)nb;
}

static int block_edge(int i, int nb, int len) {
    if (i >= nb) return len;
    return (int)((long)len * i / nb / 16 * 16);
}

/* For every xi: Y[xi] (R, Tc) = op(A[xi]) @ X[xi] (K, Tc), A[xi] (R, K) or (K, R) when tA.
 * Cut into column blocks by shape only, one single-threaded sgemm per job. */
static void gemms_cols(float *Y, const float *A, const float *X, int tA, int R, int K, int Tc, int nxi) {
    const int nb = col_blocks((size_t)Tc), jobs = nxi * nb;
    const size_t sY = (size_t)R * Tc, sA = (size_t)R * K, sX = (size_t)K * Tc;
    const double flops = 2.0 * R * K * Tc * nxi;
#pragma omp parallel for schedule(dynamic, 1) if (flops > WINO_PAR_FLOPS && !omp_in_parallel())
    for (int job = 0; job < jobs; job++) {
        const int xi = job / nb, blk = job % nb;
        const int lo = block_edge(blk, nb, Tc), hi = block_edge(blk + 1, nb, Tc);
        if (hi > lo)
            ubd_sgemm(tA, 0, R, hi - lo, K, 1.0f, A + xi * sA, tA ? R : K, X + xi * sX + lo, Tc, 0.0f,
                      Y + xi * sY + lo, Tc);
    }
}

/* dU[xi] (OC, C) += dM[xi] (OC, Tc) @ V[xi]^T: a sum over the chunk's tiles, one job per xi. */
static void gemms_weight(float *dU, const float *dM, const float *V, int OC, int C, int Tc, int nxi) {
    const double flops = 2.0 * OC * C * Tc * nxi;
#pragma omp parallel for schedule(dynamic, 1) if (flops > WINO_PAR_FLOPS && !omp_in_parallel())
    for (int xi = 0; xi < nxi; xi++)
        ubd_sgemm(0, 1, OC, C, Tc, 1.0f, dM + (size_t)xi * OC * Tc, Tc, V + (size_t)xi * C * Tc, Tc, 1.0f,
                  dU + (size_t)xi * OC * C, C);
}

/* ---- forward / backward ---------------------------------------------------------------- */
typedef struct {
    int b0, g, th0, th1; /* samples [b0, b0 + g), tile rows [th0, th1) */
} chunk;

/* Chunk of item `it` (samples [it g, it g + g)) starting at tile row th0. */
static chunk item_chunk(const wino_plan *p, ubd_conv2d_shape s, int it, int th0) {
    chunk c;
    c.b0 = it * p->g;
    c.g = s.B - c.b0 < p->g ? s.B - c.b0 : p->g;
    c.th0 = th0;
    c.th1 = th0 + p->band < p->k.h.nt ? th0 + p->band : p->k.h.nt;
    return c;
}

/* The chunk's transform matrices: `rows` rows (C for V, OC for M) of Tc tile columns. */
static ubd_wino_tiles chunk_tiles(const wino_plan *p, chunk c, int rows) {
    ubd_wino_tiles k = p->k;
    k.Tc = (size_t)c.g * (c.th1 - c.th0) * k.w.nt;
    k.rows = (size_t)rows;
    return k;
}

/* The four plane passes of a chunk, parallel over its (sample, channel) planes;
 * planes are disjoint and each is one call, so any thread count gives the same bits. */
enum { PASS_INPUT, PASS_INPUT_ADJ, PASS_OUTPUT, PASS_OUTPUT_ADJ };

static void planes(int pass, float *mat, float *img, const float *cimg, const float *bias, chunk c,
                   const ubd_wino_tiles *k, size_t plane) {
    const int nch = (int)k->rows;
    const size_t per = (size_t)(c.th1 - c.th0) * k->w.nt; /* tiles of one sample in the chunk */
#pragma omp parallel for collapse(2) schedule(static) if (k->Tc * k->nxi * nch > WINO_PAR_ELEMS && !omp_in_parallel())
    for (int si = 0; si < c.g; si++)
        for (int ch = 0; ch < nch; ch++) {
            const size_t off = ((size_t)(c.b0 + si) * nch + ch) * plane, t0 = si * per;
            switch (pass) {
            case PASS_INPUT: ubd_wino_input(mat, cimg + off, ch, t0, c.th0, c.th1, k); break;
            case PASS_INPUT_ADJ: ubd_wino_input_adjoint(img + off, mat, ch, t0, c.th0, c.th1, k); break;
            case PASS_OUTPUT:
                ubd_wino_output(img + off, mat, bias ? bias[ch] : 0.0f, ch, t0, c.th0, c.th1, k);
                break;
            default: ubd_wino_output_adjoint(mat, cimg + off, ch, t0, c.th0, c.th1, k); break;
            }
        }
}

/* ---- one chunk, run by one thread (slot mode) or with its passes parallel (chunk mode) ---- */
typedef struct {
    const wino_plan *p;
    ubd_conv2d_shape s;
    int OH, OW;
    const float *U; /* (nxi, OC, C) */
} run_ctx;

static void chunk_forward(const run_ctx *r, chunk c, float *V, float *M, float *out, const float *inp,
                          const float *bias) {
    const ubd_conv2d_shape s = r->s;
    const ubd_wino_tiles kv = chunk_tiles(r->p, c, s.C), km = chunk_tiles(r->p, c, s.OC);
    planes(PASS_INPUT, V, NULL, inp, NULL, c, &kv, (size_t)s.H * s.W);      /* V = B^T d B */
    gemms_cols(M, r->U, V, 0, s.OC, s.C, (int)kv.Tc, r->p->k.nxi);          /* M = U V */
    planes(PASS_OUTPUT, M, out, NULL, bias, c, &km, (size_t)r->OH * r->OW); /* y = A^T M A + bias */
}

static void chunk_backward(const run_ctx *r, chunk c, float *V, float *M, float *dU, float *dinp, const float *dout,
                           const float *inp) {
    const ubd_conv2d_shape s = r->s;
    const int nxi = r->p->k.nxi;
    const ubd_wino_tiles kv = chunk_tiles(r->p, c, s.C), km = chunk_tiles(r->p, c, s.OC);
    planes(PASS_OUTPUT_ADJ, M, NULL, dout, NULL, c, &km, (size_t)r->OH * r->OW); /* dM = A dY A^T */
    if (dU) {                                                                     /* dU += dM V^T */
        planes(PASS_INPUT, V, NULL, inp, NULL, c, &kv, (size_t)s.H * s.W);
        gemms_weight(dU, M, V, s.OC, s.C, (int)kv.Tc, nxi);
    }
    if (dinp) { /* dV = U^T dM (into V), then dx += B dV B^T */
        gemms_cols(V, r->U, M, 1, s.C, s.OC, (int)kv.Tc, nxi);
        planes(PASS_INPUT_ADJ, V, dinp, NULL, NULL, c, &kv, (size_t)s.H * s.W);
    }
}

/* Slot mode when every thread gets a slot of its own (see WINO_SLOTS). Either
 * mode gives the same bits: a chunk's arithmetic is the same, and item i's
 * weight gradient always goes to accumulator i % wslots, summed in slot order. */
static int slot_mode(int slots) {
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    return nt >= 2 && slots >= nt;
}

void ubd_winograd_forward(float *out, const float *inp, const float *weight, const float *bias, float *work,
                          ubd_conv2d_shape s, int OH, int OW) {
    wino_plan p;
    make_plan(s, &p); /* the caller checked ubd_winograd_applies */
    const size_t du = (size_t)p.k.nxi * s.OC * s.C, per = scratch_floats(&p, s);
    float *U = work, *scratch = work + du * (1 + (size_t)p.wslots);
    weight_transform(U, weight, s, &p.k);
    const run_ctx r = {&p, s, OH, OW, U};
    if (slot_mode(p.slots)) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int sl = 0; sl < p.slots; sl++) {
            float *V = scratch + sl * per, *M = V + (size_t)p.k.nxi * s.C * p.k.Tc;
            for (int it = sl; it < p.items; it += p.slots)
                for (int th0 = 0; th0 < p.k.h.nt; th0 += p.band)
                    chunk_forward(&r, item_chunk(&p, s, it, th0), V, M, out, inp, bias);
        }
        return;
    }
    float *V = scratch, *M = V + (size_t)p.k.nxi * s.C * p.k.Tc;
    for (int it = 0; it < p.items; it++)
        for (int th0 = 0; th0 < p.k.h.nt; th0 += p.band)
            chunk_forward(&r, item_chunk(&p, s, it, th0), V, M, out, inp, bias);
}

void ubd_winograd_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                           float *work, ubd_conv2d_shape s, int OH, int OW) {
    wino_plan p;
    make_plan(s, &p);
    const size_t du = (size_t)p.k.nxi * s.OC * s.C, per = scratch_floats(&p, s);
    float *U = work, *dUs = work + du, *scratch = dUs + du * p.wslots;
    if (dinp) weight_transform(U, weight, s, &p.k);
    if (dweight) memset(dUs, 0, du * p.wslots * sizeof(float));
    const run_ctx r = {&p, s, OH, OW, U};
    if (slot_mode(p.wslots)) { /* items of slot sl: it = sl (mod wslots), so the accumulator is the slot's */
#pragma omp parallel for schedule(dynamic, 1)
        for (int sl = 0; sl < p.wslots; sl++) {
            float *V = scratch + sl * per, *M = V + (size_t)p.k.nxi * s.C * p.k.Tc;
            for (int it = sl; it < p.items; it += p.wslots)
                for (int th0 = 0; th0 < p.k.h.nt; th0 += p.band)
                    chunk_backward(&r, item_chunk(&p, s, it, th0), V, M, dweight ? dUs + sl * du : NULL, dinp,
                                   dout, inp);
        }
    } else {
        float *V = scratch, *M = V + (size_t)p.k.nxi * s.C * p.k.Tc;
        for (int it = 0; it < p.items; it++)
            for (int th0 = 0; th0 < p.k.h.nt; th0 += p.band)
                chunk_backward(&r, item_chunk(&p, s, it, th0), V, M,
                               dweight ? dUs + (size_t)(it % p.wslots) * du : NULL, dinp, dout, inp);
    }
    if (!dweight) return;
    for (int sl = 1; sl < p.wslots; sl++) /* in slot order: the same sum at any thread count */
        for (size_t i = 0; i < du; i++) dUs[i] += dUs[sl * du + i];
    weight_adjoint(dweight, dUs, s, &p.k); /* dw += G_h^T dU G_w */
}
