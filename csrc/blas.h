/* blas.h — the one place that names the BLAS.  The scipy-openblas32 wheel
 * prefixes every symbol with `scipy_`; cblas.h maps nothing for us, so we
 * declare the handful of calls used and name them once here. */
#ifndef UBD_BLAS_H
#define UBD_BLAS_H

#include <cblas.h>

#ifndef BLAS_SYMBOL_PREFIX /* a system OpenBLAS */
#define UBD_SGEMM cblas_sgemm
#define UBD_BLAS_SET_THREADS openblas_set_num_threads
#define UBD_BLAS_GET_CONFIG openblas_get_config
#define UBD_BLAS_GET_CORENAME openblas_get_corename
#else
#define UBD_SGEMM scipy_cblas_sgemm
#define UBD_BLAS_SET_THREADS scipy_openblas_set_num_threads
#define UBD_BLAS_GET_CONFIG scipy_openblas_get_config
#define UBD_BLAS_GET_CORENAME scipy_openblas_get_corename
#endif

/* C (M,N) = alpha * op(A) @ op(B) + beta * C, row-major, with 64-bit-safe
 * size checks done by the caller (OpenBLAS here uses 32-bit ints). Runs on the
 * OpenMP team when large enough, OpenBLAS itself on one thread, and gives the
 * same bits at any thread count (csrc/cpu/gemm.c). Inside a parallel region it
 * runs on the calling thread. */
void ubd_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

/* The BLAS's own thread count for a core thread count of n (1 unless
 * UBDIFF_GEMM asks for OpenBLAS's threading, see gemm.c). */
void ubd_gemm_set_threads(int n);
/* 1 when OpenBLAS threads its own products (UBDIFF_GEMM=blas-omp | blas-own). */
int ubd_gemm_uses_blas_threads(void);

#endif
