/* py_attn.c — bindings of softmax and attention (attention.h). Sizes come from
 * the array shapes (heads from the att / context arrays) and are checked here;
 * outputs and scratch are caller-allocated (ubdiff/attn_ops.py allocates them).
 * Function names drop the ubd_cpu_ prefix; CUDA twins (host arrays in/out,
 * for tests) are prefixed cuda_. */
#include "pyutil.h" /* first: Python.h must precede system headers */
#include <limits.h>

#include "../attention.h"

/* `a` has exactly the shape of `ref` (and is non-empty). */
static int same_shape(const ubd_f32 *a, const ubd_f32 *ref, const char *fn, const char *name, const char *refname) {
    int ok = a->ndim == ref->ndim;
    for (int d = 0; ok && d < a->ndim; d++) ok = a->shape[d] == ref->shape[d];
    if (ok && a->size > 0) return 0;
    PyErr_Format(PyExc_ValueError, "%s: %s must be non-empty and have the shape of %s", fn, name, refname);
    return -1;
}
#define SAME_SHAPE(var, ref) \
    if (same_shape(&var, &ref, __func__, #var, #ref) < 0) return NULL

static int require(int cond, const char *fn, const char *msg, long long a, long long b) {
    if (cond) return 0;
    PyErr_Format(PyExc_ValueError, "%s: %s (%lld, %lld)", fn, msg, a, b);
    return -1;
}
#define REQUIRE(cond, msg, a, b) \
    if (require((cond), __func__, (msg), (long long)(a), (long long)(b)) < 0) return NULL

/* ---- softmax ------------------------------------------------------------ */

/* Last axis of `inp` is D; the rest are flattened into N rows. */
static int softmax_sizes(const ubd_f32 *inp, const char *fn, int *N, int *D) {
    if (inp->ndim < 1 || inp->size == 0) {
        PyErr_Format(PyExc_ValueError, "%s: inp must be a non-empty array with at least 1 dimension", fn);
        return -1;
    }
    npy_intp d = inp->shape[inp->ndim - 1], n = inp->size / d;
    if (d > INT_MAX || n > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: inp is too large for int sizes", fn);
        return -1;
    }
    *N = (int)n;
    *D = (int)d;
    return 0;
}

/* softmax_forward(out, inp) — over the last axis, same shapes */
static PyObject *softmax_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i;
    if (!PyArg_ParseTuple(args, "OO", &o, &i)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    int N, D;
    if (softmax_sizes(&inp, __func__, &N, &D) < 0) return NULL;
    SAME_SHAPE(out, inp);
    UBD_PY_NO_OVERLAP_INPLACE(&out, &inp);
    UBD_PY_CALL(ubd_cpu_softmax_forward(out.data, inp.data, N, D));
    Py_RETURN_NONE;
}

/* softmax_backward(dinp, dout, out) — dinp += */
static PyObject *softmax_backward(PyObject *self, PyObject *args) {
    PyObject *di, *d, *o;
    if (!PyArg_ParseTuple(args, "OOO", &di, &d, &o)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(out, o);
    int N, D;
    if (softmax_sizes(&out, __func__, &N, &D) < 0) return NULL;
    SAME_SHAPE(dout, out);
    SAME_SHAPE(dinp, out);
    UBD_PY_NO_OVERLAP(&dinp, &dout, &out);
    UBD_PY_CALL(ubd_cpu_softmax_backward(dinp.data, dout.data, out.data, N, D));
    Py_RETURN_NONE;
}

/* ---- multi-head self-attention, token layout ---------------------------- */

/* qkv (B,T,3C) and att (B,NH,T,T) give B, T, C, NH. */
#define MHSA_SIZES(qkv, att)                                                    \
    UBD_PY_EXPECT(qkv, 3, -1LL, -1LL, -1LL);                                    \
    long long B = qkv.shape[0], T = qkv.shape[1], C3 = qkv.shape[2];            \
    REQUIRE(C3 % 3 == 0, "qkv's last dimension must be 3*C", C3, 3);            \
    long long C = C3 / 3;                                                       \
    UBD_PY_EXPECT(att, 4, B, -1LL, T, T);                                       \
    long long NH = att.shape[1];                                                \
    REQUIRE(C % NH == 0, "C is not divisible by the number of heads (C, NH)", C, NH)

/* mhsa_forward(out (B,T,C), att (B,NH,T,T), qkv (B,T,3C)) */
static PyObject *mhsa_forward(PyObject *self, PyObject *args) {
    PyObject *o, *a, *q;
    if (!PyArg_ParseTuple(args, "OOO", &o, &a, &q)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(att, a);
    UBD_PY_IN(qkv, q);
    MHSA_SIZES(qkv, att);
    UBD_PY_EXPECT(out, 3, B, T, C);
    UBD_PY_NO_OVERLAP(&out, &att, &qkv);
    UBD_PY_CALL(ubd_cpu_mhsa_forward(out.data, att.data, qkv.data, (int)B, (int)T, (int)C, (int)NH));
    Py_RETURN_NONE;
}

/* mhsa_backward(dqkv (B,T,3C) | None, datt (B,NH,T,T) scratch, dout (B,T,C), qkv, att) */
static PyObject *mhsa_backward(PyObject *self, PyObject *args) {
    PyObject *dq, *da, *d, *q, *a;
    if (!PyArg_ParseTuple(args, "OOOOO", &dq, &da, &d, &q, &a)) return NULL;
    UBD_PY_OPT_OUT(dqkv, dq);
    UBD_PY_OUT(datt, da);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(qkv, q);
    UBD_PY_IN(att, a);
    MHSA_SIZES(qkv, att);
    UBD_PY_EXPECT(dout, 3, B, T, C);
    UBD_PY_EXPECT_OPT(dqkv, 3, B, T, 3 * C);
    SAME_SHAPE(datt, att);
    UBD_PY_NO_OVERLAP(&dqkv, &datt, &dout, &qkv, &att);
    UBD_PY_CALL(ubd_cpu_mhsa_backward(dqkv.data, datt.data, dout.data, qkv.data, att.data, (int)B, (int)T, (int)C,
                                      (int)NH));
    Py_RETURN_NONE;
}

/* ---- 1-D U-Net attention, channels first --------------------------------- */

/* qkv (B,3*NH*HD,L) with NH from `heads_of` (dimension 1) give B, NH, HD, L. */
#define UNET_SIZES(qkv, heads_of)                                                       \
    UBD_PY_EXPECT(qkv, 3, -1LL, -1LL, -1LL);                                            \
    long long B = qkv.shape[0], C3 = qkv.shape[1], L = qkv.shape[2];                    \
    if (heads_of.ndim < 2) return PyErr_Format(PyExc_ValueError, "%s: %s must be 4-D", __func__, #heads_of); \
    long long NH = heads_of.shape[1];                                                   \
    REQUIRE(NH > 0 && C3 % (3 * NH) == 0,                                               \
            "qkv's channel count must be 3*NH*HD (channels, NH)", C3, NH);              \
    long long HD = C3 / (3 * NH)

/* full_attention_forward(out (B,NH*HD,L), att (B,NH,L,L), qkv (B,3*NH*HD,L), scale) */
static PyObject *full_attention_forward(PyObject *self, PyObject *args) {
    PyObject *o, *a, *q;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOf", &o, &a, &q, &scale)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(att, a);
    UBD_PY_IN(qkv, q);
    UNET_SIZES(qkv, att);
    UBD_PY_EXPECT(att, 4, B, NH, L, L);
    UBD_PY_EXPECT(out, 3, B, NH * HD, L);
    UBD_PY_NO_OVERLAP(&out, &att, &qkv);
    UBD_PY_CALL(ubd_cpu_full_attention_forward(out.data, att.data, qkv.data, (int)B, (int)NH, (int)HD, (int)L, scale));
    Py_RETURN_NONE;
}

/* full_attention_backward(dqkv | None, datt (B,NH,L,L) scratch, dout, qkv, att, scale) */
static PyObject *full_attention_backward(PyObject *self, PyObject *args) {
    PyObject *dq, *da, *d, *q, *a;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOOOf", &dq, &da, &d, &q, &a, &scale)) return NULL;
    UBD_PY_OPT_OUT(dqkv, dq);
    UBD_PY_OUT(datt, da);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(qkv, q);
    UBD_PY_IN(att, a);
    UNET_SIZES(qkv, att);
    UBD_PY_EXPECT(att, 4, B, NH, L, L);
    UBD_PY_EXPECT(dout, 3, B, NH * HD, L);
    UBD_PY_EXPECT_OPT(dqkv, 3, B, C3, L);
    SAME_SHAPE(datt, att);
    UBD_PY_NO_OVERLAP(&dqkv, &datt, &dout, &qkv, &att);
    UBD_PY_CALL(ubd_cpu_full_attention_backward(dqkv.data, datt.data, dout.data, qkv.data, att.data, (int)B, (int)NH,
                                                (int)HD, (int)L, scale));
    Py_RETURN_NONE;
}

/* linear_attention_forward(out, qs, ks (B,NH*HD,L), context (B,NH,HD,HD), qkv (B,3*NH*HD,L), scale) */
static PyObject *linear_attention_forward(PyObject *self, PyObject *args) {
    PyObject *o, *qo, *ko, *co, *q;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOOOf", &o, &qo, &ko, &co, &q, &scale)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(qs, qo);
    UBD_PY_OUT(ks, ko);
    UBD_PY_OUT(context, co);
    UBD_PY_IN(qkv, q);
    UNET_SIZES(qkv, context);
    UBD_PY_EXPECT(context, 4, B, NH, HD, HD);
    UBD_PY_EXPECT(out, 3, B, NH * HD, L);
    UBD_PY_EXPECT(qs, 3, B, NH * HD, L);
    UBD_PY_EXPECT(ks, 3, B, NH * HD, L);
    UBD_PY_NO_OVERLAP(&out, &qs, &ks, &context, &qkv);
    UBD_PY_CALL(ubd_cpu_linear_attention_forward(out.data, qs.data, ks.data, context.data, qkv.data, (int)B, (int)NH,
                                                 (int)HD, (int)L, scale));
    Py_RETURN_NONE;
}

/* linear_attention_backward(dqkv | None, work (2*B*NH*HD*L + B*NH*HD*HD floats, any shape),
 *                           dout, qkv, qs, ks, context, scale) */
static PyObject *linear_attention_backward(PyObject *self, PyObject *args) {
    PyObject *dq, *w, *d, *q, *qo, *ko, *co;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOOOOOf", &dq, &w, &d, &q, &qo, &ko, &co, &scale)) return NULL;
    UBD_PY_OPT_OUT(dqkv, dq);
    UBD_PY_OUT(work, w);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(qkv, q);
    UBD_PY_IN(qs, qo);
    UBD_PY_IN(ks, ko);
    UBD_PY_IN(context, co);
    UNET_SIZES(qkv, context);
    UBD_PY_EXPECT(context, 4, B, NH, HD, HD);
    UBD_PY_EXPECT(dout, 3, B, NH * HD, L);
    UBD_PY_EXPECT(qs, 3, B, NH * HD, L);
    UBD_PY_EXPECT(ks, 3, B, NH * HD, L);
    UBD_PY_EXPECT_OPT(dqkv, 3, B, C3, L);
    long long need = 2 * B * NH * HD * L + B * NH * HD * HD;
    REQUIRE(work.size >= need, "work is too small (has, needs) floats", work.size, need);
    UBD_PY_NO_OVERLAP(&dqkv, &work, &dout, &qkv, &qs, &ks, &context);
    UBD_PY_CALL(ubd_cpu_linear_attention_backward(dqkv.data, work.data, dout.data, qkv.data, qs.data, ks.data,
                                                  context.data, (int)B, (int)NH, (int)HD, (int)L, scale));
    Py_RETURN_NONE;
}

#ifdef UBDIFF_WITH_CUDA
/* ---- CUDA twins, host arrays in and out (for tests against the CPU) ------ */
#include "../cuda_api.h"
#include "roundtrip.h"

/* cuda_softmax_forward(out, inp) */
static PyObject *cuda_softmax_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i;
    if (!PyArg_ParseTuple(args, "OO", &o, &i)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    int N, D;
    if (softmax_sizes(&inp, __func__, &N, &D) < 0) return NULL;
    SAME_SHAPE(out, inp);
    UBD_PY_NO_OVERLAP_INPLACE(&out, &inp);
    ubd_rt d = {0};
    UBD_RT_PUSH(d, out, 1);
    UBD_RT_PUSH(d, inp, 0);
    return ubd_rt_done(&d, ubd_cuda_softmax_forward(d.dev[0], d.dev[1], N, D));
}

/* cuda_softmax_backward(dinp, dout, out); dinp += */
static PyObject *cuda_softmax_backward(PyObject *self, PyObject *args) {
    PyObject *di, *dd, *o;
    if (!PyArg_ParseTuple(args, "OOO", &di, &dd, &o)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, dd);
    UBD_PY_IN(out, o);
    int N, D;
    if (softmax_sizes(&out, __func__, &N, &D) < 0) return NULL;
    SAME_SHAPE(dout, out);
    SAME_SHAPE(dinp, out);
    UBD_PY_NO_OVERLAP(&dinp, &dout, &out);
    ubd_rt d = {0};
    UBD_RT_PUSH(d, dinp, 1);
    UBD_RT_PUSH(d, dout, 0);
    UBD_RT_PUSH(d, out, 0);
    return ubd_rt_done(&d, ubd_cuda_softmax_backward(d.dev[0], d.dev[1], d.dev[2], N, D));
}

/* cuda_full_attention_forward(out (B,NH*HD,L), att (B,NH,L,L), qkv (B,3*NH*HD,L), scale) */
static PyObject *cuda_full_attention_forward(PyObject *self, PyObject *args) {
    PyObject *o, *a, *q;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOf", &o, &a, &q, &scale)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(att, a);
    UBD_PY_IN(qkv, q);
    UNET_SIZES(qkv, att);
    UBD_PY_EXPECT(att, 4, B, NH, L, L);
    UBD_PY_EXPECT(out, 3, B, NH * HD, L);
    UBD_PY_NO_OVERLAP(&out, &att, &qkv);
    ubd_rt d = {0};
    UBD_RT_PUSH(d, out, 1);
    UBD_RT_PUSH(d, att, 1);
    UBD_RT_PUSH(d, qkv, 0);
    return ubd_rt_done(&d, ubd_cuda_full_attention_forward(d.dev[0], d.dev[1], d.dev[2], (int)B, (int)NH, (int)HD,
                                                          (int)L, scale));
}

/* cuda_mhsa_forward(out (B,T,C), att (B,NH,T,T), qkv (B,T,3C)) */
static PyObject *cuda_mhsa_forward(PyObject *self, PyObject *args) {
    PyObject *o, *a, *q;
    if (!PyArg_ParseTuple(args, "OOO", &o, &a, &q)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(att, a);
    UBD_PY_IN(qkv, q);
    MHSA_SIZES(qkv, att);
    UBD_PY_EXPECT(out, 3, B, T, C);
    UBD_PY_NO_OVERLAP(&out, &att, &qkv);
    ubd_rt d = {0};
    UBD_RT_PUSH(d, out, 1);
    UBD_RT_PUSH(d, att, 1);
    UBD_RT_PUSH(d, qkv, 0);
    return ubd_rt_done(&d, ubd_cuda_mhsa_forward(d.dev[0], d.dev[1], d.dev[2], (int)B, (int)T, (int)C, (int)NH));
}

/* cuda_mhsa_backward(dqkv | None, datt scratch, dout, qkv, att); dqkv += */
static PyObject *cuda_mhsa_backward(PyObject *self, PyObject *args) {
    PyObject *dq, *da, *dd, *q, *a;
    if (!PyArg_ParseTuple(args, "OOOOO", &dq, &da, &dd, &q, &a)) return NULL;
    UBD_PY_OPT_OUT(dqkv, dq);
    UBD_PY_OUT(datt, da);
    UBD_PY_IN(dout, dd);
    UBD_PY_IN(qkv, q);
    UBD_PY_IN(att, a);
    MHSA_SIZES(qkv, att);
    UBD_PY_EXPECT(dout, 3, B, T, C);
    UBD_PY_EXPECT_OPT(dqkv, 3, B, T, 3 * C);
    SAME_SHAPE(datt, att);
    UBD_PY_NO_OVERLAP(&dqkv, &datt, &dout, &qkv, &att);
    ubd_rt d = {0};
    UBD_RT_PUSH(d, dqkv, 1);
    UBD_RT_PUSH(d, datt, 0); /* scratch: its contents are not compared */
    UBD_RT_PUSH(d, dout, 0);
    UBD_RT_PUSH(d, qkv, 0);
    UBD_RT_PUSH(d, att, 0);
    return ubd_rt_done(&d, ubd_cuda_mhsa_backward(d.dev[0], d.dev[1], d.dev[2], d.dev[3], d.dev[4], (int)B, (int)T,
                                                  (int)C, (int)NH));
}

/* cuda_full_attention_backward(dqkv | None, datt scratch, dout, qkv, att, scale); dqkv += */
static PyObject *cuda_full_attention_backward(PyObject *self, PyObject *args) {
    PyObject *dq, *da, *dd, *q, *a;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOOOf", &dq, &da, &dd, &q, &a, &scale)) return NULL;
    UBD_PY_OPT_OUT(dqkv, dq);
    UBD_PY_OUT(datt, da);
    UBD_PY_IN(dout, dd);
    UBD_PY_IN(qkv, q);
    UBD_PY_IN(att, a);
    UNET_SIZES(qkv, att);
    UBD_PY_EXPECT(att, 4, B, NH, L, L);
    UBD_PY_EXPECT(dout, 3, B, NH * HD, L);
    UBD_PY_EXPECT_OPT(dqkv, 3, B, C3, L);
    SAME_SHAPE(datt, att);
    UBD_PY_NO_OVERLAP(&dqkv, &datt, &dout, &qkv, &att);
    ubd_rt d = {0};
    UBD_RT_PUSH(d, dqkv, 1);
    UBD_RT_PUSH(d, datt, 0);
    UBD_RT_PUSH(d, dout, 0);
    UBD_RT_PUSH(d, qkv, 0);
    UBD_RT_PUSH(d, att, 0);
    return ubd_rt_done(&d, ubd_cuda_full_attention_backward(d.dev[0], d.dev[1], d.dev[2], d.dev[3], d.dev[4], (int)B,
                                                            (int)NH, (int)HD, (int)L, scale));
}

/* cuda_linear_attention_forward(out, qs, ks (B,NH*HD,L), context (B,NH,HD,HD), qkv, scale) */
static PyObject *cuda_linear_attention_forward(PyObject *self, PyObject *args) {
    PyObject *o, *qo, *ko, *co, *q;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOOOf", &o, &qo, &ko, &co, &q, &scale)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(qs, qo);
    UBD_PY_OUT(ks, ko);
    UBD_PY_OUT(context, co);
    UBD_PY_IN(qkv, q);
    UNET_SIZES(qkv, context);
    UBD_PY_EXPECT(context, 4, B, NH, HD, HD);
    UBD_PY_EXPECT(out, 3, B, NH * HD, L);
    UBD_PY_EXPECT(qs, 3, B, NH * HD, L);
    UBD_PY_EXPECT(ks, 3, B, NH * HD, L);
    UBD_PY_NO_OVERLAP(&out, &qs, &ks, &context, &qkv);
    ubd_rt d = {0};
    UBD_RT_PUSH(d, out, 1);
    UBD_RT_PUSH(d, qs, 1);
    UBD_RT_PUSH(d, ks, 1);
    UBD_RT_PUSH(d, context, 1);
    UBD_RT_PUSH(d, qkv, 0);
    return ubd_rt_done(&d, ubd_cuda_linear_attention_forward(d.dev[0], d.dev[1], d.dev[2], d.dev[3], d.dev[4], (int)B,
                                                             (int)NH, (int)HD, (int)L, scale));
}

/* cuda_linear_attention_backward(dqkv | None, work, dout, qkv, qs, ks, context, scale); dqkv += */
static PyObject *cuda_linear_attention_backward(PyObject *self, PyObject *args) {
    PyObject *dq, *w, *dd, *q, *qo, *ko, *co;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOOOOOf", &dq, &w, &dd, &q, &qo, &ko, &co, &scale)) return NULL;
    UBD_PY_OPT_OUT(dqkv, dq);
    UBD_PY_OUT(work, w);
    UBD_PY_IN(dout, dd);
    UBD_PY_IN(qkv, q);
    UBD_PY_IN(qs, qo);
    UBD_PY_IN(ks, ko);
    UBD_PY_IN(context, co);
    UNET_SIZES(qkv, context);
    UBD_PY_EXPECT(context, 4, B, NH, HD, HD);
    UBD_PY_EXPECT(dout, 3, B, NH * HD, L);
    UBD_PY_EXPECT(qs, 3, B, NH * HD, L);
    UBD_PY_EXPECT(ks, 3, B, NH * HD, L);
    UBD_PY_EXPECT_OPT(dqkv, 3, B, C3, L);
    long long need = 2 * B * NH * HD * L + B * NH * HD * HD;
    REQUIRE(work.size >= need, "work is too small (has, needs) floats", work.size, need);
    UBD_PY_NO_OVERLAP(&dqkv, &work, &dout, &qkv, &qs, &ks, &context);
    ubd_rt d = {0};
    UBD_RT_PUSH(d, dqkv, 1);
    UBD_RT_PUSH(d, work, 0);
    UBD_RT_PUSH(d, dout, 0);
    UBD_RT_PUSH(d, qkv, 0);
    UBD_RT_PUSH(d, qs, 0);
    UBD_RT_PUSH(d, ks, 0);
    UBD_RT_PUSH(d, context, 0);
    return ubd_rt_done(&d, ubd_cuda_linear_attention_backward(d.dev[0], d.dev[1], d.dev[2], d.dev[3], d.dev[4],
                                                              d.dev[5], d.dev[6], (int)B, (int)NH, (int)HD, (int)L,
                                                              scale));
}

#define UBD_PY_ATTN_CUDA_METHODS                                                                              \
    {"cuda_mhsa_forward", cuda_mhsa_forward, METH_VARARGS, "mhsa_forward on the GPU (cuBLAS), host arrays."},   \
    {"cuda_mhsa_backward", cuda_mhsa_backward, METH_VARARGS, "mhsa_backward on the GPU; dqkv +="},              \
    {"cuda_full_attention_backward", cuda_full_attention_backward, METH_VARARGS,                               \
     "full_attention_backward on the GPU; dqkv +="},                                                          \
    {"cuda_linear_attention_forward", cuda_linear_attention_forward, METH_VARARGS,                             \
     "linear_attention_forward on the GPU, host arrays."},                                                    \
    {"cuda_linear_attention_backward", cuda_linear_attention_backward, METH_VARARGS,                           \
     "linear_attention_backward on the GPU; dqkv +="},                                                        \
    {"cuda_softmax_forward", cuda_softmax_forward, METH_VARARGS, "softmax_forward on the GPU, host arrays."},   \
    {"cuda_softmax_backward", cuda_softmax_backward, METH_VARARGS, "softmax_backward on the GPU, host arrays."}, \
    {"cuda_full_attention_forward", cuda_full_attention_forward, METH_VARARGS,                                 \
     "full_attention_forward on the GPU (cuBLAS), host arrays."},
#else
#define UBD_PY_ATTN_CUDA_METHODS
#endif

PyMethodDef ubd_py_attn_methods[] = {
    {"softmax_forward", softmax_forward, METH_VARARGS,
     "softmax_forward(out, inp): softmax over the last axis; in place if out is inp"},
    {"softmax_backward", softmax_backward, METH_VARARGS, "softmax_backward(dinp, dout, out); dinp +="},
    {"mhsa_forward", mhsa_forward, METH_VARARGS,
     "mhsa_forward(out (B,T,C), att (B,NH,T,T), qkv (B,T,3C)); NH from att"},
    {"mhsa_backward", mhsa_backward, METH_VARARGS,
     "mhsa_backward(dqkv|None, datt scratch (B,NH,T,T), dout, qkv, att); dqkv +="},
    {"full_attention_forward", full_attention_forward, METH_VARARGS,
     "full_attention_forward(out (B,NH*HD,L), att (B,NH,L,L), qkv (B,3*NH*HD,L), scale)"},
    {"full_attention_backward", full_attention_backward, METH_VARARGS,
     "full_attention_backward(dqkv|None, datt scratch (B,NH,L,L), dout, qkv, att, scale); dqkv +="},
    {"linear_attention_forward", linear_attention_forward, METH_VARARGS,
     "linear_attention_forward(out, qs, ks (B,NH*HD,L), context (B,NH,HD,HD), qkv (B,3*NH*HD,L), scale)"},
    {"linear_attention_backward", linear_attention_backward, METH_VARARGS,
     "linear_attention_backward(dqkv|None, work (>= 2*B*NH*HD*L + B*NH*HD*HD floats), dout, qkv, qs, ks, "
     "context, scale); dqkv +="},
    UBD_PY_ATTN_CUDA_METHODS
    {NULL, NULL, 0, NULL}};
