/* py_backend.c — the backend table and the arena seen from Python: which
 * backend a device name gives, what it lists, and an arena exercise that
 * lets tests check the one memory planner every model uses. */
#include "pyutil.h" /* first: Python.h must precede system headers */

#include "../arena.h"

static const ubd_backend *find_backend(const char *device) {
    const ubd_backend *be = NULL;
    ubd_status s = ubd_backend_find(device, &be);
    if (s != UBD_OK) {
        ubd_py_raise(s);
        return NULL;
    }
    return be;
}

/* backend_info(device) -> {"name": str, "host_memory": bool, "ops": [entry names in list order]} */
static PyObject *backend_info(PyObject *self, PyObject *args) {
    const char *device;
    if (!PyArg_ParseTuple(args, "s", &device)) return NULL;
    const ubd_backend *be = find_backend(device);
    if (!be) return NULL;
    PyObject *ops = PyList_New(0);
    if (!ops) return NULL;
    /* every entry of the table, each checked to be filled */
#define UBD_PY_OP_NAME(op, params)                                                                   \
    if (be->op == NULL) {                                                                            \
        Py_DECREF(ops);                                                                              \
        return PyErr_Format(PyExc_RuntimeError, "backend %s has no entry for %s", be->name, #op);   \
    }                                                                                                \
    {                                                                                                \
        PyObject *n = PyUnicode_FromString(#op);                                                    \
        if (!n || PyList_Append(ops, n) < 0) {                                                       \
            Py_XDECREF(n);                                                                           \
            Py_DECREF(ops);                                                                          \
            return NULL;                                                                             \
        }                                                                                            \
        Py_DECREF(n);                                                                                \
    }
    UBD_BACKEND_OPS(UBD_PY_OP_NAME)
#undef UBD_PY_OP_NAME
    return Py_BuildValue("{s:s,s:O,s:N}", "name", be->name, "host_memory", be->host_memory ? Py_True : Py_False,
                         "ops", ops);
}

#define MAX_SLICES 64

/* Plans `sizes` (floats; staged[i] true: a staging slice), commits, binds
 * `bind` (default: sizes again) and ends. Returns the offsets. */
static ubd_status exercise(const ubd_backend *be, const Py_ssize_t *sizes, const int *staged, int n,
                           const Py_ssize_t *bind, int nb, long long *off, size_t *bytes, int *zeroed) {
    float *ptr[MAX_SLICES] = {0};
    ubd_arena a;
    ubd_arena_begin(&a, be);
    for (int i = 0; i < n; i++) {
        if (staged[i])
            ubd_arena_stage(&a, &ptr[i], (size_t)sizes[i], "staged");
        else
            ubd_arena_take(&a, &ptr[i], (size_t)sizes[i], "slice");
    }
    UBD_TRY(ubd_arena_commit(&a, "arena_exercise"));
    *bytes = a.bytes;
    for (int i = 0; i < nb; i++) {
        if (i < n && staged[i])
            ubd_arena_stage(&a, &ptr[i], (size_t)bind[i], "staged");
        else
            ubd_arena_take(&a, &ptr[i], (size_t)bind[i], "slice");
    }
    ubd_status s = ubd_arena_end(&a);
    /* the whole allocation starts zeroed: read it back */
    *zeroed = 1;
    size_t nf = a.bytes / sizeof(float);
    float *host = nf ? PyMem_RawMalloc(nf * sizeof(float)) : NULL;
    if (nf && !host) s = s ? s : ubd_fail(UBD_ERR_MEMORY, "arena_exercise: out of memory");
    if (s == UBD_OK && nf) s = be->copy(host, a.base, nf * sizeof(float), UBD_D2H);
    for (size_t i = 0; s == UBD_OK && i < nf; i++)
        if (host[i] != 0.0f) *zeroed = 0;
    PyMem_RawFree(host);
    for (int i = 0; i < n; i++) /* offsets (-1: no slice), not pointers, leave this function */
        off[i] = ptr[i] ? (long long)((char *)ptr[i] - (char *)a.base) : -1;
    ubd_arena_release(&a);
    return s;
}

static int int_list(PyObject *obj, Py_ssize_t *out, int *n, const char *what) {
    PyObject *seq = ubd_py_tuple(obj, "arena_exercise", what); /* a copy: an item's __index__ may change obj */
    if (!seq) return -1;
    Py_ssize_t k = PyTuple_GET_SIZE(seq);
    if (k > MAX_SLICES) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "arena_exercise: at most %d %s", MAX_SLICES, what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        long long v;
        if (ubd_py_int_item(seq, i, "arena_exercise", what, 0, PY_SSIZE_T_MAX, &v) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        out[i] = (Py_ssize_t)v;
    }
    Py_DECREF(seq);
    *n = (int)k;
    return 0;
}

/* arena_exercise(device, sizes, staged, bind=None) -> (total_bytes, [byte offset or None], zeroed) */
static PyObject *arena_exercise(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *so, *sto, *bo = Py_None;
    if (!PyArg_ParseTuple(args, "sOO|O", &device, &so, &sto, &bo)) return NULL;
    const ubd_backend *be = find_backend(device);
    if (!be) return NULL;
    Py_ssize_t sizes[MAX_SLICES], st[MAX_SLICES], bind[MAX_SLICES];
    int n, nst, nb;
    if (int_list(so, sizes, &n, "sizes") < 0 || int_list(sto, st, &nst, "staged flags") < 0) return NULL;
    if (nst != n) return PyErr_Format(PyExc_ValueError, "arena_exercise: %d sizes but %d staged flags", n, nst);
    if (bo == Py_None) {
        for (int i = 0; i < n; i++) bind[i] = sizes[i];
        nb = n;
    } else if (int_list(bo, bind, &nb, "bind sizes") < 0) {
        return NULL;
    }
    int staged[MAX_SLICES];
    for (int i = 0; i < n; i++) staged[i] = st[i] != 0;
    long long off[MAX_SLICES];
    size_t bytes = 0;
    int zeroed = 0;
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = exercise(be, sizes, staged, n, bind, nb, off, &bytes, &zeroed);
    Py_END_ALLOW_THREADS if (s != UBD_OK) return ubd_py_raise(s);
    PyObject *offs = PyList_New(n);
    if (!offs) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *o = off[i] >= 0 ? PyLong_FromLongLong(off[i]) : Py_NewRef(Py_None);
        PyList_SET_ITEM(offs, i, o);
    }
    return Py_BuildValue("(nNO)", (Py_ssize_t)bytes, offs, zeroed ? Py_True : Py_False);
}

PyMethodDef ubd_py_backend_methods[] = {
    {"backend_info", backend_info, METH_VARARGS,
     "backend_info(device) -> {'name', 'host_memory', 'ops'}: the backend 'cpu' | 'cuda' | 'auto' gives."},
    {"arena_exercise", arena_exercise, METH_VARARGS,
     "arena_exercise(device, sizes, staged, bind=None) -> (total_bytes, offsets, zeroed): plan, commit, bind."},
    {NULL, NULL, 0, NULL}};
