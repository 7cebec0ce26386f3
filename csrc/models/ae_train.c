/* ae_train.c — encode, decode and the training step of the co-latent
 * autoencoder (Eqs. 2-4 of the paper):
 *   l_a = gamma_l1 * L1 + gamma_mse * MSE  (means over elements)
 *   STEP1:  l = l_v,                trains E, head_v, D_v
 *   STEP2:  l = (1 - F) l_v + l_s;  F = 1 trains head_s, D_s only (E in eval
 *           mode, head_v/D_v not run: their parameters and BatchNorm statistics
 *           stay bit-identical); F = 0 trains everything
 *   WO_OPT: l = l_v + l_s on the pairs, everything trained (as STEP2, F = 0).
 *   SEIS_FIRST: l = l_s on the pairs, trains E, head_s, D_s (head_v/D_v not run);
 *   VEL_AFTER:  l = l_v, trains head_v, D_v with E in eval mode (head_s/D_s not
 *           run) -- together the seismic-first variant of the paper's Table 5
 *           (Eq. 3 before Eq. 2), each the mirror of STEP1 / STEP2 with F = 1.
 * The authors' scripts always run the whole VSNet in training mode. STEP1
 * therefore also runs fc_s + batch_norm_s (training mode, no backward), so
 * batch_norm_s's running statistics and num_batches_tracked after step 1 are
 * theirs; D_s is skipped (its output is not in the loss and it holds no
 * running statistics). STEP2 with F = 1 does not run D_v (l_v is not part of
 * the loss; head_v/D_v are in eval mode there, as theirs) and reports l_v as NaN.
 *
 * Host arrays cross to the model's backend once per call (ubd_stage_in: in
 * place on the CPU), the losses come back once per step, at the end of
 * forward_backward.
 */
#include <math.h>
#include <string.h>

#include "ae_internal.h"

static ubd_status check_batch(const ubd_ae *m, int B, int training) {
    UBD_REQUIRE(B >= 1, UBD_ERR_VALUE, "autoencoder: batch size must be positive, got %d", B);
    UBD_REQUIRE(B <= m->cfg.max_batch, UBD_ERR_VALUE,
                "autoencoder: batch size %d exceeds the model's max_batch %d (set at creation)", B,
                m->cfg.max_batch);
    UBD_REQUIRE(!training || B >= 2, UBD_ERR_VALUE,
                "autoencoder: training-mode BatchNorm needs a batch of at least 2 (got %d)", B);
    return UBD_OK;
}

static size_t vel_floats(int B) { return (size_t)B * UBD_AE_VEL * UBD_AE_VEL; }

ubd_status ubd_ae_encode(ubd_ae *m, float *z_out, const float *vel, int B, int training) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(z_out);
    UBD_REQUIRE_PTR(vel);
    UBD_TRY(check_batch(m, B, training));
    const float *x;
    UBD_TRY(ubd_stage_in(m->be, &x, m->vel_in, vel, vel_floats(B)));
    UBD_TRY(ae_encoder_forward(m, x, B, training != 0));
    return m->be->copy(z_out, ae_encoder_output(m), (size_t)B * m->cfg.latent * sizeof(float), UBD_D2H);
}

ubd_status ubd_ae_decode(ubd_ae *m, float *vel_out, float *seis_out, const float *z_host, int B) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(z_host);
    UBD_TRY(check_batch(m, B, 0));
    const ubd_backend *be = m->be;
    const float *z;
    UBD_TRY(ubd_stage_in(be, &z, m->z_in, z_host, (size_t)B * m->cfg.latent));
    if (vel_out) {
        UBD_TRY(ae_head_forward(&m->hv, m, z, B, 0));
        UBD_TRY(ae_veldec_forward(m, m->hv.a, B, 0));
        UBD_TRY(be->copy(vel_out, ae_veldec_output(m), vel_floats(B) * sizeof(float), UBD_D2H));
    }
    if (seis_out) {
        float *out = ubd_stage_out(be, m->ds.out, seis_out); /* on the CPU straight into seis_out */
        UBD_TRY(ae_head_forward(&m->hs, m, z, B, 0));
        UBD_TRY(ae_seisdec_forward(m, out, m->hs.a, B));
        UBD_TRY(be->copy(seis_out, out, (size_t)B * m->ds.nout * sizeof(float), UBD_D2H));
    }
    return UBD_OK;
}

/* Which groups a mode trains, as a bit mask of (1 << ubd_ae_group). */
static unsigned trained_groups(ubd_ae_mode mode, int F) {
    const unsigned E = 1u << UBD_AE_ENC, V = (1u << UBD_AE_HEAD_V) | (1u << UBD_AE_DEC_V),
                   S = (1u << UBD_AE_HEAD_S) | (1u << UBD_AE_DEC_S);
    if (mode == UBD_AE_STEP1) return E | V;
    if (mode == UBD_AE_STEP2 && F) return S;
    if (mode == UBD_AE_SEIS_FIRST) return E | S;
    if (mode == UBD_AE_VEL_AFTER) return V;
    return E | V | S;
}

