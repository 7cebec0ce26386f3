/* featnet.c — the feature CNN of featnet.h: forward, backward, training step.
 *
 * Per block the forward keeps z (the conv output, BatchNorm's input) and a
 * (the block output); BatchNorm writes into a and ReLU runs in place there.
 * ReLU's derivative is read off its output (a > 0 exactly where its input
 * was > 0), so BatchNorm's output need not be kept. Backward walks the
 * blocks with two ping-pong gradient buffers. */
#include "featnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "norm.h"
#include "ops.h"
#include "xent.h"

#define ALIGN_FLOATS 16 /* 64-byte alignment of every arena buffer */

static size_t round_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static ubd_conv2d_shape block_shape(const ubd_featnet_config *cfg, int l, int C, int H, int W, int B) {
    const ubd_featnet_block *k = &cfg->blocks[l];
    ubd_conv2d_shape s = {B, C, H, W, k->OC, k->KH, k->KW, k->SH, k->SW, k->PH, k->PW};
    return s;
}

ubd_status ubd_featnet_check(const ubd_featnet_config *cfg) {
    UBD_REQUIRE_PTR(cfg);
    UBD_REQUIRE_POSITIVE(cfg->C);
    UBD_REQUIRE_POSITIVE(cfg->H);
    UBD_REQUIRE_POSITIVE(cfg->W);
    UBD_REQUIRE(cfg->nblocks >= 1 && cfg->nblocks <= UBD_FEATNET_MAX_BLOCKS, UBD_ERR_VALUE,
                "featnet: nblocks must lie in [1, %d], got %d", UBD_FEATNET_MAX_BLOCKS, cfg->nblocks);
    UBD_REQUIRE_POSITIVE(cfg->n_classes);
    UBD_REQUIRE(cfg->n_reg >= 0, UBD_ERR_VALUE, "featnet: n_reg must be >= 0, got %d", cfg->n_reg);
    UBD_REQUIRE_POSITIVE(cfg->max_batch);
    UBD_REQUIRE(cfg->bn_momentum >= 0.0f && cfg->bn_momentum <= 1.0f, UBD_ERR_VALUE,
                "featnet: bn_momentum must lie in [0, 1], got %g", cfg->bn_momentum);
    UBD_REQUIRE(cfg->bn_eps > 0.0f, UBD_ERR_VALUE, "featnet: bn_eps must be positive, got %g", cfg->bn_eps);
    int C = cfg->C, H = cfg->H, W = cfg->W;
    for (int l = 0; l < cfg->nblocks; l++) {
        int OH, OW;
        ubd_status s = ubd_conv2d_check(block_shape(cfg, l, C, H, W, 1), &OH, &OW);
        if (s != UBD_OK) {
            char msg[256]; /* copied: ubd_fail rewrites the buffer ubd_last_error() points to */
            snprintf(msg, sizeof msg, "%s", ubd_last_error());
            return ubd_fail(s, "featnet block %d: %s", l, msg);
        }
        C = cfg->blocks[l].OC;
        H = OH;
        W = OW;
    }
    return UBD_OK;
}

static ubd_status add(ubd_params *p, size_t *off, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                      const char *fmt, int l) {
    char name[UBD_MAX_NAME];
    snprintf(name, sizeof name, fmt, l);
    int64_t shape[4] = {d0, d1, d2, d3};
    return ubd_params_add(p, name, ndim, shape, off);
}

