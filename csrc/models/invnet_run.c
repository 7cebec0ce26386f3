/* invnet_run.c — see invnet_run.h. */
#include "invnet_run.h"

#include <math.h>
#include <stdio.h>

static size_t out_size(const ubd_block2d *k) { return (size_t)k->OC * k->OH * k->OW; }
static size_t in_size(const ubd_block2d *k) { return (size_t)k->C * k->H * k->W; }
static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* Adds "<block>.<suffix>" with the given shape. */
static ubd_status add_view(ubd_params *p, const char *block, const char *suffix, int ndim, int64_t d0, int64_t d1,
                           int64_t d2, int64_t d3, size_t *off) {
    char name[UBD_MAX_NAME];
    snprintf(name, sizeof name, "%s.%s", block, suffix);
    int64_t shape[4] = {d0, d1, d2, d3};
    return ubd_params_add(p, name, ndim, shape, off);
}

ubd_status ubd_invnet_run_tables(ubd_params *params, ubd_params *stats, ubd_invnet_state *st,
                                 const ubd_invnet_block *blocks, int n) {
    for (int l = 0; l < n; l++) {
        const ubd_block2d *k = &blocks[l].k;
        const char *nm = blocks[l].name;
        size_t o[6];
        int64_t w0 = k->transposed ? k->C : k->OC, w1 = k->transposed ? k->OC : k->C;
        UBD_TRY(add_view(params, nm, "layers.0.weight", 4, w0, w1, k->KH, k->KW, &o[0]));
        UBD_TRY(add_view(params, nm, "layers.0.bias", 1, k->OC, 0, 0, 0, &o[1]));
        UBD_TRY(add_view(params, nm, "layers.1.weight", 1, k->OC, 0, 0, 0, &o[2]));
        UBD_TRY(add_view(params, nm, "layers.1.bias", 1, k->OC, 0, 0, 0, &o[3]));
        UBD_TRY(add_view(stats, nm, "layers.1.running_mean", 1, k->OC, 0, 0, 0, &o[4]));
        UBD_TRY(add_view(stats, nm, "layers.1.running_var", 1, k->OC, 0, 0, 0, &o[5]));
        if (st) {
            st[l].w = o[0], st[l].b = o[1], st[l].gamma = o[2], st[l].beta = o[3];
            st[l].rmean = o[4], st[l].rvar = o[5];
        }
    }
    return UBD_OK;
}

void ubd_invnet_run_sizes(const ubd_invnet_block *blocks, int n, size_t B, size_t *gsize, size_t *wsize) {
    size_t gmax = 0, wmax = 1;
    for (int l = 0; l < n; l++) {
        const ubd_block2d *k = &blocks[l].k;
        gmax = zmax(gmax, zmax(B * out_size(k), B * in_size(k)));
        wmax = zmax(wmax, ubd_block2d_workspace(k, (int)B));
    }
    *gsize = gmax;
    *wsize = wmax;
}

void ubd_invnet_run_lay_out(ubd_arena *a, ubd_invnet_state *st, const ubd_invnet_block *blocks, int n, size_t B) {
    for (int l = 0; l < n; l++) {
        const ubd_block2d *k = &blocks[l].k;
        const int tanh = k->act == UBD_ACT_TANH; /* only tanh's backward needs its input y */
        ubd_arena_take(a, &st[l].z, B * out_size(k), "z: conv output");                 /* (B, OC, OH, OW) */
        ubd_arena_take(a, &st[l].a, B * out_size(k), "a: block output");                /* (B, OC, OH, OW) */
        ubd_arena_take(a, &st[l].y, tanh ? B * out_size(k) : 0, "y: BatchNorm output"); /* (B, OC, OH, OW) */
        ubd_arena_take(a, &st[l].mean, (size_t)k->OC, "mean");
        ubd_arena_take(a, &st[l].rstd, (size_t)k->OC, "rstd");
    }
}