static ubd_status check_mode(ubd_ae_mode mode) {
    UBD_REQUIRE(mode >= UBD_AE_STEP1 && mode <= UBD_AE_VEL_AFTER, UBD_ERR_VALUE,
                "autoencoder: unknown training mode %d (1: step1, 2: step2, 3: w/o opt, 4: seismic first, "
                "5: velocity after)", (int)mode);
    return UBD_OK;
}

/* The range spans the first to the last trained group. SEIS_FIRST's groups
 * [E | head_s | D_s] are not contiguous: its range also holds head_v and D_v,
 * whose gradient forward_backward zeroes too (so an all-reduce of the range
 * sums zeros there) and apply_update leaves alone. */
ubd_status ubd_ae_trained_range(const ubd_ae *m, ubd_ae_mode mode, int freeze, size_t *off, size_t *n) {
    UBD_REQUIRE_PTR(m);
    UBD_TRY(check_mode(mode));
    const unsigned groups = trained_groups(mode, (mode == UBD_AE_STEP2) && freeze);
    int lo = UBD_AE_NGROUPS, hi = 0;
    for (int g = 0; g < UBD_AE_NGROUPS; g++)
        if ((groups >> g) & 1) {
            if (g < lo) lo = g;
            hi = g + 1;
        }
    if (off) *off = m->group_off[lo];
    if (n) *n = m->group_off[hi - 1] + m->group_n[hi - 1] - m->group_off[lo];
    return UBD_OK;
}

ubd_status ae_modality_loss(const ubd_backend *be, float *l1, float *mse, float *dpred, const float *pred,
                                const float *target, size_t n, float g1, float g2) {
    UBD_TRY(be->l1_forward(l1, pred, target, n));
    UBD_TRY(be->mse_forward(mse, pred, target, n));
    UBD_TRY(be->zero(dpred, n));
    if (g1 != 0.0f) UBD_TRY(be->l1_backward(dpred, pred, target, n, g1));
    if (g2 != 0.0f) UBD_TRY(be->mse_backward(dpred, pred, target, n, g2));
    return UBD_OK;
}

