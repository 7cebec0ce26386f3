/* encoder.c — encoder E: 15 conv blocks, velocity (B,1,70,70) -> z (B,latent,1,1),
 * the last block Conv+BN+Tanh so z lies in (-1, 1). */
#include "ae_internal.h"

ubd_status ae_encoder_forward(ubd_ae *m, const float *vel, int B, int training) {
    const float *x = vel; /* (B, 1, 70, 70) */
    ubd_ae_forget_forward(m); /* until this forward completes (an eval forward keeps nothing for backward) */
    for (int i = 0; i < UBD_AE_NENC; i++) {
        UBD_TRY(ae_block_forward(&m->enc[i], m, x, B, training));
        x = m->enc[i].a;
    }
    m->enc_train_B = training ? B : 0;
    return UBD_OK;
}

const float *ae_encoder_output(const ubd_ae *m) { return m->enc[UBD_AE_NENC - 1].a; }

/* dz (B, latent): gradient of z (clobbered). Parameter gradients accumulate;
 * the input gradient is not needed. Chain scratch: g0 / g1 alternate. */
ubd_status ae_encoder_backward(ubd_ae *m, float *dz, const float *vel, int B) {
    float *da = dz;
    for (int i = UBD_AE_NENC - 1; i >= 0; i--) {
        ae_block *k = &m->enc[i];
        const float *x = i ? m->enc[i - 1].a : vel;
        float *dx = NULL;
        if (i) {
            dx = (i & 1) ? m->g0 : m->g1;
            UBD_TRY(m->be->zero(dx, (size_t)B * k->k.C * k->k.H * k->k.W));
        }
        UBD_TRY(ae_block_backward(k, m, dx, da, x, B));
        da = dx;
    }
    return UBD_OK;
}
