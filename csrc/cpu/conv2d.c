/* conv2d.c — 2-D convolution as im2col + sgemm (PyTorch layouts, conv.h);
 * stride-1 3-tap kernels go to winograd.c instead (ubd_winograd_applies).
 *
 * Per GEMM: out (OC, N) = weight (OC, C*KH*KW) @ col (C*KH*KW, N), where N is
 * the output positions of one sample, or of G samples side by side when the
 * maps are small (ubd_conv_group) so that the GEMM stays wide. A 1x1, stride-1,
 * unpadded conv needs no im2col when G == 1: the input already is col. */
#include <limits.h>

#include "../blas.h"
#include "../conv.h"
#include "conv_plan.h"
#include "winograd.h"

ubd_status ubd_conv2d_check(ubd_conv2d_shape s, int *OH, int *OW) {
    UBD_REQUIRE_POSITIVE(s.B);
    UBD_REQUIRE_POSITIVE(s.C);
    UBD_REQUIRE_POSITIVE(s.H);
    UBD_REQUIRE_POSITIVE(s.W);
    UBD_REQUIRE_POSITIVE(s.OC);
    UBD_REQUIRE_POSITIVE(s.KH);
    UBD_REQUIRE_POSITIVE(s.KW);
    UBD_REQUIRE_POSITIVE(s.SH);
    UBD_REQUIRE_POSITIVE(s.SW);
    UBD_REQUIRE(s.PH >= 0 && s.PW >= 0, UBD_ERR_VALUE, "conv2d: padding must be >= 0, got (%d, %d)", s.PH, s.PW);
    UBD_REQUIRE(s.KH <= s.H + 2 * s.PH && s.KW <= s.W + 2 * s.PW, UBD_ERR_VALUE,
                "conv2d: kernel (%d, %d) is larger than the padded input (%d, %d)", s.KH, s.KW, s.H + 2 * s.PH,
                s.W + 2 * s.PW);
    int oh = (s.H + 2 * s.PH - s.KH) / s.SH + 1, ow = (s.W + 2 * s.PW - s.KW) / s.SW + 1;
    /* BLAS takes 32-bit sizes: the unrolled matrix of one sample must fit. */
    long long rows = (long long)s.C * s.KH * s.KW, ohw = (long long)oh * ow;
    UBD_REQUIRE(rows * ohw <= INT_MAX && (long long)s.OC * rows <= INT_MAX && (long long)s.OC * ohw <= INT_MAX &&
                    (long long)s.C * s.H * s.W <= INT_MAX,
                UBD_ERR_VALUE, "conv2d: shape too large for 32-bit BLAS sizes");
    if (OH) *OH = oh;
    if (OW) *OW = ow;
    return UBD_OK;
}

typedef ubd_conv_plan plan;
#define is_pointwise ubd_conv2d_pointwise

/* col (rows, N) then, when G > 1, tmp (OC, N). */
size_t ubd_conv2d_workspace(ubd_conv2d_shape s) {
    int OH, OW;
    if (ubd_conv2d_check(s, &OH, &OW) != UBD_OK) return 0;
    plan p = ubd_conv2d_plan(s, OH, OW);
    size_t im2col = p.G == 1 ? (is_pointwise(s) ? 0 : (size_t)p.rows * p.N) : ((size_t)p.rows + s.OC) * p.N;
    size_t wino = ubd_winograd_workspace(s);
    return im2col > wino ? im2col : wino;
}

ubd_status ubd_cpu_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, float *work,
                                  ubd_conv2d_shape s) {
    int OH, OW;
    UBD_TRY(ubd_conv2d_check(s, &OH, &OW));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(weight);
    const plan p = ubd_conv2d_plan(s, OH, OW);
    UBD_REQUIRE(work || ubd_conv2d_workspace(s) == 0, UBD_ERR_VALUE, "conv2d: work must not be NULL");
    if (ubd_winograd_applies(s)) {
        ubd_winograd_forward(out, inp, weight, bias, work, s, OH, OW);
        return UBD_OK;
    }
    const size_t in_sz = (size_t)s.C * s.H * s.W, out_sz = (size_t)s.OC * p.grid;
    float *col = work, *tmp = work + (size_t)p.rows * p.N;

    for (int b0 = 0; b0 < s.B; b0 += p.G) {
        const int g = s.B - b0 < p.G ? s.B - b0 : p.G;
        const float *x = inp + b0 * in_sz; /* (g, C, H, W) */
        float *y = out + b0 * out_sz;      /* (g, OC, OH, OW) */
        if (p.G == 1) {
            const float beta = bias ? 1.0f : 0.0f;
            if (bias) ubd_fill_planes(y, bias, 1, s.OC, p.grid);
            if (is_pointwise(s)) { /* y (OC, ohw) (+)= weight (OC, C) @ x (C, ohw) */
                ubd_sgemm(0, 0, s.OC, (int)p.grid, p.rows, 1.0f, weight, p.rows, x, (int)p.grid, beta, y, (int)p.grid);
                continue;
            }
            for (int oh0 = 0; oh0 < OH; oh0 += p.band) { /* one band of output rows per GEMM */
                const int nb = OH - oh0 < p.band ? OH - oh0 : p.band, n = nb * OW;
                const ubd_im2col_geom gb = ubd_band_geom(&p.g, oh0, nb);
                ubd_im2col(col, x, 1, &gb);
                /* y[:, band] (OC, n; row stride ohw) (+)= weight (OC, rows) @ col (rows, n) */
                ubd_sgemm(0, 0, s.OC, n, p.rows, 1.0f, weight, p.rows, col, n, beta, y + (size_t)oh0 * OW,
                          (int)p.grid);
            }
        } else {
            const int n = (int)((size_t)g * p.grid);
            ubd_im2col(col, x, g, &p.g);
            /* tmp (OC, n) = weight (OC, rows) @ col (rows, n), then scatter to (g, OC, ohw) + bias */
            ubd_sgemm(0, 0, s.OC, n, p.rows, 1.0f, weight, p.rows, col, n, 0.0f, tmp, n);
            ubd_unpack_groups(y, tmp, bias, g, s.OC, p.grid, 0);
        }
    }
    return UBD_OK;
}

