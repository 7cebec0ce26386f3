/* crop.c — crop (positive) or zero-pad (negative) the spatial borders of
 * (B, C, H, W): out (B, C, H-top-bottom, W-left-right). OpenFWI's decoders
 * crop 80x80 to 70x70 with 5 from every side. Output element (i, j) reads
 * input (i + top, j + left), or is 0 where that lies outside (padding). */
#include <string.h>

#include "shape_ops.h"

#define UBD_PAR_THRESHOLD 32768

static ubd_status check(const char *fn, int B, int C, int H, int W, int top, int bottom, int left, int right) {
    UBD_REQUIRE(B > 0 && C > 0 && H > 0 && W > 0, UBD_ERR_VALUE, "%s: sizes must be positive, got B=%d C=%d H=%d W=%d",
                fn, B, C, H, W);
    long long Ho = (long long)H - top - bottom, Wo = (long long)W - left - right;
    UBD_REQUIRE(Ho > 0 && Wo > 0, UBD_ERR_VALUE,
                "%s: cropping (top=%d, bottom=%d, left=%d, right=%d) leaves nothing of the %dx%d map", fn, top, bottom,
                left, right, H, W);
    UBD_REQUIRE(Ho <= (1LL << 30) && Wo <= (1LL << 30), UBD_ERR_VALUE, "%s: padded size too large", fn);
    return UBD_OK;
}

/* Output columns [j0, j1) read input columns j + left; the rest are padding.
 * 0 <= j0 <= j1 <= Wo even when a border is cropped past the far side of a pad. */
static void col_range(int W, int Wo, int left, int *j0, int *j1) {
    long long a = -(long long)left, b = (long long)W - left;
    if (a < 0) a = 0;
    if (a > Wo) a = Wo;
    if (b > Wo) b = Wo;
    if (b < a) b = a;
    *j0 = (int)a;
    *j1 = (int)b;
}

ubd_status ubd_cpu_crop2d_forward(float *out, const float *inp, int B, int C, int H, int W, int top, int bottom,
                                  int left, int right) {
    UBD_TRY(check(__func__, B, C, H, W, top, bottom, left, right));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    const int Ho = (int)((long long)H - top - bottom), Wo = (int)((long long)W - left - right);
    int j0, j1;
    col_range(W, Wo, left, &j0, &j1);
    const long long planes = (long long)B * C;
#pragma omp parallel for schedule(static) if (planes * Ho * Wo > UBD_PAR_THRESHOLD)
    for (long long p = 0; p < planes; p++) {
        const float *x = inp + p * (size_t)H * W;
        float *y = out + p * (size_t)Ho * Wo;
        for (int i = 0; i < Ho; i++) {
            float *yr = y + (size_t)i * Wo;
            const long long hi = (long long)i + top;
            if (hi < 0 || hi >= H) {
                memset(yr, 0, (size_t)Wo * sizeof(float));
                continue;
            }
            memset(yr, 0, (size_t)j0 * sizeof(float));
            if (j1 > j0) memcpy(yr + j0, x + (size_t)hi * W + (j0 + left), (size_t)(j1 - j0) * sizeof(float));
            memset(yr + j1, 0, (size_t)(Wo - j1) * sizeof(float));
        }
    }
    return UBD_OK;
}

ubd_status ubd_cpu_crop2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int top, int bottom,
                                   int left, int right) {
    UBD_TRY(check(__func__, B, C, H, W, top, bottom, left, right));
    UBD_REQUIRE_PTR(dout);
    if (!dinp) return UBD_OK;
    const int Ho = (int)((long long)H - top - bottom), Wo = (int)((long long)W - left - right);
    int j0, j1;
    col_range(W, Wo, left, &j0, &j1);
    const long long planes = (long long)B * C;
#pragma omp parallel for schedule(static) if (planes * Ho * Wo > UBD_PAR_THRESHOLD)
    for (long long p = 0; p < planes; p++) {
        float *dx = dinp + p * (size_t)H * W;
        const float *dy = dout + p * (size_t)Ho * Wo;
        for (int i = 0; i < Ho; i++) {
            const long long hi = (long long)i + top;
            if (hi < 0 || hi >= H) continue; /* padding: no input behind it */
            float *dr = dx + (size_t)hi * W;
            const float *dyr = dy + (size_t)i * Wo;
            for (int j = j0; j < j1; j++) dr[j + left] += dyr[j];
        }
    }
    return UBD_OK;
}
