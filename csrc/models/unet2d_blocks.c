/* unet2d_blocks.c — forward and backward of the 2-D U-Net's three block kinds
 * (time-conditioned ResnetBlock, residual attention with its RMSNorm inside,
 * [pixel-unshuffle | upsample +] Conv2d), composed from backend ops. The
 * norms, attention and modulation ops work on (B, C, L) with L = H W, which
 * is exactly the 2-D tensors' memory. Backward routes gradients through the
 * model's scratch, zeroing each buffer before the ops accumulate into it. */
#include <math.h>

#include "unet2d_impl.h"

#define GN_EPS 1e-5f /* nn.GroupNorm default */

static size_t al16(size_t n) { return (n + 15) & ~(size_t)15; }
static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static ubd_conv2d_shape conv_shape(int B, int C, int H, int W, int OC, int K, int P) {
    return (ubd_conv2d_shape){B, C, H, W, OC, K, K, 1, 1, P, P};
}

/* ---- ResnetBlock --------------------------------------------------------
 * ss = Linear(SiLU(temb)); h = SiLU(GN(conv1(x)) * (1 + scale) + shift);
 * out = SiLU(GN(conv2(h))) + (res_conv(x) | x). */
ubd_status ubd_unet2d_rb_forward(const ubd_unet2d *m, ubd_unet2d_rb *b, const float *W, int B) {
    const ubd_backend *be = m->be;
    const int ci = b->ci, co = b->co, L = b->H * b->W, G = m->cfg.groups;
    const size_t n = (size_t)B * co * L;
    UBD_TRY(be->linear_forward(b->ss, m->tm.ts, W + b->mlp_w, W + b->mlp_b, B, m->tdim, 2 * co));
    UBD_TRY(be->conv2d_forward(b->h1, b->in, W + b->c1_w, W + b->c1_b, m->work, conv_shape(B, ci, b->H, b->W, co, 3, 1)));
    UBD_TRY(be->groupnorm_forward(b->g1, b->mean1, b->rstd1, b->h1, W + b->n1_g, W + b->n1_b, B, co, L, G, GN_EPS));
    UBD_TRY(be->scale_shift_forward(b->m1, b->g1, b->ss, B, co, L));
    UBD_TRY(be->act_forward(b->a1, b->m1, n, UBD_ACT_SILU, 0.0f));
    UBD_TRY(be->conv2d_forward(b->h2, b->a1, W + b->c2_w, W + b->c2_b, m->work, conv_shape(B, co, b->H, b->W, co, 3, 1)));
    UBD_TRY(be->groupnorm_forward(b->g2, b->mean2, b->rstd2, b->h2, W + b->n2_g, W + b->n2_b, B, co, L, G, GN_EPS));
    UBD_TRY(be->act_forward(b->out, b->g2, n, UBD_ACT_SILU, 0.0f));
    if (!b->has_res) return be->axpy(b->out, b->in, n, 1.0f);
    UBD_TRY(be->conv2d_forward(b->r, b->in, W + b->res_w, W + b->res_b, m->work,
                               conv_shape(B, ci, b->H, b->W, co, 1, 0)));
    return be->axpy(b->out, b->r, n, 1.0f);
}

size_t ubd_unet2d_rb_scratch(const ubd_unet2d_rb *b, int B) {
    return 2 * al16((size_t)B * b->co * b->H * b->W) + al16((size_t)B * 2 * b->co);
}

size_t ubd_unet2d_rb_work(const ubd_unet2d_rb *b, int B) {
    size_t w = zmax(ubd_conv2d_workspace(conv_shape(B, b->ci, b->H, b->W, b->co, 3, 1)),
                    ubd_conv2d_workspace(conv_shape(B, b->co, b->H, b->W, b->co, 3, 1)));
    return b->has_res ? zmax(w, ubd_conv2d_workspace(conv_shape(B, b->ci, b->H, b->W, b->co, 1, 0))) : w;
}

