/* py_models.c — bindings of models and their training steps.
 *
 * Co-latent autoencoder (csrc/models/autoencoder.h), functions prefixed ae_.
 * A model is a capsule; its tensors are zero-copy NumPy views whose base is
 * the capsule, so the model lives while any view does. Calls on one model
 * are serialised: a second call while one runs (GIL released) raises. */
#include "handle.h" /* first: Python.h must precede system headers */
#include <string.h>

#include "../models/autoencoder.h"

#define AE_CAPSULE "ubdiff.CoLatentAutoencoder"


static const char *AE_GROUP_NAMES[UBD_AE_NGROUPS] = {"encoder", "head_v", "decoder_v", "head_s", "decoder_s"};

/* ---- config dict <-> struct ------------------------------------------- */
#define AE_FIELDS(X)                                                                                         \
    X(dim1) X(dim2) X(dim3) X(dim4) X(latent) X(head_width) X(dd_v) X(shots) X(nt) X(nr) X(heads) X(depth)  \
        X(mlp_hidden) X(max_batch)

static PyObject *config_to_dict(const ubd_ae_config *c) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
#define PUT(f)                                                   \
    {                                                            \
        PyObject *v = PyLong_FromLong(c->f);                     \
        if (!v || PyDict_SetItemString(d, #f, v) < 0) {          \
            Py_XDECREF(v);                                       \
            Py_DECREF(d);                                        \
            return NULL;                                         \
        }                                                        \
        Py_DECREF(v);                                            \
    }
    AE_FIELDS(PUT)
#undef PUT
    return d;
}

/* Missing keys keep the paper's values; unknown keys and non-ints raise. */
static int dict_to_config(PyObject *d, ubd_ae_config *c) {
    *c = ubd_ae_config_paper();
    if (d == Py_None) return 0;
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "autoencoder config must be a dict of ints, got %s", Py_TYPE(d)->tp_name);
        return -1;
    }
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &key, &val)) {
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        if (!k) {
            PyErr_SetString(PyExc_TypeError, "autoencoder config: keys must be strings");
            return -1;
        }
        int *field = NULL;
#define MATCH(f) if (strcmp(k, #f) == 0) field = &c->f;
        AE_FIELDS(MATCH)
#undef MATCH
        if (!field) {
            PyErr_Format(PyExc_ValueError,
                         "autoencoder config: unknown key '%s' (known: dim1 dim2 dim3 dim4 latent head_width dd_v "
                         "shots nt nr heads depth mlp_hidden max_batch)", k);
            return -1;
        }
        if (!PyLong_Check(val)) {
            PyErr_Format(PyExc_TypeError, "autoencoder config: '%s' must be an int, got %s", k, Py_TYPE(val)->tp_name);
            return -1;
        }
        long v = PyLong_AsLong(val);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (v <= 0 || v > 1000000000L) {
            PyErr_Format(PyExc_ValueError, "autoencoder config: '%s' must be a positive int, got %ld", k, v);
            return -1;
        }
        *field = (int)v;
    }
    return 0;
}

/* {"params": [(name, shape, offset, group)], "buffers": [(name, shape, offset)],
 *  "groups": [(name, offset, size)]} */
