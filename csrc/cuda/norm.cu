// norm.cu — CUDA twins of cpu/batchnorm.c, groupnorm.c, layernorm.c, rmsnorm.c.
// Same formulas as the CPU: statistics two-pass in double, per-element math in
// float. One block owns one channel (BatchNorm), one (sample, group)
// (GroupNorm) or one row (LayerNorm), so every statistic is a deterministic
// block reduction and no atomics are needed.
//
// Speed (not measured: no GPU yet): one block per channel launches only C
// blocks, a fraction of the 132 SMs of an H100/H200 wherever C is small (the
// first encoder layers have C = 32 or 64), and each block walks B*S strided elements with a 64-bit division per element
// (bn_index). The parameter-gradient kernels of GroupNorm and LayerNorm read a
// column per block (stride S or C, uncoalesced). If these show up in profiles,
// split each channel into chunks with per-chunk double partials and a second
// fixed-order pass (as cuda/sums.cu does), which keeps results deterministic.
#include <math.h>

#include "../norm.h"
#include "common.cuh"
#include "reduce.cuh"

#define NB UBD_NORM_BLOCK
#define NORMALIZE_EPS 1e-12  // F.normalize's clamp (cpu/rmsnorm.c)

static ubd_status check_bcs(const char *fn, int B, int C, int S) {
    UBD_REQUIRE(B > 0 && C > 0 && S > 0, UBD_ERR_VALUE, "%s: sizes must be positive, got B=%d C=%d S=%d", fn, B, C, S);
    UBD_REQUIRE((long long)B * C * S < (1LL << 62), UBD_ERR_VALUE, "%s: too large", fn);
    return UBD_OK;
}

// ---- BatchNorm: element k of channel c is inp[((k / S) * C + c) * S + k % S] ----

__device__ __forceinline__ size_t bn_index(long long k, int c, int C, int S) {
    return ((size_t)(k / S) * C + c) * S + (size_t)(k % S);
}

__global__ void bn_train_k(float *out, float *mean, float *rstd, float *rm, float *rv, const float *inp,
                           const float *gamma, const float *beta, int B, int C, int S, float momentum, float eps) {
    const int c = blockIdx.x;
    const long long n = (long long)B * S;
    double s = 0.0;
    for (long long k = threadIdx.x; k < n; k += blockDim.x) s += inp[bn_index(k, c, C, S)];
    const double m = ubd_block_sum(s) / (double)n;
    double q = 0.0;
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
        double d = inp[bn_index(k, c, C, S)] - m;
        q += d * d;
    }
    const double sq = ubd_block_sum(q);
    const double r = 1.0 / sqrt(sq / (double)n + (double)eps);
    const float sc = (float)(gamma[c] * r), sh = (float)(beta[c] - gamma[c] * r * m);
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
        size_t i = bn_index(k, c, C, S);
        out[i] = inp[i] * sc + sh;
    }
    if (threadIdx.x == 0) {
        mean[c] = (float)m;
        rstd[c] = (float)r;
        if (rm) {  // unbiased variance for the running estimate, as PyTorch
            rm[c] = (float)((1.0 - momentum) * rm[c] + momentum * m);
            rv[c] = (float)((1.0 - momentum) * rv[c] + momentum * sq / ((double)n - 1.0));
        }
    }
}

extern "C" ubd_status ubd_cuda_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                                       float *running_var, const float *inp, const float *gamma,
                                                       const float *beta, int B, int C, int S, float momentum,
                                                       float eps) {
    UBD_TRY(check_bcs(__func__, B, C, S));
    UBD_REQUIRE(out && mean && rstd && inp && gamma && beta, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE((running_mean == NULL) == (running_var == NULL), UBD_ERR_VALUE,
                "%s: running_mean and running_var must both be given or both be NULL", __func__);
    UBD_REQUIRE((long long)B * S > 1, UBD_ERR_VALUE,
                "%s: training mode needs more than one value per channel, got B*S=%lld", __func__, (long long)B * S);
    UBD_REQUIRE(momentum >= 0.0f && momentum <= 1.0f, UBD_ERR_VALUE, "%s: momentum must lie in [0, 1], got %g",
                __func__, momentum);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    bn_train_k<<<C, NB, 0, ubd_cuda_stream()>>>(out, mean, rstd, running_mean, running_var, inp, gamma, beta, B, C, S, momentum, eps);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

__global__ void bn_eval_k(float *out, const float *inp, const float *gamma, const float *beta, const float *rm,
                          const float *rv, size_t n, int C, int S, float eps) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)((i / S) % C);
        const double r = 1.0 / sqrt((double)rv[c] + eps);
        const float sc = (float)(gamma[c] * r), sh = (float)(beta[c] - gamma[c] * r * rm[c]);
        out[i] = inp[i] * sc + sh;
    }
}

