/* shape_ops.h — data-movement layers and small pieces: nearest upsampling,
 * border crop/pad, channel concatenation, sinusoidal time embedding, the
 * scale-shift modulation, bias/residual helpers. Gradients accumulate (+=). */
#ifndef UBD_SHAPE_OPS_H
#define UBD_SHAPE_OPS_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Nearest-neighbour x2 upsampling. 1-D: inp (B,C,L) -> out (B,C,2L).
 * 2-D: inp (B,C,H,W) -> out (B,C,2H,2W). Backward sums the copies. */
ubd_status ubd_cpu_upsample1d_forward(float *out, const float *inp, int B, int C, int L);
ubd_status ubd_cpu_upsample1d_backward(float *dinp, const float *dout, int B, int C, int L);
ubd_status ubd_cpu_upsample2d_forward(float *out, const float *inp, int B, int C, int H, int W);
ubd_status ubd_cpu_upsample2d_backward(float *dinp, const float *dout, int B, int C, int H, int W);

/* Crop (t,b,l,r >= 0 remove rows/columns) or zero-pad (negative values add
 * them) the spatial borders: inp (B,C,H,W) -> out (B,C,H-t-b,W-l-r).
 * OpenFWI's decoders crop 5 cells from every side: t=b=l=r=5. */
ubd_status ubd_cpu_crop2d_forward(float *out, const float *inp, int B, int C, int H, int W, int top, int bottom,
                                  int left, int right);
ubd_status ubd_cpu_crop2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int top, int bottom,
                                   int left, int right);

/* Channel concatenation of a (B,C1,S) and b (B,C2,S) -> out (B,C1+C2,S);
 * backward splits dout into da, db (either may be NULL). */
ubd_status ubd_cpu_concat_forward(float *out, const float *a, const float *b, int B, int C1, int C2, int S);
ubd_status ubd_cpu_concat_backward(float *da, float *db, const float *dout, int B, int C1, int C2, int S);

/* Sinusoidal embedding of timesteps t (B) -> out (B, dim), dim even:
 * half = dim/2, f_i = exp(-ln(10000) i / (half - 1)), out = [sin(t f), cos(t f)]. */
ubd_status ubd_cpu_time_embedding(float *out, const float *t, int B, int dim);

/* Scale-shift modulation over (B, C, L): out = x * (1 + scale) + shift, with
 * ss (B, 2C) = [scale (C), shift (C)] per sample (chunk order of the U-Net).
 * Backward: dx (B,C,L) +=, dss (B,2C) += . */
ubd_status ubd_cpu_scale_shift_forward(float *out, const float *x, const float *ss, int B, int C, int L);
ubd_status ubd_cpu_scale_shift_backward(float *dx, float *dss, const float *dout, const float *x, const float *ss,
                                        int B, int C, int L);

/* y (n) += a * x (n) — residual adds and gradient routing. */
ubd_status ubd_cpu_axpy(float *y, const float *x, size_t n, float a);

/* ---- CUDA twins (csrc/cuda/shape_ops.cu); device pointers, same arguments ---- */
#ifdef UBDIFF_WITH_CUDA
ubd_status ubd_cuda_upsample1d_forward(float *out, const float *inp, int B, int C, int L);
ubd_status ubd_cuda_upsample1d_backward(float *dinp, const float *dout, int B, int C, int L);
ubd_status ubd_cuda_upsample2d_forward(float *out, const float *inp, int B, int C, int H, int W);
ubd_status ubd_cuda_upsample2d_backward(float *dinp, const float *dout, int B, int C, int H, int W);
ubd_status ubd_cuda_crop2d_forward(float *out, const float *inp, int B, int C, int H, int W, int top, int bottom,
                                   int left, int right);
ubd_status ubd_cuda_crop2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int top, int bottom,
                                    int left, int right);
ubd_status ubd_cuda_concat_forward(float *out, const float *a, const float *b, int B, int C1, int C2, int S);
ubd_status ubd_cuda_concat_backward(float *da, float *db, const float *dout, int B, int C1, int C2, int S);
ubd_status ubd_cuda_time_embedding(float *out, const float *t, int B, int dim);
ubd_status ubd_cuda_scale_shift_forward(float *out, const float *x, const float *ss, int B, int C, int L);
ubd_status ubd_cuda_scale_shift_backward(float *dx, float *dss, const float *dout, const float *x, const float *ss,
                                         int B, int C, int L);
ubd_status ubd_cuda_axpy(float *y, const float *x, size_t n, float a);
#endif

#ifdef __cplusplus
}
#endif
#endif
