// forward_model.cu — CUDA twin of cpu/forward_model.c (physics.h).
//
// All N*ns (map, shot) simulations advance together: one launch per time step
// updates every cell of every simulation (grid z = simulation), injects the
// source in the same pass (the thread owning the source cell adds it after its
// update), and a second small launch records the receivers. The new field
// overwrites p(n-1) in place, then the two field pointers swap. Coefficients
// come from physics_math.h, the same formulas as the CPU code; neighbours wrap
// periodically at the padded edges, as the spec asks.
//
// Workspace layout (floats, each part 64-byte aligned):
//   w (nt) | positions (2 ns + 2 nr ints) | stats (4 N) | alpha (N, NZ, NX) |
//   kx (N, NX) | kz (N, NZ) | amp (N ns) | two fields (N ns, NZ, NX) each
#include <math.h>
#include <string.h>

#include "../physics.h"
#include "../physics_math.h"
#include "common.cuh"

namespace {

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

struct layout {
    size_t w, pos, stats, alpha, kx, kz, amp, f0, f1, total;
};

layout make_layout(int N, int H, int W, const ubd_fwd_params *p) {
    const size_t A = 16;
    size_t NZ = (size_t)H + 2 * p->nbc, NX = (size_t)W + 2 * p->nbc, B = (size_t)N * p->ns;
    layout L;
    size_t o = 0;
    L.w = o; o += round_up(p->nt, A);
    L.pos = o; o += round_up(2 * (size_t)p->ns + 2 * (size_t)p->nr, A);
    L.stats = o; o += round_up(4 * (size_t)N, A);
    L.alpha = o; o += round_up((size_t)N * NZ * NX, A);
    L.kx = o; o += round_up((size_t)N * NX, A);
    L.kz = o; o += round_up((size_t)N * NZ, A);
    L.amp = o; o += round_up(B, A);
    L.f0 = o; o += round_up(B * NZ * NX, A);
    L.f1 = o; o += round_up(B * NZ * NX, A);
    L.total = o;
    return L;
}

__global__ void ricker_k(float *w, int nt, int nw, float freq, float dt) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < nt; k += gridDim.x * blockDim.x)
        w[k] = ubd_ricker_sample(k, nw, freq, dt);
}

// Per map: stats = (min, max, max over the border cells, count of non-finite
// or non-positive values). One block of 256 threads per map.
__global__ void stats_k(float *stats, const float *vel, int N, int H, int W) {
    __shared__ float smin[256], smax[256], semax[256], sbad[256];
    const int HW = H * W;
    for (int m = blockIdx.x; m < N; m += gridDim.x) {
        const float *v = vel + (size_t)m * HW;
        float lo = INFINITY, hi = -INFINITY, ehi = -INFINITY, bad = 0.0f;
        for (int i = threadIdx.x; i < HW; i += blockDim.x) {
            float x = v[i];
            int z = i / W, c = i % W;
            if (!isfinite(x) || !(x > 0.0f)) bad += 1.0f;
            else {
                lo = fminf(lo, x);
                hi = fmaxf(hi, x);
                if (z == 0 || z == H - 1 || c == 0 || c == W - 1) ehi = fmaxf(ehi, x);
            }
        }
        smin[threadIdx.x] = lo;
        smax[threadIdx.x] = hi;
        semax[threadIdx.x] = ehi;
        sbad[threadIdx.x] = bad;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) {
                smin[threadIdx.x] = fminf(smin[threadIdx.x], smin[threadIdx.x + s]);
                smax[threadIdx.x] = fmaxf(smax[threadIdx.x], smax[threadIdx.x + s]);
                semax[threadIdx.x] = fmaxf(semax[threadIdx.x], semax[threadIdx.x + s]);
                sbad[threadIdx.x] += sbad[threadIdx.x + s];
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            stats[4 * m] = smin[0];
            stats[4 * m + 1] = smax[0];
            stats[4 * m + 2] = semax[0];
            stats[4 * m + 3] = sbad[0];
        }
        __syncthreads();
    }
}

// alpha (N, NZ, NX) from the edge-padded velocity; kx (N, NX), kz (N, NZ) damping profiles.
__global__ void coefs_k(float *alpha, float *kx, float *kz, const float *vel, const float *stats, int N, int H, int W,
                        int nbc, float dt, float dx) {
    int NZ = H + 2 * nbc, NX = W + 2 * nbc;
    size_t per = (size_t)NZ * NX + NX + NZ, total = (size_t)N * per;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int m = (int)(t / per);
        size_t r = t % per;
        float vmin = stats[4 * m];
        if (r < (size_t)NZ * NX) {
            int z = (int)(r / NX), x = (int)(r % NX);
            float v = vel[(size_t)m * H * W + (size_t)ubd_fwd_clamp(z, H, nbc) * W + ubd_fwd_clamp(x, W, nbc)];
            alpha[(size_t)m * NZ * NX + r] = ubd_fwd_alpha(v, dt, dx);
        } else if (r < (size_t)NZ * NX + NX) {
            int x = (int)(r - (size_t)NZ * NX), i = ubd_fwd_strip(x, W, nbc);
            kx[(size_t)m * NX + x] = i < 0 ? 0.0f : ubd_fwd_kappa(i, vmin, dx, dt, nbc);
        } else {
            int z = (int)(r - (size_t)NZ * NX - NX), i = ubd_fwd_strip(z, H, nbc);
            kz[(size_t)m * NZ + z] = i < 0 ? 0.0f : ubd_fwd_kappa(i, vmin, dx, dt, nbc);
        }
    }
}

