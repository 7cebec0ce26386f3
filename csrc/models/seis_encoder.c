/* seis_encoder.c — the seismic encoder: InversionNet's encoder blocks to a
 * Tanh latent. See seis_encoder.h. */
#include "seis_encoder.h"

#include "invnet_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ubd_status check_config(const ubd_seisenc_config *c) {
    UBD_REQUIRE_PTR(c);
    UBD_REQUIRE(c->latent > 0, UBD_ERR_VALUE, "seismic encoder: latent must be positive, got %d", c->latent);
    return UBD_OK;
}

/* The InversionNet whose encoder this is: dim5 = latent. */
static ubd_invnet_config invnet_config(const ubd_seisenc_config *c) {
    ubd_invnet_config ic;
    memset(&ic, 0, sizeof ic);
    for (int i = 0; i < 4; i++) ic.dim[i] = c->dim[i];
    ic.dim[4] = c->latent;
    ic.in_channels = c->in_channels;
    ic.nt = c->nt;
    ic.nx = c->nx;
    ic.max_batch = c->max_batch;
    ic.slope = c->slope;
    ic.bn_momentum = c->bn_momentum;
    ic.bn_eps = c->bn_eps;
    return ic;
}

ubd_status ubd_seisenc_layout(ubd_invnet_block *blocks, const ubd_seisenc_config *cfg) {
    UBD_REQUIRE_PTR(blocks);
    UBD_TRY(check_config(cfg));
    const ubd_invnet_config ic = invnet_config(cfg);
    ubd_invnet_block all[UBD_INVNET_BLOCKS];
    ubd_status s = ubd_invnet_layout(all, &ic);
    if (s != UBD_OK) {
        char why[256]; /* copy: ubd_fail rewrites the message buffer */
        snprintf(why, sizeof why, "%s", ubd_last_error());
        return ubd_fail(s, "seismic encoder: %s", why);
    }
    memcpy(blocks, all, sizeof(ubd_invnet_block) * UBD_SEISENC_BLOCKS);
    ubd_block2d *last = &blocks[UBD_SEISENC_BLOCKS - 1].k;
    UBD_REQUIRE(last->OH == 1 && last->OW == 1 && last->OC == cfg->latent, UBD_ERR_RUNTIME,
                "seismic encoder: %s gives (%d, %d, %d), expected (%d, 1, 1)", blocks[UBD_SEISENC_BLOCKS - 1].name,
                last->OC, last->OH, last->OW, cfg->latent);
    last->act = UBD_ACT_TANH; /* z in (-1, 1), as the UB-Diff encoder's */
    last->act_param = 0.0f;
    return UBD_OK;
}

ubd_status ubd_seisenc_tables(ubd_params *params, ubd_params *stats, const ubd_seisenc_config *cfg) {
    UBD_REQUIRE(params && stats, UBD_ERR_VALUE, "seisenc_tables: NULL table");
    ubd_invnet_block blocks[UBD_SEISENC_BLOCKS];
    UBD_TRY(ubd_seisenc_layout(blocks, cfg));
    return ubd_invnet_run_tables(params, stats, NULL, blocks, UBD_SEISENC_BLOCKS);
}

/* ---- memory ----------------------------------------------------------------- */
static size_t seis_floats(const ubd_seisenc *m, int B) {
    const ubd_seisenc_config *c = &m->cfg;
    return (size_t)B * c->in_channels * c->nt * c->nx;
}

void ubd_seisenc_free(ubd_seisenc *m) {
    if (!m) return;
    ubd_params_free(&m->params);
    ubd_params_free(&m->stats);
    ubd_arena_release(&m->arena);
    free(m);
}

/* Every activation slice for batches up to B (arena.h: plan, then bind). */
static void lay_out(ubd_seisenc *m, ubd_arena *a, size_t B, size_t gsize, size_t wsize) {
    ubd_invnet_run_lay_out(a, m->st, m->blocks, UBD_SEISENC_BLOCKS, B);
    for (int i = 0; i < 3; i++) ubd_arena_take(a, &m->g[i], gsize, "gradient scratch");
    ubd_arena_take(a, &m->work, wsize, "conv workspace");
    ubd_arena_stage(a, &m->seis_in, B * (size_t)m->cfg.in_channels * m->cfg.nt * m->cfg.nx, "seis staging");
}

ubd_status ubd_seisenc_reserve(ubd_seisenc *m, int max_batch) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_POSITIVE(max_batch);
    const size_t B = (size_t)max_batch;
    size_t gmax, wmax;
    ubd_invnet_run_sizes(m->blocks, UBD_SEISENC_BLOCKS, B, &gmax, &wmax);
    ubd_arena a; /* the new arena first: on failure the model keeps its old one */
    ubd_arena_begin(&a, m->be);
    lay_out(m, &a, B, gmax, wmax);
    char owner[64];
    snprintf(owner, sizeof owner, "seismic encoder (max_batch %d)", max_batch);
    UBD_TRY(ubd_arena_commit(&a, owner));
    lay_out(m, &a, B, gmax, wmax);
    ubd_status s = ubd_arena_end(&a);
    ubd_arena_release(&m->arena);
    m->arena = a;
    m->cfg.max_batch = max_batch;
    m->gsize = gmax;
    m->wsize = wmax;
    ubd_seisenc_forget_forward(m);
    return s;
}

