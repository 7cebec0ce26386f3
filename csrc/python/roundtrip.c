/* roundtrip.c — see roundtrip.h. */
#include "roundtrip.h" /* first: Python.h must precede system headers */

#ifdef UBDIFF_WITH_CUDA
#include "../cuda_api.h"

ubd_status ubd_rt_push(ubd_rt *rt, ubd_f32 *a, int back) {
    UBD_REQUIRE(rt->n < UBD_RT_MAX, UBD_ERR_RUNTIME, "roundtrip: more than %d arrays", UBD_RT_MAX);
    int k = rt->n++;
    rt->host[k] = a;
    rt->back[k] = back;
    rt->dev[k] = NULL;
    if (!a->data) return UBD_OK;
    UBD_TRY(ubd_cuda_malloc((void **)&rt->dev[k], (size_t)a->size * sizeof(float)));
    return ubd_cuda_memcpy(rt->dev[k], a->data, (size_t)a->size * sizeof(float), 1);
}

PyObject *ubd_rt_done(ubd_rt *rt, ubd_status s) {
    if (s == UBD_OK) s = ubd_cuda_synchronize();
    for (int k = 0; k < rt->n; k++) {
        if (s == UBD_OK && rt->back[k] && rt->dev[k])
            s = ubd_cuda_memcpy(rt->host[k]->data, rt->dev[k], (size_t)rt->host[k]->size * sizeof(float), 0);
        if (rt->dev[k]) ubd_cuda_free(rt->dev[k]);
    }
    if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}
#endif