/* Adds the views and fills the offsets of m (when not NULL). */
static ubd_status tables(ubd_params *params, ubd_params *stats, const ubd_featnet_config *cfg, ubd_featnet *m) {
    UBD_TRY(ubd_featnet_check(cfg));
    size_t o, *w = &o, *g = &o, *b = &o, *rm = &o, *rv = &o;
    int C = cfg->C;
    for (int l = 0; l < cfg->nblocks; l++) {
        const ubd_featnet_block *k = &cfg->blocks[l];
        if (m) w = &m->w[l], g = &m->gamma[l], b = &m->beta[l], rm = &m->rmean[l], rv = &m->rvar[l];
        UBD_TRY(add(params, w, 4, k->OC, C, k->KH, k->KW, "blocks.%d.conv.weight", l));
        UBD_TRY(add(params, g, 1, k->OC, 0, 0, 0, "blocks.%d.bn.weight", l));
        UBD_TRY(add(params, b, 1, k->OC, 0, 0, 0, "blocks.%d.bn.bias", l));
        UBD_TRY(add(stats, rm, 1, k->OC, 0, 0, 0, "blocks.%d.bn.running_mean", l));
        UBD_TRY(add(stats, rv, 1, k->OC, 0, 0, 0, "blocks.%d.bn.running_var", l));
        C = k->OC;
    }
    const int F = C, K = cfg->n_classes, R = cfg->n_reg;
    UBD_TRY(add(params, m ? &m->cls_w : &o, 2, K, F, 0, 0, "head.cls.weight", 0));
    UBD_TRY(add(params, m ? &m->cls_b : &o, 1, K, 0, 0, 0, "head.cls.bias", 0));
    if (R > 0) {
        UBD_TRY(add(params, m ? &m->reg_w : &o, 2, R, F, 0, 0, "head.reg.weight", 0));
        UBD_TRY(add(params, m ? &m->reg_b : &o, 1, R, 0, 0, 0, "head.reg.bias", 0));
    }
    return UBD_OK;
}

ubd_status ubd_featnet_tables(ubd_params *params, ubd_params *stats, const ubd_featnet_config *cfg) {
    UBD_REQUIRE_PTR(params);
    UBD_REQUIRE_PTR(stats);
    return tables(params, stats, cfg, NULL);
}

void ubd_featnet_free(ubd_featnet *m) {
    if (!m) return;
    ubd_params_free(&m->params);
    ubd_params_free(&m->stats);
    free(m->arena);
    free(m);
}

ubd_status ubd_featnet_create(ubd_featnet **out, const ubd_featnet_config *cfg) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_TRY(ubd_featnet_check(cfg));
    ubd_featnet *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "featnet: out of memory");
    m->cfg = *cfg;
    ubd_params_init(&m->params);
    ubd_params_init(&m->stats);
    ubd_status s = tables(&m->params, &m->stats, cfg, m);
    for (int k = UBD_BUF_PARAM; s == UBD_OK && k <= UBD_BUF_V; k++) s = ubd_params_alloc(&m->params, (ubd_buf_kind)k);
    if (s == UBD_OK) s = ubd_params_alloc(&m->stats, UBD_BUF_PARAM);
    if (s != UBD_OK) {
        ubd_featnet_free(m);
        return s;
    }

    /* geometry, then the sizes of every buffer */
    const size_t NB = (size_t)cfg->max_batch;
    int C = cfg->C, H = cfg->H, W = cfg->W;
    size_t act[UBD_FEATNET_MAX_BLOCKS], total = 0;
    m->gsize = 0;
    m->wsize = 0;
    for (int l = 0; l < cfg->nblocks; l++) {
        m->conv[l] = block_shape(cfg, l, C, H, W, cfg->max_batch);
        ubd_conv2d_check(m->conv[l], &m->OH[l], &m->OW[l]); /* passed in ubd_featnet_check */
        /* the conv plan depends on B, so take the largest workspace any batch needs */
        for (int b = 1; b <= cfg->max_batch; b++) {
            ubd_conv2d_shape sb = m->conv[l];
            sb.B = b;
            size_t ws = ubd_conv2d_workspace(sb);
            if (ws > m->wsize) m->wsize = ws;
        }
        C = cfg->blocks[l].OC;
        H = m->OH[l];
        W = m->OW[l];
        act[l] = NB * C * H * W;
        if (act[l] > m->gsize) m->gsize = act[l];
        total += 2 * round_up(act[l]) + 2 * round_up(C);
    }
    m->F = C;
    const size_t F = C, K = cfg->n_classes, R = cfg->n_reg;
    total += 2 * round_up(NB * F) + 3 * round_up(NB * K) + 2 * round_up(NB * R + 1);
    total += 2 * round_up(m->gsize) + round_up(m->wsize + 1);
    m->arena = aligned_alloc(64, total * sizeof(float));
    if (!m->arena) {
        ubd_featnet_free(m);
        return ubd_fail(UBD_ERR_MEMORY, "featnet: cannot allocate %zu MB of activations", total * 4 >> 20);
    }
    memset(m->arena, 0, total * sizeof(float));
    float *p = m->arena;
