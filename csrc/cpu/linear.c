/* linear.c — fully connected layer through BLAS sgemm (PyTorch weight layout). */
#include <string.h>

#include "blas.h"
#include "linear_skinny.h"
#include "ops.h"

ubd_status ubd_cpu_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int C,
                                  int OC) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(OC);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(weight);
    if (ubd_linear_is_skinny(B, C, OC)) { /* a stream of the weights: no packing (linear_skinny.c) */
        ubd_linear_skinny_forward(out, inp, weight, bias, B, C, OC);
        return UBD_OK;
    }
    float beta = 0.0f;
    if (bias) { /* out rows start as the bias, then out += inp @ W^T */
#pragma omp parallel for schedule(static) if ((long long)B * OC > 65536)
        for (int b = 0; b < B; b++) memcpy(out + (size_t)b * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    /* out (B,OC) = inp (B,C) @ weight^T (C,OC) */
    ubd_sgemm(0, 1, B, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
    return UBD_OK;
}

ubd_status ubd_cpu_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                   const float *weight, int B, int C, int OC) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(OC);
    UBD_REQUIRE_PTR(dout);
    /* dinp (B,C) += dout (B,OC) @ weight (OC,C) */
    if (dinp) {
        UBD_REQUIRE_PTR(weight);
        ubd_sgemm(0, 0, B, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    }
    /* dweight (OC,C) += dout^T (OC,B) @ inp (B,C) */
    if (dweight) {
        UBD_REQUIRE_PTR(inp);
        ubd_sgemm(1, 0, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    }
    /* dbias (OC) += column sums of dout */
    if (dbias) {
#pragma omp parallel for schedule(static) if ((long long)B * OC > 65536)
        for (int o = 0; o < OC; o++) {
            float s = 0.0f;
            for (int b = 0; b < B; b++) s += dout[(size_t)b * OC + o];
            dbias[o] += s;
        }
    }
    return UBD_OK;
}
