// pixel_unshuffle.cu — CUDA twin of cpu/pixel_unshuffle.c (space-to-depth by
// r): out[b, (c*r + i)*r + j, y, x] = inp[b, c, r*y + i, r*x + j]. One thread
// per output element forward and per input element backward; a permutation,
// so each element is written once (no atomics, the CPU's bits exactly).
#include "../shape_ops.h"
#include "common.cuh"

static ubd_status check(const char *fn, int B, int C, int H, int W, int r) {
    UBD_REQUIRE(B > 0 && C > 0 && H > 0 && W > 0 && r > 0, UBD_ERR_VALUE,
                "%s: sizes must be positive, got B=%d C=%d H=%d W=%d r=%d", fn, B, C, H, W, r);
    UBD_REQUIRE(H % r == 0 && W % r == 0, UBD_ERR_VALUE, "%s: the %dx%d map is not a multiple of the factor %d", fn,
                H, W, r);
    UBD_REQUIRE((long long)C * r * r <= (1LL << 30), UBD_ERR_VALUE, "%s: C*r*r = %lld channels is too many", fn,
                (long long)C * r * r);
    return UBD_OK;
}

// Input element index of output element i (B, C*r*r, H/r, W/r).
__device__ static size_t source_of(size_t i, int H, int W, int r) {
    const size_t Ho = H / r, Wo = W / r, x = i % Wo, y = (i / Wo) % Ho, oc = i / (Wo * Ho);  // oc = (b*C + c)*r*r + k
    const size_t k = oc % ((size_t)r * r), p = oc / ((size_t)r * r), di = k / r, dj = k % r;  // p = b*C + c
    return (p * H + r * y + di) * W + r * x + dj;
}

__global__ void unshuffle_f_k(float *out, const float *inp, size_t n, int H, int W, int r) {
    UBD_GRID_STRIDE(i, n) out[i] = inp[source_of(i, H, W, r)];
}

// Backward reads, for input element i, the one output element it went to.
__global__ void unshuffle_b_k(float *dinp, const float *dout, size_t n, int H, int W, int r) {
    UBD_GRID_STRIDE(i, n) {
        const size_t w = i % W, h = (i / W) % H, p = i / ((size_t)W * H);  // p = b*C + c
        const size_t Ho = H / r, Wo = W / r, k = (h % r) * r + w % r;
        dinp[i] += dout[((p * r * r + k) * Ho + h / r) * Wo + w / r];
    }
}

extern "C" ubd_status ubd_cuda_pixel_unshuffle_forward(float *out, const float *inp, int B, int C, int H, int W,
                                                       int r) {
    UBD_TRY(check(__func__, B, C, H, W, r));
    UBD_REQUIRE(out && inp, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    const size_t n = (size_t)B * C * H * W;
    unshuffle_f_k<<<ubd_grid(n, 256), 256>>>(out, inp, n, H, W, r);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_pixel_unshuffle_backward(float *dinp, const float *dout, int B, int C, int H, int W,
                                                        int r) {
    UBD_TRY(check(__func__, B, C, H, W, r));
    UBD_REQUIRE_PTR(dout);
    if (!dinp) return UBD_OK;
    const size_t n = (size_t)B * C * H * W;
    unshuffle_b_k<<<ubd_grid(n, 256), 256>>>(dinp, dout, n, H, W, r);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}
