/* py_conv.c — bindings of convolutions (conv.h). Sizes come from the array
 * shapes (checked); stride / padding / output_padding are an int or a pair.
 * The binding allocates the core's scratch buffer (the core never does). */
#include "pyutil.h" /* first: Python.h must precede system headers */

#include <limits.h>
#include <string.h>

#include "../conv.h"

/* "O&" converter: an int n (-> (n, n)) or a pair of ints into int[2]. */
static int parse_pair(PyObject *o, void *dst) {
    int *v = (int *)dst;
    if (PyLong_Check(o)) {
        long x = PyLong_AsLong(o);
        if (x == -1 && PyErr_Occurred()) return 0;
        if (x < INT_MIN || x > INT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "stride/padding value out of int range");
            return 0;
        }
        v[0] = v[1] = (int)x;
        return 1;
    }
    if (!PyArg_ParseTuple(o, "ii", &v[0], &v[1])) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "stride/padding/output_padding: expected an int or a pair of ints, got %s",
                     Py_TYPE(o)->tp_name);
        return 0;
    }
    return 1;
}

static float *work_alloc(size_t n) {
    float *w = (float *)PyMem_RawMalloc((n ? n : 1) * sizeof(float));
    if (!w) PyErr_NoMemory();
    return w;
}

/* Run `expr` without the GIL, free the scratch, raise on failure. */
#define CALL_AND_FREE(work, expr)                                 \
    do {                                                          \
        ubd_status s_;                                            \
        Py_BEGIN_ALLOW_THREADS s_ = (expr);                       \
        Py_END_ALLOW_THREADS PyMem_RawFree(work);                 \
        if (s_ != UBD_OK) return ubd_py_raise(s_);                \
    } while (0)

#ifdef UBDIFF_WITH_CUDA
#include "../cuda_api.h"

/* Host-roundtrip of a CUDA op (for tests against the CPU): device copies of
 * the arrays (outputs too: gradients accumulate), a device workspace, then
 * outputs copied back and everything freed. */
typedef struct {
    int n;
    ubd_f32 *host[8];
    float *dev[8];
    int back[8];
    float *work;
} roundtrip;

static ubd_status rt_push(roundtrip *rt, ubd_f32 *a, int back) {
    int k = rt->n++;
    rt->host[k] = a;
    rt->back[k] = back;
    rt->dev[k] = NULL;
    if (!a->data) return UBD_OK;
    UBD_TRY(ubd_cuda_malloc((void **)&rt->dev[k], (size_t)a->size * sizeof(float)));
    return ubd_cuda_memcpy(rt->dev[k], a->data, (size_t)a->size * sizeof(float), 1);
}

