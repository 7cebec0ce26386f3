/* seis_decoder.c — seismic decoder D_s (the authors' TDecoder_S):
 *   tok = patch_embed(zs)             1x1 Conv2d on a 1x1 "image" = Linear C -> C
 *   x0  = [cls_token; tok] + pos_embed   (T = 2 tokens)
 *   depth x pre-norm blocks:  x += proj(mhsa(qkv(LN1(x))));  x += fc2(GELU(fc1(LN2(x))))
 *   xf  = LN(x); sel = xf[:, 1] (the non-class token: x.permute(0,2,1)[:, :, 1:])
 *   out = mlp(sel) viewed as (B, shots, nt, nr).
 * LayerNorm eps 1e-6; GELU exact; no dropout (p = 0 in the authors' code).
 * Tokens are stored (B*T, C), row b*T + t. Every step is a backend op: the
 * token assembly is tokens_forward/backward, and picking token 1 of each
 * sample is a crop of the (B, 1, T, C) "image" to its row 1. */
#include "ae_internal.h"

ubd_status ae_seisdec_forward(ubd_ae *m, float *out, const float *zs, int B) {
    const ubd_backend *be = m->be;
    ae_seisdec *d = &m->ds;
    const int C = d->C, T = d->T, BT = B * T;
    if (!out) out = d->out;
    UBD_TRY(be->linear_forward(d->tok, zs, ae_p(m, d->pe_w), ae_p(m, d->pe_b), B, C, C));
    UBD_TRY(be->tokens_forward(d->x0, d->tok, ae_p(m, d->cls), ae_p(m, d->pos), B, T, C));
    const float *x = d->x0;
    for (int l = 0; l < d->depth; l++) {
        ae_tblock *k = &d->blk[l];
        UBD_TRY(be->layernorm_forward(k->ln1, k->ln1_mean, k->ln1_rstd, x, ae_p(m, k->ln1_g), ae_p(m, k->ln1_b), BT,
                                      C, UBD_AE_LN_EPS));
        UBD_TRY(be->linear_forward(k->qkv, k->ln1, ae_p(m, k->qkv_w), ae_p(m, k->qkv_b), BT, C, 3 * C));
        UBD_TRY(be->mhsa_forward(k->attout, k->att, k->qkv, B, T, C, d->NH));
        UBD_TRY(be->linear_forward(k->x1, k->attout, ae_p(m, k->proj_w), ae_p(m, k->proj_b), BT, C, C));
        UBD_TRY(be->axpy(k->x1, x, (size_t)BT * C, 1.0f)); /* residual */
        UBD_TRY(be->layernorm_forward(k->ln2, k->ln2_mean, k->ln2_rstd, k->x1, ae_p(m, k->ln2_g), ae_p(m, k->ln2_b),
                                      BT, C, UBD_AE_LN_EPS));
        UBD_TRY(be->linear_forward(k->h, k->ln2, ae_p(m, k->fc1_w), ae_p(m, k->fc1_b), BT, C, d->hidden));
        UBD_TRY(be->act_forward(k->g, k->h, (size_t)BT * d->hidden, UBD_ACT_GELU, 0.0f));
        UBD_TRY(be->linear_forward(k->x2, k->g, ae_p(m, k->fc2_w), ae_p(m, k->fc2_b), BT, d->hidden, C));
        UBD_TRY(be->axpy(k->x2, k->x1, (size_t)BT * C, 1.0f)); /* residual */
        x = k->x2;
    }
    UBD_TRY(be->layernorm_forward(d->xf, d->xf_mean, d->xf_rstd, x, ae_p(m, d->norm_g), ae_p(m, d->norm_b), BT, C,
                                  UBD_AE_LN_EPS));
    /* sel (B, C) = row 1 of each sample's (T, C) tokens: crop T x C to 1 x C, from row 1 */
    UBD_TRY(be->crop2d_forward(d->sel, d->xf, B, 1, T, C, 1, T - 2, 0, 0));
    return be->linear_forward(out, d->sel, ae_p(m, d->out_w), ae_p(m, d->out_b), B, C, d->nout);
}

