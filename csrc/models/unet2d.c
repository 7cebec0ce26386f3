/* unet2d.c — the 2-D U-Net: configs, parameter table (state_dict names and
 * order of lucidrains' Unet), the one-arena memory plan, forward and
 * backward through the blocks of unet2d_blocks.c, PyTorch-default
 * initialisation, host-array entry points and a regression training step.
 * See unet2d.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet2d_impl.h"
#include "../ops.h" /* ubd_adam_check */

#define MAX_VIEWS 1024

ubd_unet2d_config ubd_unet2d_config_paper(void) {
    ubd_unet2d_config c = {64, 4, {1, 2, 4, 8}, {0, 0, 0, 1}, 1, 70, 70, 8, 4, 32};
    return c;
}

ubd_unet2d_config ubd_unet2d_config_small(void) {
    ubd_unet2d_config c = {16, 4, {1, 2, 4, 8}, {0, 0, 0, 1}, 1, 70, 70, 8, 4, 32};
    return c;
}

/* ---- configuration ---------------------------------------------------------- */
static ubd_status check_config(const ubd_unet2d_config *c) {
    UBD_REQUIRE_PTR(c);
    UBD_REQUIRE(c->dim > 0 && c->channels > 0 && c->groups > 0 && c->heads > 0 && c->dim_head > 0, UBD_ERR_VALUE,
                "unet2d: dim, channels, groups, heads and dim_head must be positive, got %d, %d, %d, %d, %d", c->dim,
                c->channels, c->groups, c->heads, c->dim_head);
    UBD_REQUIRE(c->dim % 2 == 0 && c->dim >= 4, UBD_ERR_VALUE,
                "unet2d: dim must be even and >= 4 (sinusoidal time embedding), got %d", c->dim);
    UBD_REQUIRE(c->nlevels >= 1 && c->nlevels <= UBD_UNET2D_MAX_LEVELS, UBD_ERR_VALUE,
                "unet2d: need 1..%d dim_mults, got %d", UBD_UNET2D_MAX_LEVELS, c->nlevels);
    UBD_REQUIRE(c->dim % c->groups == 0, UBD_ERR_VALUE, "unet2d: dim %d is not divisible by groups %d", c->dim,
                c->groups);
    for (int i = 0; i < c->nlevels; i++) {
        UBD_REQUIRE(c->mults[i] > 0 && c->mults[i] <= 4096, UBD_ERR_VALUE,
                    "unet2d: dim_mults[%d] must lie in 1..4096, got %d", i, c->mults[i]);
        UBD_REQUIRE((c->dim * c->mults[i]) % c->groups == 0, UBD_ERR_VALUE,
                    "unet2d: width %d of level %d is not divisible by groups %d", c->dim * c->mults[i], i, c->groups);
        UBD_REQUIRE(c->full_attn[i] == 0 || c->full_attn[i] == 1, UBD_ERR_VALUE,
                    "unet2d: full_attn[%d] must be 0 or 1, got %d", i, c->full_attn[i]);
    }
    UBD_REQUIRE(c->height > 0 && c->width > 0 && c->height <= 4096 && c->width <= 4096, UBD_ERR_VALUE,
                "unet2d: the map must be 1..4096 on each side, got %d x %d", c->height, c->width);
    UBD_REQUIRE((long long)c->dim * 4 <= (1 << 20) && (long long)c->heads * c->dim_head <= (1 << 20), UBD_ERR_VALUE,
                "unet2d: widths too large");
    return UBD_OK;
}

static int round_up(int n, int f) { return (n + f - 1) / f * f; }

ubd_status ubd_unet2d_geometry(const ubd_unet2d_config *c, int *PH, int *PW, int *top, int *left) {
    UBD_TRY(check_config(c));
    const int f = 1 << (c->nlevels - 1); /* the downsamplings halve the map n-1 times */
    const int ph = round_up(c->height, f), pw = round_up(c->width, f);
    if (PH) *PH = ph;
    if (PW) *PW = pw;
    if (top) *top = (ph - c->height) / 2; /* an odd cell goes to the bottom / right */
    if (left) *left = (pw - c->width) / 2;
    return UBD_OK;
}

/* ---- parameter table -------------------------------------------------------- */
/* Adds the view named `fmt...` of the given shape; fan > 0: uniform
 * (+-1/sqrt(fan)) init, 0: ones, -1: zeros. */
static ubd_status reg(ubd_params *p, int *fans, size_t *off, int fan, int ndim, int64_t s0, int64_t s1, int64_t s2,
                      int64_t s3, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 10, 11)))
#endif
    ;
