/* unet1d_blocks.c — forward and backward of the U-Net's three block kinds
 * (time-conditioned ResnetBlock, residual pre-norm attention, [upsample +]
 * conv), composed from the backend's ops (m->be). Backward routes gradients
 * through the model's scratch slice, zeroing each buffer before the ops
 * accumulate into it. */
#include <math.h>

#include "../attention.h"
#include "../conv.h"
#include "../norm.h"
#include "../ops.h"
#include "../shape_ops.h"
#include "unet1d_impl.h"

#define GN_EPS 1e-5f /* nn.GroupNorm default */

static size_t al16(size_t n) { return (n + 15) & ~(size_t)15; }

/* ---- ResnetBlock --------------------------------------------------------
 * ss = Linear(SiLU(temb)); h = SiLU(GN(conv1(x)) * (1 + scale) + shift);
 * out = SiLU(GN(conv2(h))) + (res_conv(x) | x). */
ubd_status ubd_unet_rb_forward(const ubd_unet1d *m, ubd_unet_rb *b, const float *W, int B) {
    const int ci = b->ci, co = b->co, L = b->L, G = m->cfg.groups;
    const size_t n = (size_t)B * co * L;
    UBD_TRY(m->be->linear_forward(b->ss, m->tm.ts, W + b->mlp_w, W + b->mlp_b, B, m->tdim, 2 * co));
    ubd_conv1d_shape s1 = {B, ci, L, co, 3, 1, 1}, s2 = {B, co, L, co, 3, 1, 1};
    UBD_TRY(m->be->conv1d_forward(b->h1, b->in, W + b->c1_w, W + b->c1_b, m->work, s1));
    UBD_TRY(m->be->groupnorm_forward(b->g1, b->mean1, b->rstd1, b->h1, W + b->n1_g, W + b->n1_b, B, co, L, G,
                                      GN_EPS));
    UBD_TRY(m->be->scale_shift_forward(b->m1, b->g1, b->ss, B, co, L));
    UBD_TRY(m->be->act_forward(b->a1, b->m1, n, UBD_ACT_SILU, 0.0f));
    UBD_TRY(m->be->conv1d_forward(b->h2, b->a1, W + b->c2_w, W + b->c2_b, m->work, s2));
    UBD_TRY(m->be->groupnorm_forward(b->g2, b->mean2, b->rstd2, b->h2, W + b->n2_g, W + b->n2_b, B, co, L, G,
                                      GN_EPS));
    UBD_TRY(m->be->act_forward(b->out, b->g2, n, UBD_ACT_SILU, 0.0f));
    if (b->has_res) {
        ubd_conv1d_shape sr = {B, ci, L, co, 1, 1, 0};
        UBD_TRY(m->be->conv1d_forward(b->r, b->in, W + b->res_w, W + b->res_b, m->work, sr));
        UBD_TRY(m->be->axpy(b->out, b->r, n, 1.0f));
    } else {
        UBD_TRY(m->be->axpy(b->out, b->in, n, 1.0f));
    }
    return UBD_OK;
}

size_t ubd_unet_rb_scratch(const ubd_unet_rb *b, int B) {
    return 2 * al16((size_t)B * b->co * b->L) + al16((size_t)B * 2 * b->co);
}