static PyObject *rt_done(roundtrip *rt, ubd_status s) {
    if (s == UBD_OK) s = ubd_cuda_synchronize();
    for (int k = 0; k < rt->n; k++) {
        if (s == UBD_OK && rt->back[k] && rt->dev[k])
            s = ubd_cuda_memcpy(rt->host[k]->data, rt->dev[k], (size_t)rt->host[k]->size * sizeof(float), 0);
        if (rt->dev[k]) ubd_cuda_free(rt->dev[k]);
    }
    if (rt->work) ubd_cuda_free(rt->work);
    if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

/* Pushes n arrays (outputs first: the first n_back are copied back) and a
 * workspace of `work` floats; on failure returns the raised error. */
static ubd_status rt_setup(roundtrip *rt, ubd_f32 **arrs, int n, int n_back, size_t work) {
    for (int k = 0; k < n; k++) UBD_TRY(rt_push(rt, arrs[k], k < n_back));
    return ubd_cuda_malloc((void **)&rt->work, (work ? work : 1) * sizeof(float));
}
#define RT_SETUP(rt, n_back, work, ...)                                      \
    roundtrip rt = {0};                                                      \
    do {                                                                     \
        ubd_f32 *arrs_[] = {__VA_ARGS__};                                    \
        ubd_status st_ = rt_setup(&rt, arrs_, (int)(sizeof arrs_ / sizeof arrs_[0]), (n_back), (work)); \
        if (st_ != UBD_OK) return rt_done(&rt, st_);                         \
    } while (0)
#endif

/* Shape checks that name the Python-level function (the C helpers are shared). */
#define EXPECT(fn, var, ndim, ...) \
    if (ubd_py_expect(&var, fn, #var, ndim, __VA_ARGS__) < 0) return NULL
#define EXPECT_OPT(fn, var, ndim, ...) \
    if (var.data && ubd_py_expect(&var, fn, #var, ndim, __VA_ARGS__) < 0) return NULL

/* ---- conv2d ---------------------------------------------------------- */

/* Shape from inp (B,C,H,W) and weight (OC,C,KH,KW); checked by the core
 * (every dimension fits an int: ubd_py_f32 refuses larger ones). */
static int conv2d_shape(const char *fn, const ubd_f32 *inp, const ubd_f32 *weight, const int st[2], const int pd[2],
                        ubd_conv2d_shape *s, int *OH, int *OW) {
    if (ubd_py_expect(inp, fn, "inp", 4, -1LL, -1LL, -1LL, -1LL) < 0) return -1;
    if (ubd_py_expect(weight, fn, "weight", 4, -1LL, (long long)inp->shape[1], -1LL, -1LL) < 0) return -1;
    *s = (ubd_conv2d_shape){(int)inp->shape[0], (int)inp->shape[1], (int)inp->shape[2], (int)inp->shape[3],
                            (int)weight->shape[0], (int)weight->shape[2], (int)weight->shape[3], st[0], st[1], pd[0],
                            pd[1]};
    ubd_status r = ubd_conv2d_check(*s, OH, OW);
    if (r != UBD_OK) {
        ubd_py_raise(r);
        return -1;
    }
    return 0;
}

/* conv2d_forward(out (B,OC,OH,OW), inp (B,C,H,W), weight (OC,C,KH,KW), bias (OC)|None, stride=1, padding=0) */
static PyObject *conv2d_forward_any(PyObject *args, PyObject *kw, int cuda) {
    static char *kwlist[] = {"out", "inp", "weight", "bias", "stride", "padding", NULL};
    PyObject *o, *i, *w, *b;
    int st[2] = {1, 1}, pd[2] = {0, 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|O&O&", kwlist, &o, &i, &w, &b, parse_pair, st, parse_pair, pd))
        return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    UBD_PY_OPT_IN(bias, b);
    ubd_conv2d_shape s;
    int OH, OW;
    if (conv2d_shape("conv2d_forward", &inp, &weight, st, pd, &s, &OH, &OW) < 0) return NULL;
    EXPECT("conv2d_forward", out, 4, (long long)s.B, (long long)s.OC, (long long)OH, (long long)OW);
    EXPECT_OPT("conv2d_forward", bias, 1, (long long)s.OC);
    UBD_PY_NO_OVERLAP_FN("conv2d_forward", 0, &out, &inp, &weight, &bias);
    if (cuda) {
#ifdef UBDIFF_WITH_CUDA
        RT_SETUP(rt, 1, ubd_conv2d_workspace(s), &out, &inp, &weight, &bias);
        return rt_done(&rt, ubd_cuda_conv2d_forward(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], rt.work, s));
#endif
    }
    float *work = work_alloc(ubd_conv2d_workspace(s));
    if (!work) return NULL;
    CALL_AND_FREE(work, ubd_cpu_conv2d_forward(out.data, inp.data, weight.data, bias.data, work, s));
    Py_RETURN_NONE;
}

/* conv2d_backward(dinp|None, dweight|None, dbias|None, dout, inp, weight, stride=1, padding=0) — accumulates */
static PyObject *conv2d_backward_any(PyObject *args, PyObject *kw, int cuda) {
    static char *kwlist[] = {"dinp", "dweight", "dbias", "dout", "inp", "weight", "stride", "padding", NULL};
    PyObject *di, *dw, *db, *d, *i, *w;
    int st[2] = {1, 1}, pd[2] = {0, 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOO|O&O&", kwlist, &di, &dw, &db, &d, &i, &w, parse_pair, st,
                                     parse_pair, pd))
        return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dweight, dw);
    UBD_PY_OPT_OUT(dbias, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    ubd_conv2d_shape s;
    int OH, OW;
    if (conv2d_shape("conv2d_forward", &inp, &weight, st, pd, &s, &OH, &OW) < 0) return NULL;
    EXPECT("conv2d_backward", dout, 4, (long long)s.B, (long long)s.OC, (long long)OH, (long long)OW);
    EXPECT_OPT("conv2d_backward", dinp, 4, (long long)s.B, (long long)s.C, (long long)s.H, (long long)s.W);
    EXPECT_OPT("conv2d_backward", dweight, 4, (long long)s.OC, (long long)s.C, (long long)s.KH, (long long)s.KW);
    EXPECT_OPT("conv2d_backward", dbias, 1, (long long)s.OC);
    UBD_PY_NO_OVERLAP_FN("conv2d_backward", 0, &dinp, &dweight, &dbias, &dout, &inp, &weight);
    if (cuda) {
#ifdef UBDIFF_WITH_CUDA
        RT_SETUP(rt, 3, ubd_conv2d_workspace(s), &dinp, &dweight, &dbias, &dout, &inp, &weight);
        return rt_done(&rt, ubd_cuda_conv2d_backward(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], rt.dev[4],
                                                     rt.dev[5], rt.work, s));
#endif
    }
    float *work = work_alloc(ubd_conv2d_workspace(s));
    if (!work) return NULL;
    CALL_AND_FREE(work, ubd_cpu_conv2d_backward(dinp.data, dweight.data, dbias.data, dout.data, inp.data, weight.data,
                                                work, s));
    Py_RETURN_NONE;
}

/* ---- conv_transpose2d ------------------------------------------------ */

/* Shape from inp (B,C,H,W) and weight (C,OC,KH,KW). */
static int convt2d_shape(const char *fn, const ubd_f32 *inp, const ubd_f32 *weight, const int st[2], const int pd[2],
                         const int op[2], ubd_convt2d_shape *s, int *OH, int *OW) {
    if (ubd_py_expect(inp, fn, "inp", 4, -1LL, -1LL, -1LL, -1LL) < 0) return -1;
    if (ubd_py_expect(weight, fn, "weight", 4, (long long)inp->shape[1], -1LL, -1LL, -1LL) < 0) return -1;
    *s = (ubd_convt2d_shape){(int)inp->shape[0], (int)inp->shape[1], (int)inp->shape[2], (int)inp->shape[3],
                             (int)weight->shape[1], (int)weight->shape[2], (int)weight->shape[3], st[0], st[1], pd[0],
                             pd[1], op[0], op[1]};
    ubd_status r = ubd_convt2d_check(*s, OH, OW);
    if (r != UBD_OK) {
        ubd_py_raise(r);
        return -1;
    }
    return 0;
}

/* convt2d_forward(out (B,OC,OH,OW), inp (B,C,H,W), weight (C,OC,KH,KW), bias|None, stride=1, padding=0, output_padding=0) */
static PyObject *convt2d_forward_any(PyObject *args, PyObject *kw, int cuda) {
    static char *kwlist[] = {"out", "inp", "weight", "bias", "stride", "padding", "output_padding", NULL};
    PyObject *o, *i, *w, *b;
    int st[2] = {1, 1}, pd[2] = {0, 0}, op[2] = {0, 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|O&O&O&", kwlist, &o, &i, &w, &b, parse_pair, st, parse_pair, pd,
                                     parse_pair, op))
        return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    UBD_PY_OPT_IN(bias, b);
    ubd_convt2d_shape s;
    int OH, OW;
    if (convt2d_shape("convt2d_forward", &inp, &weight, st, pd, op, &s, &OH, &OW) < 0) return NULL;
    EXPECT("convt2d_forward", out, 4, (long long)s.B, (long long)s.OC, (long long)OH, (long long)OW);
    EXPECT_OPT("convt2d_forward", bias, 1, (long long)s.OC);
    UBD_PY_NO_OVERLAP_FN("convt2d_forward", 0, &out, &inp, &weight, &bias);
    if (cuda) {
#ifdef UBDIFF_WITH_CUDA
        RT_SETUP(rt, 1, ubd_convt2d_workspace(s), &out, &inp, &weight, &bias);
        return rt_done(&rt, ubd_cuda_convt2d_forward(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], rt.work, s));
#endif
    }
    float *work = work_alloc(ubd_convt2d_workspace(s));
    if (!work) return NULL;
    CALL_AND_FREE(work, ubd_cpu_convt2d_forward(out.data, inp.data, weight.data, bias.data, work, s));
    Py_RETURN_NONE;
}

/* convt2d_backward(dinp|None, dweight|None, dbias|None, dout, inp, weight, stride, padding, output_padding) */
static PyObject *convt2d_backward_any(PyObject *args, PyObject *kw, int cuda) {
    static char *kwlist[] = {"dinp", "dweight", "dbias", "dout", "inp", "weight", "stride", "padding", "output_padding",
                             NULL};
    PyObject *di, *dw, *db, *d, *i, *w;
    int st[2] = {1, 1}, pd[2] = {0, 0}, op[2] = {0, 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOO|O&O&O&", kwlist, &di, &dw, &db, &d, &i, &w, parse_pair, st,
                                     parse_pair, pd, parse_pair, op))
        return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dweight, dw);
    UBD_PY_OPT_OUT(dbias, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    ubd_convt2d_shape s;
    int OH, OW;
    if (convt2d_shape("convt2d_forward", &inp, &weight, st, pd, op, &s, &OH, &OW) < 0) return NULL;
    EXPECT("convt2d_backward", dout, 4, (long long)s.B, (long long)s.OC, (long long)OH, (long long)OW);
    EXPECT_OPT("convt2d_backward", dinp, 4, (long long)s.B, (long long)s.C, (long long)s.H, (long long)s.W);
    EXPECT_OPT("convt2d_backward", dweight, 4, (long long)s.C, (long long)s.OC, (long long)s.KH, (long long)s.KW);
    EXPECT_OPT("convt2d_backward", dbias, 1, (long long)s.OC);
    UBD_PY_NO_OVERLAP_FN("convt2d_backward", 0, &dinp, &dweight, &dbias, &dout, &inp, &weight);
    if (cuda) {
#ifdef UBDIFF_WITH_CUDA
        RT_SETUP(rt, 3, ubd_convt2d_workspace(s), &dinp, &dweight, &dbias, &dout, &inp, &weight);
        return rt_done(&rt, ubd_cuda_convt2d_backward(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], rt.dev[4],
                                                      rt.dev[5], rt.work, s));
#endif
    }
    float *work = work_alloc(ubd_convt2d_workspace(s));
    if (!work) return NULL;
    CALL_AND_FREE(work, ubd_cpu_convt2d_backward(dinp.data, dweight.data, dbias.data, dout.data, inp.data,
                                                 weight.data, work, s));
    Py_RETURN_NONE;
}