static ubd_status reg(ubd_params *p, int *fans, size_t *off, int fan, int ndim, int64_t s0, int64_t s1, int64_t s2,
                      int64_t s3, const char *fmt, ...) {
    char name[UBD_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    UBD_REQUIRE(len > 0 && len < UBD_MAX_NAME, UBD_ERR_VALUE, "unet2d: parameter name too long");
    UBD_REQUIRE(p->nviews < MAX_VIEWS, UBD_ERR_VALUE, "unet2d: more than %d parameter tensors", MAX_VIEWS);
    if (fans) fans[p->nviews] = fan;
    int64_t shape[4] = {s0, s1, s2, s3};
    size_t o = 0;
    UBD_TRY(ubd_params_add(p, name, ndim, shape, &o));
    if (off) *off = o;
    return UBD_OK;
}

/* What registration writes into: the table, the init rules, and (when
 * building a model) the blocks' geometry and offsets. */
typedef struct {
    ubd_params *p;
    int *fans;
    ubd_unet2d *m; /* NULL: tables only */
} registry;

/* Conv2d(ci -> co, k x k) called `pre`: weight (co, ci, k, k) [+ bias (co)]. */
static ubd_status reg_conv(registry *r, const char *pre, int ci, int co, int k, int bias, size_t *w, size_t *b) {
    UBD_TRY(reg(r->p, r->fans, w, ci * k * k, 4, co, ci, k, k, "%s.weight", pre));
    if (bias) UBD_TRY(reg(r->p, r->fans, b, ci * k * k, 1, co, 0, 0, 0, "%s.bias", pre));
    return UBD_OK;
}

static ubd_status reg_rb(registry *r, ubd_unet2d_rb *b, const char *pre, int ci, int co, int H, int W, int tdim) {
    char s[UBD_MAX_NAME];
    b->ci = ci, b->co = co, b->H = H, b->W = W, b->has_res = ci != co;
    UBD_TRY(reg(r->p, r->fans, &b->mlp_w, tdim, 2, 2 * co, tdim, 0, 0, "%s.mlp.1.weight", pre));
    UBD_TRY(reg(r->p, r->fans, &b->mlp_b, tdim, 1, 2 * co, 0, 0, 0, "%s.mlp.1.bias", pre));
    snprintf(s, sizeof s, "%s.block1.proj", pre);
    UBD_TRY(reg_conv(r, s, ci, co, 3, 1, &b->c1_w, &b->c1_b));
    UBD_TRY(reg(r->p, r->fans, &b->n1_g, 0, 1, co, 0, 0, 0, "%s.block1.norm.weight", pre));
    UBD_TRY(reg(r->p, r->fans, &b->n1_b, -1, 1, co, 0, 0, 0, "%s.block1.norm.bias", pre));
    snprintf(s, sizeof s, "%s.block2.proj", pre);
    UBD_TRY(reg_conv(r, s, co, co, 3, 1, &b->c2_w, &b->c2_b));
    UBD_TRY(reg(r->p, r->fans, &b->n2_g, 0, 1, co, 0, 0, 0, "%s.block2.norm.weight", pre));
    UBD_TRY(reg(r->p, r->fans, &b->n2_b, -1, 1, co, 0, 0, 0, "%s.block2.norm.bias", pre));
    if (b->has_res) {
        snprintf(s, sizeof s, "%s.res_conv", pre);
        UBD_TRY(reg_conv(r, s, ci, co, 1, 1, &b->res_w, &b->res_b));
    }
    return UBD_OK;
}

/* LinearAttention / Attention registers norm, to_qkv, to_out (linear:
 * to_out = Sequential(Conv2d, RMSNorm)). */
static ubd_status reg_attn(registry *r, ubd_unet2d_attn *a, const char *pre, int C, int H, int W, int linear,
                           int hidden) {
    char s[UBD_MAX_NAME];
    a->C = C, a->H = H, a->W = W, a->linear = linear;
    UBD_TRY(reg(r->p, r->fans, &a->norm_g, 0, 4, 1, C, 1, 1, "%s.norm.g", pre));
    UBD_TRY(reg(r->p, r->fans, &a->qkv_w, C, 4, 3 * hidden, C, 1, 1, "%s.to_qkv.weight", pre));
    snprintf(s, sizeof s, "%s.to_out%s", pre, linear ? ".0" : "");
    UBD_TRY(reg_conv(r, s, hidden, C, 1, 1, &a->out_w, &a->out_b));
    if (linear) UBD_TRY(reg(r->p, r->fans, &a->out_g, 0, 4, 1, C, 1, 1, "%s.to_out.1.g", pre));
    return UBD_OK;
}

static void set_conv(ubd_unet2d_conv *c, ubd_unet2d_conv_kind kind, int ci, int co, int H, int W, int K, int P) {
    c->kind = kind, c->ci = ci, c->co = co, c->H = H, c->W = W, c->K = K, c->P = P;
}

/* Registration in PyTorch's order: init_conv, time_mlp, downs, ups,
 * mid_block1, mid_attn, mid_block2, final_res_block, final_conv. With
 * r->m == NULL the blocks are scratch structs and only the table is built. */
static ubd_status register_params(registry *r, const ubd_unet2d_config *c) {
    ubd_unet2d tmp; /* geometry sink when only the table is wanted */
    ubd_unet2d *m = r->m ? r->m : &tmp;
    memset(&tmp, 0, sizeof tmp);
    int PH, PW;
    UBD_TRY(ubd_unet2d_geometry(c, &PH, &PW, NULL, NULL));
    const int nl = c->nlevels, td = 4 * c->dim, hid = c->heads * c->dim_head;
    int dims[UBD_UNET2D_MAX_LEVELS + 1];
    dims[0] = c->dim;
    for (int i = 0; i < nl; i++) dims[i + 1] = c->dim * c->mults[i];
    char s[UBD_MAX_NAME];
    set_conv(&m->init_conv, UBD_UNET2D_PLAIN, c->channels, dims[0], PH, PW, 7, 3);
    UBD_TRY(reg_conv(r, "init_conv", c->channels, dims[0], 7, 1, &m->init_conv.w, &m->init_conv.b));
    UBD_TRY(reg(r->p, r->fans, &m->tm.w1, c->dim, 2, td, c->dim, 0, 0, "time_mlp.1.weight"));
    UBD_TRY(reg(r->p, r->fans, &m->tm.b1, c->dim, 1, td, 0, 0, 0, "time_mlp.1.bias"));
    UBD_TRY(reg(r->p, r->fans, &m->tm.w2, td, 2, td, td, 0, 0, "time_mlp.3.weight"));
    UBD_TRY(reg(r->p, r->fans, &m->tm.b2, td, 1, td, 0, 0, 0, "time_mlp.3.bias"));
    for (int i = 0; i < nl; i++) {
        const int ci = dims[i], co = dims[i + 1], H = PH >> i, W = PW >> i, last = i == nl - 1;
        for (int k = 0; k < 2; k++) {
            snprintf(s, sizeof s, "downs.%d.%d", i, k);
            UBD_TRY(reg_rb(r, &m->down_rb[i][k], s, ci, ci, H, W, td));
        }
        snprintf(s, sizeof s, "downs.%d.2", i);
        UBD_TRY(reg_attn(r, &m->down_at[i], s, ci, H, W, !c->full_attn[i], hid));
        ubd_unet2d_conv *cv = &m->down_cv[i];
        if (last) { /* no downsampling at the lowest level: Conv2d(ci, co, 3, padding=1) */
            set_conv(cv, UBD_UNET2D_PLAIN, ci, co, H, W, 3, 1);
            snprintf(s, sizeof s, "downs.%d.3", i);
            UBD_TRY(reg_conv(r, s, ci, co, 3, 1, &cv->w, &cv->b));
        } else { /* Downsample = Sequential(Rearrange, Conv2d(4ci, co, 1)): the conv is item 1 */
            set_conv(cv, UBD_UNET2D_DOWN, ci, co, H, W, 1, 0);
            snprintf(s, sizeof s, "downs.%d.3.1", i);
            UBD_TRY(reg_conv(r, s, 4 * ci, co, 1, 1, &cv->w, &cv->b));
        }
    }
    for (int j = 0; j < nl; j++) {
        const int i = nl - 1 - j, ci = dims[i], co = dims[i + 1], H = PH >> i, W = PW >> i, last = j == nl - 1;
        for (int k = 0; k < 2; k++) {
            snprintf(s, sizeof s, "ups.%d.%d", j, k);
            UBD_TRY(reg_rb(r, &m->up_rb[j][k], s, co + ci, co, H, W, td));
        }
        snprintf(s, sizeof s, "ups.%d.2", j);
        UBD_TRY(reg_attn(r, &m->up_at[j], s, co, H, W, !c->full_attn[i], hid));
        ubd_unet2d_conv *cv = &m->up_cv[j];
        /* Upsample = Sequential(Upsample, Conv2d(co, ci, 3, padding=1)): the conv is item 1 */
        set_conv(cv, last ? UBD_UNET2D_PLAIN : UBD_UNET2D_UP, co, ci, H, W, 3, 1);
        snprintf(s, sizeof s, "ups.%d.3%s", j, last ? "" : ".1");
        UBD_TRY(reg_conv(r, s, co, ci, 3, 1, &cv->w, &cv->b));
    }
    const int md = dims[nl], Hm = PH >> (nl - 1), Wm = PW >> (nl - 1);
    UBD_TRY(reg_rb(r, &m->mid1, "mid_block1", md, md, Hm, Wm, td));
    UBD_TRY(reg_attn(r, &m->mid_at, "mid_attn", md, Hm, Wm, 0, hid));
    UBD_TRY(reg_rb(r, &m->mid2, "mid_block2", md, md, Hm, Wm, td));
    UBD_TRY(reg_rb(r, &m->final_rb, "final_res_block", 2 * c->dim, c->dim, PH, PW, td));
    set_conv(&m->final_cv, UBD_UNET2D_PLAIN, c->dim, c->channels, PH, PW, 1, 0);
    return reg_conv(r, "final_conv", c->dim, c->channels, 1, 1, &m->final_cv.w, &m->final_cv.b);
}

ubd_status ubd_unet2d_tables(ubd_params *p, const ubd_unet2d_config *c) {
    UBD_REQUIRE_PTR(p);
    registry r = {p, NULL, NULL};
    return register_params(&r, c);
}

/* ---- memory plan (arena.h: run once to plan, once to bind) --------------------
 * The forward pass wires each block's input to the previous block's output
 * and its input gradient to the previous block's output gradient; on the
 * planning pass the pointers are not yet real, the binding pass rewires. */
typedef struct {
    ubd_arena *a;
    ubd_unet2d *m;
    size_t B;
} plan;

/* A gradient buffer: zeroed before each backward (every gradient accumulates). */
static void take_grad(plan *p, float **dst, size_t n, const char *label) {
    ubd_arena_take(p->a, dst, n, label);
    ubd_unet2d *m = p->m;
    if (!p->a->base || !n) return;
    if (m->ngz < UBD_UNET2D_MAX_GRADS) m->gz[m->ngz] = *dst, m->gz_n[m->ngz] = n;
    m->ngz++; /* counted past the end too: lay_out reports an overflow */
}

static void lay_rb(plan *p, ubd_unet2d_rb *b, const float *in, float *din) {
    const size_t n = p->B * b->co * b->H * b->W, ng = p->B * p->m->cfg.groups;
    ubd_arena *a = p->a;
    b->in = in, b->din = din;
    ubd_arena_take(a, &b->ss, p->B * 2 * b->co, "resnet scale|shift");
    ubd_arena_take(a, &b->h1, n, "resnet conv1 out");
    ubd_arena_take(a, &b->g1, n, "resnet norm1 out");
    ubd_arena_take(a, &b->m1, n, "resnet modulated");
    ubd_arena_take(a, &b->a1, n, "resnet act1 out");
    ubd_arena_take(a, &b->h2, n, "resnet conv2 out");
    ubd_arena_take(a, &b->g2, n, "resnet norm2 out");
    ubd_arena_take(a, &b->r, b->has_res ? n : 0, "resnet residual conv out");
    ubd_arena_take(a, &b->mean1, ng, "resnet norm1 mean");
    ubd_arena_take(a, &b->rstd1, ng, "resnet norm1 rstd");
    ubd_arena_take(a, &b->mean2, ng, "resnet norm2 mean");
    ubd_arena_take(a, &b->rstd2, ng, "resnet norm2 rstd");
    ubd_arena_take(a, &b->out, n, "resnet out");
    take_grad(p, &b->dout, n, "resnet out gradient");
}

static void lay_attn(plan *p, ubd_unet2d_attn *at, const float *in, float *din) {
    const ubd_unet2d_config *c = &p->m->cfg;
    const size_t B = p->B, L = (size_t)at->H * at->W, NH = c->heads, HD = c->dim_head, H = NH * HD, n = B * at->C * L;
    ubd_arena *a = p->a;
    at->in = in, at->din = din;
    ubd_arena_take(a, &at->xn, n, "attention norm out");
    ubd_arena_take(a, &at->rn, B * L, "attention norm rnorm");
    ubd_arena_take(a, &at->qkv, 3 * B * H * L, "attention qkv");
    ubd_arena_take(a, &at->o, B * H * L, "attention heads out");
    ubd_arena_take(a, &at->qs, at->linear ? B * H * L : 0, "linear attention softmax q");
    ubd_arena_take(a, &at->ks, at->linear ? B * H * L : 0, "linear attention softmax k");
    ubd_arena_take(a, &at->ctx, at->linear ? B * NH * HD * HD : 0, "linear attention context");
    ubd_arena_take(a, &at->y, at->linear ? n : 0, "linear attention to_out conv");
    ubd_arena_take(a, &at->rn2, at->linear ? B * L : 0, "linear attention to_out rnorm");
    ubd_arena_take(a, &at->att, at->linear ? 0 : B * NH * L * L, "full attention probabilities");
    ubd_arena_take(a, &at->out, n, "attention out");
    take_grad(p, &at->dout, n, "attention out gradient");
}

static void lay_conv(plan *p, ubd_unet2d_conv *c, const float *in, float *din) {
    const size_t B = p->B, n = B * c->co * ubd_unet2d_conv_oh(c) * ubd_unet2d_conv_ow(c);
    c->in = in, c->din = din;
    const size_t pre = c->kind == UBD_UNET2D_PLAIN ? 0 : B * c->ci * c->H * c->W * (c->kind == UBD_UNET2D_UP ? 4 : 1);
    ubd_arena_take(p->a, &c->pre, pre, "conv rearranged input");
    ubd_arena_take(p->a, &c->out, n, "conv out");
    take_grad(p, &c->dout, n, "conv out gradient");
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* Scratch and conv workspace for batch B: the maximum over all blocks. */
static void size_scratch(const ubd_unet2d *m, int B, size_t *scratch, size_t *work) {
    const int nl = m->cfg.nlevels;
    size_t s = 0, w = 0;
#define RB(b) (s = zmax(s, ubd_unet2d_rb_scratch(&(b), B)), w = zmax(w, ubd_unet2d_rb_work(&(b), B)))
#define AT(a) (s = zmax(s, ubd_unet2d_attn_scratch(m, &(a), B)), w = zmax(w, ubd_unet2d_attn_work(m, &(a), B)))
#define CV(c) (s = zmax(s, ubd_unet2d_conv_scratch(&(c), B)), w = zmax(w, ubd_unet2d_conv_work(&(c), B)))
    CV(m->init_conv);
    for (int i = 0; i < nl; i++) {
        RB(m->down_rb[i][0]), RB(m->down_rb[i][1]), AT(m->down_at[i]), CV(m->down_cv[i]);
        RB(m->up_rb[i][0]), RB(m->up_rb[i][1]), AT(m->up_at[i]), CV(m->up_cv[i]);
    }
    RB(m->mid1), AT(m->mid_at), RB(m->mid2), RB(m->final_rb), CV(m->final_cv);
#undef RB
#undef AT
#undef CV
    *scratch = zmax(s, 1), *work = zmax(w, 1);
}

static void lay_out(ubd_unet2d *m, ubd_arena *a, int max_batch) {
    const ubd_unet2d_config *c = &m->cfg;
    plan p = {a, m, (size_t)max_batch};
    const size_t B = p.B, td = m->tdim, npad = B * c->channels * m->PH * m->PW;
    const size_t nio = B * c->channels * c->height * c->width;
    const int nl = c->nlevels;
    if (a->base) m->ngz = 0;
    ubd_arena_take(a, &m->xpad, npad, "padded input");
    take_grad(&p, &m->dxpad, npad, "padded input gradient");
    ubd_arena_take(a, &m->tm.temb, B * c->dim, "time embedding");
    ubd_arena_take(a, &m->tm.t1, B * td, "time mlp 1");
    ubd_arena_take(a, &m->tm.t1g, B * td, "time mlp gelu");
    ubd_arena_take(a, &m->tm.t2, B * td, "time mlp 2");
    ubd_arena_take(a, &m->tm.ts, B * td, "time features (silu)");
    take_grad(&p, &m->tm.d_ts, B * td, "time features gradient");
    take_grad(&p, &m->tm.d_t2, B * td, "time mlp 2 gradient");
    take_grad(&p, &m->tm.d_t1g, B * td, "time mlp gelu gradient");
    take_grad(&p, &m->tm.d_t1, B * td, "time mlp 1 gradient");
    lay_conv(&p, &m->init_conv, m->xpad, m->dxpad);
    const float *cur = m->init_conv.out;
    float *dcur = m->init_conv.dout;
    for (int i = 0; i < nl; i++) {
        lay_rb(&p, &m->down_rb[i][0], cur, dcur);
        lay_rb(&p, &m->down_rb[i][1], m->down_rb[i][0].out, m->down_rb[i][0].dout);
        lay_attn(&p, &m->down_at[i], m->down_rb[i][1].out, m->down_rb[i][1].dout);
        lay_conv(&p, &m->down_cv[i], m->down_at[i].out, m->down_at[i].dout);
        cur = m->down_cv[i].out, dcur = m->down_cv[i].dout;
    }
    lay_rb(&p, &m->mid1, cur, dcur);
    lay_attn(&p, &m->mid_at, m->mid1.out, m->mid1.dout);
    lay_rb(&p, &m->mid2, m->mid_at.out, m->mid_at.dout);
    for (int j = 0; j < nl; j++) {
        const int i = nl - 1 - j;
        const size_t nc = B * (m->dims[i] + m->dims[i + 1]) * (size_t)(m->PH >> i) * (m->PW >> i);
        for (int k = 0; k < 2; k++) {
            ubd_arena_take(a, &m->up_cat[j][k], nc, "skip concat");
            take_grad(&p, &m->d_up_cat[j][k], nc, "skip concat gradient");
            lay_rb(&p, &m->up_rb[j][k], m->up_cat[j][k], m->d_up_cat[j][k]);
        }
        lay_attn(&p, &m->up_at[j], m->up_rb[j][1].out, m->up_rb[j][1].dout);
        lay_conv(&p, &m->up_cv[j], m->up_at[j].out, m->up_at[j].dout);
    }
    const size_t nf = B * 2 * c->dim * m->PH * m->PW;
    ubd_arena_take(a, &m->final_cat, nf, "final concat");
    take_grad(&p, &m->d_final_cat, nf, "final concat gradient");
    lay_rb(&p, &m->final_rb, m->final_cat, m->d_final_cat);
    lay_conv(&p, &m->final_cv, m->final_rb.out, m->final_rb.dout);
    size_t sn, wn;
    size_scratch(m, max_batch, &sn, &wn);
    ubd_arena_take(a, &m->scratch, sn, "backward scratch");
    ubd_arena_take(a, &m->work, wn, "conv workspace");
    ubd_arena_take(a, &m->pred, nio, "train_step prediction");
    ubd_arena_take(a, &m->dpred, nio, "train_step prediction gradient");
    ubd_arena_take(a, &m->loss, 2, "train_step loss and gradient norm");
    ubd_arena_stage(a, &m->x_st, nio, "x staging");
    ubd_arena_stage(a, &m->t_st, B, "t staging");
    ubd_arena_stage(a, &m->out_st, nio, "output staging");
    ubd_arena_stage(a, &m->dout_st, nio, "output gradient staging");
    ubd_arena_stage(a, &m->dx_st, nio, "input gradient staging");
    ubd_arena_stage(a, &m->target_st, nio, "target staging");
    if (a->base) {
        m->scratch_n = sn, m->work_n = wn;
        if (m->ngz > UBD_UNET2D_MAX_GRADS && a->err == UBD_OK)
            a->err = ubd_fail(UBD_ERR_RUNTIME, "unet2d: %d gradient buffers, more than the %d it has room for",
                              m->ngz, UBD_UNET2D_MAX_GRADS);
    }
}

ubd_status ubd_unet2d_reserve(ubd_unet2d *m, int max_batch) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE(max_batch > 0, UBD_ERR_VALUE, "unet2d: max_batch must be positive, got %d", max_batch);
    /* the new arena first: on failure the model keeps its old one */
    ubd_arena a;
    ubd_arena_begin(&a, m->be);
    lay_out(m, &a, max_batch);
    char owner[64];
    snprintf(owner, sizeof owner, "unet2d (max_batch %d)", max_batch);
    UBD_TRY(ubd_arena_commit(&a, owner));
    lay_out(m, &a, max_batch);
    ubd_status s = ubd_arena_end(&a);
    ubd_arena_release(&m->arena); /* only activations lived there */
    m->arena = a;
    m->max_batch = max_batch;
    ubd_unet2d_forget_forward(m);
    return s;
}

void ubd_unet2d_free(ubd_unet2d *m) {
    if (!m) return;
    ubd_params_free(&m->p);
    ubd_arena_release(&m->arena);
    free(m->init_fan);
    free(m);
}

ubd_status ubd_unet2d_create(ubd_unet2d **out, const ubd_unet2d_config *cfg, int max_batch, const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_TRY(check_config(cfg));
    UBD_REQUIRE(max_batch > 0, UBD_ERR_VALUE, "unet2d: max_batch must be positive, got %d", max_batch);
    ubd_unet2d *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "unet2d: out of memory");
    m->be = be ? be : ubd_backend_cpu();
    ubd_params_init_on(&m->p, m->be);
    ubd_arena_begin(&m->arena, m->be);
    m->cfg = *cfg, m->tdim = 4 * cfg->dim;
    m->dims[0] = cfg->dim;
    for (int i = 0; i < cfg->nlevels; i++) m->dims[i + 1] = cfg->dim * cfg->mults[i];
    ubd_status s = ubd_unet2d_geometry(cfg, &m->PH, &m->PW, &m->top, &m->left);
    m->init_fan = malloc(MAX_VIEWS * sizeof(int));
    if (!s && !m->init_fan) s = ubd_fail(UBD_ERR_MEMORY, "unet2d: out of memory");
    if (!s) {
        registry r = {&m->p, m->init_fan, m};
        s = register_params(&r, cfg);
    }
    for (int k = 0; k < UBD_NUM_BUFS && !s; k++) s = ubd_params_alloc(&m->p, (ubd_buf_kind)k);
    if (!s) s = ubd_unet2d_reserve(m, max_batch);
    if (s) {
        ubd_unet2d_free(m);
        return s;
    }
    *out = m;
    return UBD_OK;
}

