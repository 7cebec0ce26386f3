/* vel_decoder.c — velocity decoder D_v: 10 (de)conv blocks 1x1 -> 80x80, crop 5
 * cells from every side (the authors' F.pad with -5), Conv+BN+Tanh -> (B,1,70,70). */
#include "ae_internal.h"

#define LAST (UBD_AE_NDECV - 1)

ubd_status ae_veldec_forward(ubd_ae *m, const float *zv, int B, int training) {
    const float *x = zv; /* (B, dd_v*head_width, 1, 1) */
    for (int i = 0; i < LAST; i++) {
        UBD_TRY(ae_block_forward(&m->decv[i], m, x, B, training));
        x = m->decv[i].a;
    }
    const ubd_block2d *k = &m->decv[LAST - 1].k;
    const int c = UBD_AE_CROP;
    UBD_TRY(m->be->crop2d_forward(m->crop, x, B, k->OC, k->OH, k->OW, c, c, c, c));
    return ae_block_forward(&m->decv[LAST], m, m->crop, B, training);
}

const float *ae_veldec_output(const ubd_ae *m) { return m->decv[LAST].a; }

/* dvel (B,1,70,70), clobbered -> dzv (B, c0) += ; chain scratch g0 / g1 alternate. */
ubd_status ae_veldec_backward(ubd_ae *m, float *dzv, float *dvel, const float *zv, int B) {
    const ubd_backend *be = m->be;
    ae_block *k = &m->decv[LAST];
    float *dcrop = m->g0;
    UBD_TRY(be->zero(dcrop, (size_t)B * k->k.C * k->k.H * k->k.W));
    UBD_TRY(ae_block_backward(k, m, dcrop, dvel, m->crop, B));
    const ubd_block2d *pk = &m->decv[LAST - 1].k;
    const int c = UBD_AE_CROP;
    float *da = m->g1;
    UBD_TRY(be->zero(da, (size_t)B * pk->OC * pk->OH * pk->OW));
    UBD_TRY(be->crop2d_backward(da, dcrop, B, pk->OC, pk->OH, pk->OW, c, c, c, c));
    for (int i = LAST - 1; i >= 0; i--) {
        k = &m->decv[i];
        const float *x = i ? m->decv[i - 1].a : zv;
        float *dx = dzv;
        if (i) {
            dx = (da == m->g1) ? m->g0 : m->g1;
            UBD_TRY(be->zero(dx, (size_t)B * k->k.C * k->k.H * k->k.W));
        }
        UBD_TRY(ae_block_backward(k, m, dx, da, x, B));
        da = dx;
    }
    return UBD_OK;
}
