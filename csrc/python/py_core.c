/* py_core.c — build information, threads, random streams. */
#include "pyutil.h"  /* first: Python.h must precede system headers */
#include "../ops.h"
#include "../philox.h"
#include <limits.h>

static PyObject *py_blas_info(PyObject *self, PyObject *args) { return PyUnicode_FromString(ubd_blas_info()); }

/* A thread count argument: an int in 1 .. max_num_threads(), checked before
 * anything reaches libgomp (which exits or crashes when it cannot start the
 * threads). 0 ok / -1 raised. */
static int thread_count(PyObject *args, const char *fn, const char *name, int *out) {
    PyObject *o;
    if (!PyArg_ParseTuple(args, "O", &o)) return -1;
    if (PyBool_Check(o) || !PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be an int, got %s", fn, name, Py_TYPE(o)->tp_name);
        return -1;
    }
    PyObject *v = PyNumber_Index(o);
    if (!v) return -1;
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    Py_DECREF(v);
    if (n == -1 && PyErr_Occurred()) return -1;
    const int max = ubd_max_num_threads();
    if (overflow || n < 1 || n > max) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be >= 1 and <= %d (max_num_threads), got %R", fn, name, max,
                     o);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *args) {
    int n;
    if (thread_count(args, "set_num_threads", "n", &n) < 0) return NULL;
    ubd_status st = ubd_set_num_threads(n);
    if (st != UBD_OK) return ubd_py_raise(st);
    ubd_threads_fixed(); /* an explicit count ends adaptive mode */
    Py_RETURN_NONE;
}

static PyObject *py_max_num_threads(PyObject *self, PyObject *args) { return PyLong_FromLong(ubd_max_num_threads()); }

static PyObject *py_set_num_threads_adaptive(PyObject *self, PyObject *args) {
    int n;
    if (thread_count(args, "set_num_threads_adaptive", "max", &n) < 0) return NULL;
    ubd_status st = ubd_set_num_threads_adaptive(n);
    if (st != UBD_OK) return ubd_py_raise(st);
    Py_RETURN_NONE;
}

static PyObject *py_threads_adaptive(PyObject *self, PyObject *args) { return PyBool_FromLong(ubd_threads_adaptive()); }

static PyObject *py_threads_adapt(PyObject *self, PyObject *args) {
    ubd_threads_adapt();
    return PyLong_FromLong(ubd_get_num_threads());
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *args) { return PyLong_FromLong(ubd_get_num_threads()); }

static PyObject *py_compiler_info(PyObject *self, PyObject *args) {
#ifdef _OPENMP
    int omp = _OPENMP;
#else
    int omp = 0;
#endif
    return Py_BuildValue("{s:s,s:i}", "cc", __VERSION__, "openmp", omp);
}

/* Raw Philox-4x32-10 of (counter[4], key[2]) -> 4 words (known-answer tests). */
static PyObject *py_philox4x32_10(PyObject *self, PyObject *args) {
    PyObject *co, *ko;
    if (!PyArg_ParseTuple(args, "OO", &co, &ko)) return NULL;
    unsigned int w[6];
    PyObject *ct = ubd_py_tuple(co, __func__, "counter"), *kt = ct ? ubd_py_tuple(ko, __func__, "key") : NULL;
    int ok = ct && kt;
    if (ok && (PyTuple_GET_SIZE(ct) != 4 || PyTuple_GET_SIZE(kt) != 2)) {
        PyErr_Format(PyExc_ValueError, "philox4x32_10: need 4 counter words and 2 key words, got %zd and %zd",
                     PyTuple_GET_SIZE(ct), PyTuple_GET_SIZE(kt));
        ok = 0;
    }
    for (int i = 0; ok && i < 6; i++) {
        PyObject *t = i < 4 ? ct : kt;
        ok = ubd_py_u32(PyTuple_GET_ITEM(t, i < 4 ? i : i - 4), __func__, i < 4 ? "counter word" : "key word",
                        &w[i]) == 0;
    }
    Py_XDECREF(ct);
    Py_XDECREF(kt);
    if (!ok) return NULL;
    unsigned int c0 = w[0], c1 = w[1], c2 = w[2], c3 = w[3], k0 = w[4], k1 = w[5];
    ubd_u32x4 c = {{c0, c1, c2, c3}};
    ubd_u32x4 r = ubd_philox4x32_10(c, k0, k1);
    return Py_BuildValue("(IIII)", r.v[0], r.v[1], r.v[2], r.v[3]);
}

