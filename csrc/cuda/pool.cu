// pool.cu — CUDA twin of cpu/pool.c: global average pooling.
//
// Forward: one thread per row summing its S values in order in double, as the
// CPU loop does, so both devices give the same bits. The rows are short (the
// feature net's last maps have a few dozen cells) and N = batch x channels is
// in the thousands, so a thread per row keeps the GPU busy enough for an op
// that runs once per forward.
#include "../backend.h"
#include "common.cuh"

__global__ void mean_pool_forward_k(float *out, const float *inp, int N, int S) {
    UBD_GRID_STRIDE(i, (size_t)N) {
        const float *r = inp + i * (size_t)S;
        double s = 0.0;
        for (int j = 0; j < S; j++) s += r[j];
        out[i] = (float)(s / S);
    }
}

__global__ void mean_pool_backward_k(float *dinp, const float *dout, int N, int S, float inv) {
    UBD_GRID_STRIDE(i, (size_t)N * S) dinp[i] += dout[i / S] * inv;
}

extern "C" ubd_status ubd_cuda_mean_pool_forward(float *out, const float *inp, int N, int S) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(S);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    mean_pool_forward_k<<<ubd_grid((size_t)N, 128), 128>>>(out, inp, N, S);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_mean_pool_backward(float *dinp, const float *dout, int N, int S) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(S);
    UBD_REQUIRE_PTR(dinp);
    UBD_REQUIRE_PTR(dout);
    mean_pool_backward_k<<<ubd_grid((size_t)N * S, 256), 256>>>(dinp, dout, N, S, 1.0f / (float)S);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}