ubd_status ubd_unet_rb_backward(ubd_unet1d *m, ubd_unet_rb *b, const float *W, float *G, int B) {
    const int ci = b->ci, co = b->co, L = b->L, NG = m->cfg.groups;
    const size_t n = (size_t)B * co * L;
    float *A = m->scratch, *C = A + al16(n), *dss = C + al16(n);
    ubd_conv1d_shape s1 = {B, ci, L, co, 3, 1, 1}, s2 = {B, co, L, co, 3, 1, 1};
    UBD_TRY(m->be->zero(A, n)); /* dg2 */
    UBD_TRY(m->be->act_backward(A, b->dout, b->g2, n, UBD_ACT_SILU, 0.0f));
    UBD_TRY(m->be->zero(C, n)); /* dh2 */
    UBD_TRY(m->be->groupnorm_backward(C, G + b->n2_g, G + b->n2_b, A, b->h2, W + b->n2_g, b->mean2, b->rstd2, B, co,
                                       L, NG));
    UBD_TRY(m->be->zero(A, n)); /* da1 */
    UBD_TRY(m->be->conv1d_backward(A, G + b->c2_w, G + b->c2_b, C, b->a1, W + b->c2_w, m->work, s2));
    UBD_TRY(m->be->zero(C, n)); /* dm1 */
    UBD_TRY(m->be->act_backward(C, A, b->m1, n, UBD_ACT_SILU, 0.0f));
    UBD_TRY(m->be->zero(A, n)); /* dg1 */
    UBD_TRY(m->be->zero(dss, (size_t)B * 2 * co));
    UBD_TRY(m->be->scale_shift_backward(A, dss, C, b->g1, b->ss, B, co, L));
    UBD_TRY(m->be->linear_backward(m->tm.d_ts, G + b->mlp_w, G + b->mlp_b, dss, m->tm.ts, W + b->mlp_w, B, m->tdim,
                                    2 * co));
    UBD_TRY(m->be->zero(C, n)); /* dh1 */
    UBD_TRY(m->be->groupnorm_backward(C, G + b->n1_g, G + b->n1_b, A, b->h1, W + b->n1_g, b->mean1, b->rstd1, B, co,
                                       L, NG));
    UBD_TRY(m->be->conv1d_backward(b->din, G + b->c1_w, G + b->c1_b, C, b->in, W + b->c1_w, m->work, s1));
    if (b->has_res) {
        ubd_conv1d_shape sr = {B, ci, L, co, 1, 1, 0};
        UBD_TRY(m->be->conv1d_backward(b->din, G + b->res_w, G + b->res_b, b->dout, b->in, W + b->res_w, m->work,
                                        sr));
    } else {
        UBD_TRY(m->be->axpy(b->din, b->dout, n, 1.0f));
    }
    return UBD_OK;
}

/* ---- Residual(PreNorm(C, LinearAttention | Attention)) --------------------
 * xn = RMSNorm(x); qkv = to_qkv(xn); o = attention(qkv);
 * linear: out = x + RMSNorm(to_out(o)); full: out = x + to_out(o). */
ubd_status ubd_unet_attn_forward(const ubd_unet1d *m, ubd_unet_attn *a, const float *W, int B) {
    const int C = a->C, L = a->L, NH = m->cfg.heads, HD = m->cfg.dim_head, H = NH * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    const size_t n = (size_t)B * C * L;
    ubd_conv1d_shape sq = {B, C, L, 3 * H, 1, 1, 0}, so = {B, H, L, C, 1, 1, 0};
    UBD_TRY(m->be->rmsnorm_forward(a->xn, a->rn, a->in, W + a->norm_g, B, C, L));
    UBD_TRY(m->be->conv1d_forward(a->qkv, a->xn, W + a->qkv_w, NULL, m->work, sq));
    if (a->linear) {
        UBD_TRY(m->be->linear_attention_forward(a->o, a->qs, a->ks, a->ctx, a->qkv, B, NH, HD, L, scale));
        UBD_TRY(m->be->conv1d_forward(a->y, a->o, W + a->out_w, W + a->out_b, m->work, so));
        UBD_TRY(m->be->rmsnorm_forward(a->out, a->rn2, a->y, W + a->out_g, B, C, L));
    } else {
        UBD_TRY(m->be->full_attention_forward(a->o, a->att, a->qkv, B, NH, HD, L, scale));
        UBD_TRY(m->be->conv1d_forward(a->out, a->o, W + a->out_w, W + a->out_b, m->work, so));
    }
    return m->be->axpy(a->out, a->in, n, 1.0f);
}

size_t ubd_unet_attn_scratch(const ubd_unet1d *m, const ubd_unet_attn *a, int B) {
    const size_t NH = m->cfg.heads, HD = m->cfg.dim_head, H = NH * HD, L = a->L;
    size_t att_work = a->linear ? 2 * (size_t)B * H * L + (size_t)B * NH * HD * HD : (size_t)B * NH * L * L;
    return al16((size_t)B * a->C * L) + al16((size_t)B * H * L) + al16((size_t)B * 3 * H * L) + al16(att_work);
}

