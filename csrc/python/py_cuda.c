/* py_cuda.c — CUDA presence, and host-roundtrip wrappers that run a CUDA op on
 * NumPy arrays (copy in, run, copy back) so tests can compare every CUDA op
 * with its CPU twin. In a CPU-only build only cuda_device_count() exists. */
#include "roundtrip.h" /* first: Python.h must precede system headers */
#include <limits.h>

#include "../ops.h"
#include "../xent.h"

#ifdef UBDIFF_WITH_CUDA
#include "../cuda_api.h"

static PyObject *py_device_count(PyObject *self, PyObject *args) { return PyLong_FromLong(ubd_cuda_device_count()); }

static PyObject *py_device_name(PyObject *self, PyObject *args) {
    int dev = 0;
    if (!PyArg_ParseTuple(args, "|i", &dev)) return NULL;
    char buf[256];
    UBD_PY_CALL(ubd_cuda_device_name(dev, buf, sizeof buf));
    return PyUnicode_FromString(buf);
}

static PyObject *py_runtime_version(PyObject *self, PyObject *args) {
    int v = 0;
    UBD_PY_CALL(ubd_cuda_runtime_version(&v));
    return PyLong_FromLong(v);
}

static PyObject *cuda_act_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i;
    int kind;
    float param = 0.0f;
    if (!PyArg_ParseTuple(args, "OOi|f", &o, &i, &kind, &param)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_SAME_SIZE(out, inp);
    UBD_PY_NO_OVERLAP_INPLACE(&out, &inp);
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, out, 1);
    UBD_RT_PUSH(rt, inp, 0);
    return ubd_rt_done(&rt, ubd_cuda_act_forward(rt.dev[0], rt.dev[1], (size_t)inp.size, (ubd_act)kind, param));
}

static PyObject *cuda_act_backward(PyObject *self, PyObject *args) {
    PyObject *di, *d, *i;
    int kind;
    float param = 0.0f;
    if (!PyArg_ParseTuple(args, "OOOi|f", &di, &d, &i, &kind, &param)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_SAME_SIZE(dinp, inp);
    UBD_PY_SAME_SIZE(dout, inp);
    UBD_PY_NO_OVERLAP_INPLACE(&dinp, &dout, &inp);
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, dinp, 1);
    UBD_RT_PUSH(rt, dout, 0);
    UBD_RT_PUSH(rt, inp, 0);
    return ubd_rt_done(&rt, ubd_cuda_act_backward(rt.dev[0], rt.dev[1], rt.dev[2], (size_t)inp.size, (ubd_act)kind,
                                                param));
}

static PyObject *cuda_adam_update(PyObject *self, PyObject *args) {
    PyObject *po, *mo, *vo, *go;
    long long t;
    ubd_adam_hparams hp;
    if (!PyArg_ParseTuple(args, "OOOOLfffffp", &po, &mo, &vo, &go, &t, &hp.lr, &hp.beta1, &hp.beta2, &hp.eps,
                          &hp.weight_decay, &hp.decoupled))
        return NULL;
    UBD_PY_OUT(param, po);
    UBD_PY_OUT(m, mo);
    UBD_PY_OUT(v, vo);
    UBD_PY_IN(grad, go);
    UBD_PY_SAME_SIZE(m, param);
    UBD_PY_SAME_SIZE(v, param);
    UBD_PY_SAME_SIZE(grad, param);
    UBD_PY_NO_OVERLAP_INPLACE(&param, &m, &v, &grad); /* grad may be param, m or v */
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, param, 1);
    UBD_RT_PUSH(rt, m, 1);
    UBD_RT_PUSH(rt, v, 1);
    UBD_RT_PUSH(rt, grad, 0);
    return ubd_rt_done(&rt, ubd_cuda_adam_update(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], (size_t)param.size, hp, t));
}

