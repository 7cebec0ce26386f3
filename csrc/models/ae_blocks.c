/* ae_blocks.c — the two repeated units of the autoencoder:
 *  - conv block: Conv2d or ConvTranspose2d + BatchNorm2d + ReLU/Tanh (the
 *    authors' ConvBlock, DeconvBlock, ConvBlock_Tanh), computed by the shared
 *    block2d (block2d.h, also InversionNet's); this file adds the parameter
 *    offsets and PyTorch's num_batches_tracked counter;
 *  - head: Linear + BatchNorm over features + LeakyReLU(0.2) (fc_v/fc_s).
 * With m->bn_sync set (ubd_ae_set_bn_sync) every training-mode BatchNorm takes
 * its statistics over all ranks: block2d through its k.bn_sync hook, the heads
 * through the same syncbn.c routines (features = channels, S = 1). Host memory.
 * Backward is only ever run through training-mode BatchNorm: frozen parts
 * (eval-mode BN) are never differentiated.
 * Scratch: m->g2 (block2d's dy; the heads' dn) and m->g3 (the heads' dy);
 * callers use g0/g1 for the chain. */
#include "ae_internal.h"

static ubd_block2d_weights block_weights(ubd_ae *m, const ae_block *k) {
    return (ubd_block2d_weights){ae_p(m, k->w), ae_p(m, k->b), ae_p(m, k->g), ae_p(m, k->beta)};
}

/* The workspace was sized for max_batch; make sure it holds for B too. */
static ubd_status check_work(const ae_block *k, const ubd_ae *m, int B) {
    size_t need = ubd_block2d_workspace(&k->k, B);
    UBD_REQUIRE(need <= m->work_n, UBD_ERR_RUNTIME, "autoencoder: conv workspace %zu < %zu needed", m->work_n, need);
    return UBD_OK;
}

/* PyTorch's BatchNorm counts its training-mode forwards (a float here): nbt += 1. */
static ubd_status count_batch(ubd_ae *m, size_t nbt) { return m->be->axpy(ae_b(m, nbt), m->one, 1, 1.0f); }

ubd_status ae_block_forward(ae_block *k, ubd_ae *m, const float *x, int B, int training) {
    UBD_TRY(check_work(k, m, B));
    const ubd_block2d_weights w = block_weights(m, k);
    if (!training)
        return ubd_block2d_forward_eval(m->be, k->a, k->z, x, w, ae_b(m, k->rm), ae_b(m, k->rv), m->work, &k->k, B);
    UBD_TRY(ubd_block2d_forward_train(m->be, k->a, k->z, k->y, k->mean, k->rstd, ae_b(m, k->rm), ae_b(m, k->rv), x, w,
                                      m->work, &k->k, B));
    return count_batch(m, k->nbt);
}

ubd_status ae_block_backward(ae_block *k, ubd_ae *m, float *dx, float *da, const float *x, int B) {
    UBD_TRY(check_work(k, m, B));
    const ubd_block2d_grads g = {ae_g(m, k->w), ae_g(m, k->b), ae_g(m, k->g), ae_g(m, k->beta)};
    return ubd_block2d_backward(m->be, dx, g, da, m->g2, x, k->z, k->y, k->a, k->mean, k->rstd, block_weights(m, k),
                                m->work, &k->k, B);
}

ubd_status ae_head_forward(ae_head *h, ubd_ae *m, const float *x, int B, int training) {
    const ubd_backend *be = m->be;
    UBD_TRY(be->linear_forward(h->y, x, ae_p(m, h->w), ae_p(m, h->b), B, h->ci, h->co));
    if (training) {
        if (m->bn_sync.fn)
            UBD_TRY(ubd_syncbn_forward_train(h->a, h->mean, h->rstd, ae_b(m, h->rm), ae_b(m, h->rv), h->y,
                                             ae_p(m, h->g), ae_p(m, h->beta), B, h->co, 1, UBD_AE_BN_MOMENTUM,
                                             UBD_AE_BN_EPS, &m->bn_sync));
        else
            UBD_TRY(be->batchnorm_forward_train(h->a, h->mean, h->rstd, ae_b(m, h->rm), ae_b(m, h->rv), h->y,
                                                ae_p(m, h->g), ae_p(m, h->beta), B, h->co, 1, UBD_AE_BN_MOMENTUM,
                                                UBD_AE_BN_EPS));
        UBD_TRY(count_batch(m, h->nbt));
    } else {
        UBD_TRY(be->batchnorm_forward_eval(h->a, h->y, ae_p(m, h->g), ae_p(m, h->beta), ae_b(m, h->rm),
                                           ae_b(m, h->rv), B, h->co, 1, UBD_AE_BN_EPS));
    }
    return be->act_forward(h->a, h->a, (size_t)B * h->co, UBD_ACT_LEAKY_RELU, UBD_AE_LEAKY);
}

ubd_status ae_head_backward(ae_head *h, ubd_ae *m, float *dx, const float *da, const float *x, int B) {
    const ubd_backend *be = m->be;
    size_t n = (size_t)B * h->co;
    float *dn = m->g2, *dy = m->g3;
    UBD_TRY(be->zero(dn, n));
    /* LeakyReLU keeps the sign, so its derivative at the output equals the one at the input */
    UBD_TRY(be->act_backward(dn, da, h->a, n, UBD_ACT_LEAKY_RELU, UBD_AE_LEAKY));
    UBD_TRY(be->zero(dy, n));
    if (m->bn_sync.fn)
        UBD_TRY(ubd_syncbn_backward(dy, ae_g(m, h->g), ae_g(m, h->beta), dn, h->y, ae_p(m, h->g), h->mean, h->rstd, B,
                                    h->co, 1, &m->bn_sync));
    else
        UBD_TRY(be->batchnorm_backward(dy, ae_g(m, h->g), ae_g(m, h->beta), dn, h->y, ae_p(m, h->g), h->mean,
                                       h->rstd, B, h->co, 1));
    return be->linear_backward(dx, ae_g(m, h->w), ae_g(m, h->b), dy, x, ae_p(m, h->w), B, h->ci, h->co);
}
