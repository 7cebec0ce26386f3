/* py_devops.c — single ops of the backend table run on a named device, for
 * the tests that check each op against NumPy (CPU) and the GPU against the
 * CPU: mean_pool_forward / _backward, init_normal (and, in py_physics.c,
 * forward_model). On the CPU the NumPy arrays are used in place; on a GPU
 * every array gets a device buffer (be->alloc), inputs are copied in, the op
 * runs, outputs are copied back and everything is freed. */
#include "pyutil.h" /* first: Python.h must precede system headers */
#include <stdint.h>
#include <string.h>

#include "../backend.h"

#define DEV_MAX 4

/* Device buffers of up to DEV_MAX host arrays of one op call. */
typedef struct {
    const ubd_backend *be;
    int n;
    float *host[DEV_MAX], *dev[DEV_MAX];
    size_t bytes[DEV_MAX];
    int out[DEV_MAX]; /* copied back afterwards */
} dev_call;

static ubd_status dev_push(dev_call *c, ubd_f32 *a, int out) {
    int k = c->n++;
    c->host[k] = a->data;
    c->bytes[k] = (size_t)a->size * sizeof(float);
    c->out[k] = out;
    c->dev[k] = a->data;
    if (c->be->host_memory) return UBD_OK;
    c->dev[k] = NULL;
    UBD_TRY(c->be->alloc((void **)&c->dev[k], c->bytes[k] ? c->bytes[k] : sizeof(float)));
    return c->be->copy(c->dev[k], c->host[k], c->bytes[k], UBD_H2D);
}

/* Copies the outputs back (when s is OK) and frees; raises on failure. */
static PyObject *dev_done(dev_call *c, ubd_status s) {
    if (!c->be->host_memory) {
        if (s == UBD_OK) s = c->be->sync();
        for (int k = 0; k < c->n; k++) {
            if (s == UBD_OK && c->out[k]) s = c->be->copy(c->host[k], c->dev[k], c->bytes[k], UBD_D2H);
            c->be->free(c->dev[k]);
        }
    }
    c->n = 0;
    if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

/* math: a math mode name, or NULL for the process-wide mode */
static int dev_begin_math(dev_call *c, const char *device, const char *math) {
    memset(c, 0, sizeof *c);
    int m = (int)ubd_get_math_mode();
    if (math && (m = ubd_math_mode_parse(math)) < 0) {
        PyErr_Format(PyExc_ValueError, "math must be 'fp32', 'tf32-conv' or 'tf32', got '%s'", math);
        return -1;
    }
    ubd_status s = ubd_backend_find_math(device, (ubd_math_mode)m, &c->be);
    if (s != UBD_OK) {
        ubd_py_raise(s);
        return -1;
    }
    return 0;
}

static int dev_begin(dev_call *c, const char *device) { return dev_begin_math(c, device, NULL); }

#define DEV_PUSH(c, a, out)                         \
    do {                                            \
        ubd_status s_ = dev_push(&(c), &(a), (out)); \
        if (s_ != UBD_OK) return dev_done(&(c), s_); \
    } while (0)

/* Rows N and length S of a (N, S) array, checked to fit an int. */
static int rows_of(const ubd_f32 *a, const char *fn, int *N, int *S) {
    if (ubd_py_expect(a, fn, "inp", 2, -1LL, -1LL) < 0) return -1;
    if (a->shape[0] < 1 || a->shape[1] < 1 || a->shape[0] > INT32_MAX || a->shape[1] > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: need 1 .. 2^31-1 rows and columns, got (%zd, %zd)", fn,
                     (Py_ssize_t)a->shape[0], (Py_ssize_t)a->shape[1]);
        return -1;
    }
    *N = (int)a->shape[0];
    *S = (int)a->shape[1];
    return 0;
}

/* mean_pool_forward(out (N), inp (N,S), device="cpu"): out = row means */
static PyObject *mean_pool_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i;
    const char *device = "cpu";
    if (!PyArg_ParseTuple(args, "OO|s", &o, &i, &device)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    int N, S;
    if (rows_of(&inp, __func__, &N, &S) < 0) return NULL;
    UBD_PY_EXPECT(out, 1, (long long)N);
    dev_call c;
    if (dev_begin(&c, device) < 0) return NULL;
    DEV_PUSH(c, out, 1);
    DEV_PUSH(c, inp, 0);
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = c.be->mean_pool_forward(c.dev[0], c.dev[1], N, S);
    Py_END_ALLOW_THREADS return dev_done(&c, s);
}

