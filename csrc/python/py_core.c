/* py_core.c — build information, threads, random streams. */
#include "pyutil.h"  /* first: Python.h must precede system headers */
#include "../ops.h"
#include "../philox.h"

static PyObject *py_blas_info(PyObject *self, PyObject *args) { return PyUnicode_FromString(ubd_blas_info()); }

static PyObject *py_set_num_threads(PyObject *self, PyObject *args) {
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
    ubd_status st = ubd_set_num_threads(n);
    if (st != UBD_OK) return ubd_py_raise(st);
    ubd_threads_fixed(); /* an explicit count ends adaptive mode */
    Py_RETURN_NONE;
}

static PyObject *py_set_num_threads_adaptive(PyObject *self, PyObject *args) {
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
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
    unsigned int c0, c1, c2, c3, k0, k1;
    if (!PyArg_ParseTuple(args, "(IIII)(II)", &c0, &c1, &c2, &c3, &k0, &k1)) return NULL;
    ubd_u32x4 c = {{c0, c1, c2, c3}};
    ubd_u32x4 r = ubd_philox4x32_10(c, k0, k1);
    return Py_BuildValue("(IIII)", r.v[0], r.v[1], r.v[2], r.v[3]);
}

static PyObject *rand_fill(PyObject *args, int normal) {
    PyObject *o;
    unsigned long long seed, stream = 0, offset = 0;
    if (!PyArg_ParseTuple(args, "OK|KK", &o, &seed, &stream, &offset)) return NULL;
    ubd_f32 out;
    if (ubd_py_f32(o, "out", 1, &out) < 0) return NULL;
    size_t n = (size_t)out.size;
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
    {"set_num_threads", py_set_num_threads, METH_VARARGS, "set_num_threads(n): OpenMP and BLAS threads."},
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
