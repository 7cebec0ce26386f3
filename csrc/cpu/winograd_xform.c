/* winograd_xform.c — the tile transforms of one plane (winograd_xform.h).
 *
 * Every transform is separable: a pass along h over whole rows (contiguous,
 * vectorises over w), then a pass along w tile by tile (stride-m loads or
 * stores of a stack buffer, contiguous rows of the transform matrices).
 *
 * Speed comes from compile-time matrices: each public function switches on the
 * pair of axis kinds and calls an always-inline body with the kinds as
 * constants, so the small loops unroll and the zero and +-1 entries of the
 * matrices fold away (without -ffast-math the compiler may not drop 0 * x itself,
 * hence the explicit `if (c != 0)` on constants). Each output element is produced
 * by one call in a fixed order: bits do not depend on how planes meet threads. */
#include "winograd_xform.h"

#include <string.h>

/* Lavin & Gray's F(2, 3) and F(4, 3) (interpolation points 0, +-1 and 0, +-1, +-2, infinity). */
static const float BT23[16] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const float G23[12] = {1, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f, -0.5f, 0.5f, 0, 0, 1};
static const float AT23[8] = {1, 1, 1, 0, 0, 1, -1, -1};
static const float BT43[36] = {4, 0, -5, 0, 1, 0, 0, -4, -4, 1,  1, 0, 0, 4, -4, -1, 1, 0,
                               0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0,  -5, 0, 1};
static const float G43[18] = {1.0f / 4,  0,         0,        -1.0f / 6, -1.0f / 6, -1.0f / 6,
                              -1.0f / 6, 1.0f / 6,  -1.0f / 6, 1.0f / 24, 1.0f / 12, 1.0f / 6,
                              1.0f / 24, -1.0f / 12, 1.0f / 6, 0,         0,         1};
static const float AT43[24] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};

#define INL static inline __attribute__((always_inline))
#define SEG UBD_WINO_SEG
#define MAXA 6                /* largest alpha (F(4, 3)) */
#define MAXQ (SEG * 4 + MAXA) /* input columns of SEG tiles: (SEG - 1) * m + alpha */

INL int kalpha(int kd) { return kd == UBD_WINO_ID ? 1 : kd == UBD_WINO_F23 ? 4 : 6; }
INL int km(int kd) { return kd == UBD_WINO_ID ? 1 : kd == UBD_WINO_F23 ? 2 : 4; }
/* BT[i][j] (alpha, alpha), AT[i][j] (m, alpha), G[i][j] (alpha, r) of a kind */
INL float kBT(int kd, int i, int j) { return kd == UBD_WINO_ID ? 1.0f : kd == UBD_WINO_F23 ? BT23[i * 4 + j] : BT43[i * 6 + j]; }
INL float kAT(int kd, int i, int j) { return kd == UBD_WINO_ID ? 1.0f : kd == UBD_WINO_F23 ? AT23[i * 4 + j] : AT43[i * 6 + j]; }

float ubd_wino_g(int kind, int i, int j) {
    return kind == UBD_WINO_ID ? 1.0f : kind == UBD_WINO_F23 ? G23[i * 3 + j] : G43[i * 3 + j];
}

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static inline size_t xoff(const ubd_wino_tiles *k, int xi, int ch, size_t t) {
    return ((size_t)xi * k->rows + ch) * k->Tc + t;
}

/* rows[i][0, len) = x row (th * m_h - P_h + i), columns col0 .., zero outside the plane. */
INL void gather_rows(float rows[MAXA][MAXQ], const float *x, int th, int col0, int len, const ubd_wino_tiles *k,
                     int KH) {
    const ubd_wino_axis *ah = &k->h, *aw = &k->w;
    const int qlo = imax(0, -col0), qhi = imin(len, aw->nin - col0);
    for (int i = 0; i < kalpha(KH); i++) {
        const int ih = th * km(KH) - ah->P + i;
        if (ih < 0 || ih >= ah->nin || qhi <= qlo) {
            memset(rows[i], 0, (size_t)len * sizeof(float));
            continue;
        }
        memset(rows[i], 0, (size_t)qlo * sizeof(float));
        memcpy(rows[i] + qlo, x + (size_t)ih * aw->nin + col0 + qlo, (size_t)(qhi - qlo) * sizeof(float));
        if (len > qhi) memset(rows[i] + qhi, 0, (size_t)(len - qhi) * sizeof(float));
    }
}

/* Phases: ph[r][j] = v[m * j + r]. The tiles of an axis overlap (alpha > m), so
 * tile j's inputs m j + kk are ph[kk % m][j + kk / m]: contiguous in j, which lets
 * the tile-by-tile passes vectorise (stride-m accesses with overlap do not). */
