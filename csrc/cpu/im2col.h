/* im2col.h — the layout shuffles behind every convolution (CPU).
 *
 * A convolution geometry maps an image (C, H, W) to an output grid (OH, OW)
 * through a (KH, KW) window with stride and zero padding. im2col unrolls the
 * windows of G images into a matrix col (C*KH*KW, G*OH*OW): row (c, kh, kw),
 * column (g, oh, ow). col2im is its adjoint and ACCUMULATES into the images.
 * Batching G images into one matrix keeps the GEMM wide when OH*OW is small.
 * All functions are OpenMP-parallel and write every output element from one
 * thread in a fixed order, so results do not depend on the thread count.
 * They assume a geometry already validated by the caller (no checks here). */
#ifndef UBD_CPU_IM2COL_H
#define UBD_CPU_IM2COL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int C, H, W;    /* image */
    int KH, KW;     /* window */
    int SH, SW;     /* stride */
    int PH, PW;     /* zero padding */
    int OH, OW;     /* output grid */
} ubd_im2col_geom;

/* col (C*KH*KW, G*OH*OW) = windows of img (G, C, H, W) */
void ubd_im2col(float *col, const float *img, int G, const ubd_im2col_geom *g);
/* img (G, C, H, W) += adjoint of im2col applied to col (C*KH*KW, G*OH*OW) */
void ubd_col2im_add(float *img, const float *col, int G, const ubd_im2col_geom *g);

/* Group packing: src (G, R, P) -> dst (R, G*P) (a batch of planes side by side). */
void ubd_pack_groups(float *dst, const float *src, int G, int R, size_t P);
/* dst (G, R, P) = src (R, G*P) + bias[r] (bias may be NULL), or += src when accumulate. */
void ubd_unpack_groups(float *dst, const float *src, const float *bias, int G, int R, size_t P, int accumulate);

/* dst (B, R, P): every plane (b, r) set to bias[r] (zeros when bias is NULL). */
void ubd_fill_planes(float *dst, const float *bias, int B, int R, size_t P);
/* dbias (R) += sums of src (B, R, P) over b and p. */
void ubd_sum_planes_add(float *dbias, const float *src, int B, int R, size_t P);

/* How many samples one GEMM covers: enough that G*cols is at least a few
 * thousand columns, but without the scratch (rows * G*cols floats) growing
 * past a fixed cap. Depends on the shape only (never on the thread count). */
int ubd_conv_group(int B, size_t cols, size_t rows);
/* With one sample per GEMM (G == 1), output rows per GEMM: the sample is cut
 * into bands of whole output rows so that col (rows, band*OW) stays near
 * cache size while the GEMM keeps a few hundred columns. A band is the same
 * geometry with OH = band rows and PH shifted by -oh0*SH (see ubd_band_geom). */
int ubd_conv_band(int OH, int OW, size_t rows);

/* Geometry of output rows [oh0, oh0 + nb) of g: the window origin moves down. */
static inline ubd_im2col_geom ubd_band_geom(const ubd_im2col_geom *g, int oh0, int nb) {
    ubd_im2col_geom b = *g;
    b.OH = nb;
    b.PH = g->PH - oh0 * g->SH; /* may be negative: im2col/col2im only test ih */
    return b;
}

#ifdef __cplusplus
}
#endif
#endif
