/* featnet.c — the feature CNN of featnet.h: forward, backward, training step,
 * every op through the model's backend table.
 *
 * Each block is a block2d (conv without bias -> BatchNorm -> ReLU): the
 * forward keeps z (the conv output, BatchNorm's input) and a (the block
 * output; BatchNorm writes into a and ReLU runs in place there). ReLU's
 * derivative is read off its output (a > 0 exactly where its input was > 0),
 * so BatchNorm's output need not be kept. Backward walks the blocks with
 * three rotating gradient buffers (block2d's dout is clobbered, its scratch
 * and its input gradient must be distinct). */
#include "featnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    ubd_arena_release(&m->arena);
    free(m);
}

static size_t act_size(const ubd_block2d *k, size_t B) { return B * k->OC * k->OH * k->OW; }

/* The activation memory for batches up to max_batch, slice by slice
 * (arena.h: run once to plan, once to bind). */
static void lay_out(ubd_featnet *m, ubd_arena *a) {
    const ubd_featnet_config *c = &m->cfg;
    const size_t NB = (size_t)c->max_batch, F = (size_t)m->F, K = (size_t)c->n_classes, R = (size_t)c->n_reg;
    for (int l = 0; l < c->nblocks; l++) {
        ubd_arena_take(a, &m->z[l], act_size(&m->blk[l], NB), "z: conv output");  /* (B, OC, OH, OW) */
        ubd_arena_take(a, &m->a[l], act_size(&m->blk[l], NB), "a: block output"); /* (B, OC, OH, OW) */
        ubd_arena_take(a, &m->mean[l], (size_t)c->blocks[l].OC, "mean");
        ubd_arena_take(a, &m->rstd[l], (size_t)c->blocks[l].OC, "rstd");
    }
    ubd_arena_take(a, &m->feat, NB * F, "features");
    ubd_arena_take(a, &m->dfeat, NB * F, "feature gradient");
    ubd_arena_take(a, &m->logits, NB * K, "logits");
    ubd_arena_take(a, &m->probs, NB * K, "probabilities");
    ubd_arena_take(a, &m->dlogits, NB * K, "logit gradient");
    ubd_arena_take(a, &m->reg, NB * R, "regression output");
    ubd_arena_take(a, &m->dreg, NB * R, "regression gradient");
    for (int i = 0; i < 3; i++) ubd_arena_take(a, &m->g[i], m->gsize, "gradient scratch");
    ubd_arena_take(a, &m->work, m->wsize + 1, "conv workspace"); /* + 1: never NULL, even for 1x1 convs */
    ubd_arena_take(a, &m->loss, 2, "losses");
    ubd_arena_take_int(a, &m->correct, 1, "correct count");
    ubd_arena_stage(a, &m->x_in, NB * c->C * c->H * c->W, "input staging");
    ubd_arena_stage_int(a, &m->labels_in, NB, "label staging");
    ubd_arena_stage(a, &m->reg_in, NB * R, "regression target staging");
}

