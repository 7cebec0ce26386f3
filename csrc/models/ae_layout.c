/* ae_layout.c — the autoencoder's parameter table (names = the authors'
 * PyTorch VSNet state_dict keys), layer geometry and activation memory plan.
 *
 * Source of the names: the UB-Diff authors' code (github.com/junhuanyang/UB-Diff,
 * encoder.py / vsnet.py / vit.py; the TDecoder_S version of VSNet):
 *   encoder.convBlock{1_1..7_2, 8}.layers.{0: Conv2d, 1: BatchNorm2d}
 *   fc_v, batch_norm_v, fc_s, batch_norm_s
 *   decoder_v.deconvBlock{1_1..5_2, 6}.layers.{0: (Conv|ConvTranspose)2d, 1: BatchNorm2d}
 *   decoder_s.decoder.{cls_token, pos_embed, patch_embed.proj, blocks.i.{norm1, attn.qkv,
 *       attn.proj, norm2, mlp.fc1, mlp.fc2}, norm}, decoder_s.mlp
 * Their Encoder_v also lists the same blocks in module_list1/module_list2 (and
 * some versions of Decoder_V in `blocks`), so their state_dict repeats these
 * tensors under aliases; ubdiff/models/ae_spec.py maps those aliases. The
 * unused classification head decoder_s.decoder.head is left out.
 * num_batches_tracked is an int64 scalar in PyTorch; here a float of shape (1,).
 *
 * Buffer order differs from PyTorch's (which interleaves fc_v, fc_s, ...): the
 * groups E | head_v | D_v | head_s | D_s are contiguous so that each training
 * mode updates one range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_internal.h"

ubd_ae_config ubd_ae_config_paper(void) {
    ubd_ae_config c = {.dim1 = 32, .dim2 = 64, .dim3 = 128, .dim4 = 256, .latent = 128, .head_width = 128,
                       .dd_v = 1, .shots = 5, .nt = 1000, .nr = 70, .heads = 8, .depth = 2, .mlp_hidden = 3200,
                       .max_batch = 64};
    return c;
}

/* ---- small builders ---------------------------------------------------- */
typedef struct {
    ubd_ae *m;
    size_t work;  /* largest conv workspace */
    size_t gmax;  /* largest conv activation */
} plan;

static ubd_status add_param(plan *p, size_t *off, const char *name, int nd, int64_t d0, int64_t d1, int64_t d2,
                            int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return ubd_params_add(&p->m->params, name, nd, shape, off);
}

static ubd_status add_buf(plan *p, size_t *off, const char *name, int64_t n) {
    return ubd_params_add(&p->m->bufs, name, 1, &n, off);
}

static ubd_status add_bn(plan *p, const char *prefix, int C, size_t *g, size_t *be, size_t *rm, size_t *rv,
                         size_t *nbt) {
    char name[UBD_MAX_NAME + 32];
    snprintf(name, sizeof name, "%s.weight", prefix);
    UBD_TRY(add_param(p, g, name, 1, C, 0, 0, 0));
    snprintf(name, sizeof name, "%s.bias", prefix);
    UBD_TRY(add_param(p, be, name, 1, C, 0, 0, 0));
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    UBD_TRY(add_buf(p, rm, name, C));
    snprintf(name, sizeof name, "%s.running_var", prefix);
    UBD_TRY(add_buf(p, rv, name, C));
    snprintf(name, sizeof name, "%s.num_batches_tracked", prefix);
    UBD_TRY(add_buf(p, nbt, name, 1));
    return UBD_OK;
}

