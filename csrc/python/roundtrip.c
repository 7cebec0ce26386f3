/* roundtrip.c — see roundtrip.h. */
#include "roundtrip.h" /* first: Python.h must precede system headers */

#ifdef UBDIFF_WITH_CUDA
#include "../cuda_api.h"

ubd_status ubd_rt_push_raw(ubd_rt *rt, void *host, size_t bytes, int back) {
    UBD_REQUIRE(rt->n < UBD_RT_MAX, UBD_ERR_RUNTIME, "roundtrip: more than %d arrays", UBD_RT_MAX);
    int k = rt->n++;
    rt->host[k] = host;
    rt->bytes[k] = bytes;
    rt->back[k] = back;
    rt->dev[k] = NULL;
    if (!host) return UBD_OK;
    UBD_TRY(ubd_cuda_malloc((void **)&rt->dev[k], bytes));
    return ubd_cuda_memcpy(rt->dev[k], host, bytes, 1);
}

ubd_status ubd_rt_push(ubd_rt *rt, ubd_f32 *a, int back) {
    return ubd_rt_push_raw(rt, a->data, (size_t)a->size * sizeof(float), back);
}

ubd_status ubd_rt_finish(ubd_rt *rt, ubd_status s) {
    if (s == UBD_OK) s = ubd_cuda_synchronize();
    for (int k = 0; k < rt->n; k++) {
        if (s == UBD_OK && rt->back[k] && rt->dev[k]) s = ubd_cuda_memcpy(rt->host[k], rt->dev[k], rt->bytes[k], 0);
        if (rt->dev[k]) ubd_cuda_free(rt->dev[k]);
    }
    rt->n = 0;
    return s;
}

PyObject *ubd_rt_done(ubd_rt *rt, ubd_status s) {
    s = ubd_rt_finish(rt, s);
    if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}
#endif