ubd_status ubd_featnet_create(ubd_featnet **out, const ubd_featnet_config *cfg, const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_TRY(ubd_featnet_check(cfg));
    ubd_featnet *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "featnet: out of memory");
    m->cfg = *cfg;
    m->be = be ? be : ubd_backend_cpu();
    ubd_params_init_on(&m->params, m->be);
    ubd_params_init_on(&m->stats, m->be);
    ubd_arena_begin(&m->arena, m->be);
    ubd_status s = tables(&m->params, &m->stats, cfg, m);
    for (int k = UBD_BUF_PARAM; s == UBD_OK && k <= UBD_BUF_V; k++) s = ubd_params_alloc(&m->params, (ubd_buf_kind)k);
    if (s == UBD_OK) s = ubd_params_alloc(&m->stats, UBD_BUF_PARAM);
    if (s != UBD_OK) {
        ubd_featnet_free(m);
        return s;
    }

    /* geometry, then the sizes of the scratch buffers */
    int C = cfg->C, H = cfg->H, W = cfg->W;
    m->gsize = 0;
    m->wsize = 0;
    for (int l = 0; l < cfg->nblocks && s == UBD_OK; l++) {
        const ubd_featnet_block *b = &cfg->blocks[l];
        ubd_block2d *k = &m->blk[l];
        *k = (ubd_block2d){0, C, b->OC, H, W, b->KH, b->KW, b->SH, b->SW, b->PH, b->PW, 0, 0, UBD_ACT_RELU, 0.0f,
                           cfg->bn_momentum, cfg->bn_eps, 0, 0};
        s = ubd_block2d_check(k); /* the geometry passed ubd_featnet_check */
        /* the conv plan depends on B, so take the largest workspace any batch needs */
        for (int bb = 1; bb <= cfg->max_batch; bb++) {
            size_t ws = ubd_block2d_workspace(k, bb);
            if (ws > m->wsize) m->wsize = ws;
        }
        m->OH[l] = k->OH;
        m->OW[l] = k->OW;
        if (act_size(k, (size_t)cfg->max_batch) > m->gsize) m->gsize = act_size(k, (size_t)cfg->max_batch);
        C = b->OC;
        H = k->OH;
        W = k->OW;
    }
    m->F = C;
    if (s == UBD_OK) {
        lay_out(m, &m->arena);
        s = ubd_arena_commit(&m->arena, "featnet");
    }
    if (s == UBD_OK) {
        lay_out(m, &m->arena);
        s = ubd_arena_end(&m->arena);
    }
    if (s != UBD_OK) {
        ubd_featnet_free(m);
        return s;
    }
    *out = m;
    return UBD_OK;
}

ubd_status ubd_featnet_init(ubd_featnet *m, uint64_t seed) {
    UBD_REQUIRE_PTR(m);
    ubd_featnet_forget_forward(m); /* first: a failure below may leave the weights half-written */
    const ubd_backend *be = m->be;
    float *P = m->params.buf[UBD_BUF_PARAM];
    for (int i = 0; i < m->params.nviews; i++) {
        const ubd_view *v = &m->params.views[i];
        float *t = P + v->offset;
        const char *nm = v->name;
        size_t len = strlen(nm);
        if (len > 12 && strcmp(nm + len - 12, ".conv.weight") == 0) {
            /* He normal: keeps the activation scale through ReLU (fan_in = C KH KW) */
            double fan_in = (double)v->shape[1] * v->shape[2] * v->shape[3];
            UBD_TRY(be->init_normal(t, v->size, (float)sqrt(2.0 / fan_in), seed, (uint64_t)i, 0));
        } else if (strstr(nm, ".bn.weight")) {
            UBD_TRY(be->fill(t, v->size, 1.0f));
        } else if (v->ndim == 2) { /* head weight: torch's Linear default U(+-1/sqrt(F)) */
            UBD_TRY(be->init_uniform(t, v->size, 1.0f / sqrtf((float)v->shape[1]), seed, (uint64_t)i, 0));
        } else {
            UBD_TRY(be->zero(t, v->size)); /* BN beta, head biases */
        }
    }
    float *S = m->stats.buf[UBD_BUF_PARAM];
    for (int l = 0; l < m->cfg.nblocks; l++) {
        UBD_TRY(be->zero(S + m->rmean[l], (size_t)m->cfg.blocks[l].OC));
        UBD_TRY(be->fill(S + m->rvar[l], (size_t)m->cfg.blocks[l].OC, 1.0f));
    }
    for (int k = UBD_BUF_GRAD; k <= UBD_BUF_V; k++) UBD_TRY(be->zero(m->params.buf[k], m->params.n));
    m->step = 0;
    return UBD_OK;
}

void ubd_featnet_forget_forward(ubd_featnet *m) {
    if (m) m->last_train_B = 0;
}

static ubd_status check_batch(const ubd_featnet *m, int B) {
    UBD_REQUIRE(B >= 1 && B <= m->cfg.max_batch, UBD_ERR_VALUE, "featnet: batch %d outside [1, max_batch = %d]", B,
                m->cfg.max_batch);
    return UBD_OK;
}

static size_t in_floats(const ubd_featnet *m, int B) { return (size_t)B * m->cfg.C * m->cfg.H * m->cfg.W; }

static ubd_block2d_weights weights_of(const ubd_featnet *m, int l) {
    const float *P = m->params.buf[UBD_BUF_PARAM];
    return (ubd_block2d_weights){P + m->w[l], NULL, P + m->gamma[l], P + m->beta[l]};
}

