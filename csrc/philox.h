/* philox.h — Philox-4x32-10 counter-based generator (Salmon et al. 2011),
 * the generator cuRAND offers as CURAND_RNG_PSEUDO_PHILOX4_32_10.
 *
 * Header-only so the CPU and CUDA code use the very same arithmetic: element
 * k of a stream (seed, k) is a pure function of (seed, k), so any thread can
 * produce any slice, and CPU and GPU streams are bit-identical.
 *
 * Stream layout: element k comes from block b = k / 4 (counter = {b_lo, b_hi,
 * stream_lo, stream_hi}, key = {seed_lo, seed_hi}), lane k % 4.
 *  uniform: u = x * 2^-32 + 2^-33, in (0, 1)          (as curand_uniform)
 *  normal:  Box-Muller on lanes (0,1) and (2,3) of a block.
 */
#ifndef UBD_PHILOX_H
#define UBD_PHILOX_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define UBD_HD __host__ __device__ __forceinline__
#else
#define UBD_HD static inline
#endif

typedef struct { uint32_t v[4]; } ubd_u32x4;

UBD_HD uint32_t ubd_mulhilo32_(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* The bare Philox-4x32-10 bijection (Random123 naming: ctr, key). */
UBD_HD ubd_u32x4 ubd_philox4x32_10(ubd_u32x4 c, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = ubd_mulhilo32_(0xD2511F53u, c.v[0], &hi0);
        uint32_t lo1 = ubd_mulhilo32_(0xCD9E8D57u, c.v[2], &hi1);
        ubd_u32x4 n;
        n.v[0] = hi1 ^ c.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ c.v[3] ^ k1;
        n.v[3] = lo0;
        c = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

/* Four raw 32-bit words of block `b` of stream (`seed`, `stream`). */
UBD_HD ubd_u32x4 ubd_philox_block(uint64_t seed, uint64_t stream, uint64_t b) {
    ubd_u32x4 c;
    c.v[0] = (uint32_t)b;
    c.v[1] = (uint32_t)(b >> 32);
    c.v[2] = (uint32_t)stream;
    c.v[3] = (uint32_t)(stream >> 32);
    return ubd_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

UBD_HD float ubd_u32_to_uniform(uint32_t x) {
    /* (0, 1): never 0, so log() in Box-Muller is finite. */
    return (float)x * 2.3283064365386963e-10f + 1.1641532182693481e-10f;
}

/* Two standard normals from two uniforms (Box-Muller, computed in float). */
UBD_HD void ubd_box_muller(uint32_t a, uint32_t b, float *n0, float *n1) {
    float u1 = ubd_u32_to_uniform(a);
    float u2 = ubd_u32_to_uniform(b);
    float r = sqrtf(-2.0f * logf(u1));
    float t = 6.2831853071795864f * u2;
    *n0 = r * cosf(t);
    *n1 = r * sinf(t);
}

#endif