#define TAKE(ptr, n)          \
    do {                      \
        (ptr) = p;            \
        p += round_up(n);     \
    } while (0)
    for (int l = 0; l < cfg->nblocks; l++) {
        TAKE(m->z[l], act[l]);
        TAKE(m->a[l], act[l]);
        TAKE(m->mean[l], (size_t)cfg->blocks[l].OC);
        TAKE(m->rstd[l], (size_t)cfg->blocks[l].OC);
    }
    TAKE(m->feat, NB * F);
    TAKE(m->dfeat, NB * F);
    TAKE(m->logits, NB * K);
    TAKE(m->probs, NB * K);
    TAKE(m->dlogits, NB * K);
    TAKE(m->reg, NB * R + 1);
    TAKE(m->dreg, NB * R + 1);
    TAKE(m->g[0], m->gsize);
    TAKE(m->g[1], m->gsize);
    TAKE(m->work, m->wsize + 1);
#undef TAKE
    *out = m;
    return UBD_OK;
}

ubd_status ubd_featnet_init(ubd_featnet *m, uint64_t seed) {
    UBD_REQUIRE_PTR(m);
    float *P = m->params.buf[UBD_BUF_PARAM];
    for (int i = 0; i < m->params.nviews; i++) {
        const ubd_view *v = &m->params.views[i];
        float *t = P + v->offset;
        const char *nm = v->name;
        size_t len = strlen(nm);
        if (len > 12 && strcmp(nm + len - 12, ".conv.weight") == 0) {
            /* He normal: keeps the activation scale through ReLU (fan_in = C KH KW) */
            double fan_in = (double)v->shape[1] * v->shape[2] * v->shape[3];
            UBD_TRY(ubd_cpu_rand_normal(t, v->size, seed, (uint64_t)i, 0));
            const float sd = (float)sqrt(2.0 / fan_in);
            for (size_t j = 0; j < v->size; j++) t[j] *= sd;
        } else if (strstr(nm, ".bn.weight")) {
            for (size_t j = 0; j < v->size; j++) t[j] = 1.0f;
        } else if (v->ndim == 2) { /* head weight: torch's Linear default U(+-1/sqrt(F)) */
            UBD_TRY(ubd_cpu_rand_uniform(t, v->size, seed, (uint64_t)i, 0));
            const float bound = 1.0f / sqrtf((float)v->shape[1]);
            for (size_t j = 0; j < v->size; j++) t[j] = (2.0f * t[j] - 1.0f) * bound;
        } else {
            memset(t, 0, v->size * sizeof(float)); /* BN beta, head biases */
        }
    }
    float *S = m->stats.buf[UBD_BUF_PARAM];
    for (int l = 0; l < m->cfg.nblocks; l++)
        for (int c = 0; c < m->cfg.blocks[l].OC; c++) {
            S[m->rmean[l] + c] = 0.0f;
            S[m->rvar[l] + c] = 1.0f;
        }
    for (int k = UBD_BUF_GRAD; k <= UBD_BUF_V; k++) memset(m->params.buf[k], 0, m->params.n * sizeof(float));
    m->step = 0;
    m->last_train_B = 0;
    return UBD_OK;
}

static ubd_status check_batch(const ubd_featnet *m, int B) {
    UBD_REQUIRE(B >= 1 && B <= m->cfg.max_batch, UBD_ERR_VALUE, "featnet: batch %d outside [1, max_batch = %d]", B,
                m->cfg.max_batch);
    return UBD_OK;
}