/* ---- conv1d ---------------------------------------------------------- */

static int conv1d_shape(const char *fn, const ubd_f32 *inp, const ubd_f32 *weight, int st, int pd,
                        ubd_conv1d_shape *s, int *OL) {
    if (ubd_py_expect(inp, fn, "inp", 3, -1LL, -1LL, -1LL) < 0) return -1;
    if (ubd_py_expect(weight, fn, "weight", 3, -1LL, (long long)inp->shape[1], -1LL) < 0) return -1;
    *s = (ubd_conv1d_shape){(int)inp->shape[0], (int)inp->shape[1], (int)inp->shape[2], (int)weight->shape[0],
                            (int)weight->shape[2], st, pd};
    ubd_status r = ubd_conv1d_check(*s, OL);
    if (r != UBD_OK) {
        ubd_py_raise(r);
        return -1;
    }
    return 0;
}

/* conv1d_forward(out (B,OC,OL), inp (B,C,L), weight (OC,C,K), bias (OC)|None, stride=1, padding=0) */
static PyObject *conv1d_forward_any(PyObject *args, PyObject *kw, int cuda) {
    static char *kwlist[] = {"out", "inp", "weight", "bias", "stride", "padding", NULL};
    PyObject *o, *i, *w, *b;
    int st = 1, pd = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|ii", kwlist, &o, &i, &w, &b, &st, &pd)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    UBD_PY_OPT_IN(bias, b);
    ubd_conv1d_shape s;
    int OL;
    if (conv1d_shape("conv1d_forward", &inp, &weight, st, pd, &s, &OL) < 0) return NULL;
    EXPECT("conv1d_forward", out, 3, (long long)s.B, (long long)s.OC, (long long)OL);
    EXPECT_OPT("conv1d_forward", bias, 1, (long long)s.OC);
    UBD_PY_NO_OVERLAP_FN("conv1d_forward", 0, &out, &inp, &weight, &bias);
    if (cuda) {
#ifdef UBDIFF_WITH_CUDA
        RT_SETUP(rt, 1, ubd_conv1d_workspace(s), &out, &inp, &weight, &bias);
        return rt_done(&rt, ubd_cuda_conv1d_forward(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], rt.work, s));
#endif
    }
    float *work = work_alloc(ubd_conv1d_workspace(s));
    if (!work) return NULL;
    CALL_AND_FREE(work, ubd_cpu_conv1d_forward(out.data, inp.data, weight.data, bias.data, work, s));
    Py_RETURN_NONE;
}