static PyObject *cuda_rand(PyObject *args, int normal) {
    PyObject *o, *seed_obj, *stream_obj = NULL, *offset_obj = NULL;
    if (!PyArg_ParseTuple(args, "OO|OO", &o, &seed_obj, &stream_obj, &offset_obj)) return NULL;
    const char *fn = normal ? "cuda_rand_normal" : "cuda_rand_uniform";
    unsigned long long seed, stream = 0, offset = 0;
    if (ubd_py_u64(seed_obj, fn, "seed", &seed) < 0) return NULL;
    if (stream_obj && ubd_py_u64(stream_obj, fn, "stream", &stream) < 0) return NULL;
    if (offset_obj && ubd_py_u64(offset_obj, fn, "offset", &offset) < 0) return NULL;
    UBD_PY_OUT(out, o);
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, out, 1);
    size_t n = (size_t)out.size;
    return ubd_rt_done(&rt, normal ? ubd_cuda_rand_normal(rt.dev[0], n, seed, stream, offset)
                                 : ubd_cuda_rand_uniform(rt.dev[0], n, seed, stream, offset));
}
static PyObject *cuda_rand_uniform(PyObject *self, PyObject *args) { return cuda_rand(args, 0); }
static PyObject *cuda_rand_normal(PyObject *self, PyObject *args) { return cuda_rand(args, 1); }

static PyObject *cuda_linear_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i, *w, *b;
    if (!PyArg_ParseTuple(args, "OOOO", &o, &i, &w, &b)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    UBD_PY_OPT_IN(bias, b);
    UBD_PY_EXPECT(inp, 2, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1];
    UBD_PY_EXPECT(weight, 2, -1LL, C);
    long long OC = weight.shape[0];
    UBD_PY_EXPECT(out, 2, B, OC);
    UBD_PY_EXPECT_OPT(bias, 1, OC);
    UBD_PY_NO_OVERLAP(&out, &inp, &weight, &bias);
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, out, 1);
    UBD_RT_PUSH(rt, inp, 0);
    UBD_RT_PUSH(rt, weight, 0);
    UBD_RT_PUSH(rt, bias, 0);
    return ubd_rt_done(&rt, ubd_cuda_linear_forward(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], (int)B, (int)C, (int)OC));
}

/* cuda_linear_backward(dinp|None, dweight|None, dbias|None, dout (B,OC), inp (B,C), weight (OC,C));
 * gradients += */
static PyObject *cuda_linear_backward(PyObject *self, PyObject *args) {
    PyObject *di, *dw, *db, *d, *i, *w;
    if (!PyArg_ParseTuple(args, "OOOOOO", &di, &dw, &db, &d, &i, &w)) return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dweight, dw);
    UBD_PY_OPT_OUT(dbias, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    UBD_PY_EXPECT(inp, 2, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1];
    UBD_PY_EXPECT(weight, 2, -1LL, C);
    long long OC = weight.shape[0];
    UBD_PY_EXPECT(dout, 2, B, OC);
    UBD_PY_EXPECT_OPT(dinp, 2, B, C);
    UBD_PY_EXPECT_OPT(dweight, 2, OC, C);
    UBD_PY_EXPECT_OPT(dbias, 1, OC);
    UBD_PY_NO_OVERLAP(&dinp, &dweight, &dbias, &dout, &inp, &weight);
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, dinp, 1);
    UBD_RT_PUSH(rt, dweight, 1);
    UBD_RT_PUSH(rt, dbias, 1);
    UBD_RT_PUSH(rt, dout, 0);
    UBD_RT_PUSH(rt, inp, 0);
    UBD_RT_PUSH(rt, weight, 0);
    return ubd_rt_done(&rt, ubd_cuda_linear_backward(rt.dev[0], rt.dev[1], rt.dev[2], rt.dev[3], rt.dev[4], rt.dev[5],
                                                     (int)B, (int)C, (int)OC));
}

/* ---- losses and norms: the scalar result comes back through a device float ---- */

typedef ubd_status (*loss_fwd_fn)(float *, const float *, const float *, size_t);
typedef ubd_status (*loss_bwd_fn)(float *, const float *, const float *, size_t, float);