// amp (N ns) = v_src^2 dt^2 per simulation.
__global__ void amp_k(float *amp, const float *vel, const int *src_z, const int *src_x, int B, int ns, int H, int W,
                      float dt) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    int m = b / ns, s = b % ns;
    float v = vel[(size_t)m * H * W + (size_t)src_z[s] * W + src_x[s]];
    amp[b] = (float)((double)v * v * (double)dt * (double)dt);
}

// One step for every simulation: o (B, NZ, NX) holds p(n-1) and receives p(n+1); c = p(n).
__global__ void step_k(float *o, const float *c, const float *alpha, const float *kx, const float *kz,
                       const float *amp, const float *w, const int *src_z, const int *src_x, int B, int ns, int H,
                       int W, int nbc, int n) {
    const int NZ = H + 2 * nbc, NX = W + 2 * nbc;
    const int x = blockIdx.x * blockDim.x + threadIdx.x, z = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= NX || z >= NZ) return;
    const size_t plane = (size_t)NZ * NX;
    const int xm1 = ubd_fwd_wrap(x - 1, NX), xp1 = ubd_fwd_wrap(x + 1, NX);
    const int xm2 = ubd_fwd_wrap(x - 2, NX), xp2 = ubd_fwd_wrap(x + 2, NX);
    const int zm1 = ubd_fwd_wrap(z - 1, NZ), zp1 = ubd_fwd_wrap(z + 1, NZ);
    const int zm2 = ubd_fwd_wrap(z - 2, NZ), zp2 = ubd_fwd_wrap(z + 2, NZ);
    const bool xin = x >= nbc && x < nbc + W;
    for (int b = blockIdx.z; b < B; b += gridDim.z) {
        const int m = b / ns, s = b % ns;
        const float *cb = c + (size_t)b * plane;
        const float *rz = cb + (size_t)z * NX;
        float kap = xin ? kz[(size_t)m * NZ + z] : kx[(size_t)m * NX + x];
        float a = alpha[(size_t)m * plane + (size_t)z * NX + x];
        float s1 = (rz[xm1] + rz[xp1]) + (cb[(size_t)zm1 * NX + x] + cb[(size_t)zp1 * NX + x]);
        float s2 = (rz[xm2] + rz[xp2]) + (cb[(size_t)zm2 * NX + x] + cb[(size_t)zp2 * NX + x]);
        float lap = UBD_FD_C1 * s1 + UBD_FD_C2 * s2;
        size_t i = (size_t)b * plane + (size_t)z * NX + x;
        float v = (2.0f - 5.0f * a - kap) * rz[x] - (1.0f - kap) * o[i] + a * lap;
        if (z == src_z[s] + nbc && x == src_x[s] + nbc) v += amp[b] * w[n];
        o[i] = v;
    }
}

// seis (B, nt, nr): sample n = the new field at each receiver.
__global__ void record_k(float *seis, const float *f, const int *rec_z, const int *rec_x, int B, int nr, int NZ,
                         int NX, int nbc, int nt, int n) {
    size_t total = (size_t)B * nr;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t b = t / nr;
        int r = (int)(t % nr);
        seis[(b * nt + n) * nr + r] = f[b * NZ * NX + (size_t)(rec_z[r] + nbc) * NX + rec_x[r] + nbc];
    }
}

}  // namespace

extern "C" size_t ubd_cuda_forward_model_workspace(int N, int H, int W, const ubd_fwd_params *p) {
    if (!p || N <= 0 || H <= 0 || W <= 0 || p->nbc < 0 || p->nt <= 0 || p->ns <= 0 || p->nr <= 0) return 0;
    return make_layout(N, H, W, p).total;
}