/* dout (B, nout) -> dzs (B, C) += (NULL: not needed); parameter gradients += . */
ubd_status ae_seisdec_backward(ubd_ae *m, float *dzs, const float *dout, const float *zs, int B) {
    const ubd_backend *be = m->be;
    ae_seisdec *d = &m->ds;
    const int C = d->C, T = d->T, BT = B * T;
    const size_t nt = (size_t)BT * C;
    UBD_TRY(be->zero(m->dsel, (size_t)B * C));
    UBD_TRY(be->linear_backward(m->dsel, ae_g(m, d->out_w), ae_g(m, d->out_b), dout, d->sel, ae_p(m, d->out_w), B, C,
                                d->nout));
    UBD_TRY(be->zero(m->dxf, nt));
    UBD_TRY(be->crop2d_backward(m->dxf, m->dsel, B, 1, T, C, 1, T - 2, 0, 0)); /* back into row 1 */
    float *dX = m->dX; /* gradient of the residual stream, updated block by block */
    UBD_TRY(be->zero(dX, nt));
    const float *xlast = d->depth ? d->blk[d->depth - 1].x2 : d->x0;
    UBD_TRY(be->layernorm_backward(dX, ae_g(m, d->norm_g), ae_g(m, d->norm_b), m->dxf, xlast, ae_p(m, d->norm_g),
                                   d->xf_mean, d->xf_rstd, BT, C));
    for (int l = d->depth - 1; l >= 0; l--) {
        ae_tblock *k = &d->blk[l];
        const float *x = l ? d->blk[l - 1].x2 : d->x0;
        const size_t nh = (size_t)BT * d->hidden;
        /* MLP branch: dX is d(x2) = d(x1) through the residual, plus the branch */
        UBD_TRY(be->zero(m->dg, nh));
        UBD_TRY(be->linear_backward(m->dg, ae_g(m, k->fc2_w), ae_g(m, k->fc2_b), dX, k->g, ae_p(m, k->fc2_w), BT,
                                    d->hidden, C));
        UBD_TRY(be->zero(m->dh, nh));
        UBD_TRY(be->act_backward(m->dh, m->dg, k->h, nh, UBD_ACT_GELU, 0.0f));
        UBD_TRY(be->zero(m->dln, nt));
        UBD_TRY(be->linear_backward(m->dln, ae_g(m, k->fc1_w), ae_g(m, k->fc1_b), m->dh, k->ln2, ae_p(m, k->fc1_w), BT,
                                    C, d->hidden));
        UBD_TRY(be->layernorm_backward(dX, ae_g(m, k->ln2_g), ae_g(m, k->ln2_b), m->dln, k->x1, ae_p(m, k->ln2_g),
                                       k->ln2_mean, k->ln2_rstd, BT, C));
        /* attention branch: dX is now d(x1) */
        UBD_TRY(be->zero(m->dattout, nt));
        UBD_TRY(be->linear_backward(m->dattout, ae_g(m, k->proj_w), ae_g(m, k->proj_b), dX, k->attout,
                                    ae_p(m, k->proj_w), BT, C, C));
        UBD_TRY(be->zero(m->dqkv, 3 * nt));
        UBD_TRY(be->mhsa_backward(m->dqkv, m->datt, m->dattout, k->qkv, k->att, B, T, C, d->NH));
        UBD_TRY(be->zero(m->dln, nt));
        UBD_TRY(be->linear_backward(m->dln, ae_g(m, k->qkv_w), ae_g(m, k->qkv_b), m->dqkv, k->ln1, ae_p(m, k->qkv_w),
                                    BT, C, 3 * C));
        UBD_TRY(be->layernorm_backward(dX, ae_g(m, k->ln1_g), ae_g(m, k->ln1_b), m->dln, x, ae_p(m, k->ln1_g),
                                       k->ln1_mean, k->ln1_rstd, BT, C));
    }
    /* x0 = [cls; tok] + pos */
    UBD_TRY(be->zero(m->dtok, (size_t)B * C));
    UBD_TRY(be->tokens_backward(m->dtok, ae_g(m, d->cls), ae_g(m, d->pos), dX, B, T, C));
    return be->linear_backward(dzs, ae_g(m, d->pe_w), ae_g(m, d->pe_b), m->dtok, zs, ae_p(m, d->pe_w), B, C, C);
}
