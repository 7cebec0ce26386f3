/* pyutil.c — see pyutil.h. */
#include "pyutil.h"

#include <stdarg.h>
#include <stdio.h>

static void shape_str(char *buf, size_t len, int ndim, const npy_intp *shape) {
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int d = 0; d < ndim && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, d ? ", %ld" : "%ld", (long)shape[d]);
    if (k < len) snprintf(buf + k, len - k, ndim == 1 ? ",)" : ")");
}

int ubd_py_f32(PyObject *obj, const char *name, int writable, ubd_f32 *out) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy.ndarray of float32, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError, "%s: expected dtype float32, got %s (convert with np.asarray(x, np.float32))",
                     name, PyArray_DESCR(a)->typeobj->tp_name);
        return -1;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError, "%s: array must be C-contiguous and aligned (use np.ascontiguousarray)", name);
        return -1;
    }
    if (writable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: output array is read-only", name);
        return -1;
    }
    out->data = (float *)PyArray_DATA(a);
    out->ndim = PyArray_NDIM(a);
    for (int d = 0; d < out->ndim; d++) out->shape[d] = PyArray_DIM(a, d);
    out->size = PyArray_SIZE(a);
    return 0;
}

int ubd_py_f32_opt(PyObject *obj, const char *name, int writable, ubd_f32 *out) {
    if (obj == Py_None) {
        out->data = NULL;
        out->ndim = 0;
        out->size = 0;
        return 0;
    }
    return ubd_py_f32(obj, name, writable, out);
}

int ubd_py_expect(const ubd_f32 *a, const char *fn, const char *name, int ndim, ...) {
    npy_intp want[NPY_MAXDIMS];
    va_list ap;
    va_start(ap, ndim);
    for (int d = 0; d < ndim && d < NPY_MAXDIMS; d++) want[d] = (npy_intp)va_arg(ap, long long);
    va_end(ap);
    int ok = a->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = want[d] < 0 || want[d] == a->shape[d];
    for (int d = 0; ok && d < ndim; d++) ok = a->shape[d] > 0;
    if (ok) return 0;
    char got[160], exp[160];
    shape_str(got, sizeof got, a->ndim, a->shape);
    shape_str(exp, sizeof exp, ndim, want);
    for (char *c = exp; *c; c++) /* show wildcards as '*' */
        if (c[0] == '-' && c[1] == '1') { c[0] = ' '; c[1] = '*'; }
    PyErr_Format(PyExc_ValueError, "%s: %s has shape %s, expected %s (non-empty; * = any)", fn, name, got, exp);
    return -1;
}

PyObject *ubd_py_raise(ubd_status s) {
    PyObject *type;
    switch (s) {
    case UBD_ERR_VALUE: type = PyExc_ValueError; break;
    case UBD_ERR_TYPE: type = PyExc_TypeError; break;
    case UBD_ERR_MEMORY: type = PyExc_MemoryError; break;
    case UBD_ERR_IO: type = PyExc_OSError; break;
    default: type = PyExc_RuntimeError; break;
    }
    const char *msg = ubd_last_error();
    PyErr_SetString(type, msg && msg[0] ? msg : "ubdiff core error (no message)");
    return NULL;
}

PyObject *ubd_py_view(PyObject *owner, float *data, int nd, const npy_intp *dims) {
    PyObject *arr = PyArray_SimpleNewFromData(nd, (npy_intp *)dims, NPY_FLOAT32, data);
    if (!arr) return NULL;
    Py_INCREF(owner);
    if (PyArray_SetBaseObject((PyArrayObject *)arr, owner) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}
