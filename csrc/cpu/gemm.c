/* gemm.c — every sgemm of the CPU core, parallelised by ubdiff itself.
 *
 * Why: OpenBLAS's threaded level-3 driver makes its threads wait on each other
 * (shared packed panels, busy-wait flags). On a busy machine one descheduled
 * thread stalls the others for a whole scheduler time slice, thousands of times
 * per training step: with two other compute jobs on 2 cores, autoencoder step 1
 * (paper, batch 8) took 38 s at 2 threads against 2.2 s at 1 (OpenBLAS jobs on
 * the OpenMP team, csrc/cpu/blas_omp.c; 24 s with passive OpenMP waiting).
 * With OpenBLAS single-threaded and the OpenMP loops alone parallel it was
 * 3.3 s (passive waiting) — the BLAS's internal waiting was the collapse.
 *
 * So OpenBLAS always runs on one thread, and a product large enough to share
 * is cut into independent sub-products — blocks of C's columns (or rows) —
 * which the OpenMP team takes one at a time (schedule(dynamic)): a thread that
 * is not running simply takes fewer blocks, and no thread waits for another
 * until the region's single closing barrier. The cut depends on the shape only
 * (never on the thread count), and each block is one single-threaded sgemm, so
 * the result is the same bits at any thread count.
 *
 * UBDIFF_GEMM=blas-omp | blas-own (read once at load) restores OpenBLAS's own
 * threading — its jobs on the OpenMP team, or on its own pthread pool — for
 * comparisons (benchmarks/RESULTS.md); the default is "split". */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../blas.h"

/* A product is cut only when it has at least UBD_GEMM_PAR_FLOPS flops, into
 * blocks of at least UBD_GEMM_BLOCK_FLOPS flops and UBD_GEMM_MIN_COLS columns
 * (or rows), at most UBD_GEMM_MAX_BLOCKS of them. Block edges are multiples of
 * UBD_GEMM_ALIGN, so every block but the last keeps the kernel's full tiles.
 * Chosen, not tuned (no quiet machine was available): a 2 MFLOP block takes
 * ~20-40 us on one core, long against waking a thread and repacking the
 * smaller operand, short enough that products from 4 MFLOP up are shared;
 * OpenBLAS itself threads from ~0.5 MFLOP. Re-tune with benchmarks/layers.py. */
#define UBD_GEMM_PAR_FLOPS (4.0 * 1024 * 1024)
#define UBD_GEMM_BLOCK_FLOPS (2.0 * 1024 * 1024)
#define UBD_GEMM_MIN_COLS 64
#define UBD_GEMM_ALIGN 16
#define UBD_GEMM_MAX_BLOCKS 64

enum { GEMM_SPLIT = 0, GEMM_BLAS_OMP = 1, GEMM_BLAS_OWN = 2 };

static int gemm_mode(void) {
    static int mode = -1;
    if (mode < 0) {
        const char *e = getenv("UBDIFF_GEMM");
        mode = !e ? GEMM_SPLIT : !strcmp(e, "blas-omp") ? GEMM_BLAS_OMP : !strcmp(e, "blas-own") ? GEMM_BLAS_OWN
                                                                                                  : GEMM_SPLIT;
    }
    return mode;
}

int ubd_gemm_uses_blas_threads(void) { return gemm_mode() != GEMM_SPLIT; }

void ubd_gemm_set_threads(int n) { UBD_BLAS_SET_THREADS(gemm_mode() == GEMM_SPLIT ? 1 : n); }

__attribute__((constructor)) static void ubd_gemm_init(void) { ubd_gemm_set_threads(omp_get_max_threads()); }

/* Number of blocks a dimension of `len` is cut into for a product of `flops`. */
static int blocks_for(int len, double flops) {
    long nb = (long)(flops / UBD_GEMM_BLOCK_FLOPS);
    long by_len = len / UBD_GEMM_MIN_COLS;
    if (nb > by_len) nb = by_len;
    if (nb > UBD_GEMM_MAX_BLOCKS) nb = UBD_GEMM_MAX_BLOCKS;
    return nb < 1 ? 1 : (int)nb;
}

/* Edge of block i of nb blocks over len, aligned down to UBD_GEMM_ALIGN. */
static int block_edge(int i, int nb, int len) {
    if (i >= nb) return len;
    long e = (long)len * i / nb;
    return (int)(e / UBD_GEMM_ALIGN * UBD_GEMM_ALIGN);
}

static inline void sgemm1(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                          int ldb, float beta, float *C, int ldc) {
    UBD_SGEMM(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}

void ubd_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    const double flops = 2.0 * M * N * K;
    if (gemm_mode() != GEMM_SPLIT || flops < UBD_GEMM_PAR_FLOPS) {
        sgemm1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Cut the longer of C's two sides: columns take B's columns, rows take A's rows. */
    const int by_cols = N >= M;
    const int len = by_cols ? N : M;
    const int nb = blocks_for(len, flops);
    if (nb == 1) {
        sgemm1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) if (!omp_in_parallel() && omp_get_max_threads() > 1)
    for (int i = 0; i < nb; i++) {
        const int lo = block_edge(i, nb, len), hi = block_edge(i + 1, nb, len);
        if (hi <= lo) continue;
        if (by_cols) { /* C[:, lo:hi] = op(A) @ op(B)[:, lo:hi] */
            const float *Bi = transB ? B + (size_t)lo * ldb : B + lo;
            sgemm1(transA, transB, M, hi - lo, K, alpha, A, lda, Bi, ldb, beta, C + lo, ldc);
        } else { /* C[lo:hi, :] = op(A)[lo:hi, :] @ op(B) */
            const float *Ai = transA ? A + lo : A + (size_t)lo * lda;
            sgemm1(transA, transB, hi - lo, N, K, alpha, Ai, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
        }
    }
}