/* mean_pool_backward(dinp (N,S) +=, dout (N), device="cpu") */
static PyObject *mean_pool_backward(PyObject *self, PyObject *args) {
    PyObject *di, *d;
    const char *device = "cpu";
    if (!PyArg_ParseTuple(args, "OO|s", &di, &d, &device)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    int N, S;
    if (rows_of(&dinp, __func__, &N, &S) < 0) return NULL;
    UBD_PY_EXPECT(dout, 1, (long long)N);
    dev_call c;
    if (dev_begin(&c, device) < 0) return NULL;
    DEV_PUSH(c, dinp, 1);
    DEV_PUSH(c, dout, 0);
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = c.be->mean_pool_backward(c.dev[0], c.dev[1], N, S);
    Py_END_ALLOW_THREADS return dev_done(&c, s);
}

/* init_normal(out, std, seed, stream=0, offset=0, device="cpu"): out = std * Philox normals */
static PyObject *init_normal(PyObject *self, PyObject *args) {
    PyObject *o;
    float std;
    unsigned long long seed, stream = 0, offset = 0;
    const char *device = "cpu";
    if (!PyArg_ParseTuple(args, "OfK|KKs", &o, &std, &seed, &stream, &offset, &device)) return NULL;
    UBD_PY_OUT(out, o);
    dev_call c;
    if (dev_begin(&c, device) < 0) return NULL;
    DEV_PUSH(c, out, 1);
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = c.be->init_normal(c.dev[0], (size_t)out.size, std, seed, stream, offset);
    Py_END_ALLOW_THREADS return dev_done(&c, s);
}

/* linear_forward_on(out (B,OC), inp (B,C), weight (OC,C), device="cpu", math=None): out = inp @ weight^T
 * on the named device in the named math mode (the GPU check measures TF32 against strict float32) */
static PyObject *linear_forward_on(PyObject *self, PyObject *args) {
    PyObject *o, *i, *w;
    const char *device = "cpu", *math = NULL;
    if (!PyArg_ParseTuple(args, "OOO|sz", &o, &i, &w, &device, &math)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    int B, C, OC, C2;
    UBD_PY_EXPECT(weight, 2, -1LL, -1LL);
    if (rows_of(&inp, __func__, &B, &C) < 0 || rows_of(&weight, __func__, &OC, &C2) < 0) return NULL;
    UBD_PY_EXPECT(weight, 2, (long long)OC, (long long)C);
    UBD_PY_EXPECT(out, 2, (long long)B, (long long)OC);
    dev_call c;
    if (dev_begin_math(&c, device, math) < 0) return NULL;
    DEV_PUSH(c, out, 1);
    DEV_PUSH(c, inp, 0);
    DEV_PUSH(c, weight, 0);
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = c.be->linear_forward(c.dev[0], c.dev[1], c.dev[2], NULL, B, C, OC);
    Py_END_ALLOW_THREADS return dev_done(&c, s);
}

/* set_math_mode(name): the math mode of models and ops created from now on */
static PyObject *set_math_mode(PyObject *self, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    const int m = ubd_math_mode_parse(name);
    if (m < 0) return PyErr_Format(PyExc_ValueError, "math mode must be 'fp32', 'tf32-conv' or 'tf32', got '%s'", name);
    ubd_status s = ubd_set_math_mode((ubd_math_mode)m);
    if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *math_mode(PyObject *self, PyObject *noargs) {
    return PyUnicode_FromString(ubd_math_mode_name((int)ubd_get_math_mode()));
}

PyMethodDef ubd_py_devops_methods[] = {
    {"linear_forward_on", linear_forward_on, METH_VARARGS,
     "linear_forward_on(out (B,OC), inp (B,C), weight (OC,C), device='cpu', math=None): out = inp @ weight^T"},
    {"set_math_mode", set_math_mode, METH_VARARGS,
     "set_math_mode('fp32' | 'tf32-conv' | 'tf32'): math mode of GPU models and ops created from now on"},
    {"math_mode", math_mode, METH_NOARGS, "math_mode() -> the current math mode's name"},
    {"mean_pool_forward", mean_pool_forward, METH_VARARGS,
     "mean_pool_forward(out (N), inp (N,S), device='cpu'): out = mean of each row"},
    {"mean_pool_backward", mean_pool_backward, METH_VARARGS,
     "mean_pool_backward(dinp (N,S), dout (N), device='cpu'): dinp += dout / S"},
    {"init_normal", init_normal, METH_VARARGS,
     "init_normal(out, std, seed, stream=0, offset=0, device='cpu'): out = std * Philox normals"},
    {NULL, NULL, 0, NULL}};
