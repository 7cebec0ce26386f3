/* softmax_row.h — the one softmax formula, for a (possibly strided) vector,
 * shared by softmax.c and the attention kernels so they agree bit for bit.
 * Internal to csrc/cpu (no status codes: callers validate first). */
#ifndef UBD_CPU_SOFTMAX_ROW_H
#define UBD_CPU_SOFTMAX_ROW_H

#include <math.h>
#include <stddef.h>

/* y[i*s] = a * exp(x[i*s] - max x) / sum exp(...), i < n. In place (y == x)
 * is allowed. Subtracting the max keeps exp() <= 1 (no overflow); the sum is
 * >= 1, so the division is safe. */
static inline void ubd_softmax_vec(float *y, const float *x, int n, size_t s, float a) {
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = fmaxf(mx, x[i * s]);
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        float e = expf(x[i * s] - mx);
        y[i * s] = e;
        sum += e;
    }
    float inv = a / sum;
    for (int i = 0; i < n; i++) y[i * s] *= inv;
}

/* Jacobian-vector product of y = a * softmax(x): with p = y / a,
 * dx_i = p_i (dy_i a - sum_j p_j dy_j a) = y_i (dy_i - sum_j y_j dy_j / a).
 * Writes (beta = 0) or adds (beta = 1) into dx; dx may alias dy only when
 * beta = 0 (each element is read before it is written). */
static inline void ubd_softmax_vec_backward(float *dx, const float *dy, const float *y, int n, size_t s, float a,
                                            int accumulate) {
    float dot = 0.0f;
    for (int i = 0; i < n; i++) dot += y[i * s] * dy[i * s];
    dot /= a;
    if (accumulate)
        for (int i = 0; i < n; i++) dx[i * s] += y[i * s] * (dy[i * s] - dot);
    else
        for (int i = 0; i < n; i++) dx[i * s] = y[i * s] * (dy[i * s] - dot);
}

#endif
