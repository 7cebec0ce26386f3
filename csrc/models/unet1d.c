/* unet1d.c — the 1-D U-Net: parameter table (state_dict names and order of
 * lucidrains' Unet1D), memory plan, forward and backward through the blocks
 * of unet1d_blocks.c, PyTorch-default initialisation. See unet1d.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../conv.h"
#include "../ops.h"
#include "../shape_ops.h"
#include "unet1d_impl.h"

#define MAX_VIEWS 2048

ubd_unet1d_config ubd_unet1d_config_paper(void) {
    ubd_unet1d_config c = {128, 4, {1, 2, 2, 4}, 1, 128, 8, 4, 32};
    return c;
}

ubd_unet1d_config ubd_unet1d_config_small(void) {
    ubd_unet1d_config c = {32, 4, {1, 2, 2, 2}, 1, 128, 8, 4, 32};
    return c;
}

/* ---- parameter table ------------------------------------------------------ */

/* Adds view `fmt...` of the given shape; fan > 0: uniform(+-1/sqrt(fan)) init,
 * 0: ones, -1: zeros. */
static ubd_status reg(ubd_unet1d *m, size_t *off, int fan, int ndim, int64_t s0, int64_t s1, int64_t s2,
                      const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 8, 9)))
#endif
    ;
static ubd_status reg(ubd_unet1d *m, size_t *off, int fan, int ndim, int64_t s0, int64_t s1, int64_t s2,
                      const char *fmt, ...) {
    char name[UBD_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    UBD_REQUIRE(len > 0 && len < UBD_MAX_NAME, UBD_ERR_VALUE, "unet1d: parameter name too long");
    UBD_REQUIRE(m->p.nviews < MAX_VIEWS, UBD_ERR_VALUE, "unet1d: more than %d parameter tensors", MAX_VIEWS);
    int64_t shape[3] = {s0, s1, s2};
    m->init_fan[m->p.nviews] = fan;
    return ubd_params_add(&m->p, name, ndim, shape, off);
}

/* Conv1d(ci -> co, k) called `pre`: weight (co, ci, k) [+ bias (co)]. */
static ubd_status reg_conv(ubd_unet1d *m, const char *pre, int ci, int co, int k, size_t *w, size_t *b) {
    UBD_TRY(reg(m, w, ci * k, 3, co, ci, k, "%s.weight", pre));
    if (b) UBD_TRY(reg(m, b, ci * k, 1, co, 0, 0, "%s.bias", pre));
    return UBD_OK;
}

static ubd_status reg_rb(ubd_unet1d *m, ubd_unet_rb *b, const char *pre, int ci, int co, int L) {
    char s[UBD_MAX_NAME];
    b->ci = ci, b->co = co, b->L = L, b->has_res = ci != co;
    UBD_TRY(reg(m, &b->mlp_w, m->tdim, 2, 2 * co, m->tdim, 0, "%s.mlp.1.weight", pre));
    UBD_TRY(reg(m, &b->mlp_b, m->tdim, 1, 2 * co, 0, 0, "%s.mlp.1.bias", pre));
    snprintf(s, sizeof s, "%s.block1.proj", pre);
    UBD_TRY(reg_conv(m, s, ci, co, 3, &b->c1_w, &b->c1_b));
    UBD_TRY(reg(m, &b->n1_g, 0, 1, co, 0, 0, "%s.block1.norm.weight", pre));
    UBD_TRY(reg(m, &b->n1_b, -1, 1, co, 0, 0, "%s.block1.norm.bias", pre));
    snprintf(s, sizeof s, "%s.block2.proj", pre);
    UBD_TRY(reg_conv(m, s, co, co, 3, &b->c2_w, &b->c2_b));
    UBD_TRY(reg(m, &b->n2_g, 0, 1, co, 0, 0, "%s.block2.norm.weight", pre));
    UBD_TRY(reg(m, &b->n2_b, -1, 1, co, 0, 0, "%s.block2.norm.bias", pre));
    if (b->has_res) {
        snprintf(s, sizeof s, "%s.res_conv", pre);
        UBD_TRY(reg_conv(m, s, ci, co, 1, &b->res_w, &b->res_b));
    }
    return UBD_OK;
}

/* Residual(PreNorm(C, fn)): PreNorm registers fn before norm, so the keys are
 * pre.fn.fn.* then pre.fn.norm.g (RMSNorm gain, shape (1, C, 1)). */
static ubd_status reg_attn(ubd_unet1d *m, ubd_unet_attn *a, const char *pre, int C, int L, int linear) {
    const int H = m->cfg.heads * m->cfg.dim_head;
    char s[UBD_MAX_NAME];
    a->C = C, a->L = L, a->linear = linear;
    UBD_TRY(reg(m, &a->qkv_w, C, 3, 3 * H, C, 1, "%s.fn.fn.to_qkv.weight", pre));
    snprintf(s, sizeof s, "%s.fn.fn.to_out%s", pre, linear ? ".0" : "");
    UBD_TRY(reg_conv(m, s, H, C, 1, &a->out_w, &a->out_b));
    if (linear) UBD_TRY(reg(m, &a->out_g, 0, 3, 1, C, 1, "%s.fn.fn.to_out.1.g", pre));
    UBD_TRY(reg(m, &a->norm_g, 0, 3, 1, C, 1, "%s.fn.norm.g", pre));
    return UBD_OK;
}

static void set_conv(ubd_unet_conv *c, int ci, int co, int Lin, int K, int S, int P, int up) {
    c->ci = ci, c->co = co, c->Lin = Lin, c->K = K, c->S = S, c->P = P, c->up = up;
}

static int conv_lout(const ubd_unet_conv *c) { return ((c->up ? 2 * c->Lin : c->Lin) + 2 * c->P - c->K) / c->S + 1; }

/* Registration in PyTorch's state_dict order: init_conv, time_mlp, downs,
 * ups, mid_block1, mid_attn, mid_block2, final_res_block, final_conv. */
static ubd_status register_params(ubd_unet1d *m) {
    const ubd_unet1d_config *c = &m->cfg;
    const int nl = c->nlevels, L = c->seq_len, d0 = m->dims[0];
    char s[UBD_MAX_NAME];
    set_conv(&m->init_conv, c->channels, d0, L, 7, 1, 3, 0);
    UBD_TRY(reg_conv(m, "init_conv", c->channels, d0, 7, &m->init_conv.w, &m->init_conv.b));
    UBD_TRY(reg(m, &m->tm.w1, c->dim, 2, m->tdim, c->dim, 0, "time_mlp.1.weight"));
    UBD_TRY(reg(m, &m->tm.b1, c->dim, 1, m->tdim, 0, 0, "time_mlp.1.bias"));
    UBD_TRY(reg(m, &m->tm.w2, m->tdim, 2, m->tdim, m->tdim, 0, "time_mlp.3.weight"));
    UBD_TRY(reg(m, &m->tm.b2, m->tdim, 1, m->tdim, 0, 0, "time_mlp.3.bias"));
    for (int i = 0; i < nl; i++) {
        const int ci = m->dims[i], co = m->dims[i + 1], Li = L >> i, last = i == nl - 1;
        for (int r = 0; r < 2; r++) {
            snprintf(s, sizeof s, "downs.%d.%d", i, r);
            UBD_TRY(reg_rb(m, &m->down_rb[i][r], s, ci, ci, Li));
        }
        snprintf(s, sizeof s, "downs.%d.2", i);
        UBD_TRY(reg_attn(m, &m->down_at[i], s, ci, Li, 1));
        snprintf(s, sizeof s, "downs.%d.3", i);
        if (last) set_conv(&m->down_cv[i], ci, co, Li, 3, 1, 1, 0);
        else set_conv(&m->down_cv[i], ci, co, Li, 4, 2, 1, 0);
        UBD_TRY(reg_conv(m, s, ci, co, m->down_cv[i].K, &m->down_cv[i].w, &m->down_cv[i].b));
    }
    for (int j = 0; j < nl; j++) {
        const int i = nl - 1 - j, ci = m->dims[i], co = m->dims[i + 1], Li = L >> i, last = j == nl - 1;
        for (int r = 0; r < 2; r++) {
            snprintf(s, sizeof s, "ups.%d.%d", j, r);
            UBD_TRY(reg_rb(m, &m->up_rb[j][r], s, co + ci, co, Li));
        }
        snprintf(s, sizeof s, "ups.%d.2", j);
        UBD_TRY(reg_attn(m, &m->up_at[j], s, co, Li, 1));
        /* Upsample = Sequential(Upsample, Conv1d): the conv is item 1 */
        snprintf(s, sizeof s, "ups.%d.3%s", j, last ? "" : ".1");
        set_conv(&m->up_cv[j], co, ci, Li, 3, 1, 1, !last);
        UBD_TRY(reg_conv(m, s, co, ci, 3, &m->up_cv[j].w, &m->up_cv[j].b));
    }
    const int md = m->dims[nl], Lm = L >> (nl - 1);
    UBD_TRY(reg_rb(m, &m->mid1, "mid_block1", md, md, Lm));
    UBD_TRY(reg_attn(m, &m->mid_at, "mid_attn", md, Lm, 0));
    UBD_TRY(reg_rb(m, &m->mid2, "mid_block2", md, md, Lm));
    UBD_TRY(reg_rb(m, &m->final_rb, "final_res_block", 2 * c->dim, c->dim, L));
    set_conv(&m->final_cv, c->dim, c->channels, L, 1, 1, 0, 0);
    return reg_conv(m, "final_conv", c->dim, c->channels, 1, &m->final_cv.w, &m->final_cv.b);
}

/* ---- memory plan ------------------------------------------------------------
 * One layout, two passes over the blocks: pass 0 takes the activations, pass 1
 * the stream gradients, so that those form one contiguous region (zeroed by
 * one call per backward). Wiring (in, din) is written in both passes; pass 1
 * sees the activation pointers pass 0 bound. The whole layout runs twice more
 * (arena.h): once to plan, once to bind. */
typedef struct {
    ubd_arena *a;
    int pass;      /* 0: activations, 1: stream gradients */
    size_t B;
    size_t dn;     /* floats of the gradient region (64-byte rounded like the arena's slices) */
    float *dfirst; /* its first slice (binding) */
} plan;

static void act(plan *p, float **dst, size_t n, const char *label) {
    if (p->pass == 0) ubd_arena_take(p->a, dst, n, label);
}

static void grd(plan *p, float **dst, size_t n, const char *label) {
    if (p->pass != 1) return;
    ubd_arena_take(p->a, dst, n, label);
    p->dn += (n + 15) & ~(size_t)15;
    if (!p->dfirst && p->a->base) p->dfirst = *dst;
}

static void lay_rb(plan *p, int G, ubd_unet_rb *b, const float *in, float *din) {
    const size_t n = p->B * b->co * b->L, ng = p->B * G;
    b->in = in, b->din = din;
    act(p, &b->ss, p->B * 2 * b->co, "resblock scale|shift");
    act(p, &b->h1, n, "resblock conv1"), act(p, &b->g1, n, "resblock norm1"), act(p, &b->m1, n, "resblock mod");
    act(p, &b->a1, n, "resblock silu"), act(p, &b->h2, n, "resblock conv2"), act(p, &b->g2, n, "resblock norm2");
    act(p, &b->r, b->has_res ? n : 0, "resblock res_conv");
    act(p, &b->mean1, ng, "gn mean"), act(p, &b->rstd1, ng, "gn rstd");
    act(p, &b->mean2, ng, "gn mean"), act(p, &b->rstd2, ng, "gn rstd");
    act(p, &b->out, n, "resblock out"), grd(p, &b->dout, n, "d resblock out");
}

static void lay_attn(plan *p, const ubd_unet1d_config *c, ubd_unet_attn *a, const float *in, float *din) {
    const size_t B = p->B, L = a->L, NH = c->heads, HD = c->dim_head, H = NH * HD, n = B * a->C * L;
    a->in = in, a->din = din;
    act(p, &a->xn, n, "attn prenorm"), act(p, &a->rn, B * L, "attn rnorm");
    act(p, &a->qkv, 3 * B * H * L, "attn qkv");
    act(p, &a->o, B * H * L, "attn out");
    if (a->linear) {
        act(p, &a->qs, B * H * L, "attn qs"), act(p, &a->ks, B * H * L, "attn ks");
        act(p, &a->ctx, B * NH * HD * HD, "attn context");
        act(p, &a->y, n, "attn to_out"), act(p, &a->rn2, B * L, "attn to_out rnorm");
    } else {
        act(p, &a->att, B * NH * L * L, "attn weights");
    }
    act(p, &a->out, n, "attn block out"), grd(p, &a->dout, n, "d attn block out");
}

static void lay_conv(plan *p, ubd_unet_conv *c, const float *in, float *din) {
    c->in = in, c->din = din;
    act(p, &c->upbuf, c->up ? p->B * c->ci * 2 * c->Lin : 0, "upsampled");
    const size_t n = p->B * c->co * conv_lout(c);
    act(p, &c->out, n, "conv out"), grd(p, &c->dout, n, "d conv out");
}

static void layout(ubd_unet1d *m, plan *p) {
    const ubd_unet1d_config *c = &m->cfg;
    const size_t B = p->B, L = c->seq_len, td = m->tdim;
    const int nl = c->nlevels, G = c->groups;
    act(p, &m->xin, B * c->channels * L, "input");
    act(p, &m->tin, B, "times");
    act(p, &m->tm.temb, B * c->dim, "time embedding");
    act(p, &m->tm.t1, B * td, "time mlp 1"), act(p, &m->tm.t1g, B * td, "time mlp gelu");
    act(p, &m->tm.t2, B * td, "time mlp 2"), act(p, &m->tm.ts, B * td, "time mlp silu");
    grd(p, &m->tm.d_ts, B * td, "d time silu"), grd(p, &m->tm.d_t2, B * td, "d time mlp 2");
    grd(p, &m->tm.d_t1g, B * td, "d time gelu"), grd(p, &m->tm.d_t1, B * td, "d time mlp 1");
    lay_conv(p, &m->init_conv, m->xin, NULL);
    const float *cur = m->init_conv.out;
    float *dcur = m->init_conv.dout;
    for (int i = 0; i < nl; i++) {
        lay_rb(p, G, &m->down_rb[i][0], cur, dcur);
        lay_rb(p, G, &m->down_rb[i][1], m->down_rb[i][0].out, m->down_rb[i][0].dout);
        lay_attn(p, c, &m->down_at[i], m->down_rb[i][1].out, m->down_rb[i][1].dout);
        lay_conv(p, &m->down_cv[i], m->down_at[i].out, m->down_at[i].dout);
        cur = m->down_cv[i].out, dcur = m->down_cv[i].dout;
    }
    lay_rb(p, G, &m->mid1, cur, dcur);
    lay_attn(p, c, &m->mid_at, m->mid1.out, m->mid1.dout);
    lay_rb(p, G, &m->mid2, m->mid_at.out, m->mid_at.dout);
    for (int j = 0; j < nl; j++) {
        const int i = nl - 1 - j;
        const size_t Li = L >> i, nc = B * (m->dims[i] + m->dims[i + 1]) * Li;
        for (int r = 0; r < 2; r++) {
            act(p, &m->up_cat[j][r], nc, "skip concat"), grd(p, &m->d_up_cat[j][r], nc, "d skip concat");
            lay_rb(p, G, &m->up_rb[j][r], m->up_cat[j][r], m->d_up_cat[j][r]);
        }
        lay_attn(p, c, &m->up_at[j], m->up_rb[j][1].out, m->up_rb[j][1].dout);
        lay_conv(p, &m->up_cv[j], m->up_at[j].out, m->up_at[j].dout);
    }
    act(p, &m->final_cat, B * 2 * c->dim * L, "final concat");
    grd(p, &m->d_final_cat, B * 2 * c->dim * L, "d final concat");
    lay_rb(p, G, &m->final_rb, m->final_cat, m->d_final_cat);
    lay_conv(p, &m->final_cv, m->final_rb.out, m->final_rb.dout);
}

/* The whole arena: activations, stream gradients, scratch, workspace. */
static void lay_out(ubd_unet1d *m, ubd_arena *a) {
    plan p = {a, 0, (size_t)m->max_batch, 0, NULL};
    layout(m, &p);
    p.pass = 1;
    layout(m, &p);
    m->grad = p.dfirst, m->grad_n = p.dn;
    ubd_arena_take(a, &m->scratch, m->scratch_n, "backward scratch");
    ubd_arena_take(a, &m->work, m->work_n, "conv workspace");
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static size_t rb_work(const ubd_unet_rb *b, int B) {
    ubd_conv1d_shape s1 = {B, b->ci, b->L, b->co, 3, 1, 1}, s2 = {B, b->co, b->L, b->co, 3, 1, 1},
                     sr = {B, b->ci, b->L, b->co, 1, 1, 0};
    return zmax(zmax(ubd_conv1d_workspace(s1), ubd_conv1d_workspace(s2)), ubd_conv1d_workspace(sr));
}

static size_t attn_work(const ubd_unet1d *m, const ubd_unet_attn *a, int B) {
    const int H = m->cfg.heads * m->cfg.dim_head;
    ubd_conv1d_shape sq = {B, a->C, a->L, 3 * H, 1, 1, 0}, so = {B, H, a->L, a->C, 1, 1, 0};
    return zmax(ubd_conv1d_workspace(sq), ubd_conv1d_workspace(so));
}

/* Scratch and conv workspace: the maximum over all blocks. */
static void size_scratch(ubd_unet1d *m) {
    const int B = m->max_batch, nl = m->cfg.nlevels;
    size_t s = 0, w = 0;
#define RB(b) (s = zmax(s, ubd_unet_rb_scratch(&(b), B)), w = zmax(w, rb_work(&(b), B)))
#define AT(a) (s = zmax(s, ubd_unet_attn_scratch(m, &(a), B)), w = zmax(w, attn_work(m, &(a), B)))
#define CV(c) (s = zmax(s, ubd_unet_conv_scratch(&(c), B)), w = zmax(w, ubd_unet_conv_work(&(c), B)))
    CV(m->init_conv);
    for (int i = 0; i < nl; i++) {
        RB(m->down_rb[i][0]), RB(m->down_rb[i][1]), AT(m->down_at[i]), CV(m->down_cv[i]);
        RB(m->up_rb[i][0]), RB(m->up_rb[i][1]), AT(m->up_at[i]), CV(m->up_cv[i]);
    }
    RB(m->mid1), AT(m->mid_at), RB(m->mid2), RB(m->final_rb), CV(m->final_cv);
#undef RB
#undef AT
#undef CV
    m->scratch_n = s, m->work_n = zmax(w, 1);
}

static ubd_status check_config(const ubd_unet1d_config *c, int max_batch) {
    UBD_REQUIRE(max_batch > 0, UBD_ERR_VALUE, "unet1d: max_batch must be positive, got %d", max_batch);
    UBD_REQUIRE(c->dim > 0 && c->channels > 0 && c->groups > 0 && c->heads > 0 && c->dim_head > 0, UBD_ERR_VALUE,
                "unet1d: dim, channels, groups, heads and dim_head must be positive");
    UBD_REQUIRE(c->dim % 2 == 0 && c->dim >= 4, UBD_ERR_VALUE,
                "unet1d: dim must be even and >= 4 (sinusoidal embedding), got %d", c->dim);
    UBD_REQUIRE(c->nlevels >= 1 && c->nlevels <= UBD_UNET_MAX_LEVELS, UBD_ERR_VALUE,
                "unet1d: need 1..%d dim_mults, got %d", UBD_UNET_MAX_LEVELS, c->nlevels);
    for (int i = 0; i < c->nlevels; i++)
        UBD_REQUIRE(c->mults[i] > 0, UBD_ERR_VALUE, "unet1d: dim_mults[%d] must be positive, got %d", i,
                    c->mults[i]);
    const int f = 1 << (c->nlevels - 1);
    UBD_REQUIRE(c->seq_len >= f && c->seq_len % f == 0, UBD_ERR_VALUE,
                "unet1d: seq_len must be a positive multiple of 2^(levels-1) = %d, got %d", f, c->seq_len);
    UBD_REQUIRE(c->dim % c->groups == 0, UBD_ERR_VALUE, "unet1d: dim %d not divisible by groups %d", c->dim,
                c->groups);
    for (int i = 0; i < c->nlevels; i++)
        UBD_REQUIRE((c->dim * c->mults[i]) % c->groups == 0, UBD_ERR_VALUE,
                    "unet1d: width %d not divisible by groups %d", c->dim * c->mults[i], c->groups);
    return UBD_OK;
}

ubd_status ubd_unet1d_create(ubd_unet1d **out, ubd_unet1d_config cfg, int max_batch, const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    *out = NULL;
    UBD_TRY(check_config(&cfg, max_batch));
    ubd_unet1d *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "unet1d: out of memory");
    m->be = be ? be : ubd_backend_cpu();
    ubd_params_init_on(&m->p, m->be);
    ubd_arena_begin(&m->arena, m->be);
    m->cfg = cfg, m->max_batch = max_batch, m->tdim = 4 * cfg.dim;
    ubd_unet1d_forget_forward(m);
    m->dims[0] = cfg.dim;
    for (int i = 0; i < cfg.nlevels; i++) m->dims[i + 1] = cfg.dim * cfg.mults[i];
    ubd_status s = UBD_OK;
    m->init_fan = malloc(MAX_VIEWS * sizeof(int));
    if (!m->init_fan) s = ubd_fail(UBD_ERR_MEMORY, "unet1d: out of memory");
    if (!s) s = register_params(m);
    for (int k = 0; k < UBD_NUM_BUFS && !s; k++) s = ubd_params_alloc(&m->p, (ubd_buf_kind)k);
    if (!s) {
        size_scratch(m);
        char owner[64];
        snprintf(owner, sizeof owner, "unet1d (max_batch %d)", max_batch);
        lay_out(m, &m->arena);
        s = ubd_arena_commit(&m->arena, owner);
        if (!s) {
            lay_out(m, &m->arena);
            s = ubd_arena_end(&m->arena);
        }
    }
    if (s) {
        ubd_unet1d_free(m);
        return s;
    }
    *out = m;
    return UBD_OK;
}

void ubd_unet1d_free(ubd_unet1d *m) {
    if (!m) return;
    ubd_params_free(&m->p);
    ubd_arena_release(&m->arena);
    free(m->init_fan);
    free(m);
}

ubd_params *ubd_unet1d_params(ubd_unet1d *m) { return &m->p; }
ubd_unet1d_config ubd_unet1d_get_config(const ubd_unet1d *m) { return m->cfg; }
int ubd_unet1d_max_batch(const ubd_unet1d *m) { return m->max_batch; }
size_t ubd_unet1d_activation_floats(const ubd_unet1d *m) { return m->arena.bytes / sizeof(float); }
const ubd_backend *ubd_unet1d_backend(const ubd_unet1d *m) { return m->be; }

ubd_status ubd_unet1d_init(ubd_unet1d *m, uint64_t seed) {
    UBD_REQUIRE_PTR(m);
    ubd_unet1d_forget_forward(m); /* first: a failure below may leave the weights half-written */
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
    UBD_TRY(be->zero(m->p.buf[UBD_BUF_GRAD], m->p.n));
    UBD_TRY(be->zero(m->p.buf[UBD_BUF_M], m->p.n));
    return be->zero(m->p.buf[UBD_BUF_V], m->p.n);
}

void ubd_unet1d_forget_forward(ubd_unet1d *m) {
    if (m) m->last_B = 0;
}

/* ---- forward / backward ---------------------------------------------------- */

ubd_status ubd_unet1d_forward(ubd_unet1d *m, float *out, const float *x, const float *t, int B,
                              ubd_buf_kind weights) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(x);
    UBD_REQUIRE_PTR(t);
    UBD_REQUIRE(B >= 1 && B <= m->max_batch, UBD_ERR_VALUE, "unet1d_forward: batch %d outside 1..%d (max_batch)", B,
                m->max_batch);
    UBD_REQUIRE(weights == UBD_BUF_PARAM || weights == UBD_BUF_EMA, UBD_ERR_VALUE,
                "unet1d_forward: weights must be the param or the ema buffer");
    const ubd_unet1d_config *c = &m->cfg;
    const int nl = c->nlevels, L = c->seq_len, td = m->tdim;
    const float *W = m->p.buf[weights];
    ubd_unet1d_forget_forward(m); /* invalid until this forward completes */
    const ubd_backend *be = m->be;
    /* copies: backward needs the input, and the caller may reuse x and t */
    UBD_TRY(be->copy(m->xin, x, (size_t)B * c->channels * L * sizeof(float), UBD_D2D));
    UBD_TRY(be->copy(m->tin, t, (size_t)B * sizeof(float), UBD_D2D));
    UBD_TRY(ubd_time_mlp_forward(be, &m->tm, m->tin, W, B, c->dim, td)); /* m->tm.ts: every block's time input */
    UBD_TRY(ubd_unet_conv_forward(m, &m->init_conv, W, B));
    for (int i = 0; i < nl; i++) {
        UBD_TRY(ubd_unet_rb_forward(m, &m->down_rb[i][0], W, B));
        UBD_TRY(ubd_unet_rb_forward(m, &m->down_rb[i][1], W, B));
        UBD_TRY(ubd_unet_attn_forward(m, &m->down_at[i], W, B));
        UBD_TRY(ubd_unet_conv_forward(m, &m->down_cv[i], W, B));
    }
    UBD_TRY(ubd_unet_rb_forward(m, &m->mid1, W, B));
    UBD_TRY(ubd_unet_attn_forward(m, &m->mid_at, W, B));
    UBD_TRY(ubd_unet_rb_forward(m, &m->mid2, W, B));
    const float *cur = m->mid2.out;
    for (int j = 0; j < nl; j++) {
        const int i = nl - 1 - j, ci = m->dims[i], co = m->dims[i + 1], Li = L >> i;
        /* skips pop in reverse: the attention output, then the first block's */
        UBD_TRY(be->concat_forward(m->up_cat[j][0], cur, m->down_at[i].out, B, co, ci, Li));
        UBD_TRY(ubd_unet_rb_forward(m, &m->up_rb[j][0], W, B));
        UBD_TRY(be->concat_forward(m->up_cat[j][1], m->up_rb[j][0].out, m->down_rb[i][0].out, B, co, ci, Li));
        UBD_TRY(ubd_unet_rb_forward(m, &m->up_rb[j][1], W, B));
        UBD_TRY(ubd_unet_attn_forward(m, &m->up_at[j], W, B));
        UBD_TRY(ubd_unet_conv_forward(m, &m->up_cv[j], W, B));
        cur = m->up_cv[j].out;
    }
    UBD_TRY(be->concat_forward(m->final_cat, cur, m->init_conv.out, B, c->dim, c->dim, L));
    UBD_TRY(ubd_unet_rb_forward(m, &m->final_rb, W, B));
    UBD_TRY(ubd_unet_conv_forward(m, &m->final_cv, W, B));
    UBD_TRY(be->copy(out, m->final_cv.out, (size_t)B * c->channels * L * sizeof(float), UBD_D2D));
    m->W = W, m->last_B = B, m->last_weights = (int)weights;
    return UBD_OK;
}

