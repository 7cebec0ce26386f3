/* conv.h — 2-D convolution, 2-D transposed convolution, 1-D convolution.
 *
 * Layouts (PyTorch's): activations NCHW / NCL, conv weight (OC, C, KH, KW),
 * conv-transpose weight (C, OC, KH, KW), conv1d weight (OC, C, K).
 * Ops (prototypes and shapes in backend.h, included at the end): conv2d_,
 * convt2d_, conv1d_ forward and backward. Every one takes a caller-owned `work` buffer of at least
 * ubd_conv*_workspace(s) floats (im2col / col2im scratch), so no call
 * allocates. Gradients accumulate (+=); NULL gradients are skipped.
 * Invalid shapes (non-positive sizes, kernel larger than the padded input,
 * negative padding, output_padding >= stride) return UBD_ERR_VALUE.
 * The CUDA twins take `work` as device memory of the same size.
 */
#ifndef UBD_CONV_H
#define UBD_CONV_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Conv2d: inp (B, C, H, W) -> out (B, OC, OH, OW),
 * OH = (H + 2 PH - KH) / SH + 1, OW likewise. */
typedef struct {
    int B, C, H, W;  /* input */
    int OC, KH, KW;  /* output channels, kernel */
    int SH, SW;      /* stride */
    int PH, PW;      /* zero padding */
} ubd_conv2d_shape;

ubd_status ubd_conv2d_check(ubd_conv2d_shape s, int *OH, int *OW);
size_t ubd_conv2d_workspace(ubd_conv2d_shape s);

/* How the CPU computes stride-1 convolutions with (3, 3) kernels and >= 16
 * channels in and out, or (1, 3) / (3, 1) kernels (conv1d's k = 3 included) and
 * >= 128 channels, with >= 128 tiles in the call:
 * UBD_CONV_AUTO (the default) by Winograd's minimal filtering, 2-2.25x fewer
 * multiplications (csrc/cpu/winograd.h); UBD_CONV_IM2COL by im2col + sgemm like
 * every other shape. Process-wide; the initial value is UBDIFF_CONV=im2col|auto.
 * Workspaces are sized for both, so it may change between sizing and a call.
 * The CUDA backend always uses im2col. */
enum { UBD_CONV_AUTO = 0, UBD_CONV_IM2COL = 1 };
ubd_status ubd_conv_set_algo(int algo);
int ubd_conv_get_algo(void);

/* ConvTranspose2d: inp (B, C, H, W) -> out (B, OC, OH, OW),
 * OH = (H - 1) SH - 2 PH + KH + OPH, OW likewise. */
typedef struct {
    int B, C, H, W;
    int OC, KH, KW;
    int SH, SW;
    int PH, PW;
    int OPH, OPW; /* output_padding, < stride */
} ubd_convt2d_shape;

ubd_status ubd_convt2d_check(ubd_convt2d_shape s, int *OH, int *OW);
size_t ubd_convt2d_workspace(ubd_convt2d_shape s);

/* Conv1d: inp (B, C, L) -> out (B, OC, OL), OL = (L + 2P - K) / S + 1. */
typedef struct {
    int B, C, L;
    int OC, K;
    int S, P;
} ubd_conv1d_shape;

ubd_status ubd_conv1d_check(ubd_conv1d_shape s, int *OL);
size_t ubd_conv1d_workspace(ubd_conv1d_shape s);

#ifdef __cplusplus
}
#endif
#include "backend.h" /* the prototypes */
#endif