/* Forward of x (B, C, H, W), backend memory; outputs stay in m->feat, m->logits, m->reg. */
static ubd_status forward_impl(ubd_featnet *m, const float *x, int B, int train) {
    /* BatchNorm's training statistics need more than one value per channel */
    const int L = m->cfg.nblocks;
    UBD_REQUIRE(!train || (long long)B * m->OH[L - 1] * m->OW[L - 1] > 1, UBD_ERR_VALUE,
                "featnet: a training batch of %d gives one value per channel in the last block; use B >= 2", B);
    const ubd_backend *be = m->be;
    const float *P = m->params.buf[UBD_BUF_PARAM];
    float *S = m->stats.buf[UBD_BUF_PARAM];
    ubd_featnet_forget_forward(m); /* until this forward completes (an eval forward keeps nothing for backward) */
    const float *in = x;
    for (int l = 0; l < L; l++) {
        if (train)
            UBD_TRY(ubd_block2d_forward_train(be, m->a[l], m->z[l], NULL, m->mean[l], m->rstd[l], S + m->rmean[l],
                                              S + m->rvar[l], in, weights_of(m, l), m->work, &m->blk[l], B));
        else
            UBD_TRY(ubd_block2d_forward_eval(be, m->a[l], m->z[l], in, weights_of(m, l), S + m->rmean[l],
                                             S + m->rvar[l], m->work, &m->blk[l], B));
        in = m->a[l];
    }
    /* global average pooling: feat (B, F) */
    const int F = m->F, K = m->cfg.n_classes, R = m->cfg.n_reg;
    UBD_TRY(be->mean_pool_forward(m->feat, m->a[L - 1], B * F, m->OH[L - 1] * m->OW[L - 1]));
    UBD_TRY(be->linear_forward(m->logits, m->feat, P + m->cls_w, P + m->cls_b, B, F, K));
    if (R > 0) UBD_TRY(be->linear_forward(m->reg, m->feat, P + m->reg_w, P + m->reg_b, B, F, R));
    if (train) m->last_train_B = B;
    return UBD_OK;
}

ubd_status ubd_featnet_forward(ubd_featnet *m, float *feat, float *logits, float *reg, const float *x, int B,
                               int train) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(x);
    UBD_TRY(check_batch(m, B));
    const ubd_backend *be = m->be;
    const float *dx;
    UBD_TRY(ubd_stage_in(be, &dx, m->x_in, x, in_floats(m, B)));
    UBD_TRY(forward_impl(m, dx, B, train));
    const size_t F = (size_t)m->F, K = (size_t)m->cfg.n_classes, R = (size_t)m->cfg.n_reg;
    if (feat) UBD_TRY(be->copy(feat, m->feat, (size_t)B * F * sizeof(float), UBD_D2H));
    if (logits) UBD_TRY(be->copy(logits, m->logits, (size_t)B * K * sizeof(float), UBD_D2H));
    if (reg && R > 0) UBD_TRY(be->copy(reg, m->reg, (size_t)B * R * sizeof(float), UBD_D2H));
    return UBD_OK;
}

/* Backward of the last training forward, from m->dfeat and the head gradients
 * dlogits (B, K), dreg (B, R) (backend memory, NULL = zero); x: the forward's
 * input (backend memory). Parameter gradients +=. */