static PyObject *spec_dict(const ubd_params *P, const ubd_params *Bf, const size_t *goff, const size_t *gn) {
    PyObject *params = PyList_New(P->nviews), *bufs = PyList_New(Bf->nviews), *groups = PyList_New(UBD_AE_NGROUPS);
    if (!params || !bufs || !groups) goto fail;
    for (int i = 0; i < P->nviews; i++) {
        const ubd_view *v = &P->views[i];
        const char *g = "?";
        for (int k = 0; k < UBD_AE_NGROUPS; k++)
            if (v->offset >= goff[k] && v->offset < goff[k] + gn[k]) g = AE_GROUP_NAMES[k];
        PyObject *shape = PyTuple_New(v->ndim);
        if (!shape) goto fail;
        for (int d = 0; d < v->ndim; d++) PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(v->shape[d]));
        PyList_SET_ITEM(params, i, Py_BuildValue("(sNns)", v->name, shape, (Py_ssize_t)v->offset, g));
    }
    for (int i = 0; i < Bf->nviews; i++) {
        const ubd_view *v = &Bf->views[i];
        PyObject *shape = PyTuple_New(v->ndim);
        if (!shape) goto fail;
        for (int d = 0; d < v->ndim; d++) PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(v->shape[d]));
        PyList_SET_ITEM(bufs, i, Py_BuildValue("(sNn)", v->name, shape, (Py_ssize_t)v->offset));
    }
    for (int k = 0; k < UBD_AE_NGROUPS; k++)
        PyList_SET_ITEM(groups, k, Py_BuildValue("(snn)", AE_GROUP_NAMES[k], (Py_ssize_t)goff[k], (Py_ssize_t)gn[k]));
    return Py_BuildValue("{s:N,s:N,s:N}", "params", params, "buffers", bufs, "groups", groups);
fail:
    Py_XDECREF(params);
    Py_XDECREF(bufs);
    Py_XDECREF(groups);
    return NULL;
}

static PyObject *ae_default_config(PyObject *self, PyObject *args) {
    ubd_ae_config c = ubd_ae_config_paper();
    return config_to_dict(&c);
}

/* ae_spec(config) -> spec dict, without allocating any buffer */
static PyObject *ae_spec(PyObject *self, PyObject *args) {
    PyObject *d;
    if (!PyArg_ParseTuple(args, "O", &d)) return NULL;
    ubd_ae_config c;
    if (dict_to_config(d, &c) < 0) return NULL;
    ubd_params P, Bf;
    size_t goff[UBD_AE_NGROUPS], gn[UBD_AE_NGROUPS];
    ubd_status s = ubd_ae_build_spec(&c, &P, &Bf, goff, gn);
    if (s) return ubd_py_raise(s);
    PyObject *r = spec_dict(&P, &Bf, goff, gn);
    ubd_params_free(&P);
    ubd_params_free(&Bf);
    return r;
}

/* ---- handle ------------------------------------------------------------- */
static void ae_destroy(void *m) { ubd_ae_free(m); }
#define ACQUIRE(var, cap) UBD_HANDLE_ACQUIRE(var, cap, AE_CAPSULE)
#define AE_CALL UBD_HANDLE_CALL
#define OUTSIDE_MODEL(h, ...) UBD_PY_OUTSIDE_MODEL(ubd_ae_params((h)->obj), ubd_ae_buffers((h)->obj), __VA_ARGS__)

/* ae_create(config, seed) -> handle */
static PyObject *ae_create(PyObject *self, PyObject *args) {
    PyObject *d, *seed_obj = NULL;
    if (!PyArg_ParseTuple(args, "O|O", &d, &seed_obj)) return NULL;
    unsigned long long seed = 0;
    if (seed_obj && ubd_py_u64(seed_obj, __func__, "seed", &seed) < 0) return NULL;
    ubd_ae_config c;
    if (dict_to_config(d, &c) < 0) return NULL;
    ubd_ae *m = NULL;
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_ae_create(&m, &c, seed);
    Py_END_ALLOW_THREADS if (s) return ubd_py_raise(s);
    return ubd_handle_new(m, ae_destroy, AE_CAPSULE, "autoencoder");
}

static PyObject *ae_config(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    ACQUIRE(h, cap);
    return config_to_dict(ubd_ae_get_config(h->obj));
}

static PyObject *ae_spec_of(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    ACQUIRE(h, cap);
    size_t goff[UBD_AE_NGROUPS], gn[UBD_AE_NGROUPS];
    for (int k = 0; k < UBD_AE_NGROUPS; k++) ubd_ae_group_range(h->obj, k, &goff[k], &gn[k]);
    return spec_dict(ubd_ae_params(h->obj), ubd_ae_buffers(h->obj), goff, gn);
}

