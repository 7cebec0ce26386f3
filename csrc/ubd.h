/* ubd.h — the C core's common ground: status codes, error messages, checks.
 *
 * Conventions (shared/DESIGN.md):
 *  - No Python.h here or anywhere in csrc/ except csrc/python/.
 *  - Every function that can fail returns ubd_status; on failure it leaves a
 *    message retrievable with ubd_last_error() (thread-local).
 *  - Layer functions: outputs first, then inputs, then weights, then sizes.
 *    Caller owns all memory. Gradients (of inputs and of parameters) are
 *    ACCUMULATED with +=; a NULL gradient pointer means "not needed".
 *  - CPU functions are named ubd_cpu_<op>_<dir>, their CUDA twins
 *    ubd_cuda_<op>_<dir> with the same argument list (device pointers);
 *    backend.h lists them all once (UBD_BACKEND_OPS) and models call them
 *    through a backend table, m->be-><op>_<dir>(...).
 */
#ifndef UBD_H
#define UBD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    UBD_OK = 0,
    UBD_ERR_VALUE = 1,   /* bad argument value or shape      -> ValueError   */
    UBD_ERR_TYPE = 2,    /* wrong kind of argument           -> TypeError    */
    UBD_ERR_MEMORY = 3,  /* allocation failed                -> MemoryError  */
    UBD_ERR_RUNTIME = 4, /* anything else at run time        -> RuntimeError */
    UBD_ERR_CUDA = 5,    /* CUDA / cuBLAS / cuRAND failure   -> RuntimeError */
    UBD_ERR_IO = 6       /* file problems                    -> OSError      */
} ubd_status;

/* Message of the last failure on this thread ("" if none). */
const char *ubd_last_error(void);
/* Records a printf-style message and returns `code` (so: return ubd_fail(...)). */
ubd_status ubd_fail(ubd_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void ubd_clear_error(void);

/* Return with an error unless `cond` holds. */
#define UBD_REQUIRE(cond, code, ...)                \
    do {                                            \
        if (!(cond)) return ubd_fail((code), __VA_ARGS__); \
    } while (0)
/* Propagate a failing status. */
#define UBD_TRY(expr)                               \
    do {                                            \
        ubd_status ubd_try_s_ = (expr);             \
        if (ubd_try_s_ != UBD_OK) return ubd_try_s_; \
    } while (0)
/* Sizes must be positive: the standard check at the top of a layer function. */
#define UBD_REQUIRE_POSITIVE(x) \
    UBD_REQUIRE((x) > 0, UBD_ERR_VALUE, "%s: %s must be positive, got %lld", __func__, #x, (long long)(x))
#define UBD_REQUIRE_PTR(p) \
    UBD_REQUIRE((p) != NULL, UBD_ERR_VALUE, "%s: %s must not be NULL", __func__, #p)

/* ---- threads (cpu/threads.c) ---------------------------------------- */
/* Sets the OpenMP and the BLAS thread count, 1 <= n <= ubd_max_num_threads(). */
ubd_status ubd_set_num_threads(int n);
/* The cap on the thread count: min(1024, 64 x the processors OpenMP sees).
 * Far more threads than cores only slows the layers down, and libgomp ends
 * the process (exit or crash) when it cannot start a team, so a thread count
 * in the tens of thousands must never reach it. */
int ubd_max_num_threads(void);
int ubd_get_num_threads(void);
/* Adaptive mode (cpu/threads_auto.c): up to max threads, fewer while other
 * tasks compete for the cores; ubd_threads_adapt() re-decides (cheap, rate
 * limited; the binding calls it before each long call). ubd_threads_fixed()
 * leaves adaptive mode (an explicit thread count). */
ubd_status ubd_set_num_threads_adaptive(int max);
int ubd_threads_adaptive(void);
void ubd_threads_fixed(void);
void ubd_threads_adapt(void);
/* Name/config string of the BLAS linked in. */
const char *ubd_blas_info(void);

#ifdef __cplusplus
}
#endif
#endif /* UBD_H */
