/* py_featnet.c — bindings of the feature CNN (csrc/models/featnet.h) and of
 * the softmax cross-entropy op (csrc/xent.h).
 *
 * A model is a PyCapsule owning a ubd_featnet on the backend named at creation
 * (device "cpu" | "cuda" | "auto"). Its parameters, gradients, Adam moments
 * and BatchNorm statistics are reached through tensor_io.h: copies in and out
 * on every device (featnet_get / featnet_set / featnet_zero), and on the CPU
 * also zero-copy NumPy views that keep the capsule alive (featnet_view).
 * Compute calls take host arrays; the model stages them onto its device.
 * A config travels as
 *   (C, H, W, ((OC, KH, KW, SH, SW, PH, PW), ...), n_classes, n_reg, max_batch,
 *    bn_momentum, bn_eps).
 * Labels are integer arrays (converted to int32, a small copy). Compute calls
 * release the GIL; a model used by two threads at once raises RuntimeError. */
#include "handle.h" /* first: Python.h must precede system headers */
#include <limits.h>
#include <string.h>

#include "tensor_io.h"

#include "models/featnet.h"
#include "xent.h"

#define CAPSULE_NAME "ubdiff.FeatureNet"

static void featnet_destroy(void *m) { ubd_featnet_free(m); }
#define ACQUIRE(var, cap) UBD_HANDLE_ACQUIRE(var, cap, CAPSULE_NAME)
#define FEATNET_CALL UBD_HANDLE_CALL

static int parse_config(PyObject *obj, ubd_featnet_config *c) {
    memset(c, 0, sizeof *c);
    PyObject *blocks;
    if (!PyTuple_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "FeatureNet config must be a tuple (C, H, W, blocks, n_classes, n_reg, "
                                         "max_batch, bn_momentum, bn_eps)");
        return -1;
    }
    if (!PyArg_ParseTuple(obj, "iiiOiiiff;FeatureNet config", &c->C, &c->H, &c->W, &blocks, &c->n_classes,
                          &c->n_reg, &c->max_batch, &c->bn_momentum, &c->bn_eps))
        return -1;
    PyObject *seq = ubd_py_tuple(blocks, "FeatureNet config", "blocks");
    if (!seq) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    if (n < 1 || n > UBD_FEATNET_MAX_BLOCKS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "FeatureNet config: 1..%d blocks, got %zd", UBD_FEATNET_MAX_BLOCKS, n);
        return -1;
    }
    c->nblocks = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        ubd_featnet_block *k = &c->blocks[i];
        PyObject *t = PySequence_Tuple(PyTuple_GET_ITEM(seq, i)); /* a copy: PyArg_ParseTuple reads it in place */
        int ok = t && PyArg_ParseTuple(t, "iiiiiii;FeatureNet block (OC, KH, KW, SH, SW, PH, PW)", &k->OC, &k->KH,
                                       &k->KW, &k->SH, &k->SW, &k->PH, &k->PW);
        Py_XDECREF(t);
        if (!ok) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

#define spec_list ubd_py_params_spec

/* featnet_layout(config) -> (params [(name, shape, offset)], stats [(name, shape, offset)])
 * The tables of a config, computed without creating the model. */
static PyObject *featnet_layout(PyObject *self, PyObject *args) {
    PyObject *cfg_obj;
    if (!PyArg_ParseTuple(args, "O", &cfg_obj)) return NULL;
    ubd_featnet_config cfg;
    if (parse_config(cfg_obj, &cfg) < 0) return NULL;
    ubd_params params, stats;
    ubd_params_init(&params);
    ubd_params_init(&stats);
    ubd_status s = ubd_featnet_tables(&params, &stats, &cfg);
    PyObject *res = NULL;
    if (s != UBD_OK)
        ubd_py_raise(s);
    else
        res = Py_BuildValue("(NN)", spec_list(&params), spec_list(&stats));
    ubd_params_free(&params);
    ubd_params_free(&stats);
    return res;
}