static ubd_status backward_impl(ubd_featnet *m, const float *dlogits, const float *dreg, const float *x, int B) {
    UBD_REQUIRE(m->last_train_B > 0 && B == m->last_train_B, UBD_ERR_RUNTIME,
                "featnet: backward needs a training forward of the same batch first (last: %d, now: %d)",
                m->last_train_B, B);
    const ubd_backend *be = m->be;
    const float *P = m->params.buf[UBD_BUF_PARAM];
    float *G = m->params.buf[UBD_BUF_GRAD];
    const int L = m->cfg.nblocks, F = m->F, K = m->cfg.n_classes, R = m->cfg.n_reg;
    /* heads: dfeat (B, F) += dlogits @ Wc + dreg @ Wr */
    if (dlogits)
        UBD_TRY(be->linear_backward(m->dfeat, G + m->cls_w, G + m->cls_b, dlogits, m->feat, P + m->cls_w, B, F, K));
    if (dreg && R > 0)
        UBD_TRY(be->linear_backward(m->dfeat, G + m->reg_w, G + m->reg_b, dreg, m->feat, P + m->reg_w, B, F, R));
    /* pooling: every position of a channel gets dfeat / HW */
    int ig = 0;
    UBD_TRY(be->zero(m->g[ig], act_size(&m->blk[L - 1], (size_t)B)));
    UBD_TRY(be->mean_pool_backward(m->g[ig], m->dfeat, B * F, m->OH[L - 1] * m->OW[L - 1]));
    for (int l = L - 1; l >= 0; l--) {
        const ubd_block2d *k = &m->blk[l];
        const int iy = (ig + 1) % 3, ix = (ig + 2) % 3; /* scratch dy, input gradient dx */
        float *dx = NULL;
        if (l > 0) {
            dx = m->g[ix];
            UBD_TRY(be->zero(dx, (size_t)B * k->C * k->H * k->W));
        }
        ubd_block2d_grads gr = {G + m->w[l], NULL, G + m->gamma[l], G + m->beta[l]};
        UBD_TRY(ubd_block2d_backward(be, dx, gr, m->g[ig], m->g[iy], l > 0 ? m->a[l - 1] : x, m->z[l], NULL, m->a[l],
                                     m->mean[l], m->rstd[l], weights_of(m, l), m->work, k, B));
        ig = ix;
    }
    return UBD_OK;
}

ubd_status ubd_featnet_backward(ubd_featnet *m, const float *dfeat, const float *dlogits, const float *dreg,
                                const float *x, int B) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(x);
    UBD_TRY(check_batch(m, B));
    UBD_REQUIRE(m->last_train_B > 0 && B == m->last_train_B, UBD_ERR_RUNTIME,
                "featnet: backward needs a training forward of the same batch first (last: %d, now: %d)",
                m->last_train_B, B);
    const ubd_backend *be = m->be;
    const size_t F = (size_t)m->F, K = (size_t)m->cfg.n_classes, R = (size_t)m->cfg.n_reg;
    const float *dx;
    UBD_TRY(ubd_stage_in(be, &dx, m->x_in, x, in_floats(m, B)));
    if (dfeat)
        UBD_TRY(be->copy(m->dfeat, dfeat, (size_t)B * F * sizeof(float), UBD_H2D));
    else
        UBD_TRY(be->zero(m->dfeat, (size_t)B * F));
    if (dlogits) UBD_TRY(be->copy(m->dlogits, dlogits, (size_t)B * K * sizeof(float), UBD_H2D));
    if (dreg && R > 0) UBD_TRY(be->copy(m->dreg, dreg, (size_t)B * R * sizeof(float), UBD_H2D));
    return backward_impl(m, dlogits ? m->dlogits : NULL, dreg && R > 0 ? m->dreg : NULL, dx, B);
}

static ubd_status check_w_reg(float w_reg) {
    UBD_REQUIRE(isfinite(w_reg) && w_reg >= 0.0f, UBD_ERR_VALUE, "featnet: w_reg must be finite and >= 0, got %g",
                w_reg);
    return UBD_OK;
}

static ubd_status check_hparams(ubd_featnet_hparams hp) {
    const ubd_adam_hparams ah = {hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, 1};
    return ubd_adam_check("featnet", ah);
}

/* Training forward, losses, backward of host x, labels, reg_target; the losses
 * and the correct count stay in m->loss / m->correct (read by the caller). */
/* The host inputs of a training step, checked before anything changes. */
static ubd_status check_step(const ubd_featnet *m, const float *x, const int *labels, const float *reg_target,
                             int B) {
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE_PTR(labels);
    const int K = m->cfg.n_classes, R = m->cfg.n_reg;
    UBD_REQUIRE((reg_target != NULL) == (R > 0), UBD_ERR_VALUE,
                "featnet: reg_target must be given exactly when n_reg > 0 (n_reg = %d)", R);
    UBD_TRY(check_batch(m, B));
    for (int b = 0; b < B; b++)
        UBD_REQUIRE(labels[b] >= 0 && labels[b] < K, UBD_ERR_VALUE, "featnet: label %d of sample %d outside [0, %d)",
                    labels[b], b, K);
    return UBD_OK;
}