ubd_params *ubd_unet2d_params(ubd_unet2d *m) { return &m->p; }
const ubd_backend *ubd_unet2d_backend(const ubd_unet2d *m) { return m->be; }
ubd_unet2d_config ubd_unet2d_get_config(const ubd_unet2d *m) { return m->cfg; }
int ubd_unet2d_max_batch(const ubd_unet2d *m) { return m->max_batch; }
size_t ubd_unet2d_activation_floats(const ubd_unet2d *m) { return m->arena.bytes / sizeof(float); }
long long ubd_unet2d_get_step(const ubd_unet2d *m) { return m->step; }

ubd_status ubd_unet2d_set_step(ubd_unet2d *m, long long step) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE(step >= 0, UBD_ERR_VALUE, "unet2d: step must be >= 0, got %lld", step);
    m->step = step;
    return UBD_OK;
}

ubd_status ubd_unet2d_init(ubd_unet2d *m, uint64_t seed) {
    UBD_REQUIRE_PTR(m);
    ubd_unet2d_forget_forward(m); /* first: a failure below may leave the weights half-written */
    const ubd_backend *be = m->be;
    float *P = m->p.buf[UBD_BUF_PARAM];
    for (int v = 0; v < m->p.nviews; v++) {
        const ubd_view *w = &m->p.views[v];
        const int fan = m->init_fan[v];
        if (fan > 0)
            UBD_TRY(be->init_uniform(P + w->offset, w->size, 1.0f / sqrtf((float)fan), seed, (uint64_t)v, 0));
        else
            UBD_TRY(be->fill(P + w->offset, w->size, fan == 0 ? 1.0f : 0.0f));
    }
    UBD_TRY(be->copy(m->p.buf[UBD_BUF_EMA], P, m->p.n * sizeof(float), UBD_D2D));
    for (int k = UBD_BUF_GRAD; k <= UBD_BUF_V; k++) UBD_TRY(be->zero(m->p.buf[k], m->p.n));
    m->step = 0;
    return UBD_OK;
}

