/* ae_latent.c — the co-latent autoencoder's parts driven from outside, for
 * the baselines of issue 11 whose latent does not come from E alone:
 *   SD-seismic:   z = E_s(seismic) (csrc/models/seis_encoder.h) -> head_s + D_s;
 *   MT-Diffusion: z = aggregate(E(velocity), E_s(seismic)) -> both heads + decoders.
 * ubd_ae_decode_backward runs heads and decoders in training mode on a given z
 * and hands back dl/dz; ubd_ae_encode_backward takes a dl/dz into E after a
 * training-mode ubd_ae_encode. The caller zeroes gradients and applies the
 * update (ubd_ae_apply_update) over the groups it trained.
 */
#include <math.h>

#include "ae_internal.h"

static ubd_status check_batch(const ubd_ae *m, int B) {
    UBD_REQUIRE(B >= 2, UBD_ERR_VALUE, "autoencoder: training-mode BatchNorm needs a batch of at least 2 (got %d)", B);
    UBD_REQUIRE(B <= m->cfg.max_batch, UBD_ERR_VALUE,
                "autoencoder: batch size %d exceeds the model's max_batch %d (set at creation)", B, m->cfg.max_batch);
    return UBD_OK;
}

ubd_status ubd_ae_decode_backward(ubd_ae *m, float *losses, float *dz_out, const float *z_host, const float *vel_host,
                                  const float *seis_host, int B, const ubd_ae_hparams *hp) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(losses);
    UBD_REQUIRE_PTR(dz_out);
    UBD_REQUIRE_PTR(z_host);
    UBD_REQUIRE_PTR(hp);
    UBD_REQUIRE(vel_host || seis_host, UBD_ERR_VALUE, "autoencoder decode_backward: give vel, seis or both");
    UBD_TRY(check_batch(m, B));
    const float g[4] = {hp->l1_v, hp->mse_v, hp->l1_s, hp->mse_s};
    for (int i = 0; i < 4; i++) /* before anything changes (running statistics) */
        UBD_REQUIRE(isfinite(g[i]) && g[i] >= 0.0f, UBD_ERR_VALUE,
                    "autoencoder: loss weights (gammas l1_v, mse_v, l1_s, mse_s) must be finite and >= 0, got %g",
                    (double)g[i]);
    const ubd_backend *be = m->be;
    const size_t nz = (size_t)B * m->cfg.latent, nvel = (size_t)B * UBD_AE_VEL * UBD_AE_VEL,
                 nseis = (size_t)B * m->ds.nout;
    for (int i = 0; i < UBD_AE_NLOSSES; i++) losses[i] = NAN;
    const float *z, *vel = NULL, *seis = NULL;
    UBD_TRY(ubd_stage_in(be, &z, m->z_in, z_host, nz)); /* (B, latent) */
    if (vel_host) UBD_TRY(ubd_stage_in(be, &vel, m->vel_in, vel_host, nvel));
    if (seis_host) UBD_TRY(ubd_stage_in(be, &seis, m->seis_in, seis_host, nseis));
    UBD_TRY(be->zero(m->dz, nz));
    if (vel) { /* head_v + D_v, training mode, l_v, backward into dz */
        UBD_TRY(ae_head_forward(&m->hv, m, z, B, 1));
        UBD_TRY(ae_veldec_forward(m, m->hv.a, B, 1));
        UBD_TRY(ae_modality_loss(be, &m->loss[AE_L1_V], &m->loss[AE_MSE_V], m->dvel, ae_veldec_output(m), vel, nvel,
                                 hp->l1_v, hp->mse_v));
        UBD_TRY(be->zero(m->dhv, (size_t)B * m->hv.co));
        UBD_TRY(ae_veldec_backward(m, m->dhv, m->dvel, m->hv.a, B));
        UBD_TRY(ae_head_backward(&m->hv, m, m->dz, m->dhv, z, B));
    }
    if (seis) { /* head_s + D_s, training mode, l_s, backward into dz */
        UBD_TRY(ae_head_forward(&m->hs, m, z, B, 1));
        UBD_TRY(ae_seisdec_forward(m, NULL, m->hs.a, B));
        UBD_TRY(ae_modality_loss(be, &m->loss[AE_L1_S], &m->loss[AE_MSE_S], m->dseis, m->ds.out, seis, nseis,
                                 hp->l1_s, hp->mse_s));
        UBD_TRY(be->zero(m->dhs, (size_t)B * m->hs.co));
        UBD_TRY(ae_seisdec_backward(m, m->dhs, m->dseis, m->hs.a, B));
        UBD_TRY(ae_head_backward(&m->hs, m, m->dz, m->dhs, z, B));
    }
    UBD_TRY(be->copy(dz_out, m->dz, nz * sizeof(float), UBD_D2H));
    float l[AE_NSCALARS]; /* the call's one read-back of the loss terms */
    UBD_TRY(be->copy(l, m->loss, sizeof l, UBD_D2H));
    float total = 0.0f;
    if (vel) {
        losses[UBD_AE_L1_V] = l[AE_L1_V];
        losses[UBD_AE_MSE_V] = l[AE_MSE_V];
        losses[UBD_AE_LOSS_V] = hp->l1_v * l[AE_L1_V] + hp->mse_v * l[AE_MSE_V];
        total += losses[UBD_AE_LOSS_V];
    }
    if (seis) {
        losses[UBD_AE_L1_S] = l[AE_L1_S];
        losses[UBD_AE_MSE_S] = l[AE_MSE_S];
        losses[UBD_AE_LOSS_S] = hp->l1_s * l[AE_L1_S] + hp->mse_s * l[AE_MSE_S];
        total += losses[UBD_AE_LOSS_S];
    }
    losses[UBD_AE_LOSS_TOTAL] = total;
    return UBD_OK;
}

ubd_status ubd_ae_encode_backward(ubd_ae *m, const float *dz_host, const float *vel_host, int B) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(dz_host);
    UBD_REQUIRE_PTR(vel_host);
    UBD_TRY(check_batch(m, B));
    UBD_REQUIRE(m->enc_train_B == B, UBD_ERR_VALUE,
                "autoencoder: encode_backward needs a training-mode encode of the same batch first (last: %d, now: %d)",
                m->enc_train_B, B);
    const ubd_backend *be = m->be;
    const float *vel;
    UBD_TRY(ubd_stage_in(be, &vel, m->vel_in, vel_host, (size_t)B * UBD_AE_VEL * UBD_AE_VEL));
    UBD_TRY(be->copy(m->dz, dz_host, (size_t)B * m->cfg.latent * sizeof(float), UBD_H2D)); /* clobbered below */
    return ae_encoder_backward(m, m->dz, vel, B);
}
