/* im2col.c — window unrolling (im2col), its adjoint (col2im) and the group
 * packing shared by conv2d, conv-transpose2d and conv1d. See im2col.h. */
#include "im2col.h"

#include <stddef.h>
#include <string.h>

/* Parallelise only when there is enough work to pay for waking threads. */
#define UBD_PAR_MIN 32768

/* Output columns [lo, hi) whose input column ow*S - P + k lies in [0, W). */
static inline void valid_range(int OW, int W, int S, int P, int k, int *lo, int *hi) {
    int a = P - k; /* need ow*S >= a */
    int l = a > 0 ? (a + S - 1) / S : 0;
    int b = W - 1 + P - k; /* need ow*S <= b */
    int h = b >= 0 ? b / S + 1 : 0;
    if (h > OW) h = OW;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

void ubd_im2col(float *col, const float *img, int G, const ubd_im2col_geom *g) {
    const int KK = g->KH * g->KW, rows = g->C * KK;
    const size_t OHW = (size_t)g->OH * g->OW, HW = (size_t)g->H * g->W, N = (size_t)G * OHW;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)rows * N > UBD_PAR_MIN)
    for (int r = 0; r < rows; r++) {
        for (int s = 0; s < G; s++) {
            const int c = r / KK, kh = (r % KK) / g->KW, kw = r % g->KW;
            const float *src = img + ((size_t)s * g->C + c) * HW;
            float *dst = col + (size_t)r * N + (size_t)s * OHW;
            int lo, hi;
            valid_range(g->OW, g->W, g->SW, g->PW, kw, &lo, &hi);
            for (int oh = 0; oh < g->OH; oh++, dst += g->OW) {
                const int ih = oh * g->SH - g->PH + kh;
                if (ih < 0 || ih >= g->H) {
                    memset(dst, 0, (size_t)g->OW * sizeof(float));
                    continue;
                }
                /* input column of ow is ow*SW + off; >= 0 for ow >= lo */
                const float *row = src + (size_t)ih * g->W;
                const ptrdiff_t off = (ptrdiff_t)kw - g->PW;
                for (int ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                if (g->SW == 1) {
                    if (hi > lo) memcpy(dst + lo, row + lo + off, (size_t)(hi - lo) * sizeof(float));
                } else {
                    for (int ow = lo; ow < hi; ow++) dst[ow] = row[(ptrdiff_t)ow * g->SW + off];
                }
                for (int ow = hi; ow < g->OW; ow++) dst[ow] = 0.0f;
            }
        }
    }
}

void ubd_col2im_add(float *img, const float *col, int G, const ubd_im2col_geom *g) {
    const int KK = g->KH * g->KW;
    const size_t OHW = (size_t)g->OH * g->OW, HW = (size_t)g->H * g->W, N = (size_t)G * OHW;
    /* One (sample, channel) plane per iteration: planes are disjoint, and each
     * element sums its contributions in the fixed (kh, kw, oh, ow) order. */
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->C * KK * N > UBD_PAR_MIN)
    for (int s = 0; s < G; s++) {
        for (int c = 0; c < g->C; c++) {
            float *dst = img + ((size_t)s * g->C + c) * HW;
            for (int kh = 0; kh < g->KH; kh++) {
                for (int kw = 0; kw < g->KW; kw++) {
                    const float *src = col + ((size_t)c * KK + (size_t)kh * g->KW + kw) * N + (size_t)s * OHW;
                    int lo, hi;
                    valid_range(g->OW, g->W, g->SW, g->PW, kw, &lo, &hi);
                    for (int oh = 0; oh < g->OH; oh++) {
                        const int ih = oh * g->SH - g->PH + kh;
                        if (ih < 0 || ih >= g->H) continue;
                        float *row = dst + (size_t)ih * g->W;
                        const ptrdiff_t off = (ptrdiff_t)kw - g->PW;
                        const float *in = src + (size_t)oh * g->OW;
                        if (g->SW == 1) {
                            for (int ow = lo; ow < hi; ow++) row[ow + off] += in[ow];
                        } else {
                            for (int ow = lo; ow < hi; ow++) row[(ptrdiff_t)ow * g->SW + off] += in[ow];
                        }
                    }
                }
            }
        }
    }
}

void ubd_pack_groups(float *dst, const float *src, int G, int R, size_t P) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)G * R * P > UBD_PAR_MIN)
    for (int r = 0; r < R; r++)
        for (int s = 0; s < G; s++)
            memcpy(dst + ((size_t)r * G + s) * P, src + ((size_t)s * R + r) * P, P * sizeof(float));
}

void ubd_unpack_groups(float *dst, const float *src, const float *bias, int G, int R, size_t P, int accumulate) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)G * R * P > UBD_PAR_MIN)
    for (int s = 0; s < G; s++) {
        for (int r = 0; r < R; r++) {
            float *d = dst + ((size_t)s * R + r) * P;
            const float *x = src + ((size_t)r * G + s) * P;
            if (accumulate) {
                for (size_t p = 0; p < P; p++) d[p] += x[p];
            } else {
                const float b = bias ? bias[r] : 0.0f;
                for (size_t p = 0; p < P; p++) d[p] = x[p] + b;
            }
        }
    }
}

void ubd_fill_planes(float *dst, const float *bias, int B, int R, size_t P) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * R * P > UBD_PAR_MIN)
    for (int b = 0; b < B; b++) {
        for (int r = 0; r < R; r++) {
            float *d = dst + ((size_t)b * R + r) * P;
            if (!bias) {
                memset(d, 0, P * sizeof(float));
            } else {
                const float v = bias[r];
                for (size_t p = 0; p < P; p++) d[p] = v;
            }
        }
    }
}

void ubd_sum_planes_add(float *dbias, const float *src, int B, int R, size_t P) {
#pragma omp parallel for schedule(static) if ((size_t)B * R * P > UBD_PAR_MIN)
    for (int r = 0; r < R; r++) {
        float s = 0.0f;
        for (int b = 0; b < B; b++) {
            const float *x = src + ((size_t)b * R + r) * P;
            float t = 0.0f;
            for (size_t p = 0; p < P; p++) t += x[p];
            s += t;
        }
        dbias[r] += s;
    }
}

/* Tiling of the GEMMs (see im2col.h): batch samples until a GEMM has at
 * least 2048 columns, with at most 8M floats (32 MB) of scratch; a sample
 * that is processed alone is cut into bands of about 1 MB of col (>= 512
 * columns). Choices measured on the paper layers (benchmarks/layers.py);
 * the rates were flat within noise for bands of 256 KB .. whole samples. */
#define UBD_CONV_TARGET_COLS 2048
#define UBD_CONV_MAX_SCRATCH ((size_t)8 << 20)
#define UBD_CONV_MIN_COLS 512
#define UBD_CONV_CACHE ((size_t)1 << 18)

int ubd_conv_group(int B, size_t cols, size_t rows) {
    size_t G = (UBD_CONV_TARGET_COLS + cols - 1) / cols;
    if (G > (size_t)B) G = (size_t)B;
    while (G > 1 && rows * G * cols > UBD_CONV_MAX_SCRATCH) G--;
    return G < 1 ? 1 : (int)G;
}

int ubd_conv_band(int OH, int OW, size_t rows) {
    size_t cols = UBD_CONV_CACHE / rows;
    if (cols < UBD_CONV_MIN_COLS) cols = UBD_CONV_MIN_COLS;
    size_t band = (cols + OW - 1) / OW;
    if (band < 1) band = 1;
    if (band > (size_t)OH) band = (size_t)OH;
    return (int)band;
}