/* A conv block `prefix`.layers.{0,1}: input (ci, H, W). */
static ubd_status add_block(plan *p, ae_block *k, const char *prefix, int transposed, int ci, int co, int kk, int s,
                            int pad, int H, int W, ubd_act act) {
    int B = p->m->cfg.max_batch;
    memset(k, 0, sizeof *k);
    k->k = (ubd_block2d){.transposed = transposed, .C = ci, .OC = co, .H = H, .W = W, .KH = kk, .KW = kk, .SH = s,
                         .SW = s, .PH = pad, .PW = pad, .act = act, .act_param = 0.0f,
                         .bn_momentum = UBD_AE_BN_MOMENTUM, .bn_eps = UBD_AE_BN_EPS};
    UBD_TRY(ubd_block2d_check(&k->k));
    size_t ws = ubd_block2d_workspace(&k->k, B);
    if (ws > p->work) p->work = ws;
    char name[UBD_MAX_NAME + 32];
    snprintf(name, sizeof name, "%s.layers.0.weight", prefix);
    if (transposed)
        UBD_TRY(add_param(p, &k->w, name, 4, ci, co, kk, kk));
    else
        UBD_TRY(add_param(p, &k->w, name, 4, co, ci, kk, kk));
    snprintf(name, sizeof name, "%s.layers.0.bias", prefix);
    UBD_TRY(add_param(p, &k->b, name, 1, co, 0, 0, 0));
    snprintf(name, sizeof name, "%s.layers.1", prefix);
    UBD_TRY(add_bn(p, name, co, &k->g, &k->beta, &k->rm, &k->rv, &k->nbt));
    size_t n = (size_t)B * co * k->k.OH * k->k.OW;
    if (n > p->gmax) p->gmax = n;
    return UBD_OK;
}

static ubd_status add_head(plan *p, ae_head *h, const char *fc, const char *bn, int ci, int co) {
    char name[UBD_MAX_NAME + 32];
    h->ci = ci, h->co = co;
    snprintf(name, sizeof name, "%s.weight", fc);
    UBD_TRY(add_param(p, &h->w, name, 2, co, ci, 0, 0));
    snprintf(name, sizeof name, "%s.bias", fc);
    UBD_TRY(add_param(p, &h->b, name, 1, co, 0, 0, 0));
    UBD_TRY(add_bn(p, bn, co, &h->g, &h->beta, &h->rm, &h->rv, &h->nbt));
    return UBD_OK;
}

static ubd_status add_linear(plan *p, size_t *w, size_t *b, const char *prefix, int ci, int co) {
    char name[UBD_MAX_NAME + 32];
    snprintf(name, sizeof name, "%s.weight", prefix);
    UBD_TRY(add_param(p, w, name, 2, co, ci, 0, 0));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_param(p, b, name, 1, co, 0, 0, 0);
}

static ubd_status add_layernorm(plan *p, size_t *g, size_t *b, const char *prefix, int C) {
    char name[UBD_MAX_NAME + 32];
    snprintf(name, sizeof name, "%s.weight", prefix);
    UBD_TRY(add_param(p, g, name, 1, C, 0, 0, 0));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_param(p, b, name, 1, C, 0, 0, 0);
}

static void mark_group(ubd_ae *m, int g, size_t start) {
    m->group_off[g] = start;
    m->group_n[g] = m->params.n - start;
}

/* ---- the model ---------------------------------------------------------- */
static ubd_status layout_encoder(plan *p) {
    const ubd_ae_config *c = &p->m->cfg;
    /* (name, ci, co, k, s, pad) of Encoder_v; convBlock8 is ConvBlock_Tanh */
    struct { const char *name; int ci, co, k, s, pad; } E[UBD_AE_NENC] = {
        {"convBlock1_1", 1, c->dim1, 1, 1, 0},      {"convBlock1_2", c->dim1, c->dim1, 3, 1, 1},
        {"convBlock2_1", c->dim1, c->dim2, 3, 2, 1}, {"convBlock2_2", c->dim2, c->dim2, 1, 1, 0},
        {"convBlock3_1", c->dim2, c->dim2, 3, 1, 1}, {"convBlock3_2", c->dim2, c->dim2, 1, 1, 0},
        {"convBlock4_1", c->dim2, c->dim3, 3, 2, 1}, {"convBlock4_2", c->dim3, c->dim3, 1, 1, 0},
        {"convBlock5_1", c->dim3, c->dim3, 3, 1, 0}, {"convBlock5_2", c->dim3, c->dim3, 1, 1, 0},
        {"convBlock6_1", c->dim3, c->dim4, 3, 2, 1}, {"convBlock6_2", c->dim4, c->dim4, 1, 1, 0},
        {"convBlock7_1", c->dim4, c->dim4, 3, 2, 1}, {"convBlock7_2", c->dim4, c->dim4, 3, 2, 1},
        {"convBlock8", c->dim4, c->latent, 3, 2, 1}};
    int H = UBD_AE_VEL, W = UBD_AE_VEL;
    char prefix[UBD_MAX_NAME];
    for (int i = 0; i < UBD_AE_NENC; i++) {
        snprintf(prefix, sizeof prefix, "encoder.%s", E[i].name);
        ae_block *k = &p->m->enc[i];
        UBD_TRY(add_block(p, k, prefix, 0, E[i].ci, E[i].co, E[i].k, E[i].s, E[i].pad, H, W,
                          i == UBD_AE_NENC - 1 ? UBD_ACT_TANH : UBD_ACT_RELU));
        H = k->k.OH, W = k->k.OW;
    }
    UBD_REQUIRE(H == 1 && W == 1, UBD_ERR_VALUE, "autoencoder: encoder output is %dx%d, expected 1x1", H, W);
    return UBD_OK;
}

