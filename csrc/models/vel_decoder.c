/* vel_decoder.c — velocity decoder D_v: 10 (de)conv blocks 1x1 -> 80x80, crop 5
 * cells from every side (the authors' F.pad with -5), Conv+BN+Tanh -> (B,1,70,70). */
#include <string.h>

#include "../shape_ops.h"
#include "ae_internal.h"

#define LAST (UBD_AE_NDECV - 1)

ubd_status ae_veldec_forward(ubd_ae *m, const float *zv, int B, int training) {
    const float *x = zv; /* (B, dd_v*head_width, 1, 1) */
    for (int i = 0; i < LAST; i++) {
        UBD_TRY(ae_block_forward(&m->decv[i], m, x, B, training));
        x = m->decv[i].a;
    }
    const ae_block *k = &m->decv[LAST - 1];
    const int c = UBD_AE_CROP;
    UBD_TRY(ubd_cpu_crop2d_forward(m->crop, x, B, k->co, k->OH, k->OW, c, c, c, c));
    return ae_block_forward(&m->decv[LAST], m, m->crop, B, training);
}

const float *ae_veldec_output(const ubd_ae *m) { return m->decv[LAST].a; }

/* dvel (B,1,70,70) -> dzv (B, c0) += ; chain scratch g0 / g1 alternate. */
ubd_status ae_veldec_backward(ubd_ae *m, float *dzv, const float *dvel, const float *zv, int B) {
    ae_block *k = &m->decv[LAST];
    float *dcrop = m->g0;
    memset(dcrop, 0, (size_t)B * k->ci * k->H * k->W * sizeof(float));
    UBD_TRY(ae_block_backward(k, m, dcrop, dvel, m->crop, B));
    const ae_block *pk = &m->decv[LAST - 1];
    const int c = UBD_AE_CROP;
    float *da = m->g1;
    memset(da, 0, (size_t)B * pk->co * pk->OH * pk->OW * sizeof(float));
    UBD_TRY(ubd_cpu_crop2d_backward(da, dcrop, B, pk->co, pk->OH, pk->OW, c, c, c, c));
    for (int i = LAST - 1; i >= 0; i--) {
        k = &m->decv[i];
        const float *x = i ? m->decv[i - 1].a : zv;
        float *dx = dzv;
        if (i) {
            dx = (da == m->g1) ? m->g0 : m->g1;
            memset(dx, 0, (size_t)B * k->ci * k->H * k->W * sizeof(float));
        }
        UBD_TRY(ae_block_backward(k, m, dx, da, x, B));
        da = dx;
    }
    return UBD_OK;
}
