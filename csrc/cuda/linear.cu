// linear.cu — CUDA twin of cpu/linear.c: the products go through cuBLAS with
// the CPU's row-major sgemm calls repeated line for line (ubd_rm_sgemm).
#include "../ops.h"
#include "common.cuh"

// out (B, OC): every row = bias (OC)
__global__ void bias_rows_k(float *out, const float *bias, int B, int OC) {
    const size_t n = (size_t)B * OC;
    UBD_GRID_STRIDE(i, n) out[i] = bias[i % OC];
}

// dbias (OC) += column sums of dout (B, OC): one thread per column, rows
// summed in order in float, exactly as the CPU loop (reads are coalesced
// across the threads of a warp).
__global__ void bias_grad_k(float *dbias, const float *dout, int B, int OC) {
    UBD_GRID_STRIDE(o, (size_t)OC) {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dout[(size_t)b * OC + o];
        dbias[o] += s;
    }
}

extern "C" ubd_status ubd_cuda_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                                              int B, int C, int OC) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(OC);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(weight);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    float beta = 0.0f;
    if (bias) {  // out rows start as the bias, then out += inp @ W^T
        bias_rows_k<<<ubd_grid((size_t)B * OC, 256), 256, 0, ubd_cuda_stream()>>>(out, bias, B, OC);
        UBD_CUDA_LAUNCHED();
        beta = 1.0f;
    }
    // out (B,OC) = inp (B,C) @ weight^T (C,OC)
    return ubd_rm_sgemm(h, 0, 1, B, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

extern "C" ubd_status ubd_cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                               const float *inp, const float *weight, int B, int C, int OC) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(OC);
    UBD_REQUIRE_PTR(dout);
    if (dinp) UBD_REQUIRE_PTR(weight);
    if (dweight) UBD_REQUIRE_PTR(inp);
    if (!dinp && !dweight && !dbias) return UBD_OK;
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    // dinp (B,C) += dout (B,OC) @ weight (OC,C)
    if (dinp) UBD_TRY(ubd_rm_sgemm(h, 0, 0, B, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C));
    // dweight (OC,C) += dout^T (OC,B) @ inp (B,C)   (beta = 1: gradients accumulate)
    if (dweight) UBD_TRY(ubd_rm_sgemm(h, 1, 0, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f, dweight, C));
    if (dbias) {
        bias_grad_k<<<ubd_grid((size_t)OC, 128), 128, 0, ubd_cuda_stream()>>>(dbias, dout, B, OC);
        UBD_CUDA_LAUNCHED();
    }
    return UBD_OK;
}
