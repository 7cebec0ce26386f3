// diffusion_ops.cu — CUDA twins of cpu/diffusion_ops.c (diffusion_ops.h): the
// latent diffusion's training draws, q_sample, v-loss and the sampling steps,
// all on the backend's stream (common.cuh), all reading their per-sample and
// per-step values from device memory, so nothing waits for the host.
// Elementwise expressions are the CPU's (nvcc may fuse a multiply-add, and
// CUDA's logf / sinf / cosf differ from the C library's by an ulp or two in
// the noise, so results agree with the CPU within float rounding); sums are
// in double in a fixed order (reduce.cuh), reproducible run to run.
#include <math.h>

#include "../diffusion_ops.h"
#include "../philox.h"
#include "common.cuh"
#include "reduce.cuh"

__global__ void timesteps_k(int *ti, float *tf, int B, int T) {
    UBD_GRID_STRIDE(b, (size_t)B) {
        int t = (int)(tf[b] * (float)T);
        ti[b] = t < T ? t : T - 1;
        tf[b] = (float)ti[b];
    }
}

extern "C" ubd_status ubd_cuda_diffusion_timesteps(int *ti, float *tf, int B, int T) {
    UBD_REQUIRE(ti && tf, UBD_ERR_VALUE, "diffusion_timesteps: NULL buffer");
    UBD_REQUIRE(B >= 0 && T >= 1, UBD_ERR_VALUE, "diffusion_timesteps: need B >= 0 and T >= 1, got %d, %d", B, T);
    if (B == 0) return UBD_OK;
    timesteps_k<<<ubd_grid((size_t)B, 128), 128, 0, ubd_cuda_stream()>>>(ti, tf, B, T);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

__global__ void q_sample_k(float *xt, float *v, const float *z0, const float *noise, const int *t, const float *sa,
                           const float *s1, size_t n, size_t per) {
    UBD_GRID_STRIDE(i, n) {
        const int tb = t[i / per];
        const float a = sa[tb], c = s1[tb], z = z0[i], e = noise[i];
        xt[i] = a * z + c * e;
        v[i] = a * e - c * z;
    }
}

extern "C" ubd_status ubd_cuda_diffusion_q_sample(float *xt, float *v, const float *z0, const float *noise,
                                                  const int *t, const float *sa, const float *s1, int B, size_t per) {
    UBD_REQUIRE(xt && v && z0 && noise && t && sa && s1, UBD_ERR_VALUE, "diffusion_q_sample: NULL buffer");
    const size_t n = (size_t)B * per;
    if (n == 0) return UBD_OK;
    q_sample_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(xt, v, z0, noise, t, sa, s1, n, per);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// One block walks the samples in order: B * per is small (a latent is 128
// floats), and the per-sample terms then add up on one thread in the CPU's order.
__global__ void vloss_forward_k(float *loss, float *per_sample, const float *pred, const float *v, const int *t,
                                const float *w, int B, size_t per) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *p = pred + b * per, *vb = v + b * per;
        double se = 0.0;
        for (size_t i = threadIdx.x; i < per; i += blockDim.x) {
            const float d = p[i] - vb[i];
            se += (double)d * d;
        }
        se = ubd_block_sum(se);
        const double term = (double)w[t[b]] * se / (double)per;
        if (threadIdx.x == 0 && per_sample) per_sample[b] = (float)term;
        total += term;
    }
    if (threadIdx.x == 0) *loss = (float)(total / B);
}

