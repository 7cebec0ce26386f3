/* conv_block.c — the two repeated units of the autoencoder:
 *  - conv block: Conv2d or ConvTranspose2d + BatchNorm2d + ReLU/Tanh
 *    (the authors' ConvBlock, DeconvBlock, ConvBlock_Tanh);
 *  - head: Linear + BatchNorm over features + LeakyReLU(0.2) (fc_v/fc_s).
 * Backward is only ever run through training-mode BatchNorm: frozen parts
 * (eval-mode BN) are never differentiated.
 * Scratch: m->g2 (dn) and m->g3 (dy); callers use g0/g1 for the chain. */
#include <string.h>

#include "../conv.h"
#include "../norm.h"
#include "ae_internal.h"

static ubd_conv2d_shape conv_shape(const ae_block *k, int B) {
    ubd_conv2d_shape s = {B, k->ci, k->H, k->W, k->co, k->kh, k->kw, k->sh, k->sw, k->ph, k->pw};
    return s;
}

static ubd_convt2d_shape convt_shape(const ae_block *k, int B) {
    ubd_convt2d_shape s = {B, k->ci, k->H, k->W, k->co, k->kh, k->kw, k->sh, k->sw, k->ph, k->pw, 0, 0};
    return s;
}

/* The workspace was sized for max_batch; make sure it holds for B too. */
static ubd_status check_work(const ae_block *k, const ubd_ae *m, int B) {
    size_t need = k->transposed ? ubd_convt2d_workspace(convt_shape(k, B)) : ubd_conv2d_workspace(conv_shape(k, B));
    UBD_REQUIRE(need <= m->work_n, UBD_ERR_RUNTIME, "autoencoder: conv workspace %zu < %zu needed", m->work_n, need);
    return UBD_OK;
}

ubd_status ae_block_forward(ae_block *k, ubd_ae *m, const float *x, int B, int training) {
    UBD_TRY(check_work(k, m, B));
    const float *w = ae_p(m, k->w), *b = ae_p(m, k->b), *g = ae_p(m, k->g), *be = ae_p(m, k->be);
    if (k->transposed)
        UBD_TRY(ubd_cpu_convt2d_forward(k->y, x, w, b, m->work, convt_shape(k, B)));
    else
        UBD_TRY(ubd_cpu_conv2d_forward(k->y, x, w, b, m->work, conv_shape(k, B)));
    int S = k->OH * k->OW;
    float *bn_out = k->n ? k->n : k->a; /* ReLU runs in place on a */
    if (training) {
        UBD_TRY(ubd_cpu_batchnorm_forward_train(bn_out, k->mean, k->rstd, ae_b(m, k->rm), ae_b(m, k->rv), k->y, g,
                                                be, B, k->co, S, UBD_AE_BN_MOMENTUM, UBD_AE_BN_EPS));
        ae_b(m, k->nbt)[0] += 1.0f;
    } else {
        UBD_TRY(ubd_cpu_batchnorm_forward_eval(bn_out, k->y, g, be, ae_b(m, k->rm), ae_b(m, k->rv), B, k->co, S,
                                               UBD_AE_BN_EPS));
    }
    return ubd_cpu_act_forward(k->a, bn_out, (size_t)B * k->co * S, k->act, 0.0f);
}

ubd_status ae_block_backward(ae_block *k, ubd_ae *m, float *dx, const float *da, const float *x, int B) {
    UBD_TRY(check_work(k, m, B));
    int S = k->OH * k->OW;
    size_t n = (size_t)B * k->co * S;
    float *dn = m->g2, *dy = m->g3;
    memset(dn, 0, n * sizeof(float));
    /* ReLU: a > 0 exactly where the BN output > 0, so a stands in for it */
    UBD_TRY(ubd_cpu_act_backward(dn, da, k->n ? k->n : k->a, n, k->act, 0.0f));
    memset(dy, 0, n * sizeof(float));
    UBD_TRY(ubd_cpu_batchnorm_backward(dy, ae_g(m, k->g), ae_g(m, k->be), dn, k->y, ae_p(m, k->g), k->mean, k->rstd,
                                       B, k->co, S));
    if (k->transposed)
        return ubd_cpu_convt2d_backward(dx, ae_g(m, k->w), ae_g(m, k->b), dy, x, ae_p(m, k->w), m->work,
                                        convt_shape(k, B));
    return ubd_cpu_conv2d_backward(dx, ae_g(m, k->w), ae_g(m, k->b), dy, x, ae_p(m, k->w), m->work,
                                   conv_shape(k, B));
}

ubd_status ae_head_forward(ae_head *h, ubd_ae *m, const float *x, int B, int training) {
    UBD_TRY(ubd_cpu_linear_forward(h->y, x, ae_p(m, h->w), ae_p(m, h->b), B, h->ci, h->co));
    if (training) {
        UBD_TRY(ubd_cpu_batchnorm_forward_train(h->a, h->mean, h->rstd, ae_b(m, h->rm), ae_b(m, h->rv), h->y,
                                                ae_p(m, h->g), ae_p(m, h->be), B, h->co, 1, UBD_AE_BN_MOMENTUM,
                                                UBD_AE_BN_EPS));
        ae_b(m, h->nbt)[0] += 1.0f;
    } else {
        UBD_TRY(ubd_cpu_batchnorm_forward_eval(h->a, h->y, ae_p(m, h->g), ae_p(m, h->be), ae_b(m, h->rm),
                                               ae_b(m, h->rv), B, h->co, 1, UBD_AE_BN_EPS));
    }
    return ubd_cpu_act_forward(h->a, h->a, (size_t)B * h->co, UBD_ACT_LEAKY_RELU, UBD_AE_LEAKY);
}

ubd_status ae_head_backward(ae_head *h, ubd_ae *m, float *dx, const float *da, const float *x, int B) {
    size_t n = (size_t)B * h->co;
    float *dn = m->g2, *dy = m->g3;
    memset(dn, 0, n * sizeof(float));
    /* LeakyReLU keeps the sign, so its derivative at the output equals the one at the input */
    UBD_TRY(ubd_cpu_act_backward(dn, da, h->a, n, UBD_ACT_LEAKY_RELU, UBD_AE_LEAKY));
    memset(dy, 0, n * sizeof(float));
    UBD_TRY(ubd_cpu_batchnorm_backward(dy, ae_g(m, h->g), ae_g(m, h->be), dn, h->y, ae_p(m, h->g), h->mean, h->rstd,
                                       B, h->co, 1));
    return ubd_cpu_linear_backward(dx, ae_g(m, h->w), ae_g(m, h->b), dy, x, ae_p(m, h->w), B, h->ci, h->co);
}
