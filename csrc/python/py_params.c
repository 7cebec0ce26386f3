/* py_params.c — ParamBuffer: a ubd_params (flat buffers + named views) as a
 * Python object whose tensors are zero-copy NumPy views kept alive by it. */
#include "pyutil.h"  /* first: Python.h must precede system headers */
#include <limits.h>
#include <string.h>

#include "../params.h"

typedef struct {
    PyObject_HEAD ubd_params p;
} ParamBufferObject;

static void pb_dealloc(ParamBufferObject *self) {
    ubd_params_free(&self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *pb_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    ParamBufferObject *self = (ParamBufferObject *)type->tp_alloc(type, 0);
    if (self) ubd_params_init(&self->p);
    return (PyObject *)self;
}

static int kind_from_str(const char *s) {
    for (int k = 0; k < UBD_NUM_BUFS; k++)
        if (strcmp(s, ubd_buf_kind_name((ubd_buf_kind)k)) == 0) return k;
    PyErr_Format(PyExc_ValueError, "buffer kind must be one of param, grad, m, v, ema; got '%s'", s);
    return -1;
}

static PyObject *pb_add(ParamBufferObject *self, PyObject *args) {
    const char *name;
    PyObject *shape_obj;
    if (!PyArg_ParseTuple(args, "sO", &name, &shape_obj)) return NULL;
    PyObject *seq = ubd_py_tuple(shape_obj, "ParamBuffer.add", "shape");
    if (!seq) return NULL;
    Py_ssize_t nd = PyTuple_GET_SIZE(seq);
    int64_t shape[UBD_MAX_DIMS] = {0};
    if (nd < 1 || nd > UBD_MAX_DIMS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "ParamBuffer.add: '%s' needs 1..%d dims, got %zd", name, UBD_MAX_DIMS, nd);
        return NULL;
    }
    for (Py_ssize_t d = 0; d < nd; d++) {
        long long v;
        if (ubd_py_int_item(seq, d, "ParamBuffer.add", "shape", LLONG_MIN, LLONG_MAX, &v) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        shape[d] = v;
    }
    Py_DECREF(seq);
    size_t off;
    ubd_status s = ubd_params_add(&self->p, name, (int)nd, shape, &off);
    if (s) return ubd_py_raise(s);
    return PyLong_FromSize_t(off);
}

static PyObject *pb_alloc(ParamBufferObject *self, PyObject *args) {
    const char *kind;
    if (!PyArg_ParseTuple(args, "s", &kind)) return NULL;
    int k = kind_from_str(kind);
    if (k < 0) return NULL;
    ubd_status s = ubd_params_alloc(&self->p, (ubd_buf_kind)k);
    if (s) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

/* A NumPy view of `size` floats at `offset` of buffer `k`, shaped `dims`. */
static PyObject *make_view(ParamBufferObject *self, int k, size_t offset, int nd, npy_intp *dims) {
    if (!self->p.buf[k]) {
        PyErr_Format(PyExc_RuntimeError, "ParamBuffer: buffer '%s' is not allocated (call alloc first)",
                     ubd_buf_kind_name((ubd_buf_kind)k));
        return NULL;
    }
    return ubd_py_view((PyObject *)self, self->p.buf[k] + offset, nd, dims);
}

static PyObject *pb_flat(ParamBufferObject *self, PyObject *args) {
    const char *kind = "param";
    if (!PyArg_ParseTuple(args, "|s", &kind)) return NULL;
    int k = kind_from_str(kind);
    if (k < 0) return NULL;
    npy_intp n = (npy_intp)self->p.n;
    return make_view(self, k, 0, 1, &n);
}

static PyObject *pb_view(ParamBufferObject *self, PyObject *args) {
    const char *name, *kind = "param";
    if (!PyArg_ParseTuple(args, "s|s", &name, &kind)) return NULL;
    int k = kind_from_str(kind);
    if (k < 0) return NULL;
    int i = ubd_params_find(&self->p, name);
    if (i < 0) {
        PyErr_Format(PyExc_KeyError, "ParamBuffer: no tensor named '%s'", name);
        return NULL;
    }
    const ubd_view *v = &self->p.views[i];
    npy_intp dims[UBD_MAX_DIMS];
    for (int d = 0; d < v->ndim; d++) dims[d] = (npy_intp)v->shape[d];
    return make_view(self, k, v->offset, v->ndim, dims);
}

/* [(name, shape tuple, offset), ...] of `p` in insertion order (shared by the
 * model bindings, whose tensors live in ubd_params tables too). */
PyObject *ubd_py_params_spec(const ubd_params *p) {
    PyObject *list = PyList_New(p->nviews);
    if (!list) return NULL;
    for (int i = 0; i < p->nviews; i++) {
        const ubd_view *v = &p->views[i];
        PyObject *shape = PyTuple_New(v->ndim);
        if (!shape) {
            Py_DECREF(list);
            return NULL;
        }
        for (int d = 0; d < v->ndim; d++) PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(v->shape[d]));
        PyList_SET_ITEM(list, i, Py_BuildValue("(sNn)", v->name, shape, (Py_ssize_t)v->offset));
    }
    return list;
}

static PyObject *pb_spec(ParamBufferObject *self, PyObject *args) { return ubd_py_params_spec(&self->p); }

static PyObject *pb_size(ParamBufferObject *self, void *closure) { return PyLong_FromSize_t(self->p.n); }

static PyMethodDef pb_methods[] = {
    {"add", (PyCFunction)pb_add, METH_VARARGS, "add(name, shape) -> offset: append a named tensor."},
    {"alloc", (PyCFunction)pb_alloc, METH_VARARGS, "alloc(kind): allocate buffer param|grad|m|v|ema (zeroed)."},
    {"flat", (PyCFunction)pb_flat, METH_VARARGS, "flat(kind='param') -> zero-copy 1-D view of a whole buffer."},
    {"view", (PyCFunction)pb_view, METH_VARARGS, "view(name, kind='param') -> zero-copy view of one tensor."},
    {"spec", (PyCFunction)pb_spec, METH_NOARGS, "spec() -> [(name, shape, offset)] in order."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef pb_getset[] = {{"size", (getter)pb_size, NULL, "total number of floats", NULL},
                                  {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject ParamBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ubdiff._ubdiff.ParamBuffer",
    .tp_basicsize = sizeof(ParamBufferObject),
    .tp_dealloc = (destructor)pb_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Flat parameter buffers (param, grad, m, v, ema) with named zero-copy views.",
    .tp_methods = pb_methods,
    .tp_getset = pb_getset,
    .tp_new = pb_new,
};

int ubd_py_add_params_type(PyObject *module) {
    if (PyType_Ready(&ParamBufferType) < 0) return -1;
    Py_INCREF(&ParamBufferType);
    if (PyModule_AddObject(module, "ParamBuffer", (PyObject *)&ParamBufferType) < 0) {
        Py_DECREF(&ParamBufferType);
        return -1;
    }
    return 0;
}
