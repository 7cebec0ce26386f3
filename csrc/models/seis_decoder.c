/* seis_decoder.c — seismic decoder D_s (the authors' TDecoder_S):
 *   tok = patch_embed(zs)             1x1 Conv2d on a 1x1 "image" = Linear C -> C
 *   x0  = [cls_token; tok] + pos_embed   (T = 2 tokens)
 *   depth x pre-norm blocks:  x += proj(mhsa(qkv(LN1(x))));  x += fc2(GELU(fc1(LN2(x))))
 *   xf  = LN(x); sel = xf[:, 1] (the non-class token: x.permute(0,2,1)[:, :, 1:])
 *   out = mlp(sel) viewed as (B, shots, nt, nr).
 * LayerNorm eps 1e-6; GELU exact; no dropout (p = 0 in the authors' code).
 * Tokens are stored (B*T, C), row b*T + t. */
#include <string.h>

#include "../attention.h"
#include "../norm.h"
#include "../shape_ops.h"
#include "ae_internal.h"

ubd_status ae_seisdec_forward(ubd_ae *m, float *out, const float *zs, int B) {
    ae_seisdec *d = &m->ds;
    const int C = d->C, T = d->T, BT = B * T;
    if (!out) out = d->out;
    UBD_TRY(ubd_cpu_linear_forward(d->tok, zs, ae_p(m, d->pe_w), ae_p(m, d->pe_b), B, C, C));
    const float *cls = ae_p(m, d->cls), *pos = ae_p(m, d->pos);
    for (int b = 0; b < B; b++) {
        float *r0 = d->x0 + (size_t)b * T * C, *r1 = r0 + C;
        const float *tk = d->tok + (size_t)b * C;
        for (int c = 0; c < C; c++) {
            r0[c] = cls[c] + pos[c];
            r1[c] = tk[c] + pos[C + c];
        }
    }
    const float *x = d->x0;
    for (int l = 0; l < d->depth; l++) {
        ae_tblock *k = &d->blk[l];
        UBD_TRY(ubd_cpu_layernorm_forward(k->ln1, k->ln1_mean, k->ln1_rstd, x, ae_p(m, k->ln1_g), ae_p(m, k->ln1_b),
                                          BT, C, UBD_AE_LN_EPS));
        UBD_TRY(ubd_cpu_linear_forward(k->qkv, k->ln1, ae_p(m, k->qkv_w), ae_p(m, k->qkv_b), BT, C, 3 * C));
        UBD_TRY(ubd_cpu_mhsa_forward(k->attout, k->att, k->qkv, B, T, C, d->NH));
        UBD_TRY(ubd_cpu_linear_forward(k->x1, k->attout, ae_p(m, k->proj_w), ae_p(m, k->proj_b), BT, C, C));
        UBD_TRY(ubd_cpu_axpy(k->x1, x, (size_t)BT * C, 1.0f)); /* residual */
        UBD_TRY(ubd_cpu_layernorm_forward(k->ln2, k->ln2_mean, k->ln2_rstd, k->x1, ae_p(m, k->ln2_g),
                                          ae_p(m, k->ln2_b), BT, C, UBD_AE_LN_EPS));
        UBD_TRY(ubd_cpu_linear_forward(k->h, k->ln2, ae_p(m, k->fc1_w), ae_p(m, k->fc1_b), BT, C, d->hidden));
        UBD_TRY(ubd_cpu_act_forward(k->g, k->h, (size_t)BT * d->hidden, UBD_ACT_GELU, 0.0f));
        UBD_TRY(ubd_cpu_linear_forward(k->x2, k->g, ae_p(m, k->fc2_w), ae_p(m, k->fc2_b), BT, d->hidden, C));
        UBD_TRY(ubd_cpu_axpy(k->x2, k->x1, (size_t)BT * C, 1.0f)); /* residual */
        x = k->x2;
    }
    UBD_TRY(ubd_cpu_layernorm_forward(d->xf, d->xf_mean, d->xf_rstd, x, ae_p(m, d->norm_g), ae_p(m, d->norm_b), BT,
                                      C, UBD_AE_LN_EPS));
    for (int b = 0; b < B; b++)
        memcpy(d->sel + (size_t)b * C, d->xf + ((size_t)b * T + 1) * C, (size_t)C * sizeof(float));
    return ubd_cpu_linear_forward(out, d->sel, ae_p(m, d->out_w), ae_p(m, d->out_b), B, C, d->nout);
}

