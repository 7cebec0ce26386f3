/* attn_par.h — how the attention kernels split work over threads.
 *
 * Each (batch, head) pair is an independent set of small matrix products.
 * OpenBLAS runs a GEMM on one thread when M*N*K <= 65536 * 4 (its
 * SMP_THRESHOLD_MIN times the default GEMM_MULTITHREAD_THRESHOLD), so below
 * that size we parallelise over (batch, head) with OpenMP and every call to
 * ubd_sgemm stays single-threaded inside its OpenMP thread (no nested
 * threading). Above it we loop over (batch, head) serially and let OpenBLAS
 * thread each product. Either way one (batch, head) is computed by one fixed
 * sequence of operations, so results do not depend on the thread count. */
#ifndef UBD_CPU_ATTN_PAR_H
#define UBD_CPU_ATTN_PAR_H

#include <limits.h>

#define UBD_ATTN_SMALL_GEMM 262144.0

/* 1 when the largest per-(batch, head) product is small enough (and there is
 * more than one pair) to run the pairs in parallel. */
static inline int ubd_attn_parallel_pairs(long long pairs, double max_mnk) {
    return pairs > 1 && max_mnk <= UBD_ATTN_SMALL_GEMM;
}

#endif