ubd_status ubd_seisenc_create(ubd_seisenc **out, const ubd_seisenc_config *cfg, const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(cfg);
    *out = NULL;
    ubd_seisenc *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "seismic encoder: out of memory");
    m->be = be ? be : ubd_backend_cpu();
    ubd_params_init_on(&m->params, m->be);
    ubd_params_init_on(&m->stats, m->be);
    ubd_arena_begin(&m->arena, m->be);
    m->cfg = *cfg;
    ubd_status s = ubd_seisenc_layout(m->blocks, cfg);
    if (s == UBD_OK) s = ubd_invnet_run_tables(&m->params, &m->stats, m->st, m->blocks, UBD_SEISENC_BLOCKS);
    for (int b = UBD_BUF_PARAM; s == UBD_OK && b <= UBD_BUF_V; b++) s = ubd_params_alloc(&m->params, (ubd_buf_kind)b);
    if (s == UBD_OK) s = ubd_params_alloc(&m->stats, UBD_BUF_PARAM);
    if (s == UBD_OK) s = ubd_seisenc_reserve(m, cfg->max_batch);
    if (s != UBD_OK) {
        ubd_seisenc_free(m);
        return s;
    }
    *out = m;
    return UBD_OK;
}

/* The blocks as a run (invnet_run.h), with the model's buffers (no block crops). */
static ubd_invnet_run run_of(ubd_seisenc *m) {
    return (ubd_invnet_run){m->be, m->blocks, m->st, UBD_SEISENC_BLOCKS, &m->params, &m->stats, m->work, m->wsize,
                            NULL, m->g};
}

ubd_status ubd_seisenc_init(ubd_seisenc *m, uint64_t seed) {
    UBD_REQUIRE_PTR(m);
    ubd_seisenc_forget_forward(m); /* first: a failure below may leave the weights half-written */
    const ubd_invnet_run r = run_of(m);
    UBD_TRY(ubd_invnet_run_init(&r, seed));
    m->step = 0;
    return UBD_OK;
}

void ubd_seisenc_forget_forward(ubd_seisenc *m) {
    if (m) m->last_train_B = 0;
}

/* ---- forward / backward ------------------------------------------------------- */
static ubd_status check_batch(const ubd_seisenc *m, const float *seis, int B, int train) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(seis);
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE(B <= m->cfg.max_batch, UBD_ERR_VALUE, "seismic encoder: batch %d exceeds the model's max_batch %d",
                B, m->cfg.max_batch);
    /* convblock8's BatchNorm sees one value per sample and channel: a batch of 1 has no variance */
    UBD_REQUIRE(!train || B >= 2, UBD_ERR_VALUE,
                "seismic encoder: training-mode BatchNorm needs a batch of at least 2 (got %d)", B);
    return UBD_OK;
}

/* Forward of seis (B,C,nt,nx), backend memory; z stays in the last block's a (B, latent). */
static ubd_status forward_impl(ubd_seisenc *m, const float *seis, int B, int train) {
    ubd_seisenc_forget_forward(m); /* until this forward completes (an eval forward keeps nothing for backward) */
    const ubd_invnet_run r = run_of(m);
    UBD_TRY(ubd_invnet_run_forward(&r, seis, B, train));
    if (train) m->last_train_B = B;
    return UBD_OK;
}

ubd_status ubd_seisenc_forward(ubd_seisenc *m, float *z_out, const float *seis, int B, int train) {
    UBD_TRY(check_batch(m, seis, B, train));
    UBD_REQUIRE_PTR(z_out);
    const float *x;
    UBD_TRY(ubd_stage_in(m->be, &x, m->seis_in, seis, seis_floats(m, B)));
    UBD_TRY(forward_impl(m, x, B, train != 0));
    return m->be->copy(z_out, m->st[UBD_SEISENC_BLOCKS - 1].a, (size_t)B * m->cfg.latent * sizeof(float),
                       UBD_D2H);
}

ubd_status ubd_seisenc_backward(ubd_seisenc *m, const float *dz, const float *seis_host, int B) {
    UBD_TRY(check_batch(m, seis_host, B, 1));
    UBD_REQUIRE_PTR(dz);
    UBD_REQUIRE(m->last_train_B == B, UBD_ERR_VALUE,
                "seismic encoder: backward needs a training forward of the same batch first (last: %d, now: %d)",
                m->last_train_B, B);
    const ubd_backend *be = m->be;
    const float *seis;
    UBD_TRY(ubd_stage_in(be, &seis, m->seis_in, seis_host, seis_floats(m, B)));
    UBD_TRY(be->copy(m->g[0], dz, (size_t)B * m->cfg.latent * sizeof(float), UBD_H2D)); /* dz into g[0] */
    const ubd_invnet_run r = run_of(m);
    return ubd_invnet_run_backward(&r, 0, seis, B);
}

ubd_status ubd_seisenc_apply_update(ubd_seisenc *m, ubd_adam_hparams adam) {
    UBD_REQUIRE_PTR(m);
    UBD_TRY(ubd_adam_check("seismic encoder", adam));
    ubd_seisenc_forget_forward(m); /* the weights move: the saved forward is the old weights' */
    return ubd_params_adam_step(&m->params, m->be, adam, &m->step);
}