/* dout (B, nout) -> dzs (B, C) += (NULL: not needed); parameter gradients += . */
ubd_status ae_seisdec_backward(ubd_ae *m, float *dzs, const float *dout, const float *zs, int B) {
    ae_seisdec *d = &m->ds;
    const int C = d->C, T = d->T, BT = B * T;
    const size_t nt = (size_t)BT * C;
    memset(m->dsel, 0, (size_t)B * C * sizeof(float));
    UBD_TRY(ubd_cpu_linear_backward(m->dsel, ae_g(m, d->out_w), ae_g(m, d->out_b), dout, d->sel, ae_p(m, d->out_w),
                                    B, C, d->nout));
    memset(m->dxf, 0, nt * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(m->dxf + ((size_t)b * T + 1) * C, m->dsel + (size_t)b * C, (size_t)C * sizeof(float));
    float *dX = m->dX; /* gradient of the residual stream, updated block by block */
    memset(dX, 0, nt * sizeof(float));
    const float *xlast = d->depth ? d->blk[d->depth - 1].x2 : d->x0;
    UBD_TRY(ubd_cpu_layernorm_backward(dX, ae_g(m, d->norm_g), ae_g(m, d->norm_b), m->dxf, xlast, ae_p(m, d->norm_g),
                                       d->xf_mean, d->xf_rstd, BT, C));
    for (int l = d->depth - 1; l >= 0; l--) {
        ae_tblock *k = &d->blk[l];
        const float *x = l ? d->blk[l - 1].x2 : d->x0;
        const size_t nh = (size_t)BT * d->hidden;
        /* MLP branch: dX is d(x2) = d(x1) through the residual, plus the branch */
        memset(m->dg, 0, nh * sizeof(float));
        UBD_TRY(ubd_cpu_linear_backward(m->dg, ae_g(m, k->fc2_w), ae_g(m, k->fc2_b), dX, k->g, ae_p(m, k->fc2_w), BT,
                                        d->hidden, C));
        memset(m->dh, 0, nh * sizeof(float));
        UBD_TRY(ubd_cpu_act_backward(m->dh, m->dg, k->h, nh, UBD_ACT_GELU, 0.0f));
        memset(m->dln, 0, nt * sizeof(float));
        UBD_TRY(ubd_cpu_linear_backward(m->dln, ae_g(m, k->fc1_w), ae_g(m, k->fc1_b), m->dh, k->ln2,
                                        ae_p(m, k->fc1_w), BT, C, d->hidden));
        UBD_TRY(ubd_cpu_layernorm_backward(dX, ae_g(m, k->ln2_g), ae_g(m, k->ln2_b), m->dln, k->x1, ae_p(m, k->ln2_g),
                                           k->ln2_mean, k->ln2_rstd, BT, C));
        /* attention branch: dX is now d(x1) */
        memset(m->dattout, 0, nt * sizeof(float));
        UBD_TRY(ubd_cpu_linear_backward(m->dattout, ae_g(m, k->proj_w), ae_g(m, k->proj_b), dX, k->attout,
                                        ae_p(m, k->proj_w), BT, C, C));
        memset(m->dqkv, 0, 3 * nt * sizeof(float));
        UBD_TRY(ubd_cpu_mhsa_backward(m->dqkv, m->datt, m->dattout, k->qkv, k->att, B, T, C, d->NH));
        memset(m->dln, 0, nt * sizeof(float));
        UBD_TRY(ubd_cpu_linear_backward(m->dln, ae_g(m, k->qkv_w), ae_g(m, k->qkv_b), m->dqkv, k->ln1,
                                        ae_p(m, k->qkv_w), BT, C, 3 * C));
        UBD_TRY(ubd_cpu_layernorm_backward(dX, ae_g(m, k->ln1_g), ae_g(m, k->ln1_b), m->dln, x, ae_p(m, k->ln1_g),
                                           k->ln1_mean, k->ln1_rstd, BT, C));
    }
    /* x0 = [cls; tok] + pos */
    float *dcls = ae_g(m, d->cls), *dpos = ae_g(m, d->pos);
    for (int b = 0; b < B; b++) {
        const float *r0 = dX + (size_t)b * T * C, *r1 = r0 + C;
        for (int c = 0; c < C; c++) {
            dcls[c] += r0[c];
            dpos[c] += r0[c];
            dpos[C + c] += r1[c];
        }
        memcpy(m->dtok + (size_t)b * C, r1, (size_t)C * sizeof(float));
    }
    return ubd_cpu_linear_backward(dzs, ae_g(m, d->pe_w), ae_g(m, d->pe_b), m->dtok, zs, ae_p(m, d->pe_w), B, C, C);
}