ubd_status ubd_unet2d_rb_backward(ubd_unet2d *m, ubd_unet2d_rb *b, const float *W, float *G, int B) {
    const ubd_backend *be = m->be;
    const int ci = b->ci, co = b->co, L = b->H * b->W, NG = m->cfg.groups;
    const size_t n = (size_t)B * co * L;
    float *A = m->scratch, *C = A + al16(n), *dss = C + al16(n);
    UBD_TRY(be->zero(A, n)); /* dg2 */
    UBD_TRY(be->act_backward(A, b->dout, b->g2, n, UBD_ACT_SILU, 0.0f));
    UBD_TRY(be->zero(C, n)); /* dh2 */
    UBD_TRY(be->groupnorm_backward(C, G + b->n2_g, G + b->n2_b, A, b->h2, W + b->n2_g, b->mean2, b->rstd2, B, co, L,
                                   NG));
    UBD_TRY(be->zero(A, n)); /* da1 */
    UBD_TRY(be->conv2d_backward(A, G + b->c2_w, G + b->c2_b, C, b->a1, W + b->c2_w, m->work,
                                conv_shape(B, co, b->H, b->W, co, 3, 1)));
    UBD_TRY(be->zero(C, n)); /* dm1 */
    UBD_TRY(be->act_backward(C, A, b->m1, n, UBD_ACT_SILU, 0.0f));
    UBD_TRY(be->zero(A, n)); /* dg1 */
    UBD_TRY(be->zero(dss, (size_t)B * 2 * co));
    UBD_TRY(be->scale_shift_backward(A, dss, C, b->g1, b->ss, B, co, L));
    UBD_TRY(be->linear_backward(m->tm.d_ts, G + b->mlp_w, G + b->mlp_b, dss, m->tm.ts, W + b->mlp_w, B, m->tdim, 2 * co));
    UBD_TRY(be->zero(C, n)); /* dh1 */
    UBD_TRY(be->groupnorm_backward(C, G + b->n1_g, G + b->n1_b, A, b->h1, W + b->n1_g, b->mean1, b->rstd1, B, co, L,
                                   NG));
    UBD_TRY(be->conv2d_backward(b->din, G + b->c1_w, G + b->c1_b, C, b->in, W + b->c1_w, m->work,
                                conv_shape(B, ci, b->H, b->W, co, 3, 1)));
    if (!b->has_res) return be->axpy(b->din, b->dout, n, 1.0f);
    return be->conv2d_backward(b->din, G + b->res_w, G + b->res_b, b->dout, b->in, W + b->res_w, m->work,
                               conv_shape(B, ci, b->H, b->W, co, 1, 0));
}

/* ---- x + Attention(x) -----------------------------------------------------
 * xn = RMSNorm(x); qkv = to_qkv(xn) (1x1, no bias); o = attention(qkv);
 * linear: out = x + RMSNorm(to_out(o)); full: out = x + to_out(o). A 1x1
 * Conv2d on (B, C, H, W) is a Conv1d on (B, C, L): the conv2d op with a 1x1
 * kernel on an L x 1 map. */
static ubd_conv2d_shape pointwise(int B, int C, int L, int OC) { return conv_shape(B, C, L, 1, OC, 1, 0); }

static float attn_scale(const ubd_unet2d *m) { return 1.0f / sqrtf((float)m->cfg.dim_head); }

ubd_status ubd_unet2d_attn_forward(const ubd_unet2d *m, ubd_unet2d_attn *a, const float *W, int B) {
    const ubd_backend *be = m->be;
    const int C = a->C, L = a->H * a->W, NH = m->cfg.heads, HD = m->cfg.dim_head, H = NH * HD;
    const size_t n = (size_t)B * C * L;
    UBD_TRY(be->rmsnorm_forward(a->xn, a->rn, a->in, W + a->norm_g, B, C, L));
    UBD_TRY(be->conv2d_forward(a->qkv, a->xn, W + a->qkv_w, NULL, m->work, pointwise(B, C, L, 3 * H)));
    if (a->linear) {
        UBD_TRY(be->linear_attention_forward(a->o, a->qs, a->ks, a->ctx, a->qkv, B, NH, HD, L, attn_scale(m)));
        UBD_TRY(be->conv2d_forward(a->y, a->o, W + a->out_w, W + a->out_b, m->work, pointwise(B, H, L, C)));
        UBD_TRY(be->rmsnorm_forward(a->out, a->rn2, a->y, W + a->out_g, B, C, L));
    } else {
        UBD_TRY(be->full_attention_forward(a->o, a->att, a->qkv, B, NH, HD, L, attn_scale(m)));
        UBD_TRY(be->conv2d_forward(a->out, a->o, W + a->out_w, W + a->out_b, m->work, pointwise(B, H, L, C)));
    }
    return be->axpy(a->out, a->in, n, 1.0f);
}

static size_t attn_work_floats(const ubd_unet2d *m, const ubd_unet2d_attn *a, int B) {
    const size_t NH = m->cfg.heads, HD = m->cfg.dim_head, H = NH * HD, L = (size_t)a->H * a->W;
    return a->linear ? 2 * (size_t)B * H * L + (size_t)B * NH * HD * HD : (size_t)B * NH * L * L;
}

size_t ubd_unet2d_attn_scratch(const ubd_unet2d *m, const ubd_unet2d_attn *a, int B) {
    const size_t H = (size_t)m->cfg.heads * m->cfg.dim_head, L = (size_t)a->H * a->W;
    return al16((size_t)B * a->C * L) + al16((size_t)B * H * L) + al16((size_t)B * 3 * H * L) +
           al16(attn_work_floats(m, a, B));
}

size_t ubd_unet2d_attn_work(const ubd_unet2d *m, const ubd_unet2d_attn *a, int B) {
    const int H = m->cfg.heads * m->cfg.dim_head, L = a->H * a->W;
    return zmax(ubd_conv2d_workspace(pointwise(B, a->C, L, 3 * H)), ubd_conv2d_workspace(pointwise(B, H, L, a->C)));
}

