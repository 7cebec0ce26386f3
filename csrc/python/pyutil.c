/* pyutil.c — see pyutil.h. */
#include "pyutil.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../params.h"

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
    /* '>f4' has type number NPY_FLOAT32 too; its bytes would be read as garbage */
    if (!PyArray_ISNOTSWAPPED(a)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected float32 in native byte order, got a byte-swapped array (dtype '%c%c4'); "
                     "convert with x.astype(np.float32)",
                     name, PyArray_DESCR(a)->byteorder, PyArray_DESCR(a)->kind);
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
    /* The kernels take their sizes as C ints, and loop over products of the
     * dimensions of one array in ints (B * L rows, ...): refuse instead of
     * truncating or overflowing. */
    for (int d = 0; d < PyArray_NDIM(a); d++)
        if (PyArray_DIM(a, d) > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: dimension %d has size %zd, more than the C core's limit %d", name, d,
                         (Py_ssize_t)PyArray_DIM(a, d), INT_MAX);
            return -1;
        }
    if (PyArray_SIZE(a) > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: %zd elements, more than the C core's limit %d per array", name,
                     (Py_ssize_t)PyArray_SIZE(a), INT_MAX);
        return -1;
    }
    out->data = (float *)PyArray_DATA(a);
    out->ndim = PyArray_NDIM(a);
    for (int d = 0; d < out->ndim; d++) out->shape[d] = PyArray_DIM(a, d);
    out->size = PyArray_SIZE(a);
    out->name = name;
    out->writable = writable;
    return 0;
}