ubd_status ubd_invnet_run_init(const ubd_invnet_run *r, uint64_t seed) {
    const ubd_backend *be = r->be;
    float *P = r->params->buf[UBD_BUF_PARAM], *S = r->stats->buf[UBD_BUF_PARAM];
    for (int l = 0; l < r->n; l++) {
        const ubd_block2d *k = &r->blocks[l].k;
        const ubd_invnet_state *st = &r->st[l];
        /* torch: fan_in = weight.size(1) * KH * KW, for Conv2d and ConvTranspose2d alike */
        const int fan_in = (k->transposed ? k->OC : k->C) * k->KH * k->KW;
        const float bound = 1.0f / sqrtf((float)fan_in);
        const size_t OC = (size_t)k->OC;
        UBD_TRY(be->init_uniform(P + st->w, ubd_block2d_weight_size(k), bound, seed, 2 * (uint64_t)l, 0));
        UBD_TRY(be->init_uniform(P + st->b, OC, bound, seed, 2 * (uint64_t)l + 1, 0));
        UBD_TRY(be->fill(P + st->gamma, OC, 1.0f));
        UBD_TRY(be->zero(P + st->beta, OC));
        UBD_TRY(be->zero(S + st->rmean, OC));
        UBD_TRY(be->fill(S + st->rvar, OC, 1.0f));
    }
    for (int b = UBD_BUF_GRAD; b <= UBD_BUF_V; b++)
        if (r->params->buf[b]) UBD_TRY(be->zero(r->params->buf[b], r->params->n));
    return UBD_OK;
}

static ubd_block2d_weights weights_of(const ubd_invnet_run *r, int l) {
    const float *P = r->params->buf[UBD_BUF_PARAM];
    const ubd_invnet_state *st = &r->st[l];
    return (ubd_block2d_weights){P + st->w, P + st->b, P + st->gamma, P + st->beta};
}

ubd_status ubd_invnet_run_forward(const ubd_invnet_run *r, const float *x, int B, int train) {
    const ubd_backend *be = r->be;
    float *S = r->stats->buf[UBD_BUF_PARAM];
    for (int l = 0; l < r->n; l++) {
        const ubd_invnet_block *blk = &r->blocks[l];
        const ubd_block2d *k = &blk->k;
        const ubd_invnet_state *st = &r->st[l];
        if (blk->crop_before) {
            const int c = UBD_INVNET_CROP;
            UBD_REQUIRE(r->crop != NULL, UBD_ERR_RUNTIME, "%s: crops its input, but the run has no crop buffer",
                        blk->name);
            UBD_TRY(be->crop2d_forward(r->crop, x, B, k->C, k->H + 2 * c, k->W + 2 * c, c, c, c, c));
            x = r->crop;
        }
        UBD_REQUIRE(ubd_block2d_workspace(k, B) <= r->wsize, UBD_ERR_RUNTIME,
                    "%s needs more workspace at batch %d than was sized", blk->name, B);
        if (train)
            UBD_TRY(ubd_block2d_forward_train(be, st->a, st->z, st->y, st->mean, st->rstd, S + st->rmean,
                                              S + st->rvar, x, weights_of(r, l), r->work, k, B));
        else
            UBD_TRY(ubd_block2d_forward_eval(be, st->a, st->z, x, weights_of(r, l), S + st->rmean, S + st->rvar,
                                             r->work, k, B));
        x = st->a;
    }
    return UBD_OK;
}

ubd_status ubd_invnet_run_backward(const ubd_invnet_run *r, int ig, const float *x, int B) {
    const ubd_backend *be = r->be;
    float *G = r->params->buf[UBD_BUF_GRAD];
    for (int l = r->n - 1; l >= 0; l--) {
        const ubd_invnet_block *blk = &r->blocks[l];
        const ubd_block2d *k = &blk->k;
        const ubd_invnet_state *st = &r->st[l];
        const float *xin = l == 0 ? x : blk->crop_before ? r->crop : r->st[l - 1].a;
        const int iy = (ig + 1) % 3, ix = (ig + 2) % 3; /* scratch dy, input gradient dx */
        float *dx = NULL;
        if (l > 0) { /* the run's input gradient is not needed */
            dx = r->g[ix];
            UBD_TRY(be->zero(dx, (size_t)B * in_size(k)));
        }
        ubd_block2d_grads gr = {G + st->w, G + st->b, G + st->gamma, G + st->beta};
        UBD_TRY(ubd_block2d_backward(be, dx, gr, r->g[ig], r->g[iy], xin, st->z, st->y, st->a, st->mean, st->rstd,
                                     weights_of(r, l), r->work, k, B));
        ig = ix;
        if (blk->crop_before) { /* gradient of the uncropped map: zero border, copy of the inside */
            const int c = UBD_INVNET_CROP, H = k->H + 2 * c, W = k->W + 2 * c;
            const int id = (ig + 1) % 3;
            UBD_TRY(be->zero(r->g[id], (size_t)B * k->C * H * W));
            UBD_TRY(be->crop2d_backward(r->g[id], r->g[ig], B, k->C, H, W, c, c, c, c));
            ig = id;
        }
    }
    return UBD_OK;
}