void ubd_unet2d_forget_forward(ubd_unet2d *m) {
    if (m) m->last_B = 0;
}

/* ---- forward / backward on backend memory -------------------------------------- */
static ubd_status check_batch(const ubd_unet2d *m, int B, const char *fn) {
    UBD_REQUIRE(B >= 1 && B <= m->max_batch, UBD_ERR_VALUE, "%s: batch %d outside 1..%d (max_batch)", fn, B,
                m->max_batch);
    return UBD_OK;
}

ubd_status ubd_unet2d_forward_dev(ubd_unet2d *m, float *out, const float *x, const float *t, int B,
                                  ubd_buf_kind weights) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE_PTR(t);
    UBD_TRY(check_batch(m, B, "unet2d_forward"));
    UBD_REQUIRE(weights == UBD_BUF_PARAM || weights == UBD_BUF_EMA, UBD_ERR_VALUE,
                "unet2d_forward: weights must be the param or the ema buffer");
    const ubd_backend *be = m->be;
    const ubd_unet2d_config *c = &m->cfg;
    const int nl = c->nlevels, td = m->tdim, H = c->height, Wd = c->width, ch = c->channels;
    const int bottom = m->PH - H - m->top, right = m->PW - Wd - m->left;
    const float *W = m->p.buf[weights];
    ubd_unet2d_forget_forward(m); /* invalid until this forward completes */
    /* zero padding to (PH, PW): a crop by minus the padding */
    UBD_TRY(be->crop2d_forward(m->xpad, x, B, ch, H, Wd, -m->top, -bottom, -m->left, -right));
    UBD_TRY(ubd_time_mlp_forward(be, &m->tm, t, W, B, c->dim, td)); /* m->tm.ts: every block's time input */
    UBD_TRY(ubd_unet2d_conv_forward(m, &m->init_conv, W, B));
    for (int i = 0; i < nl; i++) {
        UBD_TRY(ubd_unet2d_rb_forward(m, &m->down_rb[i][0], W, B));
        UBD_TRY(ubd_unet2d_rb_forward(m, &m->down_rb[i][1], W, B));
        UBD_TRY(ubd_unet2d_attn_forward(m, &m->down_at[i], W, B));
        UBD_TRY(ubd_unet2d_conv_forward(m, &m->down_cv[i], W, B));
    }
    UBD_TRY(ubd_unet2d_rb_forward(m, &m->mid1, W, B));
    UBD_TRY(ubd_unet2d_attn_forward(m, &m->mid_at, W, B));
    UBD_TRY(ubd_unet2d_rb_forward(m, &m->mid2, W, B));
    const float *cur = m->mid2.out;
    for (int j = 0; j < nl; j++) {
        const int i = nl - 1 - j, ci = m->dims[i], co = m->dims[i + 1], S = (m->PH >> i) * (m->PW >> i);
        /* skips pop in reverse: the attention output, then the first block's */
        UBD_TRY(be->concat_forward(m->up_cat[j][0], cur, m->down_at[i].out, B, co, ci, S));
        UBD_TRY(ubd_unet2d_rb_forward(m, &m->up_rb[j][0], W, B));
        UBD_TRY(be->concat_forward(m->up_cat[j][1], m->up_rb[j][0].out, m->down_rb[i][0].out, B, co, ci, S));
        UBD_TRY(ubd_unet2d_rb_forward(m, &m->up_rb[j][1], W, B));
        UBD_TRY(ubd_unet2d_attn_forward(m, &m->up_at[j], W, B));
        UBD_TRY(ubd_unet2d_conv_forward(m, &m->up_cv[j], W, B));
        cur = m->up_cv[j].out;
    }
    UBD_TRY(be->concat_forward(m->final_cat, cur, m->init_conv.out, B, c->dim, c->dim, m->PH * m->PW));
    UBD_TRY(ubd_unet2d_rb_forward(m, &m->final_rb, W, B));
    UBD_TRY(ubd_unet2d_conv_forward(m, &m->final_cv, W, B));
    UBD_TRY(be->crop2d_forward(out, m->final_cv.out, B, ch, m->PH, m->PW, m->top, bottom, m->left, right));
    m->W = W, m->last_B = B, m->last_weights = (int)weights;
    return UBD_OK;
}