int ubd_py_f32_opt(PyObject *obj, const char *name, int writable, ubd_f32 *out) {
    if (obj == Py_None) {
        out->data = NULL;
        out->ndim = 0;
        out->size = 0;
        out->name = name;
        out->writable = writable;
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

/* ---- aliasing ------------------------------------------------------------ */

/* [lo, hi) byte range of a borrowed (C-contiguous) array. */
static void byte_range(const ubd_f32 *a, uintptr_t *lo, uintptr_t *hi) {
    *lo = (uintptr_t)a->data;
    *hi = *lo + (uintptr_t)a->size * sizeof(float);
}

int ubd_py_no_overlap(const char *fn, int inplace_ok, int n, const ubd_f32 *const *arrs) {
    for (int i = 0; i < n; i++) {
        const ubd_f32 *o = arrs[i];
        if (!o || !o->data || !o->writable || o->size == 0) continue;
        uintptr_t olo, ohi;
        byte_range(o, &olo, &ohi);
        for (int j = 0; j < n; j++) {
            const ubd_f32 *a = arrs[j];
            if (j == i || !a || !a->data || a->size == 0) continue;
            if (a->writable && j < i) continue; /* pair already checked */
            uintptr_t alo, ahi;
            byte_range(a, &alo, &ahi);
            if (olo >= ahi || alo >= ohi) continue;
            /* in place: an output may be exactly an input (never another output: two writers) */
            if (inplace_ok && !a->writable && olo == alo && ohi == ahi) continue;
            PyErr_Format(PyExc_ValueError,
                         "%s: %s shares memory with %s; %s (pass separate arrays)", fn, o->name, a->name,
                         inplace_ok ? "the op works in place only on exactly the same array, not on overlapping views"
                                    : "the op cannot work in place");
            return -1;
        }
    }
    return 0;
}

static int outside_table(const char *fn, const ubd_f32 *a, const ubd_params *p, const char *what) {
    uintptr_t alo, ahi;
    byte_range(a, &alo, &ahi);
    for (int k = 0; k < UBD_NUM_BUFS; k++) {
        if (!p->buf[k] || p->n == 0) continue;
        uintptr_t lo = (uintptr_t)p->buf[k], hi = lo + (uintptr_t)p->n * sizeof(float);
        if (alo < hi && lo < ahi) {
            PyErr_Format(PyExc_ValueError, "%s: %s shares memory with the model's own %s buffer '%s' (pass a copy)",
                         fn, a->name, what, ubd_buf_kind_name((ubd_buf_kind)k));
            return -1;
        }
    }
    return 0;
}

int ubd_py_outside_model(const char *fn, const ubd_params *params, const ubd_params *stats, int n,
                         const ubd_f32 *const *arrs) {
    for (int i = 0; i < n; i++) {
        const ubd_f32 *a = arrs[i];
        if (!a || !a->data || a->size == 0) continue;
        if (params && outside_table(fn, a, params, "parameter") < 0) return -1;
        if (stats && outside_table(fn, a, stats, "statistics") < 0) return -1;
    }
    return 0;
}

/* ---- sequences and integers ---------------------------------------------- */

PyObject *ubd_py_tuple(PyObject *obj, const char *fn, const char *name) {
    if (!PySequence_Check(obj) || PyUnicode_Check(obj) || PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be a sequence of ints, got %s", fn, name, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return PySequence_Tuple(obj);
}

/* `obj` as a Python int (new reference): ints and objects with __index__
 * (NumPy integers), but not bool (True is not a size or a seed). */
static PyObject *as_index(PyObject *obj, const char *fn, const char *name, Py_ssize_t i) {
    if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        if (i >= 0)
            PyErr_Format(PyExc_TypeError, "%s: %s[%zd] must be an int, got %s", fn, name, i, Py_TYPE(obj)->tp_name);
        else
            PyErr_Format(PyExc_TypeError, "%s: %s must be an int, got %s", fn, name, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return PyNumber_Index(obj);
}

int ubd_py_int_item(PyObject *t, Py_ssize_t i, const char *fn, const char *name, long long lo, long long hi,
                    long long *out) {
    PyObject *v = as_index(PyTuple_GET_ITEM(t, i), fn, name, i);
    if (!v) return -1;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow || x < lo || x > hi) {
        PyErr_Format(PyExc_ValueError, "%s: %s[%zd] must lie in %lld .. %lld", fn, name, i, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* `obj` as an integer in 0 .. max. */
static int unsigned_arg(PyObject *obj, const char *fn, const char *name, unsigned long long max, const char *range,
                        unsigned long long *out) {
    PyObject *v = as_index(obj, fn, name, -1);
    if (!v) return -1;
    unsigned long long x = PyLong_AsUnsignedLongLong(v); /* OverflowError if < 0 or >= 2**64 */
    int bad = x == (unsigned long long)-1 && PyErr_Occurred();
    if (bad) PyErr_Clear();
    if (bad || x > max) {
        PyErr_Format(PyExc_ValueError, "%s: %s must lie in %s, got %R", fn, name, range, v);
        Py_DECREF(v);
        return -1;
    }
    Py_DECREF(v);
    *out = x;
    return 0;
}

int ubd_py_u64(PyObject *obj, const char *fn, const char *name, unsigned long long *out) {
    return unsigned_arg(obj, fn, name, ULLONG_MAX, "0 .. 2**64 - 1", out);
}

int ubd_py_u32(PyObject *obj, const char *fn, const char *name, unsigned int *out) {
    unsigned long long x;
    if (unsigned_arg(obj, fn, name, 0xffffffffULL, "0 .. 2**32 - 1", &x) < 0) return -1;
    *out = (unsigned int)x;
    return 0;
}

const char *ubd_py_cstr(PyObject *obj, const char *what) {
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, got %s", what, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    Py_ssize_t n = 0;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
    if (!s) return NULL;
    if ((Py_ssize_t)strlen(s) != n) {
        PyErr_Format(PyExc_ValueError, "%s %R contains a NUL character", what, obj);
        return NULL;
    }
    return s;
}

int ubd_py_adamw_args(PyObject *args, PyObject **cap, ubd_adam_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->decoupled = 1;
    return PyArg_ParseTuple(args, "O(fffff)", cap, &hp->lr, &hp->beta1, &hp->beta2, &hp->eps, &hp->weight_decay) ? 0
                                                                                                              : -1;
}
