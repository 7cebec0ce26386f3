/* linear_skinny.h — the few-rows, large-weight Linear forward (linear_skinny.c). */
#ifndef UBD_CPU_LINEAR_SKINNY_H
#define UBD_CPU_LINEAR_SKINNY_H

/* At most this many rows, at least this many weights: the streaming kernel. */
#define UBD_SKINNY_MAX_ROWS 16
#define UBD_SKINNY_MIN_WEIGHTS (1LL << 22)

int ubd_linear_is_skinny(int B, int C, int OC);
/* out (B, OC) = inp (B, C) @ weight (OC, C)^T + bias (NULL: none); shapes checked by the caller */
void ubd_linear_skinny_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int C,
                               int OC);

#endif