ubd_status ubd_unet2d_backward_dev(ubd_unet2d *m, float *dx, const float *dout, int B) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE(m->last_B > 0 && m->last_B == B, UBD_ERR_VALUE,
                "unet2d_backward: needs a preceding forward with the same batch (last %d, now %d)", m->last_B, B);
    UBD_REQUIRE(m->last_weights == UBD_BUF_PARAM, UBD_ERR_VALUE,
                "unet2d_backward: the preceding forward used the EMA weights; backward needs the param buffer");
    const ubd_backend *be = m->be;
    const ubd_unet2d_config *c = &m->cfg;
    const int nl = c->nlevels, td = m->tdim, H = c->height, Wd = c->width, ch = c->channels;
    const int bottom = m->PH - H - m->top, right = m->PW - Wd - m->left;
    const float *W = m->W;
    float *G = m->p.buf[UBD_BUF_GRAD];
    for (int k = 0; k < m->ngz; k++) UBD_TRY(be->zero(m->gz[k], m->gz_n[k]));
    /* the crop's gradient: dout inside, zero on the padding */
    UBD_TRY(be->crop2d_backward(m->final_cv.dout, dout, B, ch, m->PH, m->PW, m->top, bottom, m->left, right));
    UBD_TRY(ubd_unet2d_conv_backward(m, &m->final_cv, W, G, B));
    UBD_TRY(ubd_unet2d_rb_backward(m, &m->final_rb, W, G, B));
    UBD_TRY(be->concat_backward(m->up_cv[nl - 1].dout, m->init_conv.dout, m->d_final_cat, B, c->dim, c->dim,
                                m->PH * m->PW));
    for (int j = nl - 1; j >= 0; j--) {
        const int i = nl - 1 - j, ci = m->dims[i], co = m->dims[i + 1], S = (m->PH >> i) * (m->PW >> i);
        float *dcur = j > 0 ? m->up_cv[j - 1].dout : m->mid2.dout;
        UBD_TRY(ubd_unet2d_conv_backward(m, &m->up_cv[j], W, G, B));
        UBD_TRY(ubd_unet2d_attn_backward(m, &m->up_at[j], W, G, B));
        UBD_TRY(ubd_unet2d_rb_backward(m, &m->up_rb[j][1], W, G, B));
        UBD_TRY(be->concat_backward(m->up_rb[j][0].dout, m->down_rb[i][0].dout, m->d_up_cat[j][1], B, co, ci, S));
        UBD_TRY(ubd_unet2d_rb_backward(m, &m->up_rb[j][0], W, G, B));
        UBD_TRY(be->concat_backward(dcur, m->down_at[i].dout, m->d_up_cat[j][0], B, co, ci, S));
    }
    UBD_TRY(ubd_unet2d_rb_backward(m, &m->mid2, W, G, B));
    UBD_TRY(ubd_unet2d_attn_backward(m, &m->mid_at, W, G, B));
    UBD_TRY(ubd_unet2d_rb_backward(m, &m->mid1, W, G, B));
    for (int i = nl - 1; i >= 0; i--) {
        UBD_TRY(ubd_unet2d_conv_backward(m, &m->down_cv[i], W, G, B));
        UBD_TRY(ubd_unet2d_attn_backward(m, &m->down_at[i], W, G, B));
        UBD_TRY(ubd_unet2d_rb_backward(m, &m->down_rb[i][1], W, G, B));
        UBD_TRY(ubd_unet2d_rb_backward(m, &m->down_rb[i][0], W, G, B));
    }
    m->init_conv.din = dx ? m->dxpad : NULL; /* the input gradient only when asked for */
    ubd_status s = ubd_unet2d_conv_backward(m, &m->init_conv, W, G, B);
    m->init_conv.din = m->dxpad;
    UBD_TRY(s);
    if (dx) UBD_TRY(be->crop2d_backward(dx, m->dxpad, B, ch, H, Wd, -m->top, -bottom, -m->left, -right));
    return ubd_time_mlp_backward(be, &m->tm, W, G, B, c->dim, td);
}

