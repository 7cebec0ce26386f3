// shape_ops.cu — CUDA twins of cpu/upsample.c, crop.c, concat.c,
// time_embedding.c, scale_shift.c: one thread per output (or input-gradient)
// element, grid-stride loops, no atomics (each element is written once).
#include <math.h>

#include "../shape_ops.h"
#include "common.cuh"

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)
#define LAUNCH(kernel, n, ...)                            \
    do {                                                  \
        kernel<<<ubd_grid((n), 256), 256, 0, ubd_cuda_stream()>>>(__VA_ARGS__); \
        UBD_CUDA_LAUNCHED();                              \
    } while (0)

static ubd_status check_pos(const char *fn, long long a, long long b, long long c, long long d) {
    UBD_REQUIRE(a > 0 && b > 0 && c > 0 && d > 0, UBD_ERR_VALUE, "%s: sizes must be positive, got %lld %lld %lld %lld",
                fn, a, b, c, d);
    return UBD_OK;
}

// ---- nearest x2 upsampling ----

__global__ void up1_f_k(float *out, const float *inp, size_t n) {  // n = output elements
    GRID_STRIDE(i, n) out[i] = inp[i >> 1];
}
__global__ void up1_b_k(float *dinp, const float *dout, size_t n) {  // n = input elements
    GRID_STRIDE(i, n) dinp[i] += dout[2 * i] + dout[2 * i + 1];
}