INL void input_body(float *V, const float *x, int ch, size_t t0, int th0, int th1, const ubd_wino_tiles *k, int KH,
                    int KW) {
    const int AH = kalpha(KH), AW = kalpha(KW), MW = km(KW);
    float rows[MAXA][MAXQ], vb[MAXA][MAXQ], ph[4][SEG + 1];
    size_t t = t0;
    for (int th = th0; th < th1; th++) {
        for (int tw0 = 0; tw0 < k->w.nt; tw0 += SEG) {
            const int nseg = imin(SEG, k->w.nt - tw0), len = (nseg + 1) * MW; /* >= (nseg - 1) m + alpha */
            gather_rows(rows, x, th, tw0 * MW - k->w.P, len, k, KH);
            for (int q = 0; q < len; q++) /* vb = BT_h rows */
                for (int a = 0; a < AH; a++) {
                    float acc = 0.0f;
                    for (int i = 0; i < AH; i++)
                        if (kBT(KH, a, i) != 0.0f) acc += kBT(KH, a, i) * rows[i][q];
                    vb[a][q] = acc;
                }
            for (int a = 0; a < AH; a++) { /* V[a][b] = vb[a] BT_w^T, tile by tile */
                for (int j = 0; j <= nseg; j++)
                    for (int r = 0; r < MW; r++) ph[r][j] = vb[a][j * MW + r];
                for (int b = 0; b < AW; b++) {
                    float *dst = V + xoff(k, a * AW + b, ch, t);
                    for (int j = 0; j < nseg; j++) {
                        float acc = 0.0f;
                        for (int kk = 0; kk < AW; kk++)
                            if (kBT(KW, b, kk) != 0.0f) acc += kBT(KW, b, kk) * ph[kk % MW][j + kk / MW];
                        dst[j] = acc;
                    }
                }
            }
            t += nseg;
        }
    }
}

INL void input_adjoint_body(float *dx, const float *dV, int ch, size_t t0, int th0, int th1, const ubd_wino_tiles *k,
                            int KH, int KW) {
    const ubd_wino_axis *ah = &k->h, *aw = &k->w;
    const int AH = kalpha(KH), AW = kalpha(KW), MH = km(KH), MW = km(KW);
    /* e[kk][1 + j] = (BT_w^T dV[a])[kk] of tile j, zero at j = -1 and j = nseg */
    float vb[MAXA][MAXQ], e[MAXA][SEG + 2];
    size_t t = t0;
    for (int th = th0; th < th1; th++) {
        for (int tw0 = 0; tw0 < aw->nt; tw0 += SEG) {
            const int nseg = imin(SEG, aw->nt - tw0), len = (nseg - 1) * MW + AW;
            const int col0 = tw0 * MW - aw->P;
            const int qlo = imax(0, -col0), qhi = imin(len, aw->nin - col0);
            for (int a = 0; a < AH; a++) {
                const float *src[MAXA];
                for (int b = 0; b < AW; b++) src[b] = dV + xoff(k, a * AW + b, ch, t);
                for (int kk = 0; kk < AW; kk++) {
                    float *ek = e[kk] + 1;
                    ek[-1] = 0.0f, ek[nseg] = 0.0f;
                    for (int j = 0; j < nseg; j++) {
                        float acc = 0.0f;
                        for (int b = 0; b < AW; b++)
                            if (kBT(KW, b, kk) != 0.0f) acc += kBT(KW, b, kk) * src[b][j];
                        ek[j] = acc;
                    }
                }
                /* overlapping tiles (alpha <= 2 m): position m j + r gets column r of tile j and
                 * column r + m of tile j - 1 */
                for (int j = 0; j <= nseg; j++)
                    for (int r = 0; r < MW; r++)
                        vb[a][j * MW + r] = r + MW < AW ? e[r][1 + j] + e[r + MW][j] : e[r][1 + j];
            }
            for (int i = 0; i < AH; i++) {
                const int ih = th * MH - ah->P + i;
                if (ih < 0 || ih >= ah->nin) continue; /* padding: no input to receive it */
                float *row = dx + (size_t)ih * aw->nin;
                for (int q = qlo; q < qhi; q++) {
                    float acc = 0.0f;
                    for (int a = 0; a < AH; a++)
                        if (kBT(KH, a, i) != 0.0f) acc += kBT(KH, a, i) * vb[a][q];
                    row[col0 + q] += acc;
                }
            }
            t += nseg;
        }
    }
}