/* featnet_create(config, seed, device="auto") -> model handle on that device (initialised) */
static PyObject *featnet_create(PyObject *self, PyObject *args) {
    PyObject *cfg_obj, *seed_obj;
    const char *device = "auto";
    if (!PyArg_ParseTuple(args, "OO|s", &cfg_obj, &seed_obj, &device)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ubd_featnet_config cfg;
    if (parse_config(cfg_obj, &cfg) < 0) return NULL;
    const ubd_backend *be = NULL;
    ubd_status s = ubd_backend_find(device, &be);
    if (s != UBD_OK) return ubd_py_raise(s);
    ubd_featnet *m = NULL;
    Py_BEGIN_ALLOW_THREADS s = ubd_featnet_create(&m, &cfg, be);
    if (s == UBD_OK) s = ubd_featnet_init(m, seed);
    Py_END_ALLOW_THREADS if (s != UBD_OK) {
        ubd_featnet_free(m);
        return ubd_py_raise(s);
    }
    return ubd_handle_new(m, featnet_destroy, CAPSULE_NAME, "FeatureNet");
}

/* featnet_info(h) -> (params spec, stats spec, feature_dim, [(OH, OW) per block], step) */
static PyObject *featnet_info(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    ACQUIRE(h, cap);
    const ubd_featnet *m = h->obj;
    PyObject *sizes = PyList_New(m->cfg.nblocks);
    if (!sizes) return NULL;
    for (int l = 0; l < m->cfg.nblocks; l++) PyList_SET_ITEM(sizes, l, Py_BuildValue("(ii)", m->OH[l], m->OW[l]));
    return Py_BuildValue("(NNiNL)", spec_list(&m->params), spec_list(&m->stats), m->F, sizes, m->step);
}

/* featnet_device(h) -> "cpu" | "cuda" */
static PyObject *featnet_device(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    if (!PyCapsule_IsValid(cap, CAPSULE_NAME)) return PyErr_Format(PyExc_TypeError, "expected a FeatureNet model handle");
    ubd_featnet *m = ((ubd_handle *)PyCapsule_GetPointer(cap, CAPSULE_NAME))->obj;
    return PyUnicode_FromString(m->be->name);
}

/* A write of the weights or statistics through set / zero / allreduce forgets the saved forward. */
static void forget(void *m) { ubd_featnet_forget_forward(m); }

/* The tensor (kind, name or None) of a model: kind param | grad | m | v | stats. */
static int find_tensor(ubd_py_tensor *t, ubd_featnet *m, const char *kind, PyObject *name) {
    static const char *kinds[] = {"param", "grad", "m", "v"};
    if (strcmp(kind, "stats") == 0)
        return ubd_py_tensor_forgets(
            t, ubd_py_tensor_find(t, &m->stats, UBD_BUF_PARAM, name, "FeatureNet", "statistics"), forget, m);
    for (int k = 0; k < 4; k++)
        if (strcmp(kind, kinds[k]) == 0)
            return ubd_py_tensor_forgets(
                t, ubd_py_tensor_find(t, &m->params, (ubd_buf_kind)k, name, "FeatureNet", "parameter"), forget, m);
    PyErr_Format(PyExc_ValueError, "FeatureNet: kind must be param, grad, m, v or stats; got '%s'", kind);
    return -1;
}

/* featnet_view(h, kind, name=None) -> zero-copy view of one tensor (or the
 * whole flat buffer when name is None); CPU models only. */
static PyObject *featnet_view(PyObject *self, PyObject *args) {
    PyObject *cap, *name_obj = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &cap, &kind, &name_obj)) return NULL;
    /* views may be taken while the model runs: no busy check here */
    if (!PyCapsule_IsValid(cap, CAPSULE_NAME)) return PyErr_Format(PyExc_TypeError, "expected a FeatureNet model handle");
    ubd_featnet *m = ((ubd_handle *)PyCapsule_GetPointer(cap, CAPSULE_NAME))->obj;
    ubd_py_tensor t;
    if (find_tensor(&t, m, kind, name_obj) < 0) return NULL;
    return ubd_py_tensor_view(cap, &t, "FeatureNet");
}

