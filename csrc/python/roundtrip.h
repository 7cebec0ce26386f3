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
    ubd_f32 *host[UBD_RT_MAX];
    float *dev[UBD_RT_MAX]; /* NULL for an optional argument given as None */
    int back[UBD_RT_MAX];   /* copied back to the host afterwards */
} ubd_rt;

/* Device copy of host array `a` as the next slot; `back` marks an output. */
ubd_status ubd_rt_push(ubd_rt *rt, ubd_f32 *a, int back);
/* Synchronises (if s == OK), copies outputs back, frees all; returns None or
 * raises the error of `s` or of the copies. */
PyObject *ubd_rt_done(ubd_rt *rt, ubd_status s);

/* Push, or return from the binding with the failure raised. */
#define UBD_RT_PUSH(rt, a, back)                            \
    do {                                                    \
        ubd_status rt_s_ = ubd_rt_push(&(rt), &(a), (back)); \
        if (rt_s_ != UBD_OK) return ubd_rt_done(&(rt), rt_s_); \
    } while (0)
#endif

#endif