/* Backward of one sample, one band of output rows per GEMM (G == 1, not pointwise). */
static void backward_bands(float *dx, float *dweight, const float *dy, const float *x, const float *weight, float *col,
                           ubd_conv2d_shape s, const plan *p, int OH, int OW) {
    for (int oh0 = 0; oh0 < OH; oh0 += p->band) {
        const int nb = OH - oh0 < p->band ? OH - oh0 : p->band, n = nb * OW;
        const ubd_im2col_geom gb = ubd_band_geom(&p->g, oh0, nb);
        const float *dyb = dy + (size_t)oh0 * OW; /* (OC, n), row stride ohw */
        if (dweight) {                            /* dweight (OC, rows) += dyb @ col^T */
            ubd_im2col(col, x, 1, &gb);
            ubd_sgemm(0, 1, s.OC, p->rows, n, 1.0f, dyb, (int)p->grid, col, n, 1.0f, dweight, p->rows);
        }
        if (dx) { /* dcol (rows, n) = weight^T @ dyb, folded back onto dx */
            ubd_sgemm(1, 0, p->rows, n, s.OC, 1.0f, weight, p->rows, dyb, (int)p->grid, 0.0f, col, n);
            ubd_col2im_add(dx, col, 1, &gb);
        }
    }
}

ubd_status ubd_cpu_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                   const float *weight, float *work, ubd_conv2d_shape s) {
    int OH, OW;
    UBD_TRY(ubd_conv2d_check(s, &OH, &OW));
    UBD_REQUIRE_PTR(dout);
    if (dweight) UBD_REQUIRE_PTR(inp);
    if (dinp) UBD_REQUIRE_PTR(weight);
    const plan p = ubd_conv2d_plan(s, OH, OW);
    UBD_REQUIRE(work || ubd_conv2d_workspace(s) == 0, UBD_ERR_VALUE, "conv2d: work must not be NULL");
    const size_t in_sz = (size_t)s.C * s.H * s.W, out_sz = (size_t)s.OC * p.grid;
    float *col = work, *tmp = work + (size_t)p.rows * p.N;
    const int pw = is_pointwise(s);

    if (dbias) ubd_sum_planes_add(dbias, dout, s.B, s.OC, p.grid);
    if (!dinp && !dweight) return UBD_OK;
    if (ubd_winograd_applies(s)) {
        ubd_winograd_backward(dinp, dweight, dout, inp, weight, work, s, OH, OW);
        return UBD_OK;
    }

    if (p.G == 1 && !pw) {
        for (int b = 0; b < s.B; b++) backward_bands(dinp ? dinp + b * in_sz : NULL, dweight, dout + b * out_sz,
                                                     inp ? inp + b * in_sz : NULL, weight, col, s, &p, OH, OW);
        return UBD_OK;
    }
    for (int b0 = 0; b0 < s.B; b0 += p.G) {
        const int g = s.B - b0 < p.G ? s.B - b0 : p.G;
        const int n = (int)((size_t)g * p.grid);
        const float *x = inp ? inp + b0 * in_sz : NULL; /* (g, C, H, W) */
        float *dx = dinp ? dinp + b0 * in_sz : NULL;    /* (g, C, H, W) */
        const float *dy = dout + b0 * out_sz;           /* (g, OC, OH, OW) */
        if (p.G > 1) {                                  /* dy as one (OC, n) matrix */
            ubd_pack_groups(tmp, dy, g, s.OC, p.grid);
            dy = tmp;
        }
        if (dweight) {
            const float *cm = x;
            if (!(pw && p.G == 1)) {
                ubd_im2col(col, x, g, &p.g);
                cm = col;
            }
            /* dweight (OC, rows) += dy (OC, n) @ cm^T (n, rows) */
            ubd_sgemm(0, 1, s.OC, p.rows, n, 1.0f, dy, n, cm, n, 1.0f, dweight, p.rows);
        }
        if (dinp) {
            if (pw && p.G == 1) { /* dx (C, ohw) += weight^T (C, OC) @ dy (OC, ohw) */
                ubd_sgemm(1, 0, s.C, n, s.OC, 1.0f, weight, p.rows, dy, n, 1.0f, dx, n);
            } else { /* dcol (rows, n) = weight^T @ dy, then fold back onto dx */
                ubd_sgemm(1, 0, p.rows, n, s.OC, 1.0f, weight, p.rows, dy, n, 0.0f, col, n);
                ubd_col2im_add(dx, col, g, &p.g);
            }
        }
    }
    return UBD_OK;
}