/* featnet_get / featnet_set / featnet_zero (model, kind, name[, value]): tensor_io.h */
UBD_PY_TENSOR_ACCESSORS(featnet)

/* featnet_set_step(h, step): the AdamW step count (restored from a checkpoint) */
static PyObject *featnet_set_step(PyObject *self, PyObject *args) {
    PyObject *cap;
    long long step;
    if (!PyArg_ParseTuple(args, "OL", &cap, &step)) return NULL;
    ACQUIRE(h, cap);
    if (step < 0) {
        PyErr_Format(PyExc_ValueError, "featnet_set_step: step must be >= 0, got %lld", step);
        return NULL;
    }
    ((ubd_featnet *)h->obj)->step = step;
    Py_RETURN_NONE;
}

#define OUTSIDE_MODEL(m, ...) UBD_PY_OUTSIDE_MODEL(&(m)->params, &(m)->stats, __VA_ARGS__)

/* Checks x against the model: (B, C, H, W) with 1 <= B <= max_batch. */
static int check_input(const ubd_featnet *m, const ubd_f32 *x, const char *fn) {
    const ubd_featnet_config *c = &m->cfg;
    if (ubd_py_expect(x, fn, "x", 4, -1LL, (long long)c->C, (long long)c->H, (long long)c->W) < 0) return -1;
    if (x->shape[0] < 1 || x->shape[0] > c->max_batch) {
        PyErr_Format(PyExc_ValueError, "%s: batch of %zd outside [1, max_batch = %d]", fn, (Py_ssize_t)x->shape[0],
                     c->max_batch);
        return -1;
    }
    return 0;
}

/* featnet_forward(h, x (B,C,H,W), feat (B,F)|None, logits (B,K)|None, reg (B,R)|None, train) */
static PyObject *featnet_forward(PyObject *self, PyObject *args) {
    PyObject *cap, *xo, *fo, *lo, *ro;
    int train;
    if (!PyArg_ParseTuple(args, "OOOOOp", &cap, &xo, &fo, &lo, &ro, &train)) return NULL;
    ACQUIRE(h, cap);
    ubd_featnet *m = h->obj;
    UBD_PY_IN(x, xo);
    UBD_PY_OPT_OUT(feat, fo);
    UBD_PY_OPT_OUT(logits, lo);
    UBD_PY_OPT_OUT(reg, ro);
    if (check_input(m, &x, __func__) < 0) return NULL;
    long long B = x.shape[0];
    UBD_PY_EXPECT_OPT(feat, 2, B, (long long)m->F);
    UBD_PY_EXPECT_OPT(logits, 2, B, (long long)m->cfg.n_classes);
    if (reg.data && m->cfg.n_reg == 0) {
        PyErr_SetString(PyExc_ValueError, "featnet_forward: reg given but the model has no regression head");
        return NULL;
    }
    UBD_PY_EXPECT_OPT(reg, 2, B, (long long)m->cfg.n_reg);
    UBD_PY_NO_OVERLAP(&feat, &logits, &reg, &x);
    OUTSIDE_MODEL(m, &feat, &logits, &reg, &x);
    FEATNET_CALL(h, ubd_featnet_forward(m, feat.data, logits.data, reg.data, x.data, (int)B, train));
    Py_RETURN_NONE;
}