/* cuda_<l1|mse>_forward(pred, target) -> loss */
static PyObject *loss_forward(PyObject *args, loss_fwd_fn fn) {
    PyObject *p, *t;
    if (!PyArg_ParseTuple(args, "OO", &p, &t)) return NULL;
    UBD_PY_IN(pred, p);
    UBD_PY_IN(target, t);
    UBD_PY_SAME_SIZE(target, pred);
    float loss = 0.0f;
    ubd_rt rt = {0};
    UBD_RT_PUSH_RAW(rt, &loss, sizeof loss, 1);
    UBD_RT_PUSH(rt, pred, 0);
    UBD_RT_PUSH(rt, target, 0);
    ubd_status s = ubd_rt_finish(&rt, fn(rt.dev[0], rt.dev[1], rt.dev[2], (size_t)pred.size));
    if (s != UBD_OK) return ubd_py_raise(s);
    return PyFloat_FromDouble(loss);
}

/* cuda_<l1|mse>_backward(dpred, pred, target, scale=1); dpred += */
static PyObject *loss_backward(PyObject *args, loss_bwd_fn fn) {
    PyObject *d, *p, *t;
    float scale = 1.0f;
    if (!PyArg_ParseTuple(args, "OOO|f", &d, &p, &t, &scale)) return NULL;
    UBD_PY_OUT(dpred, d);
    UBD_PY_IN(pred, p);
    UBD_PY_IN(target, t);
    UBD_PY_SAME_SIZE(target, pred);
    UBD_PY_SAME_SIZE(dpred, pred);
    UBD_PY_NO_OVERLAP_INPLACE(&dpred, &pred, &target);
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, dpred, 1);
    UBD_RT_PUSH(rt, pred, 0);
    UBD_RT_PUSH(rt, target, 0);
    return ubd_rt_done(&rt, fn(rt.dev[0], rt.dev[1], rt.dev[2], (size_t)pred.size, scale));
}

static PyObject *cuda_l1_forward(PyObject *self, PyObject *args) { return loss_forward(args, ubd_cuda_l1_forward); }
static PyObject *cuda_mse_forward(PyObject *self, PyObject *args) { return loss_forward(args, ubd_cuda_mse_forward); }
static PyObject *cuda_l1_backward(PyObject *self, PyObject *args) {
    return loss_backward(args, ubd_cuda_l1_backward);
}
static PyObject *cuda_mse_backward(PyObject *self, PyObject *args) {
    return loss_backward(args, ubd_cuda_mse_backward);
}

/* cuda_grad_norm(grad) -> L2 norm */
static PyObject *cuda_grad_norm(PyObject *self, PyObject *args) {
    PyObject *go;
    if (!PyArg_ParseTuple(args, "O", &go)) return NULL;
    UBD_PY_IN(grad, go);
    float norm = -1.0f;
    ubd_rt rt = {0};
    UBD_RT_PUSH_RAW(rt, &norm, sizeof norm, 1);
    UBD_RT_PUSH(rt, grad, 0);
    ubd_status s = ubd_rt_finish(&rt, ubd_cuda_grad_norm(rt.dev[0], rt.dev[1], (size_t)grad.size));
    if (s != UBD_OK) return ubd_py_raise(s);
    return PyFloat_FromDouble(norm);
}

/* cuda_clip_grad_norm(grad, max_norm) -> norm before clipping; grad scaled in place */
static PyObject *cuda_clip_grad_norm(PyObject *self, PyObject *args) {
    PyObject *go;
    float max_norm;
    if (!PyArg_ParseTuple(args, "Of", &go, &max_norm)) return NULL;
    UBD_PY_OUT(grad, go);
    float norm = -1.0f;
    ubd_rt rt = {0};
    UBD_RT_PUSH_RAW(rt, &norm, sizeof norm, 1);
    UBD_RT_PUSH(rt, grad, 1);
    ubd_status s = ubd_rt_finish(&rt, ubd_cuda_clip_grad_norm(rt.dev[0], rt.dev[1], (size_t)grad.size, max_norm));
    if (s != UBD_OK) return ubd_py_raise(s);
    return PyFloat_FromDouble(norm);
}