extern "C" ubd_status ubd_cuda_forward_model(float *seis, const float *vel, int N, int H, int W,
                                              const ubd_fwd_params *p, float *work, size_t work_floats) {
    UBD_REQUIRE_POSITIVE(N);
    UBD_TRY(ubd_fwd_check_params(p, H, W));
    UBD_REQUIRE_PTR(seis);
    UBD_REQUIRE_PTR(vel);
    UBD_REQUIRE_PTR(work);
    layout L = make_layout(N, H, W, p);
    UBD_REQUIRE(work_floats >= L.total, UBD_ERR_VALUE,
                "cuda_forward_model: workspace of %zu floats is too small, need %zu", work_floats, L.total);
    const int ns = p->ns, nr = p->nr, nbc = p->nbc, NZ = H + 2 * nbc, NX = W + 2 * nbc;
    const long long B = (long long)N * ns;
    UBD_REQUIRE(B <= 0x7fffffffLL, UBD_ERR_VALUE, "cuda_forward_model: too many simulations (%lld)", B);
    // the step kernel puts padded rows on gridDim.y (at most 65535 blocks of 8 rows)
    UBD_REQUIRE((NZ + 7) / 8 <= 65535, UBD_ERR_VALUE, "cuda_forward_model: %d padded rows exceed the grid limit (%d)",
                NZ, 65535 * 8);

    // positions as ints inside the float workspace (same size, 4-byte aligned)
    int *pos = (int *)(work + L.pos);
    UBD_CUDA_TRY(cudaMemcpy(pos, p->src_z, ns * sizeof(int), cudaMemcpyHostToDevice));
    UBD_CUDA_TRY(cudaMemcpy(pos + ns, p->src_x, ns * sizeof(int), cudaMemcpyHostToDevice));
    UBD_CUDA_TRY(cudaMemcpy(pos + 2 * ns, p->rec_z, nr * sizeof(int), cudaMemcpyHostToDevice));
    UBD_CUDA_TRY(cudaMemcpy(pos + 2 * ns + nr, p->rec_x, nr * sizeof(int), cudaMemcpyHostToDevice));
    const int *src_z = pos, *src_x = pos + ns, *rec_z = pos + 2 * ns, *rec_x = pos + 2 * ns + nr;

    // velocity checks (on the device, then read back a chunk of maps at a time)
    float *stats = work + L.stats;
    stats_k<<<N < 65535 ? N : 65535, 256>>>(stats, vel, N, H, W);
    UBD_CUDA_LAUNCHED();
    float host[4 * 256];
    for (int m0 = 0; m0 < N; m0 += 256) {
        int cnt = N - m0 < 256 ? N - m0 : 256;
        UBD_CUDA_TRY(cudaMemcpy(host, stats + 4 * (size_t)m0, 4 * cnt * sizeof(float), cudaMemcpyDeviceToHost));
        for (int k = 0; k < cnt; k++) {
            UBD_REQUIRE(host[4 * k + 3] == 0.0f, UBD_ERR_VALUE,
                        "forward_model: velocity map %d has %.0f non-positive or non-finite values", m0 + k,
                        host[4 * k + 3]);
            UBD_TRY(ubd_fwd_check_stats(m0 + k, host[4 * k], host[4 * k + 1], host[4 * k + 2], p));
        }
    }

    // coefficients, wavelet, amplitudes; zero fields
    float *w = work + L.w, *alpha = work + L.alpha, *kx = work + L.kx, *kz = work + L.kz, *amp = work + L.amp;
    ricker_k<<<ubd_grid(p->nt, 256), 256>>>(w, p->nt, ubd_ricker_length(p->freq, p->dt), p->freq, p->dt);
    UBD_CUDA_LAUNCHED();
    size_t ncoef = (size_t)N * ((size_t)NZ * NX + NX + NZ);
    coefs_k<<<ubd_grid(ncoef, 256), 256>>>(alpha, kx, kz, vel, stats, N, H, W, nbc, p->dt, p->dx);
    UBD_CUDA_LAUNCHED();
    amp_k<<<(unsigned)((B + 255) / 256), 256>>>(amp, vel, src_z, src_x, (int)B, ns, H, W, p->dt);
    UBD_CUDA_LAUNCHED();
    size_t field = (size_t)B * NZ * NX;
    UBD_CUDA_TRY(cudaMemset(work + L.f0, 0, field * sizeof(float)));
    UBD_CUDA_TRY(cudaMemset(work + L.f1, 0, field * sizeof(float)));

    float *prev = work + L.f0, *cur = work + L.f1;
    dim3 block(32, 8);
    dim3 grid((NX + 31) / 32, (NZ + 7) / 8, (unsigned)(B < 65535 ? B : 65535));
    unsigned rgrid = ubd_grid((size_t)B * nr, 256);
    for (int n = 0; n < p->nt; n++) {
        step_k<<<grid, block>>>(prev, cur, alpha, kx, kz, amp, w, src_z, src_x, (int)B, ns, H, W, nbc, n);
        UBD_CUDA_LAUNCHED();
        record_k<<<rgrid, 256>>>(seis, prev, rec_z, rec_x, (int)B, nr, NZ, NX, nbc, p->nt, n);
        UBD_CUDA_LAUNCHED();
        float *t = prev;
        prev = cur;
        cur = t;
    }
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_forward_model_work(size_t *floats, int N, int H, int W, const ubd_fwd_params *p) {
    UBD_REQUIRE_PTR(floats);
    UBD_REQUIRE_POSITIVE(N);
    UBD_TRY(ubd_fwd_check_params(p, H, W));
    *floats = ubd_cuda_forward_model_workspace(N, H, W, p);
    return UBD_OK;
}