static ubd_status layout_veldec(plan *p) {
    const ubd_ae_config *c = &p->m->cfg;
    int c0 = c->dd_v * c->head_width;
    /* Decoder_V: DeconvBlock default stride 2, padding 0; ConvBlock default k3 s1 p1 */
    struct { const char *name; int tr, ci, co, k, s, pad; } D[UBD_AE_NDECV] = {
        {"deconvBlock1_1", 1, c0, c0, 5, 2, 0},       {"deconvBlock1_2", 0, c0, c0, 3, 1, 1},
        {"deconvBlock2_1", 1, c0, c->dim4, 4, 2, 1},  {"deconvBlock2_2", 0, c->dim4, c->dim4, 3, 1, 1},
        {"deconvBlock3_1", 1, c->dim4, c->dim3, 4, 2, 1}, {"deconvBlock3_2", 0, c->dim3, c->dim3, 3, 1, 1},
        {"deconvBlock4_1", 1, c->dim3, c->dim2, 4, 2, 1}, {"deconvBlock4_2", 0, c->dim2, c->dim2, 3, 1, 1},
        {"deconvBlock5_1", 1, c->dim2, c->dim1, 4, 2, 1}, {"deconvBlock5_2", 0, c->dim1, c->dim1, 3, 1, 1},
        {"deconvBlock6", 0, c->dim1, 1, 3, 1, 1}};
    int H = 1, W = 1;
    char prefix[UBD_MAX_NAME];
    for (int i = 0; i < UBD_AE_NDECV; i++) {
        if (i == UBD_AE_NDECV - 1) { /* F.pad(x, [-5]*4): crop 80 -> 70 */
            UBD_REQUIRE(H == UBD_AE_VEL + 2 * UBD_AE_CROP && W == H, UBD_ERR_VALUE,
                        "autoencoder: velocity decoder reaches %dx%d before the crop, expected 80x80", H, W);
            H = W = UBD_AE_VEL;
        }
        snprintf(prefix, sizeof prefix, "decoder_v.%s", D[i].name);
        ae_block *k = &p->m->decv[i];
        UBD_TRY(add_block(p, k, prefix, D[i].tr, D[i].ci, D[i].co, D[i].k, D[i].s, D[i].pad, H, W,
                          i == UBD_AE_NDECV - 1 ? UBD_ACT_TANH : UBD_ACT_RELU));
        H = k->k.OH, W = k->k.OW;
    }
    return UBD_OK;
}