/* cuda_ema_update(ema, param, decay) */
static PyObject *cuda_ema_update(PyObject *self, PyObject *args) {
    PyObject *eo, *po;
    float decay;
    if (!PyArg_ParseTuple(args, "OOf", &eo, &po, &decay)) return NULL;
    UBD_PY_OUT(ema, eo);
    UBD_PY_IN(param, po);
    UBD_PY_SAME_SIZE(param, ema);
    UBD_PY_NO_OVERLAP_INPLACE(&ema, &param);
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, ema, 1);
    UBD_RT_PUSH(rt, param, 0);
    return ubd_rt_done(&rt, ubd_cuda_ema_update(rt.dev[0], rt.dev[1], (size_t)ema.size, decay));
}

/* ---- softmax cross-entropy ---------------------------------------------------- */

/* labels: a 1-D C-contiguous int32 array of length n (this test binding
 * converts nothing, so what reaches the device is exactly what was given). */
static int labels_i32(PyObject *obj, const char *fn, npy_intp n, int **data) {
    if (!PyArray_Check(obj) || PyArray_TYPE((PyArrayObject *)obj) != NPY_INT32 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)obj) || !PyArray_ISNOTSWAPPED((PyArrayObject *)obj)) {
        PyErr_Format(PyExc_TypeError, "%s: labels must be a C-contiguous native int32 array, got %s", fn,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_NDIM(a) != 1 || PyArray_DIM(a, 0) != n) {
        PyErr_Format(PyExc_ValueError, "%s: labels must have shape (%zd,), got %d dims of first size %zd", fn,
                     (Py_ssize_t)n, PyArray_NDIM(a), (Py_ssize_t)(PyArray_NDIM(a) ? PyArray_DIM(a, 0) : 0));
        return -1;
    }
    *data = (int *)PyArray_DATA(a);
    return 0;
}

/* cuda_xent_forward(loss (1), probs (B,K), logits (B,K), labels (B) int32) -> number of correct arg-maxes */
static PyObject *cuda_xent_forward(PyObject *self, PyObject *args) {
    PyObject *lo, *po, *go, *bo;
    if (!PyArg_ParseTuple(args, "OOOO", &lo, &po, &go, &bo)) return NULL;
    UBD_PY_OUT(loss, lo);
    UBD_PY_OUT(probs, po);
    UBD_PY_IN(logits, go);
    UBD_PY_EXPECT(logits, 2, -1LL, -1LL);
    long long B = logits.shape[0], K = logits.shape[1];
    UBD_PY_EXPECT(probs, 2, B, K);
    UBD_PY_EXPECT(loss, 1, 1LL);
    UBD_PY_NO_OVERLAP(&loss, &probs, &logits);
    if (B > INT_MAX || K > INT_MAX) return PyErr_Format(PyExc_ValueError, "%s: logits too large", __func__);
    int *labels;
    if (labels_i32(bo, __func__, (npy_intp)B, &labels) < 0) return NULL;
    int correct = -1;
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, loss, 1);
    UBD_RT_PUSH(rt, probs, 1);
    UBD_RT_PUSH(rt, logits, 0);
    UBD_RT_PUSH_RAW(rt, labels, (size_t)B * sizeof(int), 0);
    UBD_RT_PUSH_RAW(rt, &correct, sizeof correct, 1);
    ubd_status s = ubd_rt_finish(&rt, ubd_cuda_xent_forward(rt.dev[0], rt.dev[1], (int *)rt.dev[4], rt.dev[2],
                                                            (const int *)rt.dev[3], (int)B, (int)K));
    if (s != UBD_OK) return ubd_py_raise(s);
    return PyLong_FromLong(correct);
}

/* cuda_xent_backward(dlogits (B,K) +=, probs (B,K), labels (B) int32, scale=1) */
static PyObject *cuda_xent_backward(PyObject *self, PyObject *args) {
    PyObject *dlo, *po, *bo;
    float scale = 1.0f;
    if (!PyArg_ParseTuple(args, "OOO|f", &dlo, &po, &bo, &scale)) return NULL;
    UBD_PY_OUT(dlogits, dlo);
    UBD_PY_IN(probs, po);
    UBD_PY_EXPECT(probs, 2, -1LL, -1LL);
    long long B = probs.shape[0], K = probs.shape[1];
    UBD_PY_EXPECT(dlogits, 2, B, K);
    UBD_PY_NO_OVERLAP(&dlogits, &probs);
    if (B > INT_MAX || K > INT_MAX) return PyErr_Format(PyExc_ValueError, "%s: probs too large", __func__);
    int *labels;
    if (labels_i32(bo, __func__, (npy_intp)B, &labels) < 0) return NULL;
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, dlogits, 1);
    UBD_RT_PUSH(rt, probs, 0);
    UBD_RT_PUSH_RAW(rt, labels, (size_t)B * sizeof(int), 0);
    return ubd_rt_done(&rt, ubd_cuda_xent_backward(rt.dev[0], rt.dev[1], (const int *)rt.dev[2], (int)B, (int)K,
                                                   scale));
}

