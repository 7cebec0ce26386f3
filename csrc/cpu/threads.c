/* threads.c — one knob for OpenMP and BLAS threads, plus BLAS identity. */
#include <omp.h>
#include <stdio.h>

#include "blas.h"
#include "ubd.h"

static int ubd_threads_ = 0; /* 0: not set yet -> omp_get_max_threads() */

ubd_status ubd_set_num_threads(int n) {
    UBD_REQUIRE(n >= 1, UBD_ERR_VALUE, "set_num_threads: n must be >= 1, got %d", n);
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