/* conv1d_backward(dinp|None, dweight|None, dbias|None, dout, inp, weight, stride=1, padding=0) */
static PyObject *conv1d_backward_any(PyObject *args, PyObject *kw, int cuda) {
    static char *kwlist[] = {"dinp", "dweight", "dbias", "dout", "inp", "weight", "stride", "padding", NULL};
    PyObject *di, *dw, *db, *d, *i, *w;
    int st = 1, pd = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOO|ii", kwlist, &di, &dw, &db, &d, &i, &w, &st, &pd)) return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dweight, dw);
    UBD_PY_OPT_OUT(dbias, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    ubd_conv1d_shape s;
    int OL;
    if (conv1d_shape("conv1d_forward", &inp, &weight, st, pd, &s, &OL) < 0) return NULL;
    EXPECT("conv1d_backward", dout, 3, (long long)s.B, (long long)s.OC, (long long)OL);
    EXPECT_OPT("conv1d_backward", dinp, 3, (long long)s.B, (long long)s.C, (long long)s.L);
    EXPECT_OPT("conv1d_backward", dweight, 3, (long long)s.OC, (long long)s.C, (long long)s.K);
    EXPECT_OPT("conv1d_backward", dbias, 1, (long long)s.OC);
    UBD_PY_NO_OVERLAP_FN("conv1d_backward", 0, &dinp, &dweight, &dbias, &dout, &inp, &weight);
    if (cuda) {
#ifdef UBDIFF_WITH_CUDA
        RT_SETUP(rt, 3, ubd_conv1d_workspace(s), &dinp, &dweight, &dbias, &dout, &inp, &weight);
        return rt_done(&rt, ubd_cuda_conv1d_backward(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], rt.dev[4],
                                                     rt.dev[5], rt.work, s));
#endif
    }
    float *work = work_alloc(ubd_conv1d_workspace(s));
    if (!work) return NULL;
    CALL_AND_FREE(work, ubd_cpu_conv1d_backward(dinp.data, dweight.data, dbias.data, dout.data, inp.data, weight.data,
                                                work, s));
    Py_RETURN_NONE;
}