INL void output_body(float *y, const float *M, float bias, int ch, size_t t0, int th0, int th1,
                     const ubd_wino_tiles *k, int KH, int KW) {
    const ubd_wino_axis *ah = &k->h, *aw = &k->w;
    const int AH = kalpha(KH), AW = kalpha(KW), MH = km(KH), MW = km(KW);
    float hb[MAXA][SEG * 4];
    size_t t = t0;
    for (int th = th0; th < th1; th++) {
        for (int tw0 = 0; tw0 < aw->nt; tw0 += SEG) {
            const int nseg = imin(SEG, aw->nt - tw0), len = nseg * MW;
            for (int a = 0; a < AH; a++) { /* hb[a] = M[a] AT_w^T, tile by tile */
                const float *src[MAXA];
                for (int b = 0; b < AW; b++) src[b] = M + xoff(k, a * AW + b, ch, t);
                for (int j = 0; j < nseg; j++)
                    for (int jj = 0; jj < MW; jj++) {
                        float acc = 0.0f;
                        for (int b = 0; b < AW; b++)
                            if (kAT(KW, jj, b) != 0.0f) acc += kAT(KW, jj, b) * src[b][j];
                        hb[a][j * MW + jj] = acc;
                    }
            }
            const int ow0 = tw0 * MW, n = imin(len, aw->nout - ow0);
            for (int ii = 0; ii < MH; ii++) { /* y rows = AT_h hb + bias */
                const int oh = th * MH + ii;
                if (oh >= ah->nout) break; /* the last tile row may hang over the edge */
                float *row = y + (size_t)oh * aw->nout + ow0;
                for (int q = 0; q < n; q++) {
                    float acc = 0.0f;
                    for (int a = 0; a < AH; a++)
                        if (kAT(KH, ii, a) != 0.0f) acc += kAT(KH, ii, a) * hb[a][q];
                    row[q] = acc + bias;
                }
            }
            t += nseg;
        }
    }
}

INL void output_adjoint_body(float *dM, const float *dy, int ch, size_t t0, int th0, int th1,
                             const ubd_wino_tiles *k, int KH, int KW) {
    const ubd_wino_axis *ah = &k->h, *aw = &k->w;
    const int AH = kalpha(KH), AW = kalpha(KW), MH = km(KH), MW = km(KW);
    float rows[MAXA][SEG * 4], hb[MAXA][SEG * 4];
    size_t t = t0;
    for (int th = th0; th < th1; th++) {
        for (int tw0 = 0; tw0 < aw->nt; tw0 += SEG) {
            const int nseg = imin(SEG, aw->nt - tw0), len = nseg * MW;
            const int ow0 = tw0 * MW, n = imin(len, aw->nout - ow0);
            for (int ii = 0; ii < MH; ii++) { /* dy rows, zero beyond the plane */
                const int oh = th * MH + ii;
                if (oh >= ah->nout) {
                    memset(rows[ii], 0, (size_t)len * sizeof(float));
                    continue;
                }
                memcpy(rows[ii], dy + (size_t)oh * aw->nout + ow0, (size_t)n * sizeof(float));
                if (len > n) memset(rows[ii] + n, 0, (size_t)(len - n) * sizeof(float));
            }
            for (int q = 0; q < len; q++) /* hb = A_h dy */
                for (int a = 0; a < AH; a++) {
                    float acc = 0.0f;
                    for (int ii = 0; ii < MH; ii++)
                        if (kAT(KH, ii, a) != 0.0f) acc += kAT(KH, ii, a) * rows[ii][q];
                    hb[a][q] = acc;
                }
            for (int a = 0; a < AH; a++) { /* dM[a][b] = hb[a] A_w, tile by tile */
                float *dst[MAXA];
                for (int b = 0; b < AW; b++) dst[b] = dM + xoff(k, a * AW + b, ch, t);
                for (int j = 0; j < nseg; j++) {
                    const float *e = hb[a] + j * MW;
                    for (int b = 0; b < AW; b++) {
                        float acc = 0.0f;
                        for (int jj = 0; jj < MW; jj++)
                            if (kAT(KW, jj, b) != 0.0f) acc += kAT(KW, jj, b) * e[jj];
                        dst[b][j] = acc;
                    }
                }
            }
            t += nseg;
        }
    }
}

/* The three kind pairs winograd.c plans: (F23, F23), (F43, ID), (ID, F43). */
#define DISPATCH(body, ...)                                                                    \
    do {                                                                                       \
        if (k->h.kind == UBD_WINO_F23)                                                         \
            body(__VA_ARGS__, UBD_WINO_F23, UBD_WINO_F23);                                     \
        else if (k->h.kind == UBD_WINO_F43)                                                    \
            body(__VA_ARGS__, UBD_WINO_F43, UBD_WINO_ID);                                      \
        else                                                                                   \
            body(__VA_ARGS__, UBD_WINO_ID, UBD_WINO_F43);                                      \
    } while (0)

void ubd_wino_input(float *V, const float *x, int ch, size_t t0, int th0, int th1, const ubd_wino_tiles *k) {
    DISPATCH(input_body, V, x, ch, t0, th0, th1, k);
}

void ubd_wino_input_adjoint(float *dx, const float *dV, int ch, size_t t0, int th0, int th1,
                            const ubd_wino_tiles *k) {
    DISPATCH(input_adjoint_body, dx, dV, ch, t0, th0, th1, k);
}

void ubd_wino_output(float *y, const float *M, float bias, int ch, size_t t0, int th0, int th1,
                     const ubd_wino_tiles *k) {
    DISPATCH(output_body, y, M, bias, ch, t0, th0, th1, k);
}

void ubd_wino_output_adjoint(float *dM, const float *dy, int ch, size_t t0, int th0, int th1,
                             const ubd_wino_tiles *k) {
    DISPATCH(output_adjoint_body, dM, dy, ch, t0, th0, th1, k);
}
