/* roundtrip.h — run a CUDA op on NumPy (host) arrays: copy inputs to the
 * device, run, copy outputs back, free. Used by the host-roundtrip bindings
 * that let tests compare every CUDA op with its CPU twin. CUDA builds only. */
#ifndef UBD_ROUNDTRIP_H
#define UBD_ROUNDTRIP_H

#include "pyutil.h"

#ifdef UBDIFF_WITH_CUDA
#define UBD_RT_MAX 12

typedef struct {
    int n;
    void *host[UBD_RT_MAX];
    size_t bytes[UBD_RT_MAX];
    float *dev[UBD_RT_MAX]; /* NULL for an optional argument given as None; cast for int buffers */
    int back[UBD_RT_MAX];   /* copied back to the host afterwards */
} ubd_rt;

/* Device copy of host array `a` as the next slot; `back` marks an output. */
ubd_status ubd_rt_push(ubd_rt *rt, ubd_f32 *a, int back);
/* Device copy of `bytes` bytes of host memory (host NULL: a NULL slot), e.g.
 * int32 labels or a scalar output. The host memory must outlive the call. */
ubd_status ubd_rt_push_raw(ubd_rt *rt, void *host, size_t bytes, int back);
/* Synchronises (if s == OK), copies outputs back, frees all; returns the
 * first failure (s itself if it failed). */
ubd_status ubd_rt_finish(ubd_rt *rt, ubd_status s);
/* ubd_rt_finish, then None or the error raised. */
PyObject *ubd_rt_done(ubd_rt *rt, ubd_status s);

/* Push, or return from the binding with the failure raised. */
#define UBD_RT_PUSH(rt, a, back)                            \
    do {                                                    \
        ubd_status rt_s_ = ubd_rt_push(&(rt), &(a), (back)); \
        if (rt_s_ != UBD_OK) return ubd_rt_done(&(rt), rt_s_); \
    } while (0)
#define UBD_RT_PUSH_RAW(rt, host, bytes, back)                            \
    do {                                                                  \
        ubd_status rt_s_ = ubd_rt_push_raw(&(rt), (host), (bytes), (back)); \
        if (rt_s_ != UBD_OK) return ubd_rt_done(&(rt), rt_s_);            \
    } while (0)
#endif

#endif
