/* pixel_unshuffle.c — space-to-depth by a factor r: inp (B, C, H, W) ->
 * out (B, C*r*r, H/r, W/r), out[b, (c*r + i)*r + j, y, x] = inp[b, c, r*y + i, r*x + j]
 * (the einops rearrange 'b c (h p1) (w p2) -> b (c p1 p2) h w' of the 2-D
 * U-Net's Downsample; torch.nn.functional.pixel_unshuffle). Every output
 * element is one input element, so backward is the inverse permutation; each
 * element is written by one thread, so the bits do not depend on the thread
 * count. Parallel over the (sample, input channel) planes. */
#include "shape_ops.h"

#define UBD_PAR_THRESHOLD 32768

static ubd_status check(const char *fn, int B, int C, int H, int W, int r) {
    UBD_REQUIRE(B > 0 && C > 0 && H > 0 && W > 0 && r > 0, UBD_ERR_VALUE,
                "%s: sizes must be positive, got B=%d C=%d H=%d W=%d r=%d", fn, B, C, H, W, r);
    UBD_REQUIRE(H % r == 0 && W % r == 0, UBD_ERR_VALUE, "%s: the %dx%d map is not a multiple of the factor %d", fn,
                H, W, r);
    UBD_REQUIRE((long long)C * r * r <= (1LL << 30), UBD_ERR_VALUE, "%s: C*r*r = %lld channels is too many", fn,
                (long long)C * r * r);
    return UBD_OK;
}

ubd_status ubd_cpu_pixel_unshuffle_forward(float *out, const float *inp, int B, int C, int H, int W, int r) {
    UBD_TRY(check(__func__, B, C, H, W, r));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    const int Ho = H / r, Wo = W / r;
    const size_t plane = (size_t)H * W, oplane = (size_t)Ho * Wo;
    const long long planes = (long long)B * C;
#pragma omp parallel for schedule(static) if (planes * (long long)plane > UBD_PAR_THRESHOLD)
    for (long long p = 0; p < planes; p++) {
        /* input plane (b, c) feeds the r*r output planes (b, c*r*r + i*r + j), which follow one another */
        const float *x = inp + p * plane;
        float *y = out + p * (size_t)r * r * oplane;
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                float *yo = y + (size_t)(i * r + j) * oplane;
                for (int h = 0; h < Ho; h++) {
                    const float *xr = x + (size_t)(r * h + i) * W + j;
                    float *yr = yo + (size_t)h * Wo;
                    for (int w = 0; w < Wo; w++) yr[w] = xr[(size_t)r * w];
                }
            }
    }
    return UBD_OK;
}

ubd_status ubd_cpu_pixel_unshuffle_backward(float *dinp, const float *dout, int B, int C, int H, int W, int r) {
    UBD_TRY(check(__func__, B, C, H, W, r));
    UBD_REQUIRE_PTR(dout);
    if (!dinp) return UBD_OK;
    const int Ho = H / r, Wo = W / r;
    const size_t plane = (size_t)H * W, oplane = (size_t)Ho * Wo;
    const long long planes = (long long)B * C;
#pragma omp parallel for schedule(static) if (planes * (long long)plane > UBD_PAR_THRESHOLD)
    for (long long p = 0; p < planes; p++) {
        float *dx = dinp + p * plane;
        const float *dy = dout + p * (size_t)r * r * oplane;
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                const float *dyo = dy + (size_t)(i * r + j) * oplane;
                for (int h = 0; h < Ho; h++) {
                    float *dr = dx + (size_t)(r * h + i) * W + j;
                    const float *dyr = dyo + (size_t)h * Wo;
                    for (int w = 0; w < Wo; w++) dr[(size_t)r * w] += dyr[w];
                }
            }
    }
    return UBD_OK;
}