extern "C" ubd_status ubd_cuda_batchnorm_forward_eval(float *out, const float *inp, const float *gamma,
                                                      const float *beta, const float *running_mean,
                                                      const float *running_var, int B, int C, int S, float eps) {
    UBD_TRY(check_bcs(__func__, B, C, S));
    UBD_REQUIRE(out && inp && gamma && beta && running_mean && running_var, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    const size_t n = (size_t)B * C * S;
    bn_eval_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(out, inp, gamma, beta, running_mean, running_var, n, C, S, eps);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// Training-mode backward: dx = gamma rstd / n (n dy - sum dy - xhat sum dy xhat).
__global__ void bn_backward_k(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                              const float *gamma, const float *mean, const float *rstd, int B, int C, int S) {
    const int c = blockIdx.x;
    const long long n = (long long)B * S;
    const double m = mean[c], r = rstd[c];
    double a = 0.0, ax = 0.0;
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
        size_t i = bn_index(k, c, C, S);
        a += dout[i];
        ax += dout[i] * ((inp[i] - m) * r);
    }
    const double sdy = ubd_block_sum(a), sdyx = ubd_block_sum(ax);
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
    }
    if (dinp) {
        const double kk = gamma[c] * r;
        const float fa = (float)kk, off = (float)(-kk * sdy / (double)n), bx = (float)(-kk * sdyx / (double)n * r);
        const float fm = (float)m;
        for (long long k = threadIdx.x; k < n; k += blockDim.x) {
            size_t i = bn_index(k, c, C, S);
            dinp[i] += fa * dout[i] + off + bx * (inp[i] - fm);
        }
    }
}

extern "C" ubd_status ubd_cuda_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                                  const float *inp, const float *gamma, const float *mean,
                                                  const float *rstd, int B, int C, int S) {
    UBD_TRY(check_bcs(__func__, B, C, S));
    UBD_REQUIRE(dout && inp && mean && rstd, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE(!dinp || gamma, UBD_ERR_VALUE, "%s: gamma must not be NULL", __func__);
    if (!dinp && !dgamma && !dbeta) return UBD_OK;
    bn_backward_k<<<C, NB, 0, ubd_cuda_stream()>>>(dinp, dgamma, dbeta, dout, inp, gamma, mean, rstd, B, C, S);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// Eval-mode backward: an affine map per channel.
__global__ void bn_backward_eval_k(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                   const float *gamma, const float *rm, const float *rv, int B, int C, int S,
                                   float eps) {
    const int c = blockIdx.x;
    const long long n = (long long)B * S;
    const double r = 1.0 / sqrt((double)rv[c] + eps);
    const float fa = dinp ? (float)(gamma[c] * r) : 0.0f;
    const double m = dgamma ? rm[c] : 0.0;
    double a = 0.0, ax = 0.0;
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
        size_t i = bn_index(k, c, C, S);
        if (dinp) dinp[i] += fa * dout[i];
        a += dout[i];
        if (dgamma) ax += dout[i] * ((inp[i] - m) * r);
    }
    const double sdy = ubd_block_sum(a), sdyx = ubd_block_sum(ax);
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
    }
}