/* ---- host arrays ------------------------------------------------------------------- */
static size_t io_floats(const ubd_unet2d *m, int B) {
    return (size_t)B * m->cfg.channels * m->cfg.height * m->cfg.width;
}

ubd_status ubd_unet2d_forward(ubd_unet2d *m, float *out, const float *x, const float *t, int B, ubd_buf_kind weights) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE(out && x && t, UBD_ERR_VALUE, "unet2d_forward: NULL array");
    UBD_TRY(check_batch(m, B, "unet2d_forward"));
    const size_t n = io_floats(m, B);
    const float *xd, *td;
    UBD_TRY(ubd_stage_in(m->be, &xd, m->x_st, x, n));
    UBD_TRY(ubd_stage_in(m->be, &td, m->t_st, t, (size_t)B));
    float *od = ubd_stage_out(m->be, m->out_st, out);
    UBD_TRY(ubd_unet2d_forward_dev(m, od, xd, td, B, weights));
    return m->be->copy(out, od, n * sizeof(float), UBD_D2H);
}

ubd_status ubd_unet2d_backward(ubd_unet2d *m, float *dx, const float *dout, int B) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(dout);
    UBD_TRY(check_batch(m, B, "unet2d_backward"));
    const size_t n = io_floats(m, B);
    const float *dd;
    UBD_TRY(ubd_stage_in(m->be, &dd, m->dout_st, dout, n));
    float *dxd = NULL;
    if (dx) { /* dx accumulates: its current values go over too */
        const float *cur;
        UBD_TRY(ubd_stage_in(m->be, &cur, m->dx_st, dx, n));
        dxd = (float *)cur;
    }
    UBD_TRY(ubd_unet2d_backward_dev(m, dxd, dd, B));
    return dx ? m->be->copy(dx, dxd, n * sizeof(float), UBD_D2H) : UBD_OK;
}