/* kind: param | grad | m | v (trainable tensors) or buf (BatchNorm statistics) */
static int view_target(ubd_handle *h, const char *kind, ubd_params **P, float **base) {
    if (strcmp(kind, "buf") == 0) {
        *P = ubd_ae_buffers(h->obj);
        *base = (*P)->buf[UBD_BUF_PARAM];
        return 0;
    }
    const char *kinds[4] = {"param", "grad", "m", "v"};
    for (int k = 0; k < 4; k++)
        if (strcmp(kind, kinds[k]) == 0) {
            *P = ubd_ae_params(h->obj);
            *base = (*P)->buf[k];
            return 0;
        }
    PyErr_Format(PyExc_ValueError, "autoencoder: buffer kind must be param, grad, m, v or buf; got '%s'", kind);
    return -1;
}

/* ae_view(handle, name, kind="param") -> zero-copy view */
static PyObject *ae_view(PyObject *self, PyObject *args) {
    PyObject *cap;
    const char *name, *kind = "param";
    if (!PyArg_ParseTuple(args, "Os|s", &cap, &name, &kind)) return NULL;
    ACQUIRE(h, cap);
    ubd_params *P;
    float *base;
    if (view_target(h, kind, &P, &base) < 0) return NULL;
    int i = ubd_params_find(P, name);
    if (i < 0) {
        PyErr_Format(PyExc_KeyError, "autoencoder: no %s tensor named '%s'",
                     strcmp(kind, "buf") == 0 ? "buffer" : "parameter", name);
        return NULL;
    }
    const ubd_view *v = &P->views[i];
    npy_intp dims[UBD_MAX_DIMS];
    for (int d = 0; d < v->ndim; d++) dims[d] = (npy_intp)v->shape[d];
    return ubd_py_view(cap, base + v->offset, v->ndim, dims);
}

/* ae_flat(handle, kind="param") -> the whole buffer, 1-D */
static PyObject *ae_flat(PyObject *self, PyObject *args) {
    PyObject *cap;
    const char *kind = "param";
    if (!PyArg_ParseTuple(args, "O|s", &cap, &kind)) return NULL;
    ACQUIRE(h, cap);
    ubd_params *P;
    float *base;
    if (view_target(h, kind, &P, &base) < 0) return NULL;
    npy_intp n = (npy_intp)P->n;
    return ubd_py_view(cap, base, 1, &n);
}