extern "C" ubd_status ubd_cuda_diffusion_vloss_forward(float *loss, float *per_sample, const float *pred,
                                                       const float *v, const int *t, const float *w, int B,
                                                       size_t per) {
    UBD_REQUIRE(loss && pred && v && t && w, UBD_ERR_VALUE, "diffusion_vloss_forward: NULL buffer");
    UBD_REQUIRE(B >= 1 && per >= 1, UBD_ERR_VALUE, "diffusion_vloss_forward: empty batch");
    vloss_forward_k<<<1, UBD_NORM_BLOCK, 0, ubd_cuda_stream()>>>(loss, per_sample, pred, v, t, w, B, per);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

__global__ void vloss_backward_k(float *dpred, const float *pred, const float *v, const int *t, const float *w,
                                 int B, size_t per, float scale) {
    UBD_GRID_STRIDE(i, (size_t)B * per) {
        const float c = (float)(scale * (double)w[t[i / per]] * 2.0 / ((double)per * B));
        dpred[i] += c * (pred[i] - v[i]);
    }
}

extern "C" ubd_status ubd_cuda_diffusion_vloss_backward(float *dpred, const float *pred, const float *v,
                                                        const int *t, const float *w, int B, size_t per,
                                                        float scale) {
    UBD_REQUIRE(dpred && pred && v && t && w, UBD_ERR_VALUE, "diffusion_vloss_backward: NULL buffer");
    const size_t n = (size_t)B * per;
    if (n == 0) return UBD_OK;
    vloss_backward_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(dpred, pred, v, t, w, B, per, scale);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// One block: thread 0 reads k and the row, all threads fill tf, then k moves on
// (after every thread has read the row it indexes).
__global__ void step_begin_k(ubd_sample_step *cur, float *tf, int *k, const ubd_sample_step *plan, int B) {
    __shared__ int kk;
    if (threadIdx.x == 0) {
        kk = *k;
        *cur = plan[kk];
    }
    __syncthreads();
    const float time = (float)plan[kk].time;
    for (int b = threadIdx.x; b < B; b += blockDim.x) tf[b] = time;
    __syncthreads();
    if (threadIdx.x == 0) *k = kk + 1;
}

extern "C" ubd_status ubd_cuda_diffusion_step_begin(ubd_sample_step *cur, float *tf, int *k,
                                                    const ubd_sample_step *plan, int B) {
    UBD_REQUIRE(cur && tf && k && plan, UBD_ERR_VALUE, "diffusion_step_begin: NULL buffer");
    UBD_REQUIRE(B >= 0, UBD_ERR_VALUE, "diffusion_step_begin: B must be >= 0, got %d", B);
    step_begin_k<<<1, 256, 0, ubd_cuda_stream()>>>(cur, tf, k, plan, B);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

__device__ __forceinline__ float clamp1(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

// The step's noise is drawn in place (the element rand_normal would write), so
// the scratch the CPU fills is not needed here.
__global__ void step_update_k(float *x, const float *pred, const ubd_sample_step *cur, size_t n) {
    const ubd_sample_step s = *cur;
    UBD_GRID_STRIDE(i, n) {
        const float xi = x[i];
        const float x0 = clamp1(s.sa * xi - s.s1 * pred[i]);
        if (s.kind == UBD_STEP_X0) {
            x[i] = x0;
            continue;
        }
        float z = 0.0f;
        if (s.noisy) {
            const uint64_t k = s.offset + i;
            const ubd_u32x4 r = ubd_philox_block(s.seed, s.stream, k >> 2);
            float n0, n1;
            const int pair = (int)(k & 2);  // lanes (0,1) or (2,3), as cpu/random.c
            ubd_box_muller(r.v[pair], r.v[pair + 1], &n0, &n1);
            z = (k & 1) ? n1 : n0;
        }
        if (s.kind == UBD_STEP_DDPM) {
            const float mean = s.c_x0 * x0 + s.c_x * xi;
            x[i] = s.noisy ? mean + s.sd * z : mean;
        } else {
            const float eps = (s.r1 * xi - x0) / s.rm1;
            x[i] = x0 * s.c_x0 + s.c_x * eps + (s.noisy ? s.sd * z : 0.0f);
        }
    }
}

extern "C" ubd_status ubd_cuda_diffusion_step_update(float *x, const float *pred, const ubd_sample_step *cur,
                                                     size_t n, float *noise) {
    (void)noise;  // drawn inside the kernel
    UBD_REQUIRE(x && pred && cur, UBD_ERR_VALUE, "diffusion_step_update: NULL buffer");
    if (n == 0) return UBD_OK;
    step_update_k<<<ubd_grid(n, 256), 256, 0, ubd_cuda_stream()>>>(x, pred, cur, n);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}
