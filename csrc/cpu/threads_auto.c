/* threads_auto.c — the adaptive default thread count.
 *
 * On a busy machine a thread that is descheduled holds up its team at the
 * next barrier, so more threads than free cores is slower than one thread.
 * In adaptive mode (the Python package's default unless OMP_NUM_THREADS is
 * set; ended by set_num_threads), each long call from Python first runs
 * ubd_threads_adapt(): it reads the number of runnable tasks of the machine
 * (/proc/loadavg, field 4; instantaneous, unlike the load averages), counts
 * the ones that are not this process's team as competitors, and uses
 * min(max, cores - competitors) threads, at least one. Our own workers are
 * counted as ours even when asleep (so an idle machine keeps every thread),
 * and the smaller of the last two readings is used (a passing task does not
 * halve one call). It does not adapt when the process may use only part of
 * the machine (affinity mask or cpuset smaller than the online CPUs): the
 * machine-wide count then says nothing about our cores.
 *
 * Results do not depend on the thread count (gemm.c cuts products by shape;
 * every other loop computes each output on one thread in a fixed order), so
 * adapting changes speed, not bits (tests/test_threads.py).
 *
 * Why the default: even with gemm.c and passive waiting, a fixed count of all
 * cores was up to 2.5x slower than one thread when one or two other jobs ran
 * (the static OpenMP loops wait for the thread that shares its core), while
 * this mode stayed at the 1-thread time (benchmarks/RESULTS.md, "Threads
 * under load"). Under heavier load a fixed count was sometimes faster. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "ubd.h"

static int auto_max_ = 0;   /* 0: fixed thread count */
static int auto_cur_ = 0;   /* threads in use in adaptive mode */
static int prev_others_ = -1;
static double last_check_ = -1.0;

#define UBD_ADAPT_INTERVAL_S 0.02 /* at most one /proc read per 20 ms */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runnable tasks on the machine now, or -1. */
static int running_tasks(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1;
    double a, b, c;
    int running = -1, total;
    if (fscanf(f, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) != 5) running = -1;
    fclose(f);
    return running;
}

static int whole_machine(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set) == (int)sysconf(_SC_NPROCESSORS_ONLN);
}

static void use_threads(int n) {
    if (ubd_set_num_threads(n) == UBD_OK) auto_cur_ = n;
}

ubd_status ubd_set_num_threads_adaptive(int max) {
    UBD_REQUIRE(max >= 1, UBD_ERR_VALUE, "set_num_threads_adaptive: max must be >= 1, got %d", max);
    UBD_TRY(ubd_set_num_threads(max));
    auto_max_ = whole_machine() ? max : 0; /* fixed at max where the count would mislead */
    prev_others_ = -1;
    last_check_ = -1.0;
    auto_cur_ = max;
    return UBD_OK;
}

int ubd_threads_adaptive(void) { return auto_max_ > 0; }

void ubd_threads_fixed(void) { auto_max_ = 0; }

void ubd_threads_adapt(void) {
    if (auto_max_ <= 1) return;
    const double t = now_s();
    if (last_check_ >= 0.0 && t - last_check_ < UBD_ADAPT_INTERVAL_S) return;
    last_check_ = t;
    const int running = running_tasks();
    if (running < 0) return;
    int others = running - auto_cur_; /* the calling thread and our (possibly sleeping) workers */
    if (others < 0) others = 0;
    const int seen = prev_others_ >= 0 && prev_others_ < others ? prev_others_ : others;
    prev_others_ = others;
    int n = (int)sysconf(_SC_NPROCESSORS_ONLN) - seen;
    if (n > auto_max_) n = auto_max_;
    if (n < 1) n = 1;
    if (n != auto_cur_) use_threads(n);
}
