/* time_mlp.c — see time_mlp.h. */
#include "time_mlp.h"

ubd_status ubd_time_mlp_forward(const ubd_backend *be, const ubd_time_mlp *tm, const float *t, const float *W, int B,
                                int dim, int tdim) {
    const size_t nt = (size_t)B * tdim;
    UBD_TRY(be->time_embedding(tm->temb, t, B, dim));
    UBD_TRY(be->linear_forward(tm->t1, tm->temb, W + tm->w1, W + tm->b1, B, dim, tdim));
    UBD_TRY(be->act_forward(tm->t1g, tm->t1, nt, UBD_ACT_GELU, 0.0f));
    UBD_TRY(be->linear_forward(tm->t2, tm->t1g, W + tm->w2, W + tm->b2, B, tdim, tdim));
    return be->act_forward(tm->ts, tm->t2, nt, UBD_ACT_SILU, 0.0f);
}

ubd_status ubd_time_mlp_backward(const ubd_backend *be, const ubd_time_mlp *tm, const float *W, float *G, int B,
                                 int dim, int tdim) {
    const size_t nt = (size_t)B * tdim;
    UBD_TRY(be->act_backward(tm->d_t2, tm->d_ts, tm->t2, nt, UBD_ACT_SILU, 0.0f));
    UBD_TRY(be->linear_backward(tm->d_t1g, G + tm->w2, G + tm->b2, tm->d_t2, tm->t1g, W + tm->w2, B, tdim, tdim));
    UBD_TRY(be->act_backward(tm->d_t1, tm->d_t1g, tm->t1, nt, UBD_ACT_GELU, 0.0f));
    return be->linear_backward(NULL, G + tm->w1, G + tm->b1, tm->d_t1, tm->temb, W + tm->w1, B, dim, tdim);
}