static ubd_status accumulate_impl(ubd_featnet *m, const float *x, const int *labels, const float *reg_target,
                                  int B, float w_reg) {
    const int K = m->cfg.n_classes, R = m->cfg.n_reg;
    const ubd_backend *be = m->be;
    const float *dx, *target = NULL;
    const int *lab;
    UBD_TRY(ubd_stage_in(be, &dx, m->x_in, x, in_floats(m, B)));
    UBD_TRY(ubd_stage_in_int(be, &lab, m->labels_in, labels, (size_t)B));
    if (R > 0) UBD_TRY(ubd_stage_in(be, &target, m->reg_in, reg_target, (size_t)B * R));
    UBD_TRY(forward_impl(m, dx, B, 1));
    UBD_TRY(be->xent_forward(&m->loss[0], m->probs, m->correct, m->logits, lab, B, K));
    UBD_TRY(be->zero(m->dlogits, (size_t)B * K));
    UBD_TRY(be->xent_backward(m->dlogits, m->probs, lab, B, K, 1.0f));
    if (R > 0) {
        UBD_TRY(be->mse_forward(&m->loss[1], m->reg, target, (size_t)B * R));
        UBD_TRY(be->zero(m->dreg, (size_t)B * R));
        UBD_TRY(be->mse_backward(m->dreg, m->reg, target, (size_t)B * R, w_reg));
    }
    UBD_TRY(be->zero(m->dfeat, (size_t)B * m->F));
    return backward_impl(m, m->dlogits, R > 0 ? m->dreg : NULL, dx, B);
}

/* out (4) = (loss, xent, mse, accuracy) of the last accumulate: one read at the end of a step. */
static ubd_status read_losses(ubd_featnet *m, float *out, int B, float w_reg) {
    float l[2] = {0.0f, 0.0f};
    int correct = 0;
    UBD_TRY(m->be->copy(l, m->loss, (m->cfg.n_reg > 0 ? 2 : 1) * sizeof(float), UBD_D2H));
    UBD_TRY(m->be->copy(&correct, m->correct, sizeof correct, UBD_D2H));
    out[0] = l[0] + w_reg * l[1];
    out[1] = l[0];
    out[2] = l[1];
    out[3] = (float)correct / (float)B;
    return UBD_OK;
}

ubd_status ubd_featnet_accumulate(ubd_featnet *m, float *out, const float *x, const int *labels,
                                  const float *reg_target, int B, float w_reg) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(out);
    UBD_TRY(check_step(m, x, labels, reg_target, B));
    UBD_TRY(check_w_reg(w_reg));
    UBD_TRY(accumulate_impl(m, x, labels, reg_target, B, w_reg));
    return read_losses(m, out, B, w_reg);
}

ubd_status ubd_featnet_apply(ubd_featnet *m, ubd_featnet_hparams hp) {
    UBD_REQUIRE_PTR(m);
    UBD_TRY(check_hparams(hp));
    ubd_adam_hparams ah = {hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, 1};
    ubd_featnet_forget_forward(m); /* the weights move: the saved forward is the old weights' */
    return ubd_params_adam_step(&m->params, m->be, ah, &m->step);
}

ubd_status ubd_featnet_train_step(ubd_featnet *m, float *out, const float *x, const int *labels,
                                  const float *reg_target, int B, ubd_featnet_hparams hp) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(out);
    UBD_TRY(check_step(m, x, labels, reg_target, B)); /* before anything changes (statistics, gradients) */
    UBD_TRY(check_hparams(hp));
    UBD_TRY(check_w_reg(hp.w_reg));
    UBD_TRY(m->be->zero(m->params.buf[UBD_BUF_GRAD], m->params.n));
    UBD_TRY(accumulate_impl(m, x, labels, reg_target, B, hp.w_reg));
    UBD_TRY(ubd_featnet_apply(m, hp));
    /* the losses of the forward above, read back once at the end so a GPU never waits mid-step */
    return read_losses(m, out, B, hp.w_reg);
}