/* featnet_backward(h, x, dfeat|None, dlogits|None, dreg|None): grads += */
static PyObject *featnet_backward(PyObject *self, PyObject *args) {
    PyObject *cap, *xo, *fo, *lo, *ro;
    if (!PyArg_ParseTuple(args, "OOOOO", &cap, &xo, &fo, &lo, &ro)) return NULL;
    ACQUIRE(h, cap);
    ubd_featnet *m = h->obj;
    UBD_PY_IN(x, xo);
    UBD_PY_OPT_IN(dfeat, fo);
    UBD_PY_OPT_IN(dlogits, lo);
    UBD_PY_OPT_IN(dreg, ro);
    if (check_input(m, &x, __func__) < 0) return NULL;
    long long B = x.shape[0];
    UBD_PY_EXPECT_OPT(dfeat, 2, B, (long long)m->F);
    UBD_PY_EXPECT_OPT(dlogits, 2, B, (long long)m->cfg.n_classes);
    if (dreg.data && m->cfg.n_reg == 0) {
        PyErr_SetString(PyExc_ValueError, "featnet_backward: dreg given but the model has no regression head");
        return NULL;
    }
    UBD_PY_EXPECT_OPT(dreg, 2, B, (long long)m->cfg.n_reg);
    OUTSIDE_MODEL(m, &x, &dfeat, &dlogits, &dreg);
    FEATNET_CALL(h, ubd_featnet_backward(m, dfeat.data, dlogits.data, dreg.data, x.data, (int)B));
    Py_RETURN_NONE;
}

/* An integer array of `n` labels as a new int32 C array object (or NULL with
 * TypeError/ValueError): always a private copy, so it cannot alias an output. */
static PyArrayObject *labels_i32(PyObject *obj, const char *fn, npy_intp n) {
    PyArrayObject *src = (PyArrayObject *)PyArray_FROM_O(obj);
    if (!src) return NULL;
    if (!PyArray_ISINTEGER(src) && !PyArray_ISBOOL(src)) {
        PyErr_Format(PyExc_TypeError, "%s: labels must be an integer array, got dtype %s", fn,
                     PyArray_DESCR(src)->typeobj->tp_name);
        Py_DECREF(src);
        return NULL;
    }
    if (PyArray_NDIM(src) != 1 || PyArray_DIM(src, 0) != n) {
        PyErr_Format(PyExc_ValueError, "%s: labels must have shape (%zd,), got %d dims", fn, (Py_ssize_t)n,
                     PyArray_NDIM(src));
        Py_DECREF(src);
        return NULL;
    }
    /* via int64 so that a label too large for int32 is an error, not a wrapped value */
    PyArrayObject *wide = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)src, NPY_INT64,
                                                            NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(src);
    if (!wide) return NULL;
    const long long *w = PyArray_DATA(wide);
    for (npy_intp i = 0; i < n; i++)
        if (w[i] < INT_MIN || w[i] > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: label %lld of sample %zd does not fit an int32", fn, w[i],
                         (Py_ssize_t)i);
            Py_DECREF(wide);
            return NULL;
        }
    PyArrayObject *out = (PyArrayObject *)PyArray_FROM_OTF(
        (PyObject *)wide, NPY_INT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST | NPY_ARRAY_ENSURECOPY);
    Py_DECREF(wide);
    return out;
}

/* The shared part of train_step and accumulate: x (B,C,H,W), labels (B)
 * integers, reg_target (B,R) or None. Fills the borrowed x, reg_target and a
 * new int32 label array (the caller releases it). 0 ok / -1 raised. */
static int step_inputs(ubd_featnet *m, PyObject *xo, PyObject *lo, PyObject *ro, const char *fn, ubd_f32 *x,
                       ubd_f32 *reg_target, PyArrayObject **lab) {
    if (ubd_py_f32(xo, "x", 0, x) < 0) return -1;
    if (ubd_py_f32_opt(ro, "reg_target", 0, reg_target) < 0) return -1;
    if (check_input(m, x, fn) < 0) return -1;
    long long B = x->shape[0];
    if (reg_target->data && ubd_py_expect(reg_target, fn, "reg_target", 2, B, (long long)m->cfg.n_reg) < 0) return -1;
    const ubd_f32 *inputs[2] = {x, reg_target};
    if (ubd_py_outside_model(fn, &m->params, &m->stats, 2, inputs) < 0) return -1;
    *lab = labels_i32(lo, fn, (npy_intp)B);
    return *lab ? 0 : -1;
}