extern "C" ubd_status ubd_cuda_batchnorm_backward_eval(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                                       const float *inp, const float *gamma, const float *running_mean,
                                                       const float *running_var, int B, int C, int S, float eps) {
    UBD_TRY(check_bcs(__func__, B, C, S));
    UBD_REQUIRE(dout && running_var, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    UBD_REQUIRE(!dinp || gamma, UBD_ERR_VALUE, "%s: gamma must not be NULL", __func__);
    UBD_REQUIRE(!dgamma || (inp && running_mean), UBD_ERR_VALUE, "%s: inp and running_mean must not be NULL", __func__);
    if (!dinp && !dgamma && !dbeta) return UBD_OK;
    bn_backward_eval_k<<<C, NB, 0, ubd_cuda_stream()>>>(dinp, dgamma, dbeta, dout, inp, gamma, running_mean, running_var, B, C, S, eps);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// ---- GroupNorm: block bg = b*G + g owns the contiguous (C/G)*S floats of its group ----

static ubd_status check_gn(const char *fn, int B, int C, int S, int G) {
    UBD_REQUIRE(B > 0 && C > 0 && S > 0 && G > 0, UBD_ERR_VALUE, "%s: sizes must be positive, got B=%d C=%d S=%d G=%d",
                fn, B, C, S, G);
    UBD_REQUIRE(C % G == 0, UBD_ERR_VALUE, "%s: channels C=%d are not divisible by groups G=%d", fn, C, G);
    return UBD_OK;
}

__global__ void gn_forward_k(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                             const float *beta, int C, int S, int G, float eps) {
    const int bg = blockIdx.x, cpg = C / G, c0 = (bg % G) * cpg;
    const size_t gsize = (size_t)cpg * S;
    const float *x = inp + (size_t)bg * gsize;
    float *y = out + (size_t)bg * gsize;
    double s = 0.0;
    for (size_t i = threadIdx.x; i < gsize; i += blockDim.x) s += x[i];
    const double m = ubd_block_sum(s) / (double)gsize;
    double q = 0.0;
    for (size_t i = threadIdx.x; i < gsize; i += blockDim.x) {
        double d = x[i] - m;
        q += d * d;
    }
    const double r = 1.0 / sqrt(ubd_block_sum(q) / (double)gsize + (double)eps);
    for (size_t i = threadIdx.x; i < gsize; i += blockDim.x) {
        const int c = c0 + (int)(i / S);
        const float sc = (float)(gamma[c] * r), sh = (float)(beta[c] - gamma[c] * r * m);
        y[i] = x[i] * sc + sh;
    }
    if (threadIdx.x == 0) {
        mean[bg] = (float)m;
        rstd[bg] = (float)r;
    }
}

extern "C" ubd_status ubd_cuda_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                                 const float *gamma, const float *beta, int B, int C, int S, int G,
                                                 float eps) {
    UBD_TRY(check_gn(__func__, B, C, S, G));
    UBD_REQUIRE(out && mean && rstd && inp && gamma && beta, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    gn_forward_k<<<B * G, NB, 0, ubd_cuda_stream()>>>(out, mean, rstd, inp, gamma, beta, C, S, G, eps);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// dx = rstd (g dy - mean(g dy) - xhat mean(g dy xhat)) within each (sample, group).
__global__ void gn_backward_dx_k(float *dinp, const float *dout, const float *inp, const float *gamma,
                                 const float *mean, const float *rstd, int C, int S, int G) {
    const int bg = blockIdx.x, cpg = C / G, c0 = (bg % G) * cpg;
    const size_t gsize = (size_t)cpg * S, o = (size_t)bg * gsize;
    const double m = mean[bg], r = rstd[bg];
    double a = 0.0, ax = 0.0;
    for (size_t i = threadIdx.x; i < gsize; i += blockDim.x) {
        const double gdy = (double)gamma[c0 + (int)(i / S)] * dout[o + i];
        a += gdy;
        ax += gdy * (inp[o + i] - m) * r;
    }
    const double sg = ubd_block_sum(a), sgx = ubd_block_sum(ax);
    const float fm = (float)m, fr = (float)r;
    const float off = (float)(-r * sg / (double)gsize), bx = (float)(-r * r * sgx / (double)gsize);
    for (size_t i = threadIdx.x; i < gsize; i += blockDim.x)
        dinp[o + i] += gamma[c0 + (int)(i / S)] * fr * dout[o + i] + off + bx * (inp[o + i] - fm);
}

// dgamma, dbeta of channel c: sums over samples and positions.
__global__ void gn_backward_params_k(float *dgamma, float *dbeta, const float *dout, const float *inp,
                                     const float *mean, const float *rstd, int B, int C, int S, int G) {
    const int c = blockIdx.x, cpg = C / G;
    const long long n = (long long)B * S;
    double a = 0.0, ax = 0.0;
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
        const int b = (int)(k / S);
        const size_t i = ((size_t)b * C + c) * S + (size_t)(k % S);
        const int bg = b * G + c / cpg;
        a += dout[i];
        ax += dout[i] * ((inp[i] - (double)mean[bg]) * rstd[bg]);
    }
    const double sdy = ubd_block_sum(a), sdyx = ubd_block_sum(ax);
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
    }
}

extern "C" ubd_status ubd_cuda_groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                                  const float *inp, const float *gamma, const float *mean,
                                                  const float *rstd, int B, int C, int S, int G) {
    UBD_TRY(check_gn(__func__, B, C, S, G));
    UBD_REQUIRE(dout && inp && mean && rstd, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE(!dinp || gamma, UBD_ERR_VALUE, "%s: gamma must not be NULL", __func__);
    if (dinp) {
        gn_backward_dx_k<<<B * G, NB, 0, ubd_cuda_stream()>>>(dinp, dout, inp, gamma, mean, rstd, C, S, G);
        UBD_CUDA_LAUNCHED();
    }
    if (dgamma || dbeta) {
        gn_backward_params_k<<<C, NB, 0, ubd_cuda_stream()>>>(dgamma, dbeta, dout, inp, mean, rstd, B, C, S, G);
        UBD_CUDA_LAUNCHED();
    }
    return UBD_OK;
}

// ---- LayerNorm over the last axis of (N, C): one block per row ----

__global__ void ln_forward_k(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                             const float *beta, int C, float eps) {
    const size_t o = (size_t)blockIdx.x * C;
    double s = 0.0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) s += inp[o + c];
    const double m = ubd_block_sum(s) / C;
    double q = 0.0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double d = inp[o + c] - m;
        q += d * d;
    }
    const double r = 1.0 / sqrt(ubd_block_sum(q) / C + (double)eps);
    const float fm = (float)m, fr = (float)r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) out[o + c] = (inp[o + c] - fm) * fr * gamma[c] + beta[c];
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = fm;
        rstd[blockIdx.x] = fr;
    }
}