static ubd_status layout_seisdec(plan *p) {
    ubd_ae *m = p->m;
    const ubd_ae_config *c = &m->cfg;
    ae_seisdec *d = &m->ds;
    d->C = c->shots * c->head_width;
    d->T = 2;
    d->NH = c->heads;
    d->hidden = c->mlp_hidden;
    d->depth = c->depth;
    d->nout = c->shots * c->nt * c->nr;
    int C = d->C, T = d->T;
    UBD_TRY(add_param(p, &d->cls, "decoder_s.decoder.cls_token", 3, 1, 1, C, 0));
    UBD_TRY(add_param(p, &d->pos, "decoder_s.decoder.pos_embed", 3, 1, T, C, 0));
    UBD_TRY(add_param(p, &d->pe_w, "decoder_s.decoder.patch_embed.proj.weight", 4, C, C, 1, 1));
    UBD_TRY(add_param(p, &d->pe_b, "decoder_s.decoder.patch_embed.proj.bias", 1, C, 0, 0, 0));
    char pre[UBD_MAX_NAME];
    for (int l = 0; l < d->depth; l++) {
        ae_tblock *k = &d->blk[l];
        snprintf(pre, sizeof pre, "decoder_s.decoder.blocks.%d.norm1", l);
        UBD_TRY(add_layernorm(p, &k->ln1_g, &k->ln1_b, pre, C));
        snprintf(pre, sizeof pre, "decoder_s.decoder.blocks.%d.attn.qkv", l);
        UBD_TRY(add_linear(p, &k->qkv_w, &k->qkv_b, pre, C, 3 * C));
        snprintf(pre, sizeof pre, "decoder_s.decoder.blocks.%d.attn.proj", l);
        UBD_TRY(add_linear(p, &k->proj_w, &k->proj_b, pre, C, C));
        snprintf(pre, sizeof pre, "decoder_s.decoder.blocks.%d.norm2", l);
        UBD_TRY(add_layernorm(p, &k->ln2_g, &k->ln2_b, pre, C));
        snprintf(pre, sizeof pre, "decoder_s.decoder.blocks.%d.mlp.fc1", l);
        UBD_TRY(add_linear(p, &k->fc1_w, &k->fc1_b, pre, C, d->hidden));
        snprintf(pre, sizeof pre, "decoder_s.decoder.blocks.%d.mlp.fc2", l);
        UBD_TRY(add_linear(p, &k->fc2_w, &k->fc2_b, pre, d->hidden, C));
    }
    UBD_TRY(add_layernorm(p, &d->norm_g, &d->norm_b, "decoder_s.decoder.norm", C));
    UBD_TRY(add_linear(p, &d->out_w, &d->out_b, "decoder_s.mlp", C, d->nout));
    return UBD_OK;
}

static ubd_status check_sizes(const ubd_ae_config *c) {
#define POS(f) UBD_REQUIRE(c->f > 0, UBD_ERR_VALUE, "autoencoder config: %s must be positive, got %d", #f, c->f)
    POS(dim1); POS(dim2); POS(dim3); POS(dim4); POS(latent); POS(head_width); POS(dd_v); POS(shots); POS(nt);
    POS(nr); POS(heads); POS(depth); POS(mlp_hidden); POS(max_batch);
#undef POS
    UBD_REQUIRE(c->depth <= UBD_AE_MAX_DEPTH, UBD_ERR_VALUE, "autoencoder config: depth %d exceeds %d", c->depth,
                UBD_AE_MAX_DEPTH);
    int C = c->shots * c->head_width;
    UBD_REQUIRE(C % c->heads == 0, UBD_ERR_VALUE,
                "autoencoder config: transformer width shots*head_width = %d is not divisible by heads = %d", C,
                c->heads);
    /* 32-bit BLAS: the largest matrix must stay below 2^31 elements */
    UBD_REQUIRE((double)c->shots * c->nt * c->nr * (double)C < 2147483647.0 &&
                    (double)c->shots * c->nt * c->nr * (double)c->max_batch < 2147483647.0,
                UBD_ERR_VALUE, "autoencoder config: seismic output layer too large for 32-bit BLAS indices");
    return UBD_OK;
}