/* featnet_train_step(h, x, labels (B) int, reg_target (B,R)|None, lr, beta1, beta2, eps, weight_decay, w_reg)
 * -> (loss, xent, mse, accuracy) */
static PyObject *featnet_train_step(PyObject *self, PyObject *args) {
    PyObject *cap, *xo, *lo, *ro;
    ubd_featnet_hparams hp;
    if (!PyArg_ParseTuple(args, "OOOOffffff", &cap, &xo, &lo, &ro, &hp.lr, &hp.beta1, &hp.beta2, &hp.eps,
                          &hp.weight_decay, &hp.w_reg))
        return NULL;
    ACQUIRE(h, cap);
    ubd_featnet *m = h->obj;
    ubd_f32 x, reg_target;
    PyArrayObject *lab = NULL;
    if (step_inputs(m, xo, lo, ro, __func__, &x, &reg_target, &lab) < 0) return NULL;
    float out[4];
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_featnet_train_step(m, out, x.data, (const int *)PyArray_DATA(lab), reg_target.data,
                                                      (int)x.shape[0], hp);
    Py_END_ALLOW_THREADS Py_DECREF(lab);
    if (s != UBD_OK) return ubd_py_raise(s);
    return Py_BuildValue("(dddd)", (double)out[0], (double)out[1], (double)out[2], (double)out[3]);
}

/* featnet_accumulate(h, x, labels, reg_target|None, w_reg) -> (loss, xent, mse, accuracy); grads += */
static PyObject *featnet_accumulate(PyObject *self, PyObject *args) {
    PyObject *cap, *xo, *lo, *ro;
    float w_reg;
    if (!PyArg_ParseTuple(args, "OOOOf", &cap, &xo, &lo, &ro, &w_reg)) return NULL;
    ACQUIRE(h, cap);
    ubd_featnet *m = h->obj;
    ubd_f32 x, reg_target;
    PyArrayObject *lab = NULL;
    if (step_inputs(m, xo, lo, ro, __func__, &x, &reg_target, &lab) < 0) return NULL;
    float out[4];
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_featnet_accumulate(m, out, x.data, (const int *)PyArray_DATA(lab), reg_target.data,
                                                      (int)x.shape[0], w_reg);
    Py_END_ALLOW_THREADS Py_DECREF(lab);
    if (s != UBD_OK) return ubd_py_raise(s);
    return Py_BuildValue("(dddd)", (double)out[0], (double)out[1], (double)out[2], (double)out[3]);
}

/* featnet_apply(h, lr, beta1, beta2, eps, weight_decay): one AdamW step with the gradients as they are */
static PyObject *featnet_apply(PyObject *self, PyObject *args) {
    PyObject *cap;
    ubd_featnet_hparams hp = {0};
    if (!PyArg_ParseTuple(args, "Offfff", &cap, &hp.lr, &hp.beta1, &hp.beta2, &hp.eps, &hp.weight_decay)) return NULL;
    ACQUIRE(h, cap);
    FEATNET_CALL(h, ubd_featnet_apply(h->obj, hp));
    Py_RETURN_NONE;
}

/* xent_forward(loss (1), probs (B,K), logits (B,K), labels (B) int) -> number of correct arg-maxes */
static PyObject *xent_forward(PyObject *self, PyObject *args) {
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
    PyArrayObject *lab = labels_i32(bo, __func__, (npy_intp)B);
    if (!lab) return NULL;
    int correct = 0;
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_cpu_xent_forward(loss.data, probs.data, &correct, logits.data,
                                                    (const int *)PyArray_DATA(lab), (int)B, (int)K);
    Py_END_ALLOW_THREADS Py_DECREF(lab);
    if (s != UBD_OK) return ubd_py_raise(s);
    return PyLong_FromLong(correct);
}