ubd_status ubd_unet_attn_backward(ubd_unet1d *m, ubd_unet_attn *a, const float *W, float *G, int B) {
    const int C = a->C, L = a->L, NH = m->cfg.heads, HD = m->cfg.dim_head, H = NH * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    const size_t n = (size_t)B * C * L, nh = (size_t)B * H * L;
    const size_t att_work = a->linear ? 2 * nh + (size_t)B * NH * HD * HD : (size_t)B * NH * L * L;
    float *dy = m->scratch, *dob = dy + al16(n), *dqkv = dob + al16(nh), *aw = dqkv + al16(3 * nh);
    ubd_conv1d_shape sq = {B, C, L, 3 * H, 1, 1, 0}, so = {B, H, L, C, 1, 1, 0};
    const float *dsrc = a->dout;
    if (a->linear) {
        UBD_TRY(m->be->zero(dy, n));
        UBD_TRY(m->be->rmsnorm_backward(dy, G + a->out_g, a->dout, a->y, W + a->out_g, a->rn2, B, C, L));
        dsrc = dy;
    }
    UBD_TRY(m->be->zero(dob, nh));
    UBD_TRY(m->be->conv1d_backward(dob, G + a->out_w, G + a->out_b, dsrc, a->o, W + a->out_w, m->work, so));
    UBD_TRY(m->be->zero(dqkv, 3 * nh));
    UBD_TRY(m->be->zero(aw, att_work));
    if (a->linear)
        UBD_TRY(m->be->linear_attention_backward(dqkv, aw, dob, a->qkv, a->qs, a->ks, a->ctx, B, NH, HD, L, scale));
    else
        UBD_TRY(m->be->full_attention_backward(dqkv, aw, dob, a->qkv, a->att, B, NH, HD, L, scale));
    UBD_TRY(m->be->zero(dy, n)); /* now d(xn) */
    UBD_TRY(m->be->conv1d_backward(dy, G + a->qkv_w, NULL, dqkv, a->xn, W + a->qkv_w, m->work, sq));
    UBD_TRY(m->be->rmsnorm_backward(a->din, G + a->norm_g, dy, a->in, W + a->norm_g, a->rn, B, C, L));
    return m->be->axpy(a->din, a->dout, n, 1.0f);
}

/* ---- [nearest x2 upsample +] Conv1d --------------------------------------- */
static ubd_conv1d_shape conv_shape(const ubd_unet_conv *c, int B) {
    ubd_conv1d_shape s = {B, c->ci, c->up ? 2 * c->Lin : c->Lin, c->co, c->K, c->S, c->P};
    return s;
}

size_t ubd_unet_conv_work(const ubd_unet_conv *c, int B) { return ubd_conv1d_workspace(conv_shape(c, B)); }

size_t ubd_unet_conv_scratch(const ubd_unet_conv *c, int B) {
    return c->up ? al16((size_t)B * c->ci * 2 * c->Lin) : 0;
}

ubd_status ubd_unet_conv_forward(const ubd_unet1d *m, ubd_unet_conv *c, const float *W, int B) {
    const float *src = c->in;
    if (c->up) {
        UBD_TRY(m->be->upsample1d_forward(c->upbuf, c->in, B, c->ci, c->Lin));
        src = c->upbuf;
    }
    return m->be->conv1d_forward(c->out, src, W + c->w, W + c->b, m->work, conv_shape(c, B));
}

ubd_status ubd_unet_conv_backward(ubd_unet1d *m, ubd_unet_conv *c, const float *W, float *G, int B) {
    if (!c->up)
        return m->be->conv1d_backward(c->din, G + c->w, G + c->b, c->dout, c->in, W + c->w, m->work,
                                       conv_shape(c, B));
    const size_t nu = (size_t)B * c->ci * 2 * c->Lin;
    float *dup = m->scratch;
    UBD_TRY(m->be->zero(dup, nu));
    UBD_TRY(m->be->conv1d_backward(dup, G + c->w, G + c->b, c->dout, c->upbuf, W + c->w, m->work,
                                    conv_shape(c, B)));
    return c->din ? m->be->upsample1d_backward(c->din, dup, B, c->ci, c->Lin) : UBD_OK;
}
