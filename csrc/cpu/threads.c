/* threads.c — one knob for OpenMP and BLAS threads, plus BLAS identity. */
#include <omp.h>
#include <stdio.h>

#include "blas.h"
#include "ubd.h"

static int ubd_threads_ = 0; /* 0: not set yet -> omp_get_max_threads() */

#define UBD_THREADS_HARD_MAX 1024
#define UBD_THREADS_PER_PROC 64

int ubd_max_num_threads(void) {
    long long m = (long long)UBD_THREADS_PER_PROC * omp_get_num_procs();
    return m < 1 ? 1 : (m > UBD_THREADS_HARD_MAX ? UBD_THREADS_HARD_MAX : (int)m);
}

ubd_status ubd_set_num_threads(int n) {
    const int max = ubd_max_num_threads();
    UBD_REQUIRE(n >= 1 && n <= max, UBD_ERR_VALUE, "set_num_threads: n must be >= 1 and <= %d, got %d", max, n);
    ubd_threads_ = n;
    omp_set_num_threads(n);
    ubd_gemm_set_threads(n); /* OpenBLAS stays on one thread: gemm.c parallelises */
    return UBD_OK;
}

int ubd_get_num_threads(void) { return ubd_threads_ > 0 ? ubd_threads_ : omp_get_max_threads(); }

const char *ubd_blas_info(void) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s (core: %s)", UBD_BLAS_GET_CONFIG(), UBD_BLAS_GET_CORENAME());
    return buf;
}