extern "C" ubd_status ubd_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                                 const float *gamma, const float *beta, int N, int C, float eps) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE(out && mean && rstd && inp && gamma && beta, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE(isfinite(eps) && eps > 0.0f, UBD_ERR_VALUE, "%s: eps must be finite and positive, got %g", __func__,
                eps);
    ln_forward_k<<<N, NB, 0, ubd_cuda_stream()>>>(out, mean, rstd, inp, gamma, beta, C, eps);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

__global__ void ln_backward_dx_k(float *dinp, const float *dout, const float *inp, const float *gamma,
                                 const float *mean, const float *rstd, int C) {
    const size_t o = (size_t)blockIdx.x * C;
    const float m = mean[blockIdx.x], r = rstd[blockIdx.x];
    double a = 0.0, ax = 0.0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const double gdy = (double)gamma[c] * dout[o + c];
        a += gdy;
        ax += gdy * ((inp[o + c] - m) * r);
    }
    const float mg = (float)(ubd_block_sum(a) / C), mgx = (float)(ubd_block_sum(ax) / C);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float xh = (inp[o + c] - m) * r;
        dinp[o + c] += r * (gamma[c] * dout[o + c] - mg - xh * mgx);
    }
}

__global__ void ln_backward_params_k(float *dgamma, float *dbeta, const float *dout, const float *inp,
                                     const float *mean, const float *rstd, int N, int C) {
    const int c = blockIdx.x;
    double a = 0.0, ax = 0.0;
    for (int n = threadIdx.x; n < N; n += blockDim.x) {
        const float dy = dout[(size_t)n * C + c];
        a += dy;
        ax += (double)dy * ((inp[(size_t)n * C + c] - mean[n]) * rstd[n]);
    }
    const double sdy = ubd_block_sum(a), sdyx = ubd_block_sum(ax);
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
    }
}

extern "C" ubd_status ubd_cuda_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                                  const float *inp, const float *gamma, const float *mean,
                                                  const float *rstd, int N, int C) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE(dout && inp && mean && rstd, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE(!dinp || gamma, UBD_ERR_VALUE, "%s: gamma must not be NULL", __func__);
    if (dinp) {
        ln_backward_dx_k<<<N, NB, 0, ubd_cuda_stream()>>>(dinp, dout, inp, gamma, mean, rstd, C);
        UBD_CUDA_LAUNCHED();
    }
    if (dgamma || dbeta) {
        ln_backward_params_k<<<C, NB, 0, ubd_cuda_stream()>>>(dgamma, dbeta, dout, inp, mean, rstd, N, C);
        UBD_CUDA_LAUNCHED();
    }
    return UBD_OK;
}

