/* py_cuda.c — CUDA presence, and host-roundtrip wrappers that run a CUDA op on
 * NumPy arrays (copy in, run, copy back) so tests can compare every CUDA op
 * with its CPU twin. In a CPU-only build only cuda_device_count() exists. */
#include "roundtrip.h" /* first: Python.h must precede system headers */
#include "../ops.h"

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
    {"cuda_curand_philox_uniform", cuda_curand_philox_uniform, METH_VARARGS, "cuRAND's Philox uniforms."},
    {NULL, NULL, 0, NULL}};

#else /* CPU-only build */

static PyObject *py_device_count(PyObject *self, PyObject *args) { return PyLong_FromLong(0); }

PyMethodDef ubd_py_cuda_methods[] = {
    {"cuda_device_count", py_device_count, METH_NOARGS, "Always 0: this build has no CUDA."},
    {NULL, NULL, 0, NULL}};
#endif