static ubd_status check_hparams(ubd_unet2d_hparams hp) {
    UBD_TRY(ubd_adam_check("unet2d", hp.adam)); /* the shared check (csrc/cpu/optim.c) */
    UBD_REQUIRE(!isnan(hp.max_grad_norm), UBD_ERR_VALUE, "unet2d: max_grad_norm is NaN");
    return UBD_OK;
}

ubd_status ubd_unet2d_train_step(ubd_unet2d *m, float *losses_out, const float *x, const float *t,
                                 const float *target, int B, ubd_unet2d_hparams hp) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE(losses_out && x && t && target, UBD_ERR_VALUE, "unet2d_train_step: NULL array");
    UBD_TRY(check_batch(m, B, "unet2d_train_step"));
    UBD_TRY(check_hparams(hp)); /* before anything changes */
    const ubd_backend *be = m->be;
    const size_t n = io_floats(m, B), np = m->p.n;
    const float *xd, *td, *yd;
    UBD_TRY(ubd_stage_in(be, &xd, m->x_st, x, n));
    UBD_TRY(ubd_stage_in(be, &td, m->t_st, t, (size_t)B));
    UBD_TRY(ubd_stage_in(be, &yd, m->target_st, target, n));
    float *G = m->p.buf[UBD_BUF_GRAD];
    UBD_TRY(be->zero(G, np));
    UBD_TRY(ubd_unet2d_forward_dev(m, m->pred, xd, td, B, UBD_BUF_PARAM));
    UBD_TRY(be->mse_forward(&m->loss[0], m->pred, yd, n));
    UBD_TRY(be->zero(m->dpred, n));
    UBD_TRY(be->mse_backward(m->dpred, m->pred, yd, n, 1.0f));
    UBD_TRY(ubd_unet2d_backward_dev(m, NULL, m->dpred, B));
    if (hp.max_grad_norm > 0.0f) UBD_TRY(be->clip_grad_norm(&m->loss[1], G, np, hp.max_grad_norm));
    else UBD_TRY(be->grad_norm(&m->loss[1], G, np));
    ubd_unet2d_forget_forward(m); /* the parameters move: the saved activations no longer belong to them */
    UBD_TRY(be->adam_update(m->p.buf[UBD_BUF_PARAM], m->p.buf[UBD_BUF_M], m->p.buf[UBD_BUF_V], G, np, hp.adam,
                            m->step + 1));
    m->step++;
    /* read back once at the end, so a GPU never waits mid-step */
    return be->copy(losses_out, m->loss, 2 * sizeof(float), UBD_D2H);
}