// ---- RMSNorm over the channels of (B, C, L): one thread per (sample, position) ----

__global__ void rms_forward_k(float *out, float *rnorm, const float *inp, const float *g, int B, int C, int L) {
    const float sqc = (float)sqrt((double)C);
    for (size_t bl = blockIdx.x * (size_t)blockDim.x + threadIdx.x; bl < (size_t)B * L;
         bl += (size_t)gridDim.x * blockDim.x) {
        const size_t o = (bl / L) * (size_t)C * L + bl % L;
        double sq = 0.0;
        for (int c = 0; c < C; c++) sq += (double)inp[o + (size_t)c * L] * inp[o + (size_t)c * L];
        const double nrm = sqrt(sq);
        const float r = (float)(1.0 / (nrm > NORMALIZE_EPS ? nrm : NORMALIZE_EPS));
        rnorm[bl] = r;
        for (int c = 0; c < C; c++) out[o + (size_t)c * L] = inp[o + (size_t)c * L] * r * g[c] * sqc;
    }
}

extern "C" ubd_status ubd_cuda_rmsnorm_forward(float *out, float *rnorm, const float *inp, const float *g, int B, int C,
                                               int L) {
    UBD_TRY(check_bcs(__func__, B, C, L));
    UBD_REQUIRE(out && rnorm && inp && g, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    rms_forward_k<<<ubd_grid((size_t)B * L, 128), 128, 0, ubd_cuda_stream()>>>(out, rnorm, inp, g, B, C, L);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

__global__ void rms_backward_dx_k(float *dinp, const float *dout, const float *inp, const float *g, const float *rnorm,
                                  int B, int C, int L) {
    const double sqc = sqrt((double)C);
    for (size_t bl = blockIdx.x * (size_t)blockDim.x + threadIdx.x; bl < (size_t)B * L;
         bl += (size_t)gridDim.x * blockDim.x) {
        const size_t o = (bl / L) * (size_t)C * L + bl % L;
        const double r = rnorm[bl];
        const bool clamped = rnorm[bl] >= (float)(1.0 / NORMALIZE_EPS);  // the norm was clamped: r is constant
        double xu = 0.0;
        if (!clamped)
            for (int c = 0; c < C; c++) xu += (double)inp[o + (size_t)c * L] * dout[o + (size_t)c * L] * g[c];
        const float a = (float)(r * sqc), bx = (float)(-r * r * r * sqc * xu);
        for (int c = 0; c < C; c++) {
            const size_t i = o + (size_t)c * L;
            dinp[i] += a * g[c] * dout[i] + bx * inp[i];
        }
    }
}

__global__ void rms_backward_dg_k(float *dg, const float *dout, const float *inp, const float *rnorm, int B, int C,
                                  int L) {
    const int c = blockIdx.x;
    const long long n = (long long)B * L;
    double s = 0.0;
    for (long long k = threadIdx.x; k < n; k += blockDim.x) {
        const size_t i = ((size_t)(k / L) * C + c) * L + (size_t)(k % L);
        s += (double)dout[i] * inp[i] * rnorm[k];
    }
    s = ubd_block_sum(s);
    if (threadIdx.x == 0) dg[c] += (float)(s * sqrt((double)C));
}

extern "C" ubd_status ubd_cuda_rmsnorm_backward(float *dinp, float *dg, const float *dout, const float *inp,
                                                const float *g, const float *rnorm, int B, int C, int L) {
    UBD_TRY(check_bcs(__func__, B, C, L));
    UBD_REQUIRE(dout && inp && rnorm, UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    UBD_REQUIRE(!dinp || g, UBD_ERR_VALUE, "%s: g must not be NULL", __func__);
    if (dinp) {
        rms_backward_dx_k<<<ubd_grid((size_t)B * L, 128), 128, 0, ubd_cuda_stream()>>>(dinp, dout, inp, g, rnorm, B, C, L);
        UBD_CUDA_LAUNCHED();
    }
    if (dg) {
        rms_backward_dg_k<<<C, NB, 0, ubd_cuda_stream()>>>(dg, dout, inp, rnorm, B, C, L);
        UBD_CUDA_LAUNCHED();
    }
    return UBD_OK;
}