ubd_status ae_layout(ubd_ae *m) {
    UBD_TRY(check_sizes(&m->cfg));
    plan p = {m, 0, 0};
    const ubd_ae_config *c = &m->cfg;
    int B = c->max_batch;
    size_t start = 0;
    UBD_TRY(layout_encoder(&p));
    mark_group(m, UBD_AE_ENC, start);
    start = m->params.n;
    UBD_TRY(add_head(&p, &m->hv, "fc_v", "batch_norm_v", c->latent, c->dd_v * c->head_width));
    mark_group(m, UBD_AE_HEAD_V, start);
    start = m->params.n;
    UBD_TRY(layout_veldec(&p));
    mark_group(m, UBD_AE_DEC_V, start);
    start = m->params.n;
    UBD_TRY(add_head(&p, &m->hs, "fc_s", "batch_norm_s", c->latent, c->shots * c->head_width));
    mark_group(m, UBD_AE_HEAD_S, start);
    start = m->params.n;
    UBD_TRY(layout_seisdec(&p));
    mark_group(m, UBD_AE_DEC_S, start);
    size_t hmax = (size_t)B * (m->hv.co > m->hs.co ? m->hv.co : m->hs.co);
    if (hmax > p.gmax) p.gmax = hmax; /* the heads' backward uses the same scratch */
    m->gmax = p.gmax;
    m->work_n = p.work;
    return UBD_OK;
}

/* ---- activation memory --------------------------------------------------- */
static void block_slices(ubd_arena *a, ae_block *k, size_t B) {
    const size_t n = B * k->k.OC * k->k.OH * k->k.OW;
    ubd_arena_take(a, &k->z, n, "conv block: conv output");
    ubd_arena_take(a, &k->a, n, "conv block: output");
    ubd_arena_take(a, &k->y, k->k.act == UBD_ACT_TANH ? n : 0, "conv block: BatchNorm output before tanh");
    ubd_arena_take(a, &k->mean, (size_t)k->k.OC, "conv block: mean");
    ubd_arena_take(a, &k->rstd, (size_t)k->k.OC, "conv block: rstd");
}

static void head_slices(ubd_arena *a, ae_head *h, size_t B) {
    ubd_arena_take(a, &h->y, B * h->co, "head: linear output");
    ubd_arena_take(a, &h->a, B * h->co, "head: output");
    ubd_arena_take(a, &h->mean, (size_t)h->co, "head: mean");
    ubd_arena_take(a, &h->rstd, (size_t)h->co, "head: rstd");
}

static void seisdec_slices(ubd_arena *a, ubd_ae *m, size_t B) {
    ae_seisdec *d = &m->ds;
    const size_t C = (size_t)d->C, BT = B * d->T, H = (size_t)d->hidden, natt = B * d->NH * d->T * d->T;
    ubd_arena_take(a, &d->tok, B * C, "D_s: patch embedding");
    ubd_arena_take(a, &d->x0, BT * C, "D_s: tokens");
    for (int l = 0; l < d->depth; l++) {
        ae_tblock *k = &d->blk[l];
        ubd_arena_take(a, &k->ln1, BT * C, "D_s block: norm1");
        ubd_arena_take(a, &k->ln1_mean, BT, "D_s block: norm1 mean");
        ubd_arena_take(a, &k->ln1_rstd, BT, "D_s block: norm1 rstd");
        ubd_arena_take(a, &k->qkv, BT * 3 * C, "D_s block: qkv");
        ubd_arena_take(a, &k->att, natt, "D_s block: attention");
        ubd_arena_take(a, &k->attout, BT * C, "D_s block: attention output");
        ubd_arena_take(a, &k->x1, BT * C, "D_s block: x1");
        ubd_arena_take(a, &k->ln2, BT * C, "D_s block: norm2");
        ubd_arena_take(a, &k->ln2_mean, BT, "D_s block: norm2 mean");
        ubd_arena_take(a, &k->ln2_rstd, BT, "D_s block: norm2 rstd");
        ubd_arena_take(a, &k->h, BT * H, "D_s block: fc1 output");
        ubd_arena_take(a, &k->g, BT * H, "D_s block: GELU output");
        ubd_arena_take(a, &k->x2, BT * C, "D_s block: output");
    }
    ubd_arena_take(a, &d->xf, BT * C, "D_s: final norm");
    ubd_arena_take(a, &d->xf_mean, BT, "D_s: final norm mean");
    ubd_arena_take(a, &d->xf_rstd, BT, "D_s: final norm rstd");
    ubd_arena_take(a, &d->sel, B * C, "D_s: selected token");
    ubd_arena_take(a, &d->out, B * d->nout, "D_s: seismic prediction");
    /* backward scratch */
    ubd_arena_take(a, &m->dseis, B * d->nout, "D_s: output gradient");
    ubd_arena_take(a, &m->dX, BT * C, "D_s: residual gradient");
    ubd_arena_take(a, &m->dln, BT * C, "D_s: norm gradient");
    ubd_arena_take(a, &m->dattout, BT * C, "D_s: attention output gradient");
    ubd_arena_take(a, &m->dxf, BT * C, "D_s: final norm gradient");
    ubd_arena_take(a, &m->dqkv, BT * 3 * C, "D_s: qkv gradient");
    ubd_arena_take(a, &m->datt, natt, "D_s: attention gradient");
    ubd_arena_take(a, &m->dh, BT * H, "D_s: fc1 gradient");
    ubd_arena_take(a, &m->dg, BT * H, "D_s: GELU gradient");
    ubd_arena_take(a, &m->dsel, B * C, "D_s: selected token gradient");
    ubd_arena_take(a, &m->dtok, B * C, "D_s: patch embedding gradient");
}

