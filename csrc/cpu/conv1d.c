/* conv1d.c — 1-D convolution as a 2-D one with H = 1 and a (1, K) kernel:
 * (B, C, L) is (B, C, 1, L) in memory and weight (OC, C, K) is (OC, C, 1, K). */
#include "../conv.h"

static ubd_conv2d_shape as_2d(ubd_conv1d_shape s) {
    return (ubd_conv2d_shape){s.B, s.C, 1, s.L, s.OC, 1, s.K, 1, s.S, 0, s.P};
}

ubd_status ubd_conv1d_check(ubd_conv1d_shape s, int *OL) {
    UBD_REQUIRE_POSITIVE(s.B);
    UBD_REQUIRE_POSITIVE(s.C);
    UBD_REQUIRE_POSITIVE(s.L);
    UBD_REQUIRE_POSITIVE(s.OC);
    UBD_REQUIRE_POSITIVE(s.K);
    UBD_REQUIRE_POSITIVE(s.S);
    UBD_REQUIRE(s.P >= 0, UBD_ERR_VALUE, "conv1d: padding must be >= 0, got %d", s.P);
    UBD_REQUIRE(s.K <= s.L + 2 * s.P, UBD_ERR_VALUE, "conv1d: kernel %d is longer than the padded input %d", s.K,
                s.L + 2 * s.P);
    return ubd_conv2d_check(as_2d(s), NULL, OL);
}

size_t ubd_conv1d_workspace(ubd_conv1d_shape s) { return ubd_conv2d_workspace(as_2d(s)); }

ubd_status ubd_cpu_conv1d_forward(float *out, const float *inp, const float *weight, const float *bias, float *work,
                                  ubd_conv1d_shape s) {
    return ubd_cpu_conv2d_forward(out, inp, weight, bias, work, as_2d(s));
}

ubd_status ubd_cpu_conv1d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                   const float *weight, float *work, ubd_conv1d_shape s) {
    return ubd_cpu_conv2d_backward(dinp, dweight, dbias, dout, inp, weight, work, as_2d(s));
}
