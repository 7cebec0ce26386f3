/* blas_omp.c — run OpenBLAS's parallel jobs on the OpenMP thread team
 * (UBDIFF_GEMM=blas-omp only; the default is gemm.c's own split).
 *
 * Why: the wheel's OpenBLAS is a pthreads build with its own busy-waiting
 * worker pool. A layer alternates OpenMP loops (im2col, col2im, packing,
 * norms) with sgemm calls, so two pools of spinning threads compete for the
 * same cores; on a loaded 2-core machine one conv2d call went from 21 ms
 * (1 thread) to 1.5-3 s (2 threads), and to 15-50 ms with this callback. OpenBLAS >= 0.3.27 lets a program
 * replace its thread server by a callback; running its jobs here, on
 * OpenMP's team, leaves a single pool. Registered once at load time.
 *
 * OpenBLAS's level-3 jobs wait on each other, so all `numjobs` jobs must run
 * at the same time on distinct threads: one job per thread of a team of
 * exactly numjobs (numjobs <= the BLAS thread count = the OpenMP thread count,
 * both set by ubd_set_num_threads). Where such a team cannot be had (sgemm
 * called inside a parallel region, dynamic teams) the jobs run on plain
 * threads instead. MAX_THREADS of the wheel's OpenBLAS is 64. */
#include <omp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../blas.h"

#ifdef BLAS_SYMBOL_PREFIX
#define UBD_BLAS_SET_CALLBACK scipy_openblas_set_threads_callback_function
#else
#define UBD_BLAS_SET_CALLBACK openblas_set_threads_callback_function
#endif

typedef struct {
    openblas_dojob_callback dojob;
    int i, data;
    void *job;
} job_arg;

static void *job_thread(void *p) {
    job_arg *a = (job_arg *)p;
    a->dojob(a->i, a->job, a->data);
    return NULL;
}

/* Fallback when a full team is not available (called inside a parallel region,
 * or OpenMP may shrink teams): plain threads, one per job but the first. */
static void run_on_pthreads(openblas_dojob_callback dojob, int numjobs, size_t elsize, char *jobdata, int data) {
    pthread_t th[64];
    job_arg args[64];
    int started[64] = {0};
    for (int i = 1; i < numjobs && i < 64; i++) {
        args[i] = (job_arg){dojob, i, data, jobdata + (size_t)i * elsize};
        started[i] = pthread_create(&th[i], NULL, job_thread, &args[i]) == 0;
        if (!started[i]) dojob(i, jobdata + (size_t)i * elsize, data); /* last resort */
    }
    dojob(0, jobdata, data);
    for (int i = 1; i < numjobs && i < 64; i++)
        if (started[i]) pthread_join(th[i], NULL);
}

static void run_jobs(int sync, openblas_dojob_callback dojob, int numjobs, size_t elsize, void *jobdata,
                     int dojob_data) {
    (void)sync; /* asynchronous requests are simply completed before returning */
    char *jobs = (char *)jobdata;
    if (numjobs <= 1) {
        if (numjobs == 1) dojob(0, jobs, dojob_data);
        return;
    }
    if (numjobs > 64 || omp_in_parallel() || omp_get_dynamic() || omp_get_thread_limit() < numjobs) {
        run_on_pthreads(dojob, numjobs, elsize, jobs, dojob_data);
        return;
    }
#pragma omp parallel num_threads(numjobs)
    {
        const int t = omp_get_thread_num();
        dojob(t, jobs + (size_t)t * elsize, dojob_data);
    }
}

/* Only with UBDIFF_GEMM=blas-omp (a comparison mode, see gemm.c): by default
 * OpenBLAS runs on one thread and this callback is never asked for a team. */
__attribute__((constructor)) static void ubd_blas_use_openmp(void) {
    const char *mode = getenv("UBDIFF_GEMM");
    if (mode && !strcmp(mode, "blas-omp")) UBD_BLAS_SET_CALLBACK(run_jobs);
}