/* xent_backward(dlogits (B,K) +=, probs (B,K), labels (B) int, scale) */
static PyObject *xent_backward(PyObject *self, PyObject *args) {
    PyObject *dlo, *po, *bo;
    float scale = 1.0f;
    if (!PyArg_ParseTuple(args, "OOO|f", &dlo, &po, &bo, &scale)) return NULL;
    UBD_PY_OUT(dlogits, dlo);
    UBD_PY_IN(probs, po);
    UBD_PY_EXPECT(probs, 2, -1LL, -1LL);
    long long B = probs.shape[0], K = probs.shape[1];
    UBD_PY_EXPECT(dlogits, 2, B, K);
    UBD_PY_NO_OVERLAP(&dlogits, &probs);
    PyArrayObject *lab = labels_i32(bo, __func__, (npy_intp)B);
    if (!lab) return NULL;
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_cpu_xent_backward(dlogits.data, probs.data, (const int *)PyArray_DATA(lab), (int)B,
                                                     (int)K, scale);
    Py_END_ALLOW_THREADS Py_DECREF(lab);
    if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

PyMethodDef ubd_py_featnet_methods[] = {
    {"featnet_layout", featnet_layout, METH_VARARGS, "featnet_layout(config) -> (param spec, stats spec)"},
    {"featnet_create", featnet_create, METH_VARARGS,
     "featnet_create(config, seed, device='auto') -> FeatureNet handle on 'cpu' or 'cuda'"},
    {"featnet_device", featnet_device, METH_VARARGS, "featnet_device(h) -> 'cpu' | 'cuda'"},
    {"featnet_view", featnet_view, METH_VARARGS, "featnet_view(h, kind, name=None) -> zero-copy view (CPU only)"},
    {"featnet_get", featnet_get, METH_VARARGS, "featnet_get(h, kind, name=None) -> host copy"},
    {"featnet_set", featnet_set, METH_VARARGS, "featnet_set(h, kind, name, value): copy value in"},
    {"featnet_zero", featnet_zero, METH_VARARGS, "featnet_zero(h, kind, name=None): set to zero"},
    {"featnet_info", featnet_info, METH_VARARGS,
     "featnet_info(h) -> (param spec, stats spec, feature_dim, [(OH, OW)], step)"},
    {"featnet_set_step", featnet_set_step, METH_VARARGS, "featnet_set_step(h, step)"},
    {"featnet_forward", featnet_forward, METH_VARARGS, "featnet_forward(h, x, feat, logits, reg, train)"},
    {"featnet_backward", featnet_backward, METH_VARARGS, "featnet_backward(h, x, dfeat, dlogits, dreg)"},
    {"featnet_train_step", featnet_train_step, METH_VARARGS,
     "featnet_train_step(h, x, labels, reg_target, lr, beta1, beta2, eps, weight_decay, w_reg) -> "
     "(loss, xent, mse, accuracy)"},
    {"featnet_accumulate", featnet_accumulate, METH_VARARGS,
     "featnet_accumulate(h, x, labels, reg_target, w_reg) -> (loss, xent, mse, accuracy); gradients +="},
    {"featnet_apply", featnet_apply, METH_VARARGS,
     "featnet_apply(h, lr, beta1, beta2, eps, weight_decay): one AdamW step with the current gradients"},
    {"xent_forward", xent_forward, METH_VARARGS, "xent_forward(loss, probs, logits, labels) -> correct"},
    {"xent_backward", xent_backward, METH_VARARGS, "xent_backward(dlogits, probs, labels, scale=1)"},
    {NULL, NULL, 0, NULL}};