static PyObject *rand_fill(PyObject *args, int normal) {
    PyObject *o, *seed_obj, *stream_obj = NULL, *offset_obj = NULL;
    if (!PyArg_ParseTuple(args, "OO|OO", &o, &seed_obj, &stream_obj, &offset_obj)) return NULL;
    const char *fn = normal ? "rand_normal" : "rand_uniform";
    unsigned long long seed, stream = 0, offset = 0;
    if (ubd_py_u64(seed_obj, fn, "seed", &seed) < 0) return NULL;
    if (stream_obj && ubd_py_u64(stream_obj, fn, "stream", &stream) < 0) return NULL;
    if (offset_obj && ubd_py_u64(offset_obj, fn, "offset", &offset) < 0) return NULL;
    ubd_f32 out;
    if (ubd_py_f32(o, "out", 1, &out) < 0) return NULL;
    size_t n = (size_t)out.size;
    if (n > 0 && offset > ULLONG_MAX - (n - 1)) /* element offset + i would wrap around to the stream's start */
        return PyErr_Format(PyExc_ValueError, "%s: offset %llu + %zu elements passes the end of the stream (2**64)", fn,
                            offset, n);
    if (normal)
        UBD_PY_CALL(ubd_cpu_rand_normal(out.data, n, seed, stream, offset));
    else
        UBD_PY_CALL(ubd_cpu_rand_uniform(out.data, n, seed, stream, offset));
    Py_RETURN_NONE;
}
static PyObject *py_rand_uniform(PyObject *self, PyObject *args) { return rand_fill(args, 0); }
static PyObject *py_rand_normal(PyObject *self, PyObject *args) { return rand_fill(args, 1); }

PyMethodDef ubd_py_core_methods[] = {
    {"blas_info", py_blas_info, METH_NOARGS, "Configuration string of the linked BLAS."},
    {"compiler_info", py_compiler_info, METH_NOARGS, "Compiler and OpenMP version of the build."},
    {"set_num_threads", py_set_num_threads, METH_VARARGS,
     "set_num_threads(n): OpenMP and BLAS threads, 1 <= n <= max_num_threads()."},
    {"max_num_threads", py_max_num_threads, METH_NOARGS,
     "The largest thread count set_num_threads accepts: min(1024, 64 x the processors OpenMP sees)."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "Current thread count."},
    {"set_num_threads_adaptive", py_set_num_threads_adaptive, METH_VARARGS,
     "set_num_threads_adaptive(max): up to max threads, fewer while other tasks compete for the cores."},
    {"threads_adaptive", py_threads_adaptive, METH_NOARGS, "True in adaptive mode."},
    {"threads_adapt", py_threads_adapt, METH_NOARGS, "Re-decide the adaptive thread count now; returns it."},
    {"philox4x32_10", py_philox4x32_10, METH_VARARGS, "philox4x32_10((c0,c1,c2,c3), (k0,k1)) -> 4 words."},
    {"rand_uniform", py_rand_uniform, METH_VARARGS,
     "rand_uniform(out, seed, stream=0, offset=0): fill float32 out with Philox uniforms in (0,1)."},
    {"rand_normal", py_rand_normal, METH_VARARGS,
     "rand_normal(out, seed, stream=0, offset=0): fill float32 out with Philox standard normals."},
    {NULL, NULL, 0, NULL}};
