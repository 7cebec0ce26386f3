/* winograd_xform.h — the per-axis Winograd matrices and the four tile
 * transforms of one (sample, channel) plane (winograd.c holds the driver).
 *
 * A plane's tiles are numbered (tile row, tile column) row-major; a chunk holds
 * tile rows [th0, th1) and its tile t of the plane sits at column t0 + (th -
 * th0) * TW + tw of every transform matrix (row `ch` of matrix xi, row length Tc).
 * Tile rows are processed SEG tiles at a time so the scratch fits on the stack. */
#ifndef UBD_CPU_WINOGRAD_XFORM_H
#define UBD_CPU_WINOGRAD_XFORM_H

#include <stddef.h>

/* Kinds of axis: a 1-tap kernel (identity, m = alpha = 1), F(2, 3) (m 2, alpha 4), F(4, 3) (m 4, alpha 6). */
enum { UBD_WINO_ID = 0, UBD_WINO_F23 = 1, UBD_WINO_F43 = 2 };

typedef struct {
    int kind, m, alpha;    /* UBD_WINO_*, outputs per tile, inputs per tile (m + taps - 1) */
    int P, nin, nout, nt;  /* padding, input length, output length, tiles (ceil(nout / m)) */
} ubd_wino_axis;

/* G[i][j] of a kind, (alpha, r): the weight transform U = G g (BT: V = BT d, AT: y = AT M, in the .c). */
float ubd_wino_g(int kind, int i, int j);

/* The tiles of a (H, W) plane: rows along h, columns along w; the kinds are
 * (F23, F23), (F43, ID) or (ID, F43). */
typedef struct {
    ubd_wino_axis h, w;
    int nxi;      /* alpha_h * alpha_w transform matrices */
    size_t Tc;    /* columns of each transform matrix (tiles of one chunk) */
    size_t rows;  /* rows of each transform matrix (C for V, OC for M) */
} ubd_wino_tiles;

enum { UBD_WINO_SEG = 64 }; /* tiles of one tile row handled at once */

/* V[xi][ch][t0 + ...] = BT_h d BT_w^T for the tiles of rows [th0, th1) of plane x (nin_h, nin_w). */
void ubd_wino_input(float *V, const float *x, int ch, size_t t0, int th0, int th1, const ubd_wino_tiles *k);
/* Adjoint of ubd_wino_input: dx (nin_h, nin_w) += the tiles' B dV B^T. */
void ubd_wino_input_adjoint(float *dx, const float *dV, int ch, size_t t0, int th0, int th1,
                            const ubd_wino_tiles *k);
/* y (nout_h, nout_w) rows of tiles [th0, th1) = AT_h M AT_w^T + bias. */
void ubd_wino_output(float *y, const float *M, float bias, int ch, size_t t0, int th0, int th1,
                     const ubd_wino_tiles *k);
/* Adjoint of ubd_wino_output: dM = A_h dy A_w^T (dy zero beyond the plane). */
void ubd_wino_output_adjoint(float *dM, const float *dy, int ch, size_t t0, int th0, int th1,
                             const ubd_wino_tiles *k);

#endif
