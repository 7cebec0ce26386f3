/* block2d.c — Conv/ConvTranspose + BatchNorm + activation; see block2d.h. */
#include "block2d.h"

#include "conv.h"

static ubd_conv2d_shape conv_shape(const ubd_block2d *k, int B) {
    return (ubd_conv2d_shape){B, k->C, k->H, k->W, k->OC, k->KH, k->KW, k->SH, k->SW, k->PH, k->PW};
}

static ubd_convt2d_shape convt_shape(const ubd_block2d *k, int B) {
    return (ubd_convt2d_shape){B, k->C, k->H, k->W, k->OC, k->KH, k->KW, k->SH, k->SW, k->PH, k->PW, k->OPH, k->OPW};
}

/* The activation's derivative can be taken at its output instead of its input. */
static int act_from_output(const ubd_block2d *k) {
    return k->act == UBD_ACT_RELU || (k->act == UBD_ACT_LEAKY_RELU && k->act_param > 0.0f);
}

ubd_status ubd_block2d_check(ubd_block2d *k) {
    UBD_REQUIRE_PTR(k);
    UBD_REQUIRE(k->act >= 0 && k->act < UBD_ACT_NUM, UBD_ERR_VALUE, "block2d: unknown activation %d", (int)k->act);
    UBD_REQUIRE(k->bn_eps > 0.0f, UBD_ERR_VALUE, "block2d: BatchNorm eps must be positive, got %g", k->bn_eps);
    UBD_REQUIRE(k->bn_momentum >= 0.0f && k->bn_momentum <= 1.0f, UBD_ERR_VALUE,
                "block2d: BatchNorm momentum must lie in [0, 1], got %g", k->bn_momentum);
    if (k->transposed) return ubd_convt2d_check(convt_shape(k, 1), &k->OH, &k->OW);
    return ubd_conv2d_check(conv_shape(k, 1), &k->OH, &k->OW);
}

size_t ubd_block2d_workspace(const ubd_block2d *k, int B) {
    return k->transposed ? ubd_convt2d_workspace(convt_shape(k, B)) : ubd_conv2d_workspace(conv_shape(k, B));
}

size_t ubd_block2d_weight_size(const ubd_block2d *k) { return (size_t)k->C * k->OC * k->KH * k->KW; }

static ubd_status conv_forward(const ubd_backend *be, float *z, const float *x, ubd_block2d_weights w, float *work,
                               const ubd_block2d *k, int B) {
    if (k->transposed) return be->convt2d_forward(z, x, w.weight, w.bias, work, convt_shape(k, B));
    return be->conv2d_forward(z, x, w.weight, w.bias, work, conv_shape(k, B));
}

ubd_status ubd_block2d_forward_train(const ubd_backend *be, float *a, float *z, float *y, float *mean, float *rstd,
                                     float *running_mean, float *running_var, const float *x, ubd_block2d_weights w,
                                     float *work, const ubd_block2d *k, int B) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE(a && z && mean && rstd && x, UBD_ERR_VALUE, "block2d_forward_train: NULL buffer");
    UBD_REQUIRE(y || act_from_output(k), UBD_ERR_VALUE,
                "block2d_forward_train: activation %d needs the pre-activation buffer y", (int)k->act);
    const int S = k->OH * k->OW;
    const size_t n = (size_t)B * k->OC * S;
    float *pre = y ? y : a; /* BatchNorm output; activated in place when y is NULL */
    UBD_TRY(conv_forward(be, z, x, w, work, k, B));
    if (k->bn_sync) /* host memory only: ubd_invnet_set_bn_sync refuses other backends */
        UBD_TRY(ubd_syncbn_forward_train(pre, mean, rstd, running_mean, running_var, z, w.gamma, w.beta, B, k->OC, S,
                                         k->bn_momentum, k->bn_eps, k->bn_sync));
    else
        UBD_TRY(be->batchnorm_forward_train(pre, mean, rstd, running_mean, running_var, z, w.gamma, w.beta, B, k->OC,
                                            S, k->bn_momentum, k->bn_eps));
    return be->act_forward(a, pre, n, k->act, k->act_param);
}

ubd_status ubd_block2d_forward_eval(const ubd_backend *be, float *a, float *z, const float *x, ubd_block2d_weights w,
                                    const float *running_mean, const float *running_var, float *work,
                                    const ubd_block2d *k, int B) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE(a && z && x && running_mean && running_var, UBD_ERR_VALUE, "block2d_forward_eval: NULL buffer");
    const int S = k->OH * k->OW;
    UBD_TRY(conv_forward(be, z, x, w, work, k, B));
    UBD_TRY(be->batchnorm_forward_eval(a, z, w.gamma, w.beta, running_mean, running_var, B, k->OC, S, k->bn_eps));
    return be->act_forward(a, a, (size_t)B * k->OC * S, k->act, k->act_param);
}

ubd_status ubd_block2d_backward(const ubd_backend *be, float *dx, ubd_block2d_grads g, float *da, float *dy,
                                const float *x, const float *z, const float *y, const float *a, const float *mean,
                                const float *rstd, ubd_block2d_weights w, float *work, const ubd_block2d *k, int B) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE(da && dy && x && z && a && mean && rstd, UBD_ERR_VALUE, "block2d_backward: NULL buffer");
    UBD_REQUIRE(y || act_from_output(k), UBD_ERR_VALUE,
                "block2d_backward: activation %d needs the pre-activation buffer y", (int)k->act);
    const int S = k->OH * k->OW;
    const size_t n = (size_t)B * k->OC * S;
    UBD_TRY(be->zero(dy, n));
    UBD_TRY(be->act_backward(dy, da, y ? y : a, n, k->act, k->act_param));
    float *dz = da; /* da is spent: reuse it for the gradient of the convolution output */
    UBD_TRY(be->zero(dz, n));
    if (k->bn_sync)
        UBD_TRY(ubd_syncbn_backward(dz, g.dgamma, g.dbeta, dy, z, w.gamma, mean, rstd, B, k->OC, S, k->bn_sync));
    else
        UBD_TRY(be->batchnorm_backward(dz, g.dgamma, g.dbeta, dy, z, w.gamma, mean, rstd, B, k->OC, S));
    if (k->transposed)
        return be->convt2d_backward(dx, g.dweight, g.dbias, dz, x, w.weight, work, convt_shape(k, B));
    return be->conv2d_backward(dx, g.dweight, g.dbias, dz, x, w.weight, work, conv_shape(k, B));
}
