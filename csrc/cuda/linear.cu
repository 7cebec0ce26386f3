// linear.cu — linear forward through cuBLAS (column-major view of row-major data).
#include "../ops.h"
#include "common.cuh"

__global__ void bias_rows_k(float *out, const float *bias, int B, int OC) {
    size_t n = (size_t)B * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % OC];
}

extern "C" ubd_status ubd_cuda_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                                              int B, int C, int OC) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(C);
    UBD_REQUIRE_POSITIVE(OC);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    float beta = 0.0f, one = 1.0f;
    if (bias) {
        bias_rows_k<<<ubd_grid((size_t)B * OC, 256), 256>>>(out, bias, B, OC);
        UBD_CUDA_LAUNCHED();
        beta = 1.0f;
    }
    // Row-major out (B,OC) is column-major out^T (OC,B) = W (OC,C) . inp^T (C,B):
    // in column-major terms W is weight^T stored (C,OC) -> op = T.
    UBD_CUBLAS_TRY(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, &one, weight, C, inp, C, &beta, out, OC));
    return UBD_OK;
}
