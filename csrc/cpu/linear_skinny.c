/* linear_skinny.c — out (B, OC) = inp (B, C) @ W^T + bias for few rows (B <= 16) and a
 * large weight: D_s's last Linear (640 -> 350,000, 224 M weights) at the decode batch.
 *
 * Why not sgemm: with 16 rows each weight is used 16 times, so the product is a
 * stream of the weight matrix (0.9 GB) through the core; OpenBLAS first copies
 * (packs) every weight panel, which doubles the memory traffic — packing took
 * 1.8x the time of the arithmetic itself in the paper decode (23 % vs 13 %). Here
 * each weight row is read once, straight from memory, into 4 x 4 register blocks
 * (4 weight rows x 4 input rows, vectors of VL floats), and the input rows (16 x C
 * floats) stay in cache. Every output is one thread's sum in a fixed order (VL
 * lanes, then the lanes pairwise, then the tail), so the bits depend on the shape
 * and the build's vector width only. */
#include <string.h>

#include "ops.h"
#include "linear_skinny.h"

/* The widest vector the build targets (-march=native): 16 floats with AVX-512, else 8. */
#ifdef __AVX512F__
#define VL 16
#else
#define VL 8
#endif
typedef float vf __attribute__((vector_size(VL * 4)));

static inline vf loadv(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float hsum(vf v) { /* pairwise, in a fixed order */
    float h[VL];
    memcpy(h, &v, sizeof h);
    for (int w = VL / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) h[i] += h[i + w];
    return h[0];
}

/* out[b][o] for o in [o0, o0 + no), b in [b0, b0 + nb), no, nb <= 4 */
static inline void block(float *out, const float *x, const float *w, const float *bias, int C, int OC, int o0,
                         int no, int b0, int nb) {
    vf acc[4][4];
    memset(acc, 0, sizeof acc);
    const float *wr[4], *xr[4];
    for (int i = 0; i < 4; i++) wr[i] = w + (size_t)(o0 + (i < no ? i : 0)) * C;
    for (int j = 0; j < 4; j++) xr[j] = x + (size_t)(b0 + (j < nb ? j : 0)) * C;
    int c = 0;
    for (; c + VL <= C; c += VL) {
        const vf w0 = loadv(wr[0] + c), w1 = loadv(wr[1] + c), w2 = loadv(wr[2] + c), w3 = loadv(wr[3] + c);
        for (int j = 0; j < 4; j++) {
            const vf xv = loadv(xr[j] + c);
            acc[0][j] += w0 * xv, acc[1][j] += w1 * xv, acc[2][j] += w2 * xv, acc[3][j] += w3 * xv;
        }
    }
    for (int i = 0; i < no; i++)
        for (int j = 0; j < nb; j++) {
            float s = hsum(acc[i][j]);
            for (int cc = c; cc < C; cc++) s += wr[i][cc] * xr[j][cc];
            out[(size_t)(b0 + j) * OC + o0 + i] = (bias ? bias[o0 + i] : 0.0f) + s;
        }
}

int ubd_linear_is_skinny(int B, int C, int OC) {
    return B <= UBD_SKINNY_MAX_ROWS && (long long)C * OC >= UBD_SKINNY_MIN_WEIGHTS && C >= 8;
}

void ubd_linear_skinny_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int C,
                               int OC) {
    const int nblk = (OC + 3) / 4;
    /* dynamic: on a busy machine a descheduled thread must not hold a fixed half of
     * the rows (static halves made the busy-machine decode 0.77x its 1-thread rate) */
#pragma omp parallel for schedule(dynamic, 64) if ((long long)OC * C >= (1LL << 20))
    for (int ob = 0; ob < nblk; ob++) {
        const int o0 = ob * 4, no = OC - o0 < 4 ? OC - o0 : 4;
        for (int b0 = 0; b0 < B; b0 += 4) block(out, inp, weight, bias, C, OC, o0, no, b0, B - b0 < 4 ? B - b0 : 4);
    }
}