static PyObject *ae_init(PyObject *self, PyObject *args) {
    PyObject *cap, *seed_obj;
    if (!PyArg_ParseTuple(args, "OO", &cap, &seed_obj)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(h, cap);
    AE_CALL(h, ubd_ae_init(h->obj, seed));
    Py_RETURN_NONE;
}

static PyObject *ae_reset_optimizer(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    ACQUIRE(h, cap);
    ubd_ae_reset_optimizer(h->obj);
    Py_RETURN_NONE;
}

/* ae_steps(handle) -> {group: Adam steps taken} */
static PyObject *ae_steps(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    ACQUIRE(h, cap);
    PyObject *d = PyDict_New();
    for (int k = 0; d && k < UBD_AE_NGROUPS; k++) {
        PyObject *v = PyLong_FromLongLong(ubd_ae_group_steps(h->obj, k));
        if (!v || PyDict_SetItemString(d, AE_GROUP_NAMES[k], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

/* ae_set_steps(handle, {group: steps}) */
static PyObject *ae_set_steps(PyObject *self, PyObject *args) {
    PyObject *cap, *d;
    if (!PyArg_ParseTuple(args, "OO!", &cap, &PyDict_Type, &d)) return NULL;
    ACQUIRE(h, cap);
    /* a copy of the items: a value's __index__ may change the dict itself */
    PyObject *items = PyDict_Items(d);
    if (!items) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 0);
        PyObject *val = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1);
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        int g = -1;
        for (int j = 0; k && j < UBD_AE_NGROUPS; j++)
            if (strcmp(k, AE_GROUP_NAMES[j]) == 0) g = j;
        if (g < 0) {
            PyErr_Format(PyExc_ValueError, "ae_set_steps: unknown group %R", key);
            Py_DECREF(items);
            return NULL;
        }
        long long v = PyLong_AsLongLong(val);
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(items);
            return NULL;
        }
        ubd_status s = ubd_ae_set_group_steps(h->obj, g, v);
        if (s) {
            Py_DECREF(items);
            return ubd_py_raise(s);
        }
    }
    Py_DECREF(items);
    Py_RETURN_NONE;
}

/* ae_encode(handle, z_out (B, latent), vel (B,1,70,70), training) */
static PyObject *py_ae_encode(PyObject *self, PyObject *args) {
    PyObject *cap, *zo, *vo;
    int training = 0;
    if (!PyArg_ParseTuple(args, "OOO|p", &cap, &zo, &vo, &training)) return NULL;
    ACQUIRE(h, cap);
    const ubd_ae_config *c = ubd_ae_get_config(h->obj);
    UBD_PY_OUT(z_out, zo);
    UBD_PY_IN(vel, vo);
    UBD_PY_EXPECT(vel, 4, -1LL, 1LL, 70LL, 70LL);
    long long B = vel.shape[0];
    UBD_PY_EXPECT(z_out, 2, B, (long long)c->latent);
    UBD_PY_NO_OVERLAP(&z_out, &vel);
    OUTSIDE_MODEL(h, &z_out, &vel);
    AE_CALL(h, ubd_ae_encode(h->obj, z_out.data, vel.data, (int)B, training));
    Py_RETURN_NONE;
}

/* ae_decode(handle, vel_out (B,1,70,70) | None, seis_out (B,shots,nt,nr) | None, z (B, latent)) */
static PyObject *py_ae_decode(PyObject *self, PyObject *args) {
    PyObject *cap, *vo, *so, *zo;
    if (!PyArg_ParseTuple(args, "OOOO", &cap, &vo, &so, &zo)) return NULL;
    ACQUIRE(h, cap);
    const ubd_ae_config *c = ubd_ae_get_config(h->obj);
    UBD_PY_OPT_OUT(vel_out, vo);
    UBD_PY_OPT_OUT(seis_out, so);
    UBD_PY_IN(z, zo);
    UBD_PY_EXPECT(z, 2, -1LL, (long long)c->latent);
    long long B = z.shape[0];
    UBD_PY_EXPECT_OPT(vel_out, 4, B, 1LL, 70LL, 70LL);
    UBD_PY_EXPECT_OPT(seis_out, 4, B, (long long)c->shots, (long long)c->nt, (long long)c->nr);
    UBD_PY_NO_OVERLAP(&vel_out, &seis_out, &z);
    OUTSIDE_MODEL(h, &vel_out, &seis_out, &z);
    AE_CALL(h, ubd_ae_decode(h->obj, vel_out.data, seis_out.data, z.data, (int)B));
    Py_RETURN_NONE;
}

/* Shared by train_step and forward_backward:
 * (handle, losses_out (7,), vel (B,1,70,70), seis (B,shots,nt,nr) | None, mode, freeze,
 *  lr, beta1, beta2, eps, weight_decay, l1_v, mse_v, l1_s, mse_s) */
static PyObject *ae_step_common(PyObject *args, int update) {
    PyObject *cap, *lo, *vo, *so;
    int mode, freeze;
    ubd_ae_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.adam.decoupled = 1;
    if (!PyArg_ParseTuple(args, "OOOOip(fffff)(ffff)", &cap, &lo, &vo, &so, &mode, &freeze, &hp.adam.lr,
                          &hp.adam.beta1, &hp.adam.beta2, &hp.adam.eps, &hp.adam.weight_decay, &hp.l1_v, &hp.mse_v,
                          &hp.l1_s, &hp.mse_s))
        return NULL;
    ACQUIRE(h, cap);
    const ubd_ae_config *c = ubd_ae_get_config(h->obj);
    UBD_PY_OUT(losses_out, lo);
    UBD_PY_IN(vel, vo);
    UBD_PY_OPT_IN(seis, so);
    UBD_PY_EXPECT(losses_out, 1, (long long)UBD_AE_NLOSSES);
    UBD_PY_EXPECT(vel, 4, -1LL, 1LL, 70LL, 70LL);
    long long B = vel.shape[0];
    UBD_PY_EXPECT_OPT(seis, 4, B, (long long)c->shots, (long long)c->nt, (long long)c->nr);
    UBD_PY_NO_OVERLAP_FN(update ? "ae_train_step" : "ae_forward_backward", 0, &losses_out, &vel, &seis);
    UBD_PY_OUTSIDE_MODEL(ubd_ae_params(h->obj), ubd_ae_buffers(h->obj), &losses_out, &vel, &seis);
    if (update)
        AE_CALL(h, ubd_ae_train_step(h->obj, losses_out.data, vel.data, seis.data, (int)B, (ubd_ae_mode)mode, freeze,
                                     &hp));
    else
        AE_CALL(h, ubd_ae_forward_backward(h->obj, losses_out.data, vel.data, seis.data, (int)B, (ubd_ae_mode)mode,
                                           freeze, &hp));
    Py_RETURN_NONE;
}

static PyObject *py_ae_train_step(PyObject *self, PyObject *args) { return ae_step_common(args, 1); }
static PyObject *py_ae_forward_backward(PyObject *self, PyObject *args) { return ae_step_common(args, 0); }

PyMethodDef ubd_py_models_methods[] = {
    {"ae_default_config", ae_default_config, METH_NOARGS, "ae_default_config() -> the paper configuration (dict)."},
    {"ae_spec", ae_spec, METH_VARARGS,
     "ae_spec(config) -> {'params': [(name, shape, offset, group)], 'buffers': [...], 'groups': [...]}, "
     "allocating nothing."},
    {"ae_create", ae_create, METH_VARARGS, "ae_create(config, seed=0) -> handle of a new, initialised model."},
    {"ae_config", ae_config, METH_VARARGS, "ae_config(handle) -> config dict."},
    {"ae_spec_of", ae_spec_of, METH_VARARGS, "ae_spec_of(handle) -> spec dict of a model."},
    {"ae_view", ae_view, METH_VARARGS, "ae_view(handle, name, kind='param'|'grad'|'m'|'v'|'buf') -> zero-copy view."},
    {"ae_flat", ae_flat, METH_VARARGS, "ae_flat(handle, kind='param') -> zero-copy 1-D view of a whole buffer."},
    {"ae_init", ae_init, METH_VARARGS, "ae_init(handle, seed): PyTorch-default initialisation; resets the optimiser."},
    {"ae_reset_optimizer", ae_reset_optimizer, METH_VARARGS, "ae_reset_optimizer(handle): zero Adam m, v, steps."},
    {"ae_steps", ae_steps, METH_VARARGS, "ae_steps(handle) -> {group: Adam steps}."},
    {"ae_set_steps", ae_set_steps, METH_VARARGS, "ae_set_steps(handle, {group: steps}): restore Adam counters."},
    {"ae_encode", py_ae_encode, METH_VARARGS, "ae_encode(handle, z_out, vel, training=False)."},
    {"ae_decode", py_ae_decode, METH_VARARGS, "ae_decode(handle, vel_out|None, seis_out|None, z) (eval mode)."},
    {"ae_train_step", py_ae_train_step, METH_VARARGS,
     "ae_train_step(handle, losses_out(7), vel, seis|None, mode, freeze, (lr, b1, b2, eps, wd), "
     "(l1_v, mse_v, l1_s, mse_s)): one AdamW step."},
    {"ae_forward_backward", py_ae_forward_backward, METH_VARARGS,
     "ae_forward_backward(same arguments as ae_train_step): losses and gradients, no update."},
    {NULL, NULL, 0, NULL}};
