/* upsample.c — nearest-neighbour x2 upsampling (nn.Upsample(scale_factor=2,
 * mode="nearest")), 1-D and 2-D. Backward sums the gradient of the copies.
 * Parallel over (sample, channel) planes; each output element is written by
 * one thread, so results do not depend on the thread count. */
#include "shape_ops.h"

#define UBD_PAR_THRESHOLD 32768

ubd_status ubd_cpu_upsample1d_forward(float *out, const float *inp, int B, int C, int L) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(L);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    const long long rows = (long long)B * C;
#pragma omp parallel for schedule(static) if (rows * L > UBD_PAR_THRESHOLD)
    for (long long r = 0; r < rows; r++) {
        const float *x = inp + r * L;
        float *y = out + r * 2 * L;
        for (int l = 0; l < L; l++) y[2 * l] = y[2 * l + 1] = x[l];
    }
    return UBD_OK;
}

ubd_status ubd_cpu_upsample1d_backward(float *dinp, const float *dout, int B, int C, int L) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(L);
    UBD_REQUIRE_PTR(dout);
    if (!dinp) return UBD_OK;
    const long long rows = (long long)B * C;
#pragma omp parallel for schedule(static) if (rows * L > UBD_PAR_THRESHOLD)
    for (long long r = 0; r < rows; r++) {
        float *dx = dinp + r * L;
        const float *dy = dout + r * 2 * L;
        for (int l = 0; l < L; l++) dx[l] += dy[2 * l] + dy[2 * l + 1];
    }
    return UBD_OK;
}

ubd_status ubd_cpu_upsample2d_forward(float *out, const float *inp, int B, int C, int H, int W) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(H);
    UBD_REQUIRE_POSITIVE(W);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    const long long planes = (long long)B * C;
    const size_t hw = (size_t)H * W;
#pragma omp parallel for schedule(static) if (planes * (long long)hw > UBD_PAR_THRESHOLD)
    for (long long p = 0; p < planes; p++) {
        const float *x = inp + p * hw;
        float *y = out + p * 4 * hw;
        for (int h = 0; h < H; h++) {
            float *y0 = y + (size_t)(2 * h) * 2 * W, *y1 = y0 + 2 * W;
            const float *xr = x + (size_t)h * W;
            for (int w = 0; w < W; w++) y0[2 * w] = y0[2 * w + 1] = y1[2 * w] = y1[2 * w + 1] = xr[w];
        }
    }
    return UBD_OK;
}

ubd_status ubd_cpu_upsample2d_backward(float *dinp, const float *dout, int B, int C, int H, int W) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(H);
    UBD_REQUIRE_POSITIVE(W);
    UBD_REQUIRE_PTR(dout);
    if (!dinp) return UBD_OK;
    const long long planes = (long long)B * C;
    const size_t hw = (size_t)H * W;
#pragma omp parallel for schedule(static) if (planes * (long long)hw > UBD_PAR_THRESHOLD)
    for (long long p = 0; p < planes; p++) {
        float *dx = dinp + p * hw;
        const float *dy = dout + p * 4 * hw;
        for (int h = 0; h < H; h++) {
            const float *d0 = dy + (size_t)(2 * h) * 2 * W, *d1 = d0 + 2 * W;
            float *dr = dx + (size_t)h * W;
            for (int w = 0; w < W; w++) dr[w] += (d0[2 * w] + d0[2 * w + 1]) + (d1[2 * w] + d1[2 * w + 1]);
        }
    }
    return UBD_OK;
}
