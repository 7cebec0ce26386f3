/* py_models.c — bindings of models and their training steps.
 *
 * Co-latent autoencoder (csrc/models/autoencoder.h), functions prefixed ae_.
 * A model is a capsule owning a ubd_ae on the backend named at creation
 * (device "cpu" | "cuda" | "auto"). Its tensors are reached through
 * tensor_io.h: copies in and out on every device (ae_get / ae_set / ae_zero),
 * and on the CPU also zero-copy NumPy views whose base is the capsule, so the
 * model lives while any view does (ae_view / ae_flat). Compute calls take
 * host arrays; the model stages them onto its device. Calls on one model are
 * serialised: a second call while one runs (GIL released) raises.
 *
 * ae_tokens_forward / ae_tokens_backward run the D_s token-assembly ops of
 * the backend table on NumPy arrays on a given device, for the op tests. */
#include "handle.h" /* first: Python.h must precede system headers */
#include <string.h>

#include "tensor_io.h"

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
        const char *k = ubd_py_cstr(key, "autoencoder config key");
        if (!k) return -1;
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

/* ae_create(config, seed=0, device="auto") -> handle of a model on that device */
static PyObject *ae_create(PyObject *self, PyObject *args) {
    PyObject *d, *seed_obj = NULL;
    const char *device = "auto";
    if (!PyArg_ParseTuple(args, "O|Os", &d, &seed_obj, &device)) return NULL;
    unsigned long long seed = 0;
    if (seed_obj && ubd_py_u64(seed_obj, __func__, "seed", &seed) < 0) return NULL;
    ubd_ae_config c;
    if (dict_to_config(d, &c) < 0) return NULL;
    const ubd_backend *be = NULL;
    ubd_status s = ubd_backend_find(device, &be);
    if (s != UBD_OK) return ubd_py_raise(s);
    ubd_ae *m = NULL;
    Py_BEGIN_ALLOW_THREADS s = ubd_ae_create(&m, &c, seed, be);
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

/* A write of the weights or BatchNorm statistics through set / zero / allreduce forgets E's saved forward. */
static void forget(void *m) { ubd_ae_forget_forward(m); }

/* The tensor (kind, name or None for the whole buffer) of a model; kind:
 * param | grad | m | v (trainable tensors) or buf (BatchNorm statistics). */
static int find_tensor(ubd_py_tensor *t, ubd_ae *m, const char *kind, PyObject *name) {
    if (strcmp(kind, "buf") == 0)
        return ubd_py_tensor_forgets(
            t, ubd_py_tensor_find(t, ubd_ae_buffers(m), UBD_BUF_PARAM, name, "autoencoder", "buffer"), forget, m);
    static const char *kinds[4] = {"param", "grad", "m", "v"};
    for (int k = 0; k < 4; k++)
        if (strcmp(kind, kinds[k]) == 0)
            return ubd_py_tensor_forgets(
                t, ubd_py_tensor_find(t, ubd_ae_params(m), (ubd_buf_kind)k, name, "autoencoder", "parameter"), forget, m);
    PyErr_Format(PyExc_ValueError, "autoencoder: buffer kind must be param, grad, m, v or buf; got '%s'", kind);
    return -1;
}

/* ae_view(handle, name, kind="param") -> zero-copy view (CPU models only) */
static PyObject *ae_view(PyObject *self, PyObject *args) {
    PyObject *cap, *name;
    const char *kind = "param";
    if (!PyArg_ParseTuple(args, "OU|s", &cap, &name, &kind)) return NULL;
    ACQUIRE(h, cap);
    ubd_py_tensor t;
    if (find_tensor(&t, h->obj, kind, name) < 0) return NULL;
    return ubd_py_tensor_view(cap, &t, "autoencoder");
}

/* ae_flat(handle, kind="param") -> the whole buffer as a 1-D zero-copy view (CPU models only) */
static PyObject *ae_flat(PyObject *self, PyObject *args) {
    PyObject *cap;
    const char *kind = "param";
    if (!PyArg_ParseTuple(args, "O|s", &cap, &kind)) return NULL;
    ACQUIRE(h, cap);
    ubd_py_tensor t;
    if (find_tensor(&t, h->obj, kind, Py_None) < 0) return NULL;
    return ubd_py_tensor_view(cap, &t, "autoencoder");
}

/* ae_get(handle, kind, name=None) -> a host copy of one tensor (or the whole buffer), any device */
static PyObject *ae_get(PyObject *self, PyObject *args) {
    PyObject *cap, *name = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &cap, &kind, &name)) return NULL;
    ACQUIRE(h, cap);
    ubd_py_tensor t;
    if (find_tensor(&t, h->obj, kind, name) < 0) return NULL;
    return ubd_py_tensor_get(&t);
}