ubd_status ubd_featnet_forward(ubd_featnet *m, float *feat, float *logits, float *reg, const float *x, int B,
                               int train) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(x);
    UBD_TRY(check_batch(m, B));
    /* BatchNorm's training statistics need more than one value per channel */
    const int L = m->cfg.nblocks;
    UBD_REQUIRE(!train || (long long)B * m->OH[L - 1] * m->OW[L - 1] > 1, UBD_ERR_VALUE,
                "featnet: a training batch of %d gives one value per channel in the last block; use B >= 2", B);
    const float *P = m->params.buf[UBD_BUF_PARAM];
    float *S = m->stats.buf[UBD_BUF_PARAM];
    m->last_train_B = 0;
    const float *in = x;
    for (int l = 0; l < L; l++) {
        ubd_conv2d_shape s = m->conv[l];
        s.B = B;
        const int OC = s.OC, HW = m->OH[l] * m->OW[l];
        UBD_TRY(ubd_cpu_conv2d_forward(m->z[l], in, P + m->w[l], NULL, m->work, s));
        if (train)
            UBD_TRY(ubd_cpu_batchnorm_forward_train(m->a[l], m->mean[l], m->rstd[l], S + m->rmean[l], S + m->rvar[l],
                                                    m->z[l], P + m->gamma[l], P + m->beta[l], B, OC, HW,
                                                    m->cfg.bn_momentum, m->cfg.bn_eps));
        else
            UBD_TRY(ubd_cpu_batchnorm_forward_eval(m->a[l], m->z[l], P + m->gamma[l], P + m->beta[l],
                                                   S + m->rmean[l], S + m->rvar[l], B, OC, HW, m->cfg.bn_eps));
        const size_t n = (size_t)B * OC * HW;
        UBD_TRY(ubd_cpu_act_forward(m->a[l], m->a[l], n, UBD_ACT_RELU, 0.0f));
        in = m->a[l];
    }
    /* global average pooling: feat (B, F) */
    const int F = m->F, HW = m->OH[L - 1] * m->OW[L - 1];
    const float *last = m->a[L - 1];
#pragma omp parallel for schedule(static) if ((long long)B * F * HW > 65536)
    for (int i = 0; i < B * F; i++) {
        const float *r = last + (size_t)i * HW;
        double s = 0.0;
        for (int j = 0; j < HW; j++) s += r[j];
        m->feat[i] = (float)(s / HW);
    }
    const int K = m->cfg.n_classes, R = m->cfg.n_reg;
    UBD_TRY(ubd_cpu_linear_forward(m->logits, m->feat, P + m->cls_w, P + m->cls_b, B, F, K));
    if (R > 0) UBD_TRY(ubd_cpu_linear_forward(m->reg, m->feat, P + m->reg_w, P + m->reg_b, B, F, R));
    if (feat) memcpy(feat, m->feat, (size_t)B * F * sizeof(float));
    if (logits) memcpy(logits, m->logits, (size_t)B * K * sizeof(float));
    if (reg && R > 0) memcpy(reg, m->reg, (size_t)B * R * sizeof(float));
    if (train) m->last_train_B = B;
    return UBD_OK;
}

ubd_status ubd_featnet_backward(ubd_featnet *m, const float *dfeat, const float *dlogits, const float *dreg,
                                const float *x, int B) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE(m->last_train_B > 0 && B == m->last_train_B, UBD_ERR_RUNTIME,
                "featnet: backward needs a training forward of the same batch first (last: %d, now: %d)",
                m->last_train_B, B);
    const float *P = m->params.buf[UBD_BUF_PARAM];
    float *G = m->params.buf[UBD_BUF_GRAD];
    const int L = m->cfg.nblocks, F = m->F, K = m->cfg.n_classes, R = m->cfg.n_reg;
    /* heads: dfeat (B, F) = given + dlogits @ Wc + dreg @ Wr */
    if (dfeat)
        memcpy(m->dfeat, dfeat, (size_t)B * F * sizeof(float));
    else
        memset(m->dfeat, 0, (size_t)B * F * sizeof(float));
    if (dlogits)
        UBD_TRY(ubd_cpu_linear_backward(m->dfeat, G + m->cls_w, G + m->cls_b, dlogits, m->feat, P + m->cls_w, B, F,
                                        K));
    if (dreg && R > 0)
        UBD_TRY(ubd_cpu_linear_backward(m->dfeat, G + m->reg_w, G + m->reg_b, dreg, m->feat, P + m->reg_w, B, F, R));
    /* pooling: every position of a channel gets dfeat / HW */
    int cur = 0;
    {
        const int HW = m->OH[L - 1] * m->OW[L - 1];
        float *da = m->g[cur];
        const float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static) if ((long long)B * F * HW > 65536)
        for (int i = 0; i < B * F; i++)
            for (int j = 0; j < HW; j++) da[(size_t)i * HW + j] = m->dfeat[i] * inv;
    }
    for (int l = L - 1; l >= 0; l--) {
        ubd_conv2d_shape s = m->conv[l];
        s.B = B;
        const int OC = s.OC, HW = m->OH[l] * m->OW[l];
        const size_t n = (size_t)B * OC * HW;
        float *P0 = m->g[cur], *Q = m->g[1 - cur];
        /* ReLU: dy = da * (a > 0), into Q */
        memset(Q, 0, n * sizeof(float));
        UBD_TRY(ubd_cpu_act_backward(Q, P0, m->a[l], n, UBD_ACT_RELU, 0.0f));
        /* BatchNorm: dz into P0 (da is no longer needed) */
        memset(P0, 0, n * sizeof(float));
        UBD_TRY(ubd_cpu_batchnorm_backward(P0, G + m->gamma[l], G + m->beta[l], Q, m->z[l], P + m->gamma[l],
                                           m->mean[l], m->rstd[l], B, OC, HW));
        /* conv: dweight, and the previous block's da into Q */
        float *dprev = NULL;
        if (l > 0) {
            dprev = Q;
            memset(dprev, 0, (size_t)B * s.C * s.H * s.W * sizeof(float));
        }
        UBD_TRY(ubd_cpu_conv2d_backward(dprev, G + m->w[l], NULL, P0, l > 0 ? m->a[l - 1] : x, P + m->w[l], m->work,
                                        s));
        cur = 1 - cur;
    }
    return UBD_OK;
}

