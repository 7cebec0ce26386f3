/* tensor_io.c — see tensor_io.h. */
#include "tensor_io.h" /* first: Python.h must precede system headers */
#include <stdio.h>
#include <string.h>

static const ubd_backend *backend_of(const ubd_params *p) { return p->be ? p->be : ubd_backend_cpu(); }

int ubd_py_tensor_find(ubd_py_tensor *t, ubd_params *p, ubd_buf_kind kind, PyObject *name, const char *model,
                       const char *what) {
    memset(t, 0, sizeof *t);
    t->p = p;
    t->kind = kind;
    if (!p->buf[kind]) {
        PyErr_Format(PyExc_RuntimeError, "%s: its %s buffer is not allocated", model, ubd_buf_kind_name(kind));
        return -1;
    }
    if (name == NULL || name == Py_None) {
        t->size = p->n;
        t->ndim = 1;
        t->dims[0] = (npy_intp)p->n;
        t->name = "(whole buffer)";
        return 0;
    }
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "%s: a tensor name must be a str or None, got %s", model, Py_TYPE(name)->tp_name);
        return -1;
    }
    const char *s = ubd_py_cstr(name, "tensor name");
    if (!s) return -1;
    int i = ubd_params_find(p, s);
    if (i < 0) {
        PyErr_Format(PyExc_KeyError, "%s has no %s tensor named '%s'", model, what, s);
        return -1;
    }
    const ubd_view *v = &p->views[i];
    t->offset = v->offset;
    t->size = v->size;
    t->ndim = v->ndim;
    for (int d = 0; d < v->ndim; d++) t->dims[d] = (npy_intp)v->shape[d];
    t->name = v->name;
    return 0;
}

int ubd_py_tensor_forgets(ubd_py_tensor *t, int found, void (*forget)(void *), void *model) {
    if (found == 0 && (t->kind == UBD_BUF_PARAM || t->kind == UBD_BUF_EMA)) {
        t->forget = forget;
        t->model = model;
    }
    return found;
}

void ubd_py_tensor_written(const ubd_py_tensor *t) {
    if (t->forget) t->forget(t->model);
}

PyObject *ubd_py_tensor_view(PyObject *owner, const ubd_py_tensor *t, const char *model) {
    const ubd_backend *be = backend_of(t->p);
    if (!be->host_memory)
        return PyErr_Format(PyExc_RuntimeError,
                            "%s lives on %s: its tensors are device memory, so there are no zero-copy views; "
                            "copy them with get/set instead", model, be->name);
    return ubd_py_view(owner, t->p->buf[t->kind] + t->offset, t->ndim, t->dims);
}

PyObject *ubd_py_tensor_get(const ubd_py_tensor *t) {
    PyObject *arr = PyArray_SimpleNew(t->ndim, (npy_intp *)t->dims, NPY_FLOAT32);
    if (!arr) return NULL;
    float *host = PyArray_DATA((PyArrayObject *)arr);
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_params_read(t->p, t->kind, t->offset, t->size, host);
    Py_END_ALLOW_THREADS if (s != UBD_OK) {
        Py_DECREF(arr);
        return ubd_py_raise(s);
    }
    return arr;
}

static void shape_str(char *buf, size_t len, int nd, const npy_intp *dims) {
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int d = 0; d < nd && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, d ? ", %zd" : "%zd", (Py_ssize_t)dims[d]);
    if (k < len) snprintf(buf + k, len - k, nd == 1 ? ",)" : ")");
}

int ubd_py_tensor_set(const ubd_py_tensor *t, PyObject *value, const char *fn) {
    ubd_f32 a;
    if (ubd_py_f32(value, "value", 0, &a) < 0) return -1;
    const ubd_f32 *va = &a; /* a view of the model's own buffers would be copied onto itself */
    if (ubd_py_outside_model(fn, t->p, NULL, 1, &va) < 0) return -1;
    int same = a.ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = a.shape[d] == t->dims[d];
    if (!same) {
        char want[128], got[128];
        shape_str(want, sizeof want, t->ndim, t->dims);
        shape_str(got, sizeof got, a.ndim, a.shape);
        PyErr_Format(PyExc_ValueError, "%s: '%s' has shape %s, the value given has shape %s", fn, t->name, want, got);
        return -1;
    }
    ubd_py_tensor_written(t); /* before: a failed copy may leave the tensor half-written */
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_params_write(t->p, t->kind, t->offset, t->size, a.data);
    Py_END_ALLOW_THREADS if (s != UBD_OK) {
        ubd_py_raise(s);
        return -1;
    }
    return 0;
}

int ubd_py_tensor_zero(const ubd_py_tensor *t) {
    const ubd_backend *be = backend_of(t->p);
    ubd_py_tensor_written(t);
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = be->zero(t->p->buf[t->kind] + t->offset, t->size);
    Py_END_ALLOW_THREADS if (s != UBD_OK) {
        ubd_py_raise(s);
        return -1;
    }
    return 0;
}