/* ae_set(handle, kind, name, value): copies value (float32, the tensor's shape) in, any device */
static PyObject *ae_set(PyObject *self, PyObject *args) {
    PyObject *cap, *name, *value;
    const char *kind;
    if (!PyArg_ParseTuple(args, "OsOO", &cap, &kind, &name, &value)) return NULL;
    ACQUIRE(h, cap);
    ubd_py_tensor t;
    if (find_tensor(&t, h->obj, kind, name) < 0 || ubd_py_tensor_set(&t, value, "ae_set") < 0) return NULL;
    Py_RETURN_NONE;
}

/* ae_zero(handle, kind, name=None): zeroes one tensor (or the whole buffer) */
static PyObject *ae_zero(PyObject *self, PyObject *args) {
    PyObject *cap, *name = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &cap, &kind, &name)) return NULL;
    ACQUIRE(h, cap);
    ubd_py_tensor t;
    if (find_tensor(&t, h->obj, kind, name) < 0 || ubd_py_tensor_zero(&t) < 0) return NULL;
    Py_RETURN_NONE;
}

/* ae_allreduce(model, kind, comm, start=0, stop=-1, root=-1): tensor_io.h */
UBD_PY_TENSOR_ALLREDUCE(ae)

/* ae_device(handle) -> "cpu" | "cuda" (fixed at creation: answered while the model runs, too) */
static PyObject *ae_device(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    if (!PyCapsule_IsValid(cap, AE_CAPSULE))
        return PyErr_Format(PyExc_TypeError, "expected a %s model handle", AE_CAPSULE);
    const ubd_handle *h = PyCapsule_GetPointer(cap, AE_CAPSULE);
    return PyUnicode_FromString(ubd_ae_backend(h->obj)->name);
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
    AE_CALL(h, ubd_ae_reset_optimizer(h->obj));
    Py_RETURN_NONE;
}

/* ae_set_bn_sync(handle, fn_address, ctx_address): every training-mode BatchNorm over all ranks
 * through the C function at fn_address (int (*)(double *buf, size_t n, void *ctx), e.g. a ctypes
 * callback; the caller keeps it alive); 0 returns to per-process statistics. */