ubd_status ubd_unet2d_attn_backward(ubd_unet2d *m, ubd_unet2d_attn *a, const float *W, float *G, int B) {
    const ubd_backend *be = m->be;
    const int C = a->C, L = a->H * a->W, NH = m->cfg.heads, HD = m->cfg.dim_head, H = NH * HD;
    const size_t n = (size_t)B * C * L, nh = (size_t)B * H * L, aw_n = attn_work_floats(m, a, B);
    float *dy = m->scratch, *dob = dy + al16(n), *dqkv = dob + al16(nh), *aw = dqkv + al16(3 * nh);
    const float *dsrc = a->dout;
    if (a->linear) {
        UBD_TRY(be->zero(dy, n));
        UBD_TRY(be->rmsnorm_backward(dy, G + a->out_g, a->dout, a->y, W + a->out_g, a->rn2, B, C, L));
        dsrc = dy;
    }
    UBD_TRY(be->zero(dob, nh));
    UBD_TRY(be->conv2d_backward(dob, G + a->out_w, G + a->out_b, dsrc, a->o, W + a->out_w, m->work,
                                pointwise(B, H, L, C)));
    UBD_TRY(be->zero(dqkv, 3 * nh));
    UBD_TRY(be->zero(aw, aw_n));
    if (a->linear)
        UBD_TRY(be->linear_attention_backward(dqkv, aw, dob, a->qkv, a->qs, a->ks, a->ctx, B, NH, HD, L,
                                              attn_scale(m)));
    else
        UBD_TRY(be->full_attention_backward(dqkv, aw, dob, a->qkv, a->att, B, NH, HD, L, attn_scale(m)));
    UBD_TRY(be->zero(dy, n)); /* now d(xn) */
    UBD_TRY(be->conv2d_backward(dy, G + a->qkv_w, NULL, dqkv, a->xn, W + a->qkv_w, m->work, pointwise(B, C, L, 3 * H)));
    UBD_TRY(be->rmsnorm_backward(a->din, G + a->norm_g, dy, a->in, W + a->norm_g, a->rn, B, C, L));
    return be->axpy(a->din, a->dout, n, 1.0f);
}

/* ---- [pixel-unshuffle | nearest x2 +] Conv2d ------------------------------ */
int ubd_unet2d_conv_oh(const ubd_unet2d_conv *c) {
    return c->kind == UBD_UNET2D_DOWN ? c->H / 2 : c->kind == UBD_UNET2D_UP ? 2 * c->H : c->H;
}
int ubd_unet2d_conv_ow(const ubd_unet2d_conv *c) {
    return c->kind == UBD_UNET2D_DOWN ? c->W / 2 : c->kind == UBD_UNET2D_UP ? 2 * c->W : c->W;
}

/* The convolution proper, on its (possibly rearranged) input. */
static ubd_conv2d_shape cv_shape(const ubd_unet2d_conv *c, int B) {
    const int cin = c->kind == UBD_UNET2D_DOWN ? 4 * c->ci : c->ci;
    return conv_shape(B, cin, ubd_unet2d_conv_oh(c), ubd_unet2d_conv_ow(c), c->co, c->K, c->P);
}

static size_t pre_floats(const ubd_unet2d_conv *c, int B) {
    return c->kind == UBD_UNET2D_PLAIN ? 0 : (size_t)B * c->ci * c->H * c->W * (c->kind == UBD_UNET2D_UP ? 4 : 1);
}

size_t ubd_unet2d_conv_work(const ubd_unet2d_conv *c, int B) { return ubd_conv2d_workspace(cv_shape(c, B)); }
size_t ubd_unet2d_conv_scratch(const ubd_unet2d_conv *c, int B) { return al16(pre_floats(c, B)); }

ubd_status ubd_unet2d_conv_forward(const ubd_unet2d *m, ubd_unet2d_conv *c, const float *W, int B) {
    const ubd_backend *be = m->be;
    const float *src = c->in;
    if (c->kind == UBD_UNET2D_DOWN) {
        UBD_TRY(be->pixel_unshuffle_forward(c->pre, c->in, B, c->ci, c->H, c->W, 2));
        src = c->pre;
    } else if (c->kind == UBD_UNET2D_UP) {
        UBD_TRY(be->upsample2d_forward(c->pre, c->in, B, c->ci, c->H, c->W));
        src = c->pre;
    }
    return be->conv2d_forward(c->out, src, W + c->w, W + c->b, m->work, cv_shape(c, B));
}

ubd_status ubd_unet2d_conv_backward(ubd_unet2d *m, ubd_unet2d_conv *c, const float *W, float *G, int B) {
    const ubd_backend *be = m->be;
    if (c->kind == UBD_UNET2D_PLAIN)
        return be->conv2d_backward(c->din, G + c->w, G + c->b, c->dout, c->in, W + c->w, m->work, cv_shape(c, B));
    float *dpre = m->scratch;
    UBD_TRY(be->zero(dpre, pre_floats(c, B)));
    UBD_TRY(be->conv2d_backward(dpre, G + c->w, G + c->b, c->dout, c->pre, W + c->w, m->work, cv_shape(c, B)));
    if (!c->din) return UBD_OK;
    if (c->kind == UBD_UNET2D_DOWN) return be->pixel_unshuffle_backward(c->din, dpre, B, c->ci, c->H, c->W, 2);
    return be->upsample2d_backward(c->din, dpre, B, c->ci, c->H, c->W);
}