static PyObject *conv2d_forward(PyObject *self, PyObject *args, PyObject *kw) { return conv2d_forward_any(args, kw, 0); }
static PyObject *conv2d_backward(PyObject *self, PyObject *args, PyObject *kw) { return conv2d_backward_any(args, kw, 0); }
static PyObject *convt2d_forward(PyObject *self, PyObject *args, PyObject *kw) { return convt2d_forward_any(args, kw, 0); }
static PyObject *convt2d_backward(PyObject *self, PyObject *args, PyObject *kw) { return convt2d_backward_any(args, kw, 0); }
static PyObject *conv1d_forward(PyObject *self, PyObject *args, PyObject *kw) { return conv1d_forward_any(args, kw, 0); }
static PyObject *conv1d_backward(PyObject *self, PyObject *args, PyObject *kw) { return conv1d_backward_any(args, kw, 0); }

#ifdef UBDIFF_WITH_CUDA
/* cuda_<name>: the same call run on the GPU (host arrays copied in and out). */
static PyObject *cuda_conv2d_forward(PyObject *self, PyObject *args, PyObject *kw) { return conv2d_forward_any(args, kw, 1); }
static PyObject *cuda_conv2d_backward(PyObject *self, PyObject *args, PyObject *kw) { return conv2d_backward_any(args, kw, 1); }
static PyObject *cuda_convt2d_forward(PyObject *self, PyObject *args, PyObject *kw) { return convt2d_forward_any(args, kw, 1); }
static PyObject *cuda_convt2d_backward(PyObject *self, PyObject *args, PyObject *kw) { return convt2d_backward_any(args, kw, 1); }
static PyObject *cuda_conv1d_forward(PyObject *self, PyObject *args, PyObject *kw) { return conv1d_forward_any(args, kw, 1); }
static PyObject *cuda_conv1d_backward(PyObject *self, PyObject *args, PyObject *kw) { return conv1d_backward_any(args, kw, 1); }
#define KWC (PyCFunction)(void (*)(void))
#define CUDA_CONV_METHODS                                                                               \
    {"cuda_conv2d_forward", KWC cuda_conv2d_forward, METH_VARARGS | METH_KEYWORDS, "conv2d_forward on the GPU."},     \
    {"cuda_conv2d_backward", KWC cuda_conv2d_backward, METH_VARARGS | METH_KEYWORDS, "conv2d_backward on the GPU."},  \
    {"cuda_convt2d_forward", KWC cuda_convt2d_forward, METH_VARARGS | METH_KEYWORDS, "convt2d_forward on the GPU."},  \
    {"cuda_convt2d_backward", KWC cuda_convt2d_backward, METH_VARARGS | METH_KEYWORDS,                              \
     "convt2d_backward on the GPU."},                                                                             \
    {"cuda_conv1d_forward", KWC cuda_conv1d_forward, METH_VARARGS | METH_KEYWORDS, "conv1d_forward on the GPU."},     \
    {"cuda_conv1d_backward", KWC cuda_conv1d_backward, METH_VARARGS | METH_KEYWORDS, "conv1d_backward on the GPU."},
