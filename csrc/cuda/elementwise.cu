// elementwise.cu — CUDA twins of cpu/activations.c, cpu/optim.c (Adam, EMA)
// and cpu/random.c. Scalar math is shared with the CPU via act_math.h and
// philox.h, so both backends compute the same formulas.
#include <math.h>

#include "../act_math.h"
#include "../ops.h"
#include "common.cuh"

#define GRID_STRIDE(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void act_forward_k(float *out, const float *inp, size_t n, int act, float param) {
    GRID_STRIDE(i, n) out[i] = ubd_act_f(inp[i], act, param);
}

__global__ void act_backward_k(float *dinp, const float *dout, const float *inp, size_t n, int act, float param) {
    GRID_STRIDE(i, n) dinp[i] += dout[i] * ubd_act_df(inp[i], act, param);
}

__global__ void adam_k(float *p, float *m, float *v, const float *g, size_t n, ubd_adam_hparams hp, float bc1,
                       float bc2) {
    GRID_STRIDE(i, n) ubd_adam_elem(&p[i], &m[i], &v[i], g[i], hp, bc1, bc2);
}

__global__ void ema_k(float *ema, const float *p, size_t n, float a) {
    GRID_STRIDE(i, n) ema[i] += a * (p[i] - ema[i]);
}

__global__ void rand_k(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset, int normal) {
    GRID_STRIDE(i, n) {
        uint64_t k = offset + i;
        ubd_u32x4 r = ubd_philox_block(seed, stream, k >> 2);
        if (normal) {
            float n0, n1;
            int pair = (int)(k & 2);
            ubd_box_muller(r.v[pair], r.v[pair + 1], &n0, &n1);
            out[i] = (k & 1) ? n1 : n0;
        } else {
            out[i] = ubd_u32_to_uniform(r.v[k & 3]);
        }
    }
}

extern "C" ubd_status ubd_cuda_act_forward(float *out, const float *inp, size_t n, ubd_act act, float param) {
    UBD_REQUIRE(act >= 0 && act < UBD_ACT_NUM, UBD_ERR_VALUE, "activation: unknown kind %d", (int)act);
    UBD_REQUIRE((out && inp) || n == 0, UBD_ERR_VALUE, "act_forward: NULL buffer");
    if (n == 0) return UBD_OK;
    act_forward_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(out, inp, n, (int)act, param);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_act_backward(float *dinp, const float *dout, const float *inp, size_t n, ubd_act act,
                                            float param) {
    UBD_REQUIRE(act >= 0 && act < UBD_ACT_NUM, UBD_ERR_VALUE, "activation: unknown kind %d", (int)act);
    UBD_REQUIRE((dinp && dout && inp) || n == 0, UBD_ERR_VALUE, "act_backward: NULL buffer");
    if (n == 0) return UBD_OK;
    act_backward_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(dinp, dout, inp, n, (int)act, param);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_adam_update(float *param, float *m, float *v, const float *grad, size_t n,
                                           ubd_adam_hparams hp, long long t) {
    UBD_REQUIRE(t >= 1, UBD_ERR_VALUE, "adam_update: step t must be >= 1, got %lld", t);
    UBD_TRY(ubd_adam_check("adam_update", hp));
    UBD_REQUIRE((param && m && v && grad) || n == 0, UBD_ERR_VALUE, "adam_update: NULL buffer");
    if (n == 0) return UBD_OK;
    const float bc1 = (float)(1.0 - pow((double)hp.beta1, (double)t));
    const float bc2 = (float)(1.0 - pow((double)hp.beta2, (double)t));
    adam_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(param, m, v, grad, n, hp, bc1, bc2);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_ema_update(float *ema, const float *param, size_t n, float decay) {
    UBD_REQUIRE(decay >= 0.0f && decay <= 1.0f, UBD_ERR_VALUE, "ema_update: decay must lie in [0, 1], got %g", decay);
    UBD_REQUIRE((ema && param) || n == 0, UBD_ERR_VALUE, "ema_update: NULL buffer");
    if (n == 0) return UBD_OK;
    ema_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(ema, param, n, 1.0f - decay);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_rand_uniform(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    UBD_REQUIRE(out != NULL || n == 0, UBD_ERR_VALUE, "rand_uniform: out is NULL");
    if (n == 0) return UBD_OK;
    rand_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(out, n, seed, stream, offset, 0);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_rand_normal(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    UBD_REQUIRE(out != NULL || n == 0, UBD_ERR_VALUE, "rand_normal: out is NULL");
    if (n == 0) return UBD_OK;
    rand_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(out, n, seed, stream, offset, 1);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

__global__ void init_uniform_k(float *out, size_t n, float bound, uint64_t seed, uint64_t stream, uint64_t offset) {
    GRID_STRIDE(i, n) {
        uint64_t k = offset + i;
        ubd_u32x4 r = ubd_philox_block(seed, stream, k >> 2);
        out[i] = (2.0f * ubd_u32_to_uniform(r.v[k & 3]) - 1.0f) * bound;
    }
}

extern "C" ubd_status ubd_cuda_init_uniform(float *out, size_t n, float bound, uint64_t seed, uint64_t stream,
                                            uint64_t offset) {
    UBD_REQUIRE(out != NULL || n == 0, UBD_ERR_VALUE, "init_uniform: out is NULL");
    if (n == 0) return UBD_OK;
    init_uniform_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(out, n, bound, seed, stream, offset);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

__global__ void init_normal_k(float *out, size_t n, float std, uint64_t seed, uint64_t stream, uint64_t offset) {
    GRID_STRIDE(i, n) {
        uint64_t k = offset + i;
        ubd_u32x4 r = ubd_philox_block(seed, stream, k >> 2);
        float n0, n1;
        int pair = (int)(k & 2);
        ubd_box_muller(r.v[pair], r.v[pair + 1], &n0, &n1);
        out[i] = ((k & 1) ? n1 : n0) * std;
    }
}

extern "C" ubd_status ubd_cuda_init_normal(float *out, size_t n, float std, uint64_t seed, uint64_t stream,
                                           uint64_t offset) {
    UBD_REQUIRE(out != NULL || n == 0, UBD_ERR_VALUE, "init_normal: out is NULL");
    UBD_REQUIRE(std >= 0.0f && isfinite(std), UBD_ERR_VALUE, "init_normal: std must be finite and >= 0, got %g", std);
    if (n == 0) return UBD_OK;
    init_normal_k<<<ubd_grid(n, 256), 256>>>(out, n, std, seed, stream, offset);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}
