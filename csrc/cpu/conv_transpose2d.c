/* conv_transpose2d.c — ConvTranspose2d (PyTorch semantics) as the adjoint of
 * a convolution: the conv that maps an (OC, OH, OW) image to the (C, H, W)
 * grid with the same kernel, stride and padding has weight (C, OC, KH, KW),
 * and this layer is its transpose. So
 *   forward:  col (OC*KH*KW, N) = weight^T @ inp, then col2im onto out;
 *   backward: col = im2col(dout); dinp += weight @ col; dweight += inp @ col^T.
 * output_padding only enlarges OH/OW (extra rows that no input reaches). */
#include <limits.h>

#include "../blas.h"
#include "../conv.h"
#include "conv_plan.h"

ubd_status ubd_convt2d_check(ubd_convt2d_shape s, int *OH, int *OW) {
    UBD_REQUIRE_POSITIVE(s.B);
    UBD_REQUIRE_POSITIVE(s.C);
    UBD_REQUIRE_POSITIVE(s.H);
    UBD_REQUIRE_POSITIVE(s.W);
    UBD_REQUIRE_POSITIVE(s.OC);
    UBD_REQUIRE_POSITIVE(s.KH);
    UBD_REQUIRE_POSITIVE(s.KW);
    UBD_REQUIRE_POSITIVE(s.SH);
    UBD_REQUIRE_POSITIVE(s.SW);
    UBD_REQUIRE(s.PH >= 0 && s.PW >= 0, UBD_ERR_VALUE, "conv_transpose2d: padding must be >= 0, got (%d, %d)", s.PH,
                s.PW);
    UBD_REQUIRE(s.OPH >= 0 && s.OPW >= 0 && s.OPH < s.SH && s.OPW < s.SW, UBD_ERR_VALUE,
                "conv_transpose2d: output_padding (%d, %d) must be >= 0 and < stride (%d, %d)", s.OPH, s.OPW, s.SH,
                s.SW);
    long long oh = (long long)(s.H - 1) * s.SH - 2LL * s.PH + s.KH + s.OPH;
    long long ow = (long long)(s.W - 1) * s.SW - 2LL * s.PW + s.KW + s.OPW;
    UBD_REQUIRE(oh > 0 && ow > 0, UBD_ERR_VALUE,
                "conv_transpose2d: padding (%d, %d) leaves no output (output size %lld x %lld)", s.PH, s.PW, oh, ow);
    long long rows = (long long)s.OC * s.KH * s.KW, hw = (long long)s.H * s.W;
    UBD_REQUIRE(oh * ow <= INT_MAX && rows * hw <= INT_MAX && (long long)s.C * rows <= INT_MAX &&
                    (long long)s.C * hw <= INT_MAX && (long long)s.OC * oh * ow <= INT_MAX,
                UBD_ERR_VALUE, "conv_transpose2d: shape too large for 32-bit BLAS sizes");
    if (OH) *OH = (int)oh;
    if (OW) *OW = (int)ow;
    return UBD_OK;
}

typedef ubd_conv_plan plan; /* grid = this layer's input (H, W) */

/* col (rows, N) then, when G > 1, tmp (C, N). */
size_t ubd_convt2d_workspace(ubd_convt2d_shape s) {
    int OH, OW;
    if (ubd_convt2d_check(s, &OH, &OW) != UBD_OK) return 0;
    plan p = ubd_convt2d_plan(s, OH, OW);
    return ((size_t)p.rows + (p.G > 1 ? s.C : 0)) * p.N;
}