extern "C" ubd_status ubd_cuda_upsample1d_forward(float *out, const float *inp, int B, int C, int L) {
    UBD_TRY(check_pos(__func__, B, C, L, 1));
    UBD_REQUIRE(out && inp, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    size_t n = (size_t)B * C * L * 2;  // out[r, 2l + k] = inp[r, l]  <=>  out[i] = inp[i / 2]
    LAUNCH(up1_f_k, n, out, inp, n);
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_upsample1d_backward(float *dinp, const float *dout, int B, int C, int L) {
    UBD_TRY(check_pos(__func__, B, C, L, 1));
    UBD_REQUIRE_PTR(dout);
    if (!dinp) return UBD_OK;
    size_t n = (size_t)B * C * L;
    LAUNCH(up1_b_k, n, dinp, dout, n);
    return UBD_OK;
}

__global__ void up2_f_k(float *out, const float *inp, size_t n, int H, int W) {  // n = output elements
    GRID_STRIDE(i, n) {
        const size_t W2 = 2 * (size_t)W, w = i % W2, h = (i / W2) % (2 * (size_t)H), p = i / (W2 * 2 * H);
        out[i] = inp[(p * H + h / 2) * W + w / 2];
    }
}
__global__ void up2_b_k(float *dinp, const float *dout, size_t n, int H, int W) {  // n = input elements
    GRID_STRIDE(i, n) {
        const size_t w = i % W, h = (i / W) % H, p = i / ((size_t)W * H), W2 = 2 * (size_t)W;
        const float *d0 = dout + (p * 2 * H + 2 * h) * W2 + 2 * w, *d1 = d0 + W2;
        dinp[i] += (d0[0] + d0[1]) + (d1[0] + d1[1]);
    }
}

extern "C" ubd_status ubd_cuda_upsample2d_forward(float *out, const float *inp, int B, int C, int H, int W) {
    UBD_TRY(check_pos(__func__, B, C, H, W));
    UBD_REQUIRE(out && inp, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    size_t n = (size_t)B * C * H * W * 4;
    LAUNCH(up2_f_k, n, out, inp, n, H, W);
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_upsample2d_backward(float *dinp, const float *dout, int B, int C, int H, int W) {
    UBD_TRY(check_pos(__func__, B, C, H, W));
    UBD_REQUIRE_PTR(dout);
    if (!dinp) return UBD_OK;
    size_t n = (size_t)B * C * H * W;
    LAUNCH(up2_b_k, n, dinp, dout, n, H, W);
    return UBD_OK;
}

// ---- crop / zero-pad: out (i, j) reads inp (i + top, j + left) or is 0 ----

static ubd_status check_crop(const char *fn, int B, int C, int H, int W, int top, int bottom, int left, int right,
                             int *Ho, int *Wo) {
    UBD_TRY(check_pos(fn, B, C, H, W));
    long long ho = (long long)H - top - bottom, wo = (long long)W - left - right;
    UBD_REQUIRE(ho > 0 && wo > 0, UBD_ERR_VALUE,
                "%s: cropping (top=%d, bottom=%d, left=%d, right=%d) leaves nothing of the %dx%d map", fn, top, bottom,
                left, right, H, W);
    UBD_REQUIRE(ho <= (1LL << 30) && wo <= (1LL << 30), UBD_ERR_VALUE, "%s: padded size too large", fn);
    *Ho = (int)ho;
    *Wo = (int)wo;
    return UBD_OK;
}

__global__ void crop_f_k(float *out, const float *inp, size_t n, int H, int W, int Ho, int Wo, int top, int left) {
    GRID_STRIDE(i, n) {
        const long long j = (long long)(i % Wo), r = (long long)((i / Wo) % Ho), p = (long long)(i / ((size_t)Wo * Ho));
        const long long hi = r + top, wi = j + left;
        out[i] = (hi >= 0 && hi < H && wi >= 0 && wi < W) ? inp[((size_t)p * H + hi) * W + wi] : 0.0f;
    }
}
__global__ void crop_b_k(float *dinp, const float *dout, size_t n, int H, int W, int Ho, int Wo, int top, int left) {
    GRID_STRIDE(i, n) {  // n = input elements; each reads the one output it went to, if any
        const long long w = (long long)(i % W), h = (long long)((i / W) % H), p = (long long)(i / ((size_t)W * H));
        const long long r = h - top, j = w - left;
        if (r >= 0 && r < Ho && j >= 0 && j < Wo) dinp[i] += dout[((size_t)p * Ho + r) * Wo + j];
    }
}

extern "C" ubd_status ubd_cuda_crop2d_forward(float *out, const float *inp, int B, int C, int H, int W, int top,
                                              int bottom, int left, int right) {
    int Ho = 0, Wo = 0;
    UBD_TRY(check_crop(__func__, B, C, H, W, top, bottom, left, right, &Ho, &Wo));
    UBD_REQUIRE(out && inp, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    size_t n = (size_t)B * C * Ho * Wo;
    LAUNCH(crop_f_k, n, out, inp, n, H, W, Ho, Wo, top, left);
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_crop2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int top,
                                               int bottom, int left, int right) {
    int Ho = 0, Wo = 0;
    UBD_TRY(check_crop(__func__, B, C, H, W, top, bottom, left, right, &Ho, &Wo));
    UBD_REQUIRE_PTR(dout);
    if (!dinp) return UBD_OK;
    size_t n = (size_t)B * C * H * W;
    LAUNCH(crop_b_k, n, dinp, dout, n, H, W, Ho, Wo, top, left);
    return UBD_OK;
}

// ---- channel concat: per sample, out = [a (na floats) | b (nb floats)] ----

__global__ void concat_f_k(float *out, const float *a, const float *b, size_t n, size_t na, size_t nb) {
    GRID_STRIDE(i, n) {
        const size_t s = i / (na + nb), k = i % (na + nb);
        out[i] = k < na ? a[s * na + k] : b[s * nb + (k - na)];
    }
}
__global__ void concat_b_k(float *da, float *db, const float *dout, size_t n, size_t na, size_t nb) {
    GRID_STRIDE(i, n) {
        const size_t s = i / (na + nb), k = i % (na + nb);
        if (k < na) {
            if (da) da[s * na + k] += dout[i];
        } else if (db) {
            db[s * nb + (k - na)] += dout[i];
        }
    }
}

extern "C" ubd_status ubd_cuda_concat_forward(float *out, const float *a, const float *b, int B, int C1, int C2,
                                              int S) {
    UBD_TRY(check_pos(__func__, B, C1, C2, S));
    UBD_REQUIRE(out && a && b, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    const size_t na = (size_t)C1 * S, nb = (size_t)C2 * S, n = (size_t)B * (na + nb);
    LAUNCH(concat_f_k, n, out, a, b, n, na, nb);
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_concat_backward(float *da, float *db, const float *dout, int B, int C1, int C2, int S) {
    UBD_TRY(check_pos(__func__, B, C1, C2, S));
    UBD_REQUIRE_PTR(dout);
    if (!da && !db) return UBD_OK;
    const size_t na = (size_t)C1 * S, nb = (size_t)C2 * S, n = (size_t)B * (na + nb);
    LAUNCH(concat_b_k, n, da, db, dout, n, na, nb);
    return UBD_OK;
}

// ---- sinusoidal time embedding (double, as the CPU) ----

__global__ void temb_k(float *out, const float *t, size_t n, int half) {
    GRID_STRIDE(i, n) {  // n = B * half
        const size_t b = i / half;
        const int k = (int)(i % half);
        const double ph = (double)t[b] * exp(-log(10000.0) / (half - 1) * k);
        out[b * 2 * half + k] = (float)sin(ph);
        out[b * 2 * half + half + k] = (float)cos(ph);
    }
}

extern "C" ubd_status ubd_cuda_time_embedding(float *out, const float *t, int B, int dim) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE(dim >= 4 && dim % 2 == 0, UBD_ERR_VALUE,
                "%s: dim must be even and at least 4 (half - 1 divides), got %d", __func__, dim);
    UBD_REQUIRE(out && t, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    size_t n = (size_t)B * (dim / 2);
    LAUNCH(temb_k, n, out, t, n, dim / 2);
    return UBD_OK;
}

// ---- scale-shift x (1 + scale) + shift, ss (B, 2C) = [scale | shift] ----

__global__ void ss_f_k(float *out, const float *x, const float *ss, size_t n, int C, int L) {
    GRID_STRIDE(i, n) {
        const size_t r = i / L, b = r / C, c = r % C;
        out[i] = x[i] * (1.0f + ss[b * 2 * C + c]) + ss[b * 2 * C + C + c];
    }
}
__global__ void ss_b_dx_k(float *dx, const float *dout, const float *ss, size_t n, int C, int L) {
    GRID_STRIDE(i, n) {
        const size_t r = i / L, b = r / C, c = r % C;
        dx[i] += dout[i] * (1.0f + ss[b * 2 * C + c]);
    }
}
__global__ void ss_b_dss_k(float *dss, const float *dout, const float *x, size_t rows, int C, int L) {
    GRID_STRIDE(r, rows) {  // one thread per (sample, channel) row: L is short (<= 128 in the U-Net)
        double s1 = 0.0, s0 = 0.0;
        for (int l = 0; l < L; l++) {
            s1 += (double)dout[r * L + l] * x[r * L + l];
            s0 += dout[r * L + l];
        }
        const size_t b = r / C, c = r % C;
        dss[b * 2 * C + c] += (float)s1;
        dss[b * 2 * C + C + c] += (float)s0;
    }
}

extern "C" ubd_status ubd_cuda_scale_shift_forward(float *out, const float *x, const float *ss, int B, int C, int L) {
    UBD_TRY(check_pos(__func__, B, C, L, 1));
    UBD_REQUIRE(out && x && ss, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    size_t n = (size_t)B * C * L;
    LAUNCH(ss_f_k, n, out, x, ss, n, C, L);
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_scale_shift_backward(float *dx, float *dss, const float *dout, const float *x,
                                                    const float *ss, int B, int C, int L) {
    UBD_TRY(check_pos(__func__, B, C, L, 1));
    UBD_REQUIRE_PTR(dout);
    UBD_REQUIRE(!dx || ss, UBD_ERR_VALUE, "%s: ss must not be NULL", __func__);
    UBD_REQUIRE(!dss || x, UBD_ERR_VALUE, "%s: x must not be NULL", __func__);
    if (dx) LAUNCH(ss_b_dx_k, (size_t)B * C * L, dx, dout, ss, (size_t)B * C * L, C, L);
    if (dss) LAUNCH(ss_b_dss_k, (size_t)B * C, dss, dout, x, (size_t)B * C, C, L);
    return UBD_OK;
}

__global__ void axpy_k(float *y, const float *x, size_t n, float a) { GRID_STRIDE(i, n) y[i] += a * x[i]; }

extern "C" ubd_status ubd_cuda_axpy(float *y, const float *x, size_t n, float a) {
    UBD_REQUIRE((y && x) || n == 0, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    if (n == 0) return UBD_OK;
    LAUNCH(axpy_k, n, y, x, n, a);
    return UBD_OK;
}