ubd_status ubd_unet1d_backward(ubd_unet1d *m, float *dx, const float *dout, int B) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE(m->last_B > 0 && m->last_B == B, UBD_ERR_VALUE,
                "unet1d_backward: needs a preceding forward with the same batch (last %d, now %d)", m->last_B, B);
    UBD_REQUIRE(m->last_weights == UBD_BUF_PARAM, UBD_ERR_VALUE,
                "unet1d_backward: the preceding forward used the EMA weights; backward needs the param buffer");
    const ubd_unet1d_config *c = &m->cfg;
    const int nl = c->nlevels, L = c->seq_len, td = m->tdim;
    const float *W = m->W;
    float *G = m->p.buf[UBD_BUF_GRAD];
    const ubd_backend *be = m->be;
    UBD_TRY(be->zero(m->grad, m->grad_n));
    UBD_TRY(be->copy(m->final_cv.dout, dout, (size_t)B * c->channels * L * sizeof(float), UBD_D2D));
    UBD_TRY(ubd_unet_conv_backward(m, &m->final_cv, W, G, B));
    UBD_TRY(ubd_unet_rb_backward(m, &m->final_rb, W, G, B));
    UBD_TRY(be->concat_backward(m->up_cv[nl - 1].dout, m->init_conv.dout, m->d_final_cat, B, c->dim, c->dim, L));
    for (int j = nl - 1; j >= 0; j--) {
        const int i = nl - 1 - j, ci = m->dims[i], co = m->dims[i + 1], Li = L >> i;
        float *dcur = j > 0 ? m->up_cv[j - 1].dout : m->mid2.dout;
        UBD_TRY(ubd_unet_conv_backward(m, &m->up_cv[j], W, G, B));
        UBD_TRY(ubd_unet_attn_backward(m, &m->up_at[j], W, G, B));
        UBD_TRY(ubd_unet_rb_backward(m, &m->up_rb[j][1], W, G, B));
        UBD_TRY(be->concat_backward(m->up_rb[j][0].dout, m->down_rb[i][0].dout, m->d_up_cat[j][1], B, co, ci,
                                        Li));
        UBD_TRY(ubd_unet_rb_backward(m, &m->up_rb[j][0], W, G, B));
        UBD_TRY(be->concat_backward(dcur, m->down_at[i].dout, m->d_up_cat[j][0], B, co, ci, Li));
    }
    UBD_TRY(ubd_unet_rb_backward(m, &m->mid2, W, G, B));
    UBD_TRY(ubd_unet_attn_backward(m, &m->mid_at, W, G, B));
    UBD_TRY(ubd_unet_rb_backward(m, &m->mid1, W, G, B));
    for (int i = nl - 1; i >= 0; i--) {
        UBD_TRY(ubd_unet_conv_backward(m, &m->down_cv[i], W, G, B));
        UBD_TRY(ubd_unet_attn_backward(m, &m->down_at[i], W, G, B));
        UBD_TRY(ubd_unet_rb_backward(m, &m->down_rb[i][1], W, G, B));
        UBD_TRY(ubd_unet_rb_backward(m, &m->down_rb[i][0], W, G, B));
    }
    m->init_conv.din = dx; /* the caller's buffer, or NULL */
    ubd_status s = ubd_unet_conv_backward(m, &m->init_conv, W, G, B);
    m->init_conv.din = NULL;
    UBD_TRY(s);
    return ubd_time_mlp_backward(be, &m->tm, W, G, B, c->dim, td);
}
