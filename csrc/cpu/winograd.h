/* winograd.h — stride-1 convolutions with 3-tap kernels by Winograd's minimal
 * filtering (Lavin & Gray 2016), CPU. Used by conv2d.c for (3, 3), (1, 3) and
 * (3, 1) kernels at stride 1 (so conv1d's k = 3 layers too) when the channels and
 * tiles are enough to win (winograd.c, make_plan); other shapes take the im2col path.
 *
 * Each axis with a 3-tap kernel is cut into tiles of m outputs read from
 * alpha = m + 2 inputs; an axis with a 1-tap kernel is the identity (m = alpha = 1):
 *   (3, 3): F(2, 3) on both axes, 16 products per 2x2 outputs instead of 36 (2.25x fewer);
 *   (1, 3) / (3, 1): F(4, 3) on the 3-tap axis, 6 products per 4 outputs instead of 12 (2x).
 * The convolution becomes nxi = alpha_h * alpha_w independent GEMMs over channels,
 *   M[xi] (OC, T) = U[xi] (OC, C) @ V[xi] (C, T),
 * with U = G w G^T the transformed weights, V = B^T d B the transformed input
 * tiles (T tiles, of one band of one sample or of several whole samples), and the
 * output tiles Y = A^T M A. Backward is the exact adjoint of these linear maps
 * (dM = A dY A^T; dU += dM V^T; dV = U^T dM; dd = B dV B^T; dw = G^T dU G), so the
 * gradients are those of the forward actually computed.
 *
 * Rounding: F(2, 3) uses constants 0.5 and 1; F(4, 3) up to 8 and 1/24, so a
 * 1-D k = 3 layer rounds ~2-4x more than im2col + sgemm (tests/test_winograd.py
 * measures both against float64). Results depend on the shape only, never on
 * the thread count: every transform element is written by one thread in a fixed
 * order, and the GEMMs are cut by shape (csrc/cpu/gemm.c's rule). */
#ifndef UBD_CPU_WINOGRAD_H
#define UBD_CPU_WINOGRAD_H

#include <stddef.h>

#include "../conv.h"

/* 1 when shape s (already checked) takes the Winograd path under the current
 * algorithm setting (ubd_conv_set_algo). */
int ubd_winograd_applies(ubd_conv2d_shape s);
/* Floats of work the Winograd path needs for s whatever the setting (0 when s
 * is not of its form), so a buffer sized by ubd_conv2d_workspace stays large
 * enough when the setting changes between sizing and the call. */
size_t ubd_winograd_workspace(ubd_conv2d_shape s);

/* out (B, OC, OH, OW) = conv(inp, weight) + bias (NULL: none) */
void ubd_winograd_forward(float *out, const float *inp, const float *weight, const float *bias, float *work,
                          ubd_conv2d_shape s, int OH, int OW);
/* dinp += dX, dweight += dW (either may be NULL; inp may be NULL without dweight) */
void ubd_winograd_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                           float *work, ubd_conv2d_shape s, int OH, int OW);

#endif