static PyObject *cuda_curand_philox_uniform(PyObject *self, PyObject *args) {
    PyObject *o, *seed_obj;
    if (!PyArg_ParseTuple(args, "OO", &o, &seed_obj)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    UBD_PY_OUT(out, o);
    ubd_rt rt = {0};
    UBD_RT_PUSH(rt, out, 1);
    return ubd_rt_done(&rt, ubd_cuda_curand_philox_uniform(rt.dev[0], (size_t)out.size, seed));
}

PyMethodDef ubd_py_cuda_methods[] = {
    {"cuda_device_count", py_device_count, METH_NOARGS, "Number of CUDA devices (0 without driver/GPU)."},
    {"cuda_device_name", py_device_name, METH_VARARGS, "cuda_device_name(dev=0)"},
    {"cuda_runtime_version", py_runtime_version, METH_NOARGS, "CUDA runtime version number."},
    {"cuda_act_forward", cuda_act_forward, METH_VARARGS, "act_forward on the GPU, host arrays in/out."},
    {"cuda_act_backward", cuda_act_backward, METH_VARARGS, "act_backward on the GPU, host arrays in/out."},
    {"cuda_adam_update", cuda_adam_update, METH_VARARGS, "adam_update on the GPU, host arrays in/out."},
    {"cuda_rand_uniform", cuda_rand_uniform, METH_VARARGS, "rand_uniform on the GPU, host array out."},
    {"cuda_rand_normal", cuda_rand_normal, METH_VARARGS, "rand_normal on the GPU, host array out."},
    {"cuda_linear_forward", cuda_linear_forward, METH_VARARGS, "linear_forward on the GPU (cuBLAS)."},
    {"cuda_linear_backward", cuda_linear_backward, METH_VARARGS, "linear_backward on the GPU (cuBLAS); gradients +="},
    {"cuda_l1_forward", cuda_l1_forward, METH_VARARGS, "l1_forward on the GPU -> loss"},
    {"cuda_l1_backward", cuda_l1_backward, METH_VARARGS, "l1_backward on the GPU; dpred +="},
    {"cuda_mse_forward", cuda_mse_forward, METH_VARARGS, "mse_forward on the GPU -> loss"},
    {"cuda_mse_backward", cuda_mse_backward, METH_VARARGS, "mse_backward on the GPU; dpred +="},
    {"cuda_grad_norm", cuda_grad_norm, METH_VARARGS, "grad_norm on the GPU -> L2 norm"},
    {"cuda_clip_grad_norm", cuda_clip_grad_norm, METH_VARARGS, "clip_grad_norm on the GPU -> norm before"},
    {"cuda_ema_update", cuda_ema_update, METH_VARARGS, "ema_update on the GPU, host arrays in/out."},
    {"cuda_xent_forward", cuda_xent_forward, METH_VARARGS,
     "xent_forward(loss (1), probs, logits, labels int32) on the GPU -> correct count"},
    {"cuda_xent_backward", cuda_xent_backward, METH_VARARGS, "xent_backward on the GPU; dlogits +="},
    {"cuda_curand_philox_uniform", cuda_curand_philox_uniform, METH_VARARGS, "cuRAND's Philox uniforms."},
    {NULL, NULL, 0, NULL}};

#else /* CPU-only build */

static PyObject *py_device_count(PyObject *self, PyObject *args) { return PyLong_FromLong(0); }

PyMethodDef ubd_py_cuda_methods[] = {
    {"cuda_device_count", py_device_count, METH_NOARGS, "Always 0: this build has no CUDA."},
    {NULL, NULL, 0, NULL}};
#endif
