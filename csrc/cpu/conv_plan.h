/* conv_plan.h — how a convolution is cut into GEMMs; shared by the CPU code
 * (conv2d.c, conv_transpose2d.c) and its CUDA twin (cuda/conv.cu), so that
 * both fit in the workspace that ubd_conv*_workspace() promises.
 *
 * A GEMM covers G whole samples side by side (small maps), or, when G == 1,
 * a band of `band` rows of the im2col grid of one sample. col has `rows` rows
 * and at most N columns. Shapes must have passed their check already. */
#ifndef UBD_CPU_CONV_PLAN_H
#define UBD_CPU_CONV_PLAN_H

#include "../conv.h"
#include "im2col.h"

typedef struct {
    ubd_im2col_geom g; /* conv2d: image = input, grid = output; convt2d: image = output, grid = input */
    int rows, G;
    int band;        /* G == 1: grid rows per GEMM */
    size_t grid, N;  /* grid positions of one sample; columns of col */
} ubd_conv_plan;

static inline int ubd_conv2d_pointwise(ubd_conv2d_shape s) {
    return s.KH == 1 && s.KW == 1 && s.SH == 1 && s.SW == 1 && s.PH == 0 && s.PW == 0;
}

/* other: the rows of the second scratch matrix (conv2d: OC, convt2d: C). */
static inline ubd_conv_plan ubd_conv_make_plan(ubd_im2col_geom g, int B, int other) {
    ubd_conv_plan p;
    p.g = g;
    p.rows = g.C * g.KH * g.KW;
    p.grid = (size_t)g.OH * g.OW;
    p.G = ubd_conv_group(B, p.grid, (size_t)p.rows + other);
    p.band = g.OH;
    p.N = (size_t)p.G * p.grid;
    if (p.G == 1) {
        p.band = ubd_conv_band(g.OH, g.OW, (size_t)p.rows);
        p.N = (size_t)p.band * g.OW;
    }
    return p;
}

static inline ubd_conv_plan ubd_conv2d_plan(ubd_conv2d_shape s, int OH, int OW) {
    ubd_im2col_geom g = {s.C, s.H, s.W, s.KH, s.KW, s.SH, s.SW, s.PH, s.PW, OH, OW};
    return ubd_conv_make_plan(g, s.B, s.OC);
}

static inline ubd_conv_plan ubd_convt2d_plan(ubd_convt2d_shape s, int OH, int OW) {
    ubd_im2col_geom g = {s.OC, OH, OW, s.KH, s.KW, s.SH, s.SW, s.PH, s.PW, s.H, s.W};
    return ubd_conv_make_plan(g, s.B, s.C);
}

#endif