void ae_lay_out(ubd_ae *m, ubd_arena *a) {
    const ubd_ae_config *c = &m->cfg;
    const size_t B = (size_t)c->max_batch, nvel = B * UBD_AE_VEL * UBD_AE_VEL;
    for (int i = 0; i < UBD_AE_NENC; i++) block_slices(a, &m->enc[i], B);
    head_slices(a, &m->hv, B);
    for (int i = 0; i < UBD_AE_NDECV; i++) block_slices(a, &m->decv[i], B);
    ubd_arena_take(a, &m->crop, B * c->dim1 * UBD_AE_VEL * UBD_AE_VEL, "D_v: cropped map");
    head_slices(a, &m->hs, B);
    seisdec_slices(a, m, B);
    ubd_arena_take(a, &m->work, m->work_n, "conv workspace");
    ubd_arena_take(a, &m->g0, m->gmax, "conv backward scratch");
    ubd_arena_take(a, &m->g1, m->gmax, "conv backward scratch");
    ubd_arena_take(a, &m->g2, m->gmax, "conv backward scratch");
    ubd_arena_take(a, &m->g3, m->gmax, "conv backward scratch");
    ubd_arena_take(a, &m->dz, B * c->latent, "latent gradient");
    ubd_arena_take(a, &m->dhv, B * m->hv.co, "velocity head gradient");
    ubd_arena_take(a, &m->dhs, B * m->hs.co, "seismic head gradient");
    ubd_arena_take(a, &m->dvel, nvel, "velocity gradient");
    ubd_arena_take(a, &m->loss, AE_NSCALARS, "losses");
    ubd_arena_take(a, &m->one, 1, "the constant 1");
    ubd_arena_stage(a, &m->vel_in, nvel, "velocity staging");
    ubd_arena_stage(a, &m->seis_in, B * m->ds.nout, "seismic staging");
    ubd_arena_stage(a, &m->z_in, B * c->latent, "latent staging");
}

ubd_status ubd_ae_build_spec(const ubd_ae_config *cfg, ubd_params *params, ubd_params *bufs, size_t *group_off,
                             size_t *group_n) {
    UBD_REQUIRE_PTR(cfg);
    ubd_ae *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "autoencoder: out of memory");
    m->cfg = *cfg;
    ubd_params_init(&m->params);
    ubd_params_init(&m->bufs);
    ubd_status s = ae_layout(m);
    if (s == UBD_OK) {
        if (params) *params = m->params; else ubd_params_free(&m->params);
        if (bufs) *bufs = m->bufs; else ubd_params_free(&m->bufs);
        for (int g = 0; g < UBD_AE_NGROUPS; g++) {
            if (group_off) group_off[g] = m->group_off[g];
            if (group_n) group_n[g] = m->group_n[g];
        }
    } else {
        ubd_params_free(&m->params);
        ubd_params_free(&m->bufs);
    }
    free(m);
    return s;
}

ubd_status ubd_ae_config_check(const ubd_ae_config *cfg) {
    return ubd_ae_build_spec(cfg, NULL, NULL, NULL, NULL);
}