static PyObject *ae_set_bn_sync(PyObject *self, PyObject *args) {
    PyObject *cap;
    unsigned long long fn = 0, ctx = 0;
    if (!PyArg_ParseTuple(args, "OKK", &cap, &fn, &ctx)) return NULL;
    ACQUIRE(h, cap);
    AE_CALL(h, ubd_ae_set_bn_sync(h->obj, (ubd_allreduce_fn)(uintptr_t)fn, (void *)(uintptr_t)ctx));
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
        const char *k = PyUnicode_Check(key) ? ubd_py_cstr(key, "ae_set_steps group") : NULL; /* NUL: no match */
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
    OUTSIDE_MODEL(h, &losses_out, &vel, &seis);
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

/* ae_apply_update(handle, mode, freeze, (lr, beta1, beta2, eps, weight_decay)): AdamW on the
 * groups the mode trains, from the gradient buffer as it stands (after ae_forward_backward and,
 * in data-parallel training, an all-reduce of ae_trained_range) */
static PyObject *py_ae_apply_update(PyObject *self, PyObject *args) {
    PyObject *cap;
    int mode, freeze;
    ubd_adam_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.decoupled = 1;
    if (!PyArg_ParseTuple(args, "Oip(fffff)", &cap, &mode, &freeze, &hp.lr, &hp.beta1, &hp.beta2, &hp.eps,
                          &hp.weight_decay))
        return NULL;
    ACQUIRE(h, cap);
    AE_CALL(h, ubd_ae_apply_update(h->obj, (ubd_ae_mode)mode, freeze, &hp));
    Py_RETURN_NONE;
}

/* ae_trained_range(handle, mode, freeze) -> (offset, size): the floats of the flat buffers the mode trains */
static PyObject *py_ae_trained_range(PyObject *self, PyObject *args) {
    PyObject *cap;
    int mode, freeze;
    if (!PyArg_ParseTuple(args, "Oip", &cap, &mode, &freeze)) return NULL;
    ACQUIRE(h, cap);
    size_t off = 0, n = 0;
    ubd_status s = ubd_ae_trained_range(h->obj, (ubd_ae_mode)mode, freeze, &off, &n);
    if (s != UBD_OK) return ubd_py_raise(s);
    return Py_BuildValue("(nn)", (Py_ssize_t)off, (Py_ssize_t)n);
}

/* ---- the token-assembly ops on NumPy arrays, on any backend (op tests) ------------------------ */
#define OP_MAX_ARGS 4

/* The arrays of one op call as memory of backend `be`: on a host-memory
 * backend the arrays themselves, otherwise device copies (outputs and
 * accumulated gradients copied back by op_finish). */
typedef struct {
    const ubd_backend *be;
    int n;
    ubd_f32 *host[OP_MAX_ARGS];
    float *dev[OP_MAX_ARGS];
    int back[OP_MAX_ARGS];
} op_args;

static ubd_status op_push(op_args *o, ubd_f32 *a, int back) {
    const int i = o->n++;
    o->host[i] = a;
    o->back[i] = back;
    o->dev[i] = NULL;
    if (!a->data) return UBD_OK; /* an optional argument given as None */
    if (o->be->host_memory) {
        o->dev[i] = a->data;
        return UBD_OK;
    }
    const size_t bytes = (size_t)a->size * sizeof(float);
    UBD_TRY(o->be->alloc((void **)&o->dev[i], bytes));
    return o->be->copy(o->dev[i], a->data, bytes, UBD_H2D);
}

static ubd_status op_finish(op_args *o, ubd_status s) {
    if (!o->be->host_memory) {
        if (s == UBD_OK) s = o->be->sync();
        for (int i = 0; i < o->n; i++) {
            if (s == UBD_OK && o->back[i] && o->dev[i])
                s = o->be->copy(o->host[i]->data, o->dev[i], (size_t)o->host[i]->size * sizeof(float), UBD_D2H);
            o->be->free(o->dev[i]);
        }
    }
    return s;
}

static const ubd_backend *op_backend(const char *device) {
    const ubd_backend *be = NULL;
    ubd_status s = ubd_backend_find(device, &be);
    if (s != UBD_OK) {
        ubd_py_raise(s);
        return NULL;
    }
    return be;
}

/* ae_tokens_forward(device, x0 (B,T,C), tok (B,T-1,C), cls (C), pos (T,C)) */
static PyObject *ae_tokens_forward(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *xo, *to, *co, *po;
    if (!PyArg_ParseTuple(args, "sOOOO", &device, &xo, &to, &co, &po)) return NULL;
    const ubd_backend *be = op_backend(device);
    if (!be) return NULL;
    UBD_PY_OUT(x0, xo);
    UBD_PY_IN(tok, to);
    UBD_PY_IN(cls, co);
    UBD_PY_IN(pos, po);
    UBD_PY_EXPECT(x0, 3, -1LL, -1LL, -1LL);
    const long long B = x0.shape[0], T = x0.shape[1], C = x0.shape[2];
    UBD_PY_EXPECT(tok, 3, B, T - 1, C);
    UBD_PY_EXPECT(cls, 1, C);
    UBD_PY_EXPECT(pos, 2, T, C);
    UBD_PY_NO_OVERLAP(&x0, &tok, &cls, &pos);
    op_args o = {be, 0, {0}, {0}, {0}};
    ubd_status s = op_push(&o, &x0, 1);
    if (s == UBD_OK) s = op_push(&o, &tok, 0);
    if (s == UBD_OK) s = op_push(&o, &cls, 0);
    if (s == UBD_OK) s = op_push(&o, &pos, 0);
    Py_BEGIN_ALLOW_THREADS if (s == UBD_OK) s = be->tokens_forward(o.dev[0], o.dev[1], o.dev[2], o.dev[3], (int)B,
                                                                     (int)T, (int)C);
    s = op_finish(&o, s);
    Py_END_ALLOW_THREADS if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

/* ae_tokens_backward(device, dtok (B,T-1,C) | None, dcls (C) | None, dpos (T,C) | None, dx0 (B,T,C)): += */
static PyObject *ae_tokens_backward(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *to, *co, *po, *xo;
    if (!PyArg_ParseTuple(args, "sOOOO", &device, &to, &co, &po, &xo)) return NULL;
    const ubd_backend *be = op_backend(device);
    if (!be) return NULL;
    UBD_PY_OPT_OUT(dtok, to);
    UBD_PY_OPT_OUT(dcls, co);
    UBD_PY_OPT_OUT(dpos, po);
    UBD_PY_IN(dx0, xo);
    UBD_PY_EXPECT(dx0, 3, -1LL, -1LL, -1LL);
    const long long B = dx0.shape[0], T = dx0.shape[1], C = dx0.shape[2];
    UBD_PY_EXPECT_OPT(dtok, 3, B, T - 1, C);
    UBD_PY_EXPECT_OPT(dcls, 1, C);
    UBD_PY_EXPECT_OPT(dpos, 2, T, C);
    UBD_PY_NO_OVERLAP(&dtok, &dcls, &dpos, &dx0);
    op_args o = {be, 0, {0}, {0}, {0}};
    ubd_status s = op_push(&o, &dtok, 1);
    if (s == UBD_OK) s = op_push(&o, &dcls, 1);
    if (s == UBD_OK) s = op_push(&o, &dpos, 1);
    if (s == UBD_OK) s = op_push(&o, &dx0, 0);
    Py_BEGIN_ALLOW_THREADS if (s == UBD_OK) s = be->tokens_backward(o.dev[0], o.dev[1], o.dev[2], o.dev[3], (int)B,
                                                                      (int)T, (int)C);
    s = op_finish(&o, s);
    Py_END_ALLOW_THREADS if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

/* ae_decode_backward(handle, losses_out (7,), dz_out (B, latent), z (B, latent), vel | None, seis | None,
 *                    (l1_v, mse_v, l1_s, mse_s)): heads + decoders of the given modalities on an external z,
 * training mode; their gradients +=; dz_out = dl/dz (the baselines' encoders, ae_latent.c) */
static PyObject *py_ae_decode_backward(PyObject *self, PyObject *args) {
    PyObject *cap, *lo, *dzo, *zo, *vo, *so;
    ubd_ae_hparams hp;
    memset(&hp, 0, sizeof hp);
    if (!PyArg_ParseTuple(args, "OOOOOO(ffff)", &cap, &lo, &dzo, &zo, &vo, &so, &hp.l1_v, &hp.mse_v, &hp.l1_s,
                          &hp.mse_s))
        return NULL;
    ACQUIRE(h, cap);
    const ubd_ae_config *c = ubd_ae_get_config(h->obj);
    UBD_PY_OUT(losses_out, lo);
    UBD_PY_OUT(dz_out, dzo);
    UBD_PY_IN(z, zo);
    UBD_PY_OPT_IN(vel, vo);
    UBD_PY_OPT_IN(seis, so);
    UBD_PY_EXPECT(losses_out, 1, (long long)UBD_AE_NLOSSES);
    UBD_PY_EXPECT(z, 2, -1LL, (long long)c->latent);
    long long B = z.shape[0];
    UBD_PY_EXPECT(dz_out, 2, B, (long long)c->latent);
    UBD_PY_EXPECT_OPT(vel, 4, B, 1LL, 70LL, 70LL);
    UBD_PY_EXPECT_OPT(seis, 4, B, (long long)c->shots, (long long)c->nt, (long long)c->nr);
    UBD_PY_NO_OVERLAP(&losses_out, &dz_out, &z, &vel, &seis);
    OUTSIDE_MODEL(h, &losses_out, &dz_out, &z, &vel, &seis);
    AE_CALL(h, ubd_ae_decode_backward(h->obj, losses_out.data, dz_out.data, z.data, vel.data, seis.data, (int)B, &hp));
    Py_RETURN_NONE;
}

/* ae_encode_backward(handle, dz (B, latent), vel (B,1,70,70)): E's gradients += after a training encode */
static PyObject *py_ae_encode_backward(PyObject *self, PyObject *args) {
    PyObject *cap, *dzo, *vo;
    if (!PyArg_ParseTuple(args, "OOO", &cap, &dzo, &vo)) return NULL;
    ACQUIRE(h, cap);
    const ubd_ae_config *c = ubd_ae_get_config(h->obj);
    UBD_PY_IN(dz, dzo);
    UBD_PY_IN(vel, vo);
    UBD_PY_EXPECT(vel, 4, -1LL, 1LL, 70LL, 70LL);
    long long B = vel.shape[0];
    UBD_PY_EXPECT(dz, 2, B, (long long)c->latent);
    OUTSIDE_MODEL(h, &dz, &vel);
    AE_CALL(h, ubd_ae_encode_backward(h->obj, dz.data, vel.data, (int)B));
    Py_RETURN_NONE;
}

PyMethodDef ubd_py_models_methods[] = {
    {"ae_default_config", ae_default_config, METH_NOARGS, "ae_default_config() -> the paper configuration (dict)."},
    {"ae_spec", ae_spec, METH_VARARGS,
     "ae_spec(config) -> {'params': [(name, shape, offset, group)], 'buffers': [...], 'groups': [...]}, "
     "allocating nothing."},
    {"ae_create", ae_create, METH_VARARGS,
     "ae_create(config, seed=0, device='auto') -> handle of a new, initialised model on 'cpu' or 'cuda'."},
    {"ae_device", ae_device, METH_VARARGS, "ae_device(handle) -> 'cpu' | 'cuda'."},
    {"ae_config", ae_config, METH_VARARGS, "ae_config(handle) -> config dict."},
    {"ae_spec_of", ae_spec_of, METH_VARARGS, "ae_spec_of(handle) -> spec dict of a model."},
    {"ae_view", ae_view, METH_VARARGS,
     "ae_view(handle, name, kind='param'|'grad'|'m'|'v'|'buf') -> zero-copy view (CPU models only)."},
    {"ae_flat", ae_flat, METH_VARARGS, "ae_flat(handle, kind='param') -> zero-copy 1-D view of a whole buffer (CPU)."},
    {"ae_get", ae_get, METH_VARARGS, "ae_get(handle, kind, name=None) -> host copy of a tensor or whole buffer."},
    {"ae_set", ae_set, METH_VARARGS, "ae_set(handle, kind, name|None, value): copy value into the model."},
    {"ae_allreduce", ae_allreduce, METH_VARARGS,
     "ae_allreduce(model, kind, comm, start=0, stop=-1, root=-1): NCCL sum (root >= 0: broadcast)."},
    {"ae_zero", ae_zero, METH_VARARGS, "ae_zero(handle, kind, name=None): set a tensor or whole buffer to zero."},
    {"ae_init", ae_init, METH_VARARGS, "ae_init(handle, seed): PyTorch-default initialisation; resets the optimiser."},
    {"ae_reset_optimizer", ae_reset_optimizer, METH_VARARGS, "ae_reset_optimizer(handle): zero Adam m, v, steps."},
    {"ae_set_bn_sync", ae_set_bn_sync, METH_VARARGS,
     "ae_set_bn_sync(handle, fn_address, ctx_address): BatchNorm statistics over all ranks (0: per process)."},
    {"ae_steps", ae_steps, METH_VARARGS, "ae_steps(handle) -> {group: Adam steps}."},
    {"ae_set_steps", ae_set_steps, METH_VARARGS, "ae_set_steps(handle, {group: steps}): restore Adam counters."},
    {"ae_encode", py_ae_encode, METH_VARARGS, "ae_encode(handle, z_out, vel, training=False)."},
    {"ae_decode", py_ae_decode, METH_VARARGS, "ae_decode(handle, vel_out|None, seis_out|None, z) (eval mode)."},
    {"ae_train_step", py_ae_train_step, METH_VARARGS,
     "ae_train_step(handle, losses_out(7), vel, seis|None, mode, freeze, (lr, b1, b2, eps, wd), "
     "(l1_v, mse_v, l1_s, mse_s)): one AdamW step."},
    {"ae_forward_backward", py_ae_forward_backward, METH_VARARGS,
     "ae_forward_backward(same arguments as ae_train_step): losses and gradients, no update."},
    {"ae_apply_update", py_ae_apply_update, METH_VARARGS,
     "ae_apply_update(handle, mode, freeze, (lr, b1, b2, eps, wd)): AdamW on the trained groups' gradients."},
    {"ae_trained_range", py_ae_trained_range, METH_VARARGS,
     "ae_trained_range(handle, mode, freeze) -> (offset, size) of the flat buffers the mode trains."},
    {"ae_decode_backward", py_ae_decode_backward, METH_VARARGS,
     "ae_decode_backward(handle, losses_out(7), dz_out, z, vel|None, seis|None, (l1_v, mse_v, l1_s, mse_s)): "
     "heads + decoders on an external z (training mode), gradients +=, dz_out = dl/dz."},
    {"ae_encode_backward", py_ae_encode_backward, METH_VARARGS,
     "ae_encode_backward(handle, dz, vel): E's gradients += after a training-mode ae_encode."},
    {"ae_tokens_forward", ae_tokens_forward, METH_VARARGS,
     "ae_tokens_forward(device, x0, tok, cls, pos): D_s token assembly x0 = [cls; tok] + pos."},
    {"ae_tokens_backward", ae_tokens_backward, METH_VARARGS,
     "ae_tokens_backward(device, dtok|None, dcls|None, dpos|None, dx0): its gradients (+=)."},
    {NULL, NULL, 0, NULL}};