ubd_status ubd_cpu_convt2d_forward(float *out, const float *inp, const float *weight, const float *bias, float *work,
                                   ubd_convt2d_shape s) {
    int OH, OW;
    UBD_TRY(ubd_convt2d_check(s, &OH, &OW));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(weight);
    UBD_REQUIRE_PTR(work);
    const plan p = ubd_convt2d_plan(s, OH, OW);
    const size_t in_sz = (size_t)s.C * p.grid, out_sz = (size_t)s.OC * OH * OW;
    float *col = work, *tmp = work + (size_t)p.rows * p.N;

    ubd_fill_planes(out, bias, s.B, s.OC, (size_t)OH * OW); /* col2im accumulates onto the bias */
    if (p.G == 1) { /* one band of input rows per GEMM */
        for (int b = 0; b < s.B; b++) {
            for (int h0 = 0; h0 < s.H; h0 += p.band) {
                const int nb = s.H - h0 < p.band ? s.H - h0 : p.band, n = nb * s.W;
                const ubd_im2col_geom gb = ubd_band_geom(&p.g, h0, nb);
                /* col (rows, n) = weight^T (rows, C) @ inp[b][:, band] (C, n; row stride hw) */
                ubd_sgemm(1, 0, p.rows, n, s.C, 1.0f, weight, p.rows, inp + b * in_sz + (size_t)h0 * s.W, (int)p.grid,
                          0.0f, col, n);
                ubd_col2im_add(out + b * out_sz, col, 1, &gb);
            }
        }
        return UBD_OK;
    }
    for (int b0 = 0; b0 < s.B; b0 += p.G) {
        const int g = s.B - b0 < p.G ? s.B - b0 : p.G;
        const int n = (int)((size_t)g * p.grid);
        ubd_pack_groups(tmp, inp + b0 * in_sz, g, s.C, p.grid); /* (g, C, H, W) as one (C, n) matrix */
        /* col (rows, n) = weight^T (rows, C) @ tmp (C, n) */
        ubd_sgemm(1, 0, p.rows, n, s.C, 1.0f, weight, p.rows, tmp, n, 0.0f, col, n);
        ubd_col2im_add(out + b0 * out_sz, col, g, &p.g);
    }
    return UBD_OK;
}

ubd_status ubd_cpu_convt2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                    const float *weight, float *work, ubd_convt2d_shape s) {
    int OH, OW;
    UBD_TRY(ubd_convt2d_check(s, &OH, &OW));
    UBD_REQUIRE_PTR(dout);
    if (dweight) UBD_REQUIRE_PTR(inp);
    if (dinp) UBD_REQUIRE_PTR(weight);
    const plan p = ubd_convt2d_plan(s, OH, OW);
    const size_t in_sz = (size_t)s.C * p.grid, out_sz = (size_t)s.OC * OH * OW;

    if (dbias) ubd_sum_planes_add(dbias, dout, s.B, s.OC, (size_t)OH * OW);
    if (!dinp && !dweight) return UBD_OK;
    UBD_REQUIRE_PTR(work);
    float *col = work, *tmp = work + (size_t)p.rows * p.N;

    if (p.G == 1) { /* one band of input rows per GEMM */
        for (int b = 0; b < s.B; b++) {
            for (int h0 = 0; h0 < s.H; h0 += p.band) {
                const int nb = s.H - h0 < p.band ? s.H - h0 : p.band, n = nb * s.W;
                const ubd_im2col_geom gb = ubd_band_geom(&p.g, h0, nb);
                const size_t off = b * in_sz + (size_t)h0 * s.W; /* band of (C, hw), row stride hw */
                ubd_im2col(col, dout + b * out_sz, 1, &gb);       /* col (rows, n) */
                if (dinp) /* dinp band += weight (C, rows) @ col */
                    ubd_sgemm(0, 0, s.C, n, p.rows, 1.0f, weight, p.rows, col, n, 1.0f, dinp + off, (int)p.grid);
                if (dweight) /* dweight (C, rows) += inp band (C, n) @ col^T */
                    ubd_sgemm(0, 1, s.C, p.rows, n, 1.0f, inp + off, (int)p.grid, col, n, 1.0f, dweight, p.rows);
            }
        }
        return UBD_OK;
    }
    for (int b0 = 0; b0 < s.B; b0 += p.G) {
        const int g = s.B - b0 < p.G ? s.B - b0 : p.G;
        const int n = (int)((size_t)g * p.grid);
        ubd_im2col(col, dout + b0 * out_sz, g, &p.g); /* col (rows, n) */
        if (dinp) {
            ubd_sgemm(0, 0, s.C, n, p.rows, 1.0f, weight, p.rows, col, n, 0.0f, tmp, n);
            ubd_unpack_groups(dinp + b0 * in_sz, tmp, NULL, g, s.C, p.grid, 1);
        }
        if (dweight) { /* dweight (C, rows) += x (C, n) @ col^T (n, rows) */
            ubd_pack_groups(tmp, inp + b0 * in_sz, g, s.C, p.grid);
            ubd_sgemm(0, 1, s.C, p.rows, n, 1.0f, tmp, n, col, n, 1.0f, dweight, p.rows);
        }
    }
    return UBD_OK;
}