#else
#define CUDA_CONV_METHODS
#endif

#define KW (PyCFunction)(void (*)(void))
/* conv_algo() -> "auto" | "im2col"; conv_algo(name) sets it (conv.h). */
static PyObject *py_conv_algo(PyObject *self, PyObject *args) {
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|s:conv_algo", &name)) return NULL;
    if (name) {
        int a = !strcmp(name, "auto") ? UBD_CONV_AUTO : !strcmp(name, "im2col") ? UBD_CONV_IM2COL : -1;
        if (a < 0) return PyErr_Format(PyExc_ValueError, "conv_algo: expected 'auto' or 'im2col', got '%s'", name);
        UBD_PY_CALL(ubd_conv_set_algo(a));
    }
    return PyUnicode_FromString(ubd_conv_get_algo() == UBD_CONV_IM2COL ? "im2col" : "auto");
}

PyMethodDef ubd_py_conv_methods[] = {
    {"conv_algo", py_conv_algo, METH_VARARGS,
     "conv_algo([name]): the CPU algorithm of stride-1 3-tap convolutions, 'auto' (Winograd) or 'im2col'; "
     "sets it when name is given, returns the current one."},
    {"conv2d_forward", KW conv2d_forward, METH_VARARGS | METH_KEYWORDS,
     "conv2d_forward(out, inp, weight, bias|None, stride=1, padding=0)"},
    {"conv2d_backward", KW conv2d_backward, METH_VARARGS | METH_KEYWORDS,
     "conv2d_backward(dinp|None, dweight|None, dbias|None, dout, inp, weight, stride=1, padding=0); accumulates"},
    {"convt2d_forward", KW convt2d_forward, METH_VARARGS | METH_KEYWORDS,
     "convt2d_forward(out, inp, weight (C,OC,KH,KW), bias|None, stride=1, padding=0, output_padding=0)"},
    {"convt2d_backward", KW convt2d_backward, METH_VARARGS | METH_KEYWORDS,
     "convt2d_backward(dinp|None, dweight|None, dbias|None, dout, inp, weight, stride=1, padding=0, "
     "output_padding=0); accumulates"},
    {"conv1d_forward", KW conv1d_forward, METH_VARARGS | METH_KEYWORDS,
     "conv1d_forward(out, inp, weight, bias|None, stride=1, padding=0)"},
    {"conv1d_backward", KW conv1d_backward, METH_VARARGS | METH_KEYWORDS,
     "conv1d_backward(dinp|None, dweight|None, dbias|None, dout, inp, weight, stride=1, padding=0); accumulates"},
    CUDA_CONV_METHODS{NULL, NULL, 0, NULL}};