ubd_status ubd_ae_forward_backward(ubd_ae *m, float *losses, const float *vel_host, const float *seis_host, int B,
                                   ubd_ae_mode mode, int freeze, const ubd_ae_hparams *hp) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(losses);
    UBD_REQUIRE_PTR(vel_host);
    UBD_REQUIRE_PTR(hp);
    UBD_TRY(check_mode(mode));
    UBD_REQUIRE(mode == UBD_AE_STEP1 || mode == UBD_AE_VEL_AFTER || seis_host != NULL, UBD_ERR_VALUE,
                "autoencoder: this training mode needs the seismic records (seis is NULL)");
    UBD_TRY(check_batch(m, B, 1));
    const float g[4] = {hp->l1_v, hp->mse_v, hp->l1_s, hp->mse_s};
    for (int i = 0; i < 4; i++) /* before anything changes (running statistics) */
        UBD_REQUIRE(isfinite(g[i]) && g[i] >= 0.0f, UBD_ERR_VALUE,
                    "autoencoder: loss weights (gammas l1_v, mse_v, l1_s, mse_s) must be finite and >= 0, got %g",
                    (double)g[i]);
    const ubd_backend *be = m->be;
    const int F = (mode == UBD_AE_STEP2) && freeze;
    const unsigned groups = trained_groups(mode, F);
    const int train_e = (groups >> UBD_AE_ENC) & 1;   /* E trained (training-mode BN) */
    const int train_v = (groups >> UBD_AE_DEC_V) & 1; /* head_v, D_v trained; l_v computed */
    const int need_s = (groups >> UBD_AE_DEC_S) & 1;  /* head_s, D_s trained; l_s computed */
    const int run_hs = mode != UBD_AE_VEL_AFTER;      /* head_s forward (step 1: BN statistics) */
    for (int i = 0; i < UBD_AE_NLOSSES; i++) losses[i] = NAN;
    const size_t nvel = vel_floats(B), nseis = (size_t)B * m->ds.nout;
    const float *vel, *seis = NULL;
    UBD_TRY(ubd_stage_in(be, &vel, m->vel_in, vel_host, nvel));
    if (need_s) UBD_TRY(ubd_stage_in(be, &seis, m->seis_in, seis_host, nseis));
    size_t off, n;
    UBD_TRY(ubd_ae_trained_range(m, mode, freeze, &off, &n));
    UBD_TRY(be->zero(m->params.buf[UBD_BUF_GRAD] + off, n));

    UBD_TRY(ae_encoder_forward(m, vel, B, train_e));
    const float *z = ae_encoder_output(m);
    if (train_v) {
        UBD_TRY(ae_head_forward(&m->hv, m, z, B, 1));
        UBD_TRY(ae_veldec_forward(m, m->hv.a, B, 1));
        UBD_TRY(ae_modality_loss(be, &m->loss[AE_L1_V], &m->loss[AE_MSE_V], m->dvel, ae_veldec_output(m), vel, nvel,
                              hp->l1_v, hp->mse_v));
    }
    /* head_s also in step 1, for batch_norm_s's running statistics only (the authors' full forward) */
    if (run_hs) UBD_TRY(ae_head_forward(&m->hs, m, z, B, 1));
    if (need_s) {
        UBD_TRY(ae_seisdec_forward(m, NULL, m->hs.a, B));
        UBD_TRY(ae_modality_loss(be, &m->loss[AE_L1_S], &m->loss[AE_MSE_S], m->dseis, m->ds.out, seis, nseis, hp->l1_s,
                              hp->mse_s));
    }

    if (train_e) UBD_TRY(be->zero(m->dz, (size_t)B * m->cfg.latent));
    if (need_s) {
        UBD_TRY(be->zero(m->dhs, (size_t)B * m->hs.co));
        UBD_TRY(ae_seisdec_backward(m, m->dhs, m->dseis, m->hs.a, B));
        UBD_TRY(ae_head_backward(&m->hs, m, train_e ? m->dz : NULL, m->dhs, z, B));
    }
    if (train_v) {
        UBD_TRY(be->zero(m->dhv, (size_t)B * m->hv.co));
        UBD_TRY(ae_veldec_backward(m, m->dhv, m->dvel, m->hv.a, B));
        UBD_TRY(ae_head_backward(&m->hv, m, train_e ? m->dz : NULL, m->dhv, z, B));
    }
    if (train_e) UBD_TRY(ae_encoder_backward(m, m->dz, vel, B));

    /* the step's one read-back: the four loss terms, combined on the host */
    float l[AE_NSCALARS];
    UBD_TRY(be->copy(l, m->loss, sizeof l, UBD_D2H));
    float lv = 0.0f, ls = 0.0f;
    if (train_v) {
        lv = hp->l1_v * l[AE_L1_V] + hp->mse_v * l[AE_MSE_V];
        losses[UBD_AE_L1_V] = l[AE_L1_V];
        losses[UBD_AE_MSE_V] = l[AE_MSE_V];
        losses[UBD_AE_LOSS_V] = lv;
    }
    if (need_s) {
        ls = hp->l1_s * l[AE_L1_S] + hp->mse_s * l[AE_MSE_S];
        losses[UBD_AE_L1_S] = l[AE_L1_S];
        losses[UBD_AE_MSE_S] = l[AE_MSE_S];
        losses[UBD_AE_LOSS_S] = ls;
    }
    losses[UBD_AE_LOSS_TOTAL] = (train_v ? lv : 0.0f) + (need_s ? ls : 0.0f);
    return UBD_OK;
}

ubd_status ubd_ae_apply_update(ubd_ae *m, ubd_ae_mode mode, int freeze, const ubd_adam_hparams *adam) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(adam);
    UBD_TRY(check_mode(mode));
    UBD_TRY(ubd_adam_check("autoencoder", *adam)); /* before any step counter moves */
    const unsigned groups = trained_groups(mode, (mode == UBD_AE_STEP2) && freeze);
    ubd_params *P = &m->params;
    ubd_ae_forget_forward(m); /* the weights move: E's saved forward is the old weights' */
    for (int g = 0; g < UBD_AE_NGROUPS; g++) {
        if (!((groups >> g) & 1)) continue;
        size_t off = m->group_off[g];
        m->steps[g]++;
        UBD_TRY(m->be->adam_update(P->buf[UBD_BUF_PARAM] + off, P->buf[UBD_BUF_M] + off, P->buf[UBD_BUF_V] + off,
                                   P->buf[UBD_BUF_GRAD] + off, m->group_n[g], *adam, m->steps[g]));
    }
    return UBD_OK;
}

ubd_status ubd_ae_train_step(ubd_ae *m, float *losses, const float *vel, const float *seis, int B, ubd_ae_mode mode,
                             int freeze, const ubd_ae_hparams *hp) {
    UBD_REQUIRE_PTR(hp);
    UBD_TRY(ubd_adam_check("autoencoder", hp->adam)); /* before the forward pass moves any statistics */
    UBD_TRY(ubd_ae_forward_backward(m, losses, vel, seis, B, mode, freeze, hp));
    for (int i = 0; i < UBD_AE_NLOSSES; i++)
        if (!isnan(losses[i]))
            UBD_REQUIRE(isfinite(losses[i]), UBD_ERR_RUNTIME,
                        "autoencoder: non-finite loss (%g); parameters left unchanged", (double)losses[i]);
    return ubd_ae_apply_update(m, mode, freeze, &hp->adam);
}