ubd_status ubd_featnet_train_step(ubd_featnet *m, float *out, const float *x, const int *labels,
                                  const float *reg_target, int B, ubd_featnet_hparams hp) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(labels);
    const int K = m->cfg.n_classes, R = m->cfg.n_reg;
    UBD_REQUIRE((reg_target != NULL) == (R > 0), UBD_ERR_VALUE,
                "featnet: reg_target must be given exactly when n_reg > 0 (n_reg = %d)", R);
    const ubd_adam_hparams ah = {hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, 1};
    UBD_TRY(ubd_adam_check("featnet", ah)); /* before anything changes */
    UBD_REQUIRE(isfinite(hp.w_reg) && hp.w_reg >= 0.0f, UBD_ERR_VALUE, "featnet: w_reg must be finite and >= 0, got %g",
                hp.w_reg);
    UBD_TRY(check_batch(m, B));
    for (int b = 0; b < B; b++)
        UBD_REQUIRE(labels[b] >= 0 && labels[b] < K, UBD_ERR_VALUE, "featnet: label %d of sample %d outside [0, %d)",
                    labels[b], b, K);
    memset(m->params.buf[UBD_BUF_GRAD], 0, m->params.n * sizeof(float));
    UBD_TRY(ubd_featnet_forward(m, NULL, NULL, NULL, x, B, 1));
    float xent = 0.0f, mse = 0.0f;
    int correct = 0;
    UBD_TRY(ubd_cpu_xent_forward(&xent, m->probs, &correct, m->logits, labels, B, K));
    memset(m->dlogits, 0, (size_t)B * K * sizeof(float));
    UBD_TRY(ubd_cpu_xent_backward(m->dlogits, m->probs, labels, B, K, 1.0f));
    if (R > 0) {
        UBD_TRY(ubd_cpu_mse_forward(&mse, m->reg, reg_target, (size_t)B * R));
        memset(m->dreg, 0, (size_t)B * R * sizeof(float));
        UBD_TRY(ubd_cpu_mse_backward(m->dreg, m->reg, reg_target, (size_t)B * R, hp.w_reg));
    }
    UBD_TRY(ubd_featnet_backward(m, NULL, m->dlogits, R > 0 ? m->dreg : NULL, x, B));
    UBD_TRY(ubd_cpu_adam_update(m->params.buf[UBD_BUF_PARAM], m->params.buf[UBD_BUF_M], m->params.buf[UBD_BUF_V],
                                m->params.buf[UBD_BUF_GRAD], m->params.n, ah, m->step + 1));
    m->step++;
    out[0] = xent + hp.w_reg * mse;
    out[1] = xent;
    out[2] = mse;
    out[3] = (float)correct / (float)B;
    return UBD_OK;
}
