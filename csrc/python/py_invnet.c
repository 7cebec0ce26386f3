/* py_invnet.c — bindings of InversionNet (csrc/models/inversionnet.h).
 *
 * A model is a PyCapsule owning a ubd_invnet on the backend named at creation
 * (device "cpu" | "cuda" | "auto"). Its parameters, gradients, Adam moments
 * and BatchNorm statistics are reached through tensor_io.h: copies in and out
 * on every device (invnet_get / invnet_set / invnet_zero), and on the CPU also
 * zero-copy NumPy views that keep the capsule alive (invnet_view). Compute
 * calls take host arrays; the model stages them onto its device. A config
 * travels as the tuple
 *   ((dim1, ..., dim5), in_channels, nt, nx, max_batch, slope, bn_momentum, bn_eps).
 * Compute calls release the GIL; a model used by two threads at once raises
 * RuntimeError instead of racing. */
#include "handle.h" /* first: Python.h must precede system headers */
#include <string.h>

#include "tensor_io.h"

#include "models/inversionnet.h"

#define CAPSULE_NAME "ubdiff.InversionNet"

static void invnet_destroy(void *m) { ubd_invnet_free(m); }
#define ACQUIRE(var, cap) UBD_HANDLE_ACQUIRE(var, cap, CAPSULE_NAME)
#define INVNET_CALL UBD_HANDLE_CALL
#define OUTSIDE_MODEL(m, ...) UBD_PY_OUTSIDE_MODEL(&(m)->params, &(m)->stats, __VA_ARGS__)

static int parse_config(PyObject *obj, ubd_invnet_config *c) {
    memset(c, 0, sizeof *c);
    if (!PyTuple_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "InversionNet config must be a tuple "
                                         "((dim1..dim5), in_channels, nt, nx, max_batch, slope, bn_momentum, bn_eps)");
        return -1;
    }
    return PyArg_ParseTuple(obj, "(iiiii)iiiifff;InversionNet config", &c->dim[0], &c->dim[1], &c->dim[2],
                            &c->dim[3], &c->dim[4], &c->in_channels, &c->nt, &c->nx, &c->max_batch, &c->slope,
                            &c->bn_momentum, &c->bn_eps)
               ? 0
               : -1;
}

static PyObject *spec_list(const ubd_params *p) {
    PyObject *list = PyList_New(p->nviews);
    if (!list) return NULL;
    for (int i = 0; i < p->nviews; i++) {
        const ubd_view *v = &p->views[i];
        PyObject *shape = PyTuple_New(v->ndim);
        if (!shape) {
            Py_DECREF(list);
            return NULL;
        }
        for (int d = 0; d < v->ndim; d++) PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(v->shape[d]));
        PyList_SET_ITEM(list, i, Py_BuildValue("(sN)", v->name, shape));
    }
    return list;
}

/* invnet_layout(config) -> (params [(name, shape)], stats [(name, shape)],
 *   blocks [(name, transposed, C, OC, H, W, KH, KW, SH, SW, PH, PW, OH, OW, act, crop_before)])
 * The model's tables, computed without allocating the model. */
static PyObject *invnet_layout(PyObject *self, PyObject *args) {
    PyObject *cfg_obj;
    if (!PyArg_ParseTuple(args, "O", &cfg_obj)) return NULL;
    ubd_invnet_config cfg;
    if (parse_config(cfg_obj, &cfg) < 0) return NULL;
    ubd_invnet_block blocks[UBD_INVNET_BLOCKS];
    ubd_status s = ubd_invnet_layout(blocks, &cfg);
    if (s != UBD_OK) return ubd_py_raise(s);
    ubd_params params, stats;
    ubd_params_init(&params);
    ubd_params_init(&stats);
    s = ubd_invnet_tables(&params, &stats, &cfg);
    if (s != UBD_OK) {
        ubd_params_free(&params);
        ubd_params_free(&stats);
        return ubd_py_raise(s);
    }
    PyObject *pl = spec_list(&params), *sl = spec_list(&stats), *bl = PyList_New(UBD_INVNET_BLOCKS);
    ubd_params_free(&params);
    ubd_params_free(&stats);
    if (!pl || !sl || !bl) {
        Py_XDECREF(pl);
        Py_XDECREF(sl);
        Py_XDECREF(bl);
        return NULL;
    }
    for (int l = 0; l < UBD_INVNET_BLOCKS; l++) {
        const ubd_block2d *k = &blocks[l].k;
        PyList_SET_ITEM(bl, l,
                        Py_BuildValue("(siiiiiiiiiiiiisi)", blocks[l].name, k->transposed, k->C, k->OC, k->H, k->W,
                                      k->KH, k->KW, k->SH, k->SW, k->PH, k->PW, k->OH, k->OW,
                                      k->act == UBD_ACT_TANH ? "tanh" : "leaky_relu", blocks[l].crop_before));
    }
    return Py_BuildValue("(NNN)", pl, sl, bl);
}

/* invnet_create(config, seed, device="auto") -> model handle on that device,
 * initialised as torch does by default */
static PyObject *invnet_create(PyObject *self, PyObject *args) {
    PyObject *cfg_obj, *seed_obj;
    const char *device = "auto";
    if (!PyArg_ParseTuple(args, "OO|s", &cfg_obj, &seed_obj, &device)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ubd_invnet_config cfg;
    if (parse_config(cfg_obj, &cfg) < 0) return NULL;
    const ubd_backend *be = NULL;
    ubd_status s = ubd_backend_find(device, &be);
    if (s != UBD_OK) return ubd_py_raise(s);
    ubd_invnet *m = NULL;
    Py_BEGIN_ALLOW_THREADS s = ubd_invnet_create(&m, &cfg, be);
    if (s == UBD_OK) s = ubd_invnet_init(m, seed);
    Py_END_ALLOW_THREADS if (s != UBD_OK) {
        ubd_invnet_free(m);
        return ubd_py_raise(s);
    }
    return ubd_handle_new(m, invnet_destroy, CAPSULE_NAME, "InversionNet");
}

/* invnet_init(model, seed): re-initialise parameters, statistics, Adam state, step */
static PyObject *invnet_init(PyObject *self, PyObject *args) {
    PyObject *cap, *seed_obj;
    if (!PyArg_ParseTuple(args, "OO", &cap, &seed_obj)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(h, cap);
    INVNET_CALL(h, ubd_invnet_init(h->obj, seed));
    Py_RETURN_NONE;
}

/* A write of the weights or statistics through set / zero / allreduce forgets the saved forward. */
static void forget(void *m) { ubd_invnet_forget_forward(m); }

/* The tensor (kind, name or None) of a model: kind param | grad | m | v | stats. */
static int find_tensor(ubd_py_tensor *t, ubd_invnet *net, const char *kind, PyObject *name) {
    static const char *kinds[] = {"param", "grad", "m", "v"};
    if (strcmp(kind, "stats") == 0)
        return ubd_py_tensor_forgets(
            t, ubd_py_tensor_find(t, &net->stats, UBD_BUF_PARAM, name, "InversionNet", "statistics"), forget, net);
    for (int k = 0; k < 4; k++)
        if (strcmp(kind, kinds[k]) == 0)
            return ubd_py_tensor_forgets(
                t, ubd_py_tensor_find(t, &net->params, (ubd_buf_kind)k, name, "InversionNet", "parameter"), forget,
                net);
    PyErr_Format(PyExc_ValueError, "InversionNet: kind must be param, grad, m, v or stats; got '%s'", kind);
    return -1;
}

/* invnet_view(model, kind, name=None) -> zero-copy view of one tensor (or the
 * whole flat buffer when name is None); CPU models only. */
static PyObject *invnet_view(PyObject *self, PyObject *args) {
    PyObject *cap, *name_obj = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &cap, &kind, &name_obj)) return NULL;
    /* views may be taken while the model runs: no busy check here */
    if (!PyCapsule_IsValid(cap, CAPSULE_NAME))
        return PyErr_Format(PyExc_TypeError, "expected an InversionNet model handle");
    ubd_invnet *net = ((ubd_handle *)PyCapsule_GetPointer(cap, CAPSULE_NAME))->obj;
    ubd_py_tensor t;
    if (find_tensor(&t, net, kind, name_obj) < 0) return NULL;
    return ubd_py_tensor_view(cap, &t, "InversionNet");
}

/* invnet_get / invnet_set / invnet_zero (model, kind, name[, value]): tensor_io.h */
UBD_PY_TENSOR_ACCESSORS(invnet)

/* invnet_device(model) -> "cpu" | "cuda" */
static PyObject *invnet_device(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    if (!PyCapsule_IsValid(cap, CAPSULE_NAME))
        return PyErr_Format(PyExc_TypeError, "expected an InversionNet model handle");
    ubd_invnet *net = ((ubd_handle *)PyCapsule_GetPointer(cap, CAPSULE_NAME))->obj;
    return PyUnicode_FromString(net->be->name);
}

/* Checks seis (B, in_channels, nt, nx) against the model; returns B or -1. */
static int check_seis(const ubd_f32 *seis, const ubd_invnet *m, const char *fn) {
    const ubd_invnet_config *c = &m->cfg;
    if (ubd_py_expect(seis, fn, "seis", 4, -1LL, (long long)c->in_channels, (long long)c->nt, (long long)c->nx) < 0)
        return -1;
    if (seis->shape[0] < 1 || seis->shape[0] > c->max_batch) {
        PyErr_Format(PyExc_ValueError, "%s: batch of %zd samples, the model takes 1..%d (max_batch) per call", fn,
                     (Py_ssize_t)seis->shape[0], c->max_batch);
        return -1;
    }
    return (int)seis->shape[0];
}

/* invnet_forward(model, out (B,1,70,70), seis (B,C,nt,nx), train) */
static PyObject *invnet_forward(PyObject *self, PyObject *args) {
    PyObject *cap, *o, *x;
    int train;
    if (!PyArg_ParseTuple(args, "OOOp", &cap, &o, &x, &train)) return NULL;
    ACQUIRE(h, cap);
    UBD_PY_OUT(out, o);
    UBD_PY_IN(seis, x);
    int B = check_seis(&seis, h->obj, __func__);
    if (B < 0) return NULL;
    UBD_PY_EXPECT(out, 4, (long long)B, 1LL, (long long)UBD_INVNET_OUT, (long long)UBD_INVNET_OUT);
    UBD_PY_NO_OVERLAP(&out, &seis);
    OUTSIDE_MODEL((ubd_invnet *)h->obj, &out, &seis);
    INVNET_CALL(h, ubd_invnet_forward(h->obj, out.data, seis.data, B, train));
    Py_RETURN_NONE;
}

/* invnet_backward(model, dout (B,1,70,70), seis): grads += (after a training forward) */
static PyObject *invnet_backward(PyObject *self, PyObject *args) {
    PyObject *cap, *d, *x;
    if (!PyArg_ParseTuple(args, "OOO", &cap, &d, &x)) return NULL;
    ACQUIRE(h, cap);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(seis, x);
    int B = check_seis(&seis, h->obj, __func__);
    if (B < 0) return NULL;
    UBD_PY_EXPECT(dout, 4, (long long)B, 1LL, (long long)UBD_INVNET_OUT, (long long)UBD_INVNET_OUT);
    OUTSIDE_MODEL((ubd_invnet *)h->obj, &dout, &seis);
    INVNET_CALL(h, ubd_invnet_backward(h->obj, dout.data, seis.data, B));
    Py_RETURN_NONE;
}

/* invnet_train_step(model, losses (3), seis, vel (B,1,70,70),
 *                   lr, beta1, beta2, eps, weight_decay, w_l1, w_mse) */
static PyObject *invnet_train_step(PyObject *self, PyObject *args) {
    PyObject *cap, *l, *x, *v;
    ubd_invnet_hparams hp;
    if (!PyArg_ParseTuple(args, "OOOOfffffff", &cap, &l, &x, &v, &hp.lr, &hp.beta1, &hp.beta2, &hp.eps,
                          &hp.weight_decay, &hp.w_l1, &hp.w_mse))
        return NULL;
    ACQUIRE(h, cap);
    UBD_PY_OUT(losses, l);
    UBD_PY_IN(seis, x);
    UBD_PY_IN(vel, v);
    UBD_PY_EXPECT(losses, 1, 3LL);
    int B = check_seis(&seis, h->obj, __func__);
    if (B < 0) return NULL;
    UBD_PY_EXPECT(vel, 4, (long long)B, 1LL, (long long)UBD_INVNET_OUT, (long long)UBD_INVNET_OUT);
    UBD_PY_NO_OVERLAP(&losses, &seis, &vel);
    OUTSIDE_MODEL((ubd_invnet *)h->obj, &losses, &seis, &vel);
    INVNET_CALL(h, ubd_invnet_train_step(h->obj, losses.data, seis.data, vel.data, B, hp));
    Py_RETURN_NONE;
}

/* invnet_reserve(model, max_batch): re-size the activation buffers (parameter
 * views stay valid: only activations move) */
static PyObject *invnet_reserve(PyObject *self, PyObject *args) {
    PyObject *cap;
    int max_batch;
    if (!PyArg_ParseTuple(args, "Oi", &cap, &max_batch)) return NULL;
    ACQUIRE(h, cap);
    INVNET_CALL(h, ubd_invnet_reserve(h->obj, max_batch));
    Py_RETURN_NONE;
}

/* invnet_set_bn_sync(model, fn_address, ctx_address): BatchNorm statistics over all ranks through
 * the C function at fn_address (int (*)(double *buf, size_t n, void *ctx), e.g. a ctypes
 * callback; the caller keeps it alive); 0 returns to per-process statistics. */
static PyObject *invnet_set_bn_sync(PyObject *self, PyObject *args) {
    PyObject *cap;
    unsigned long long fn = 0, ctx = 0;
    if (!PyArg_ParseTuple(args, "OKK", &cap, &fn, &ctx)) return NULL;
    ACQUIRE(h, cap);
    INVNET_CALL(h, ubd_invnet_set_bn_sync(h->obj, (ubd_allreduce_fn)(uintptr_t)fn, (void *)(uintptr_t)ctx));
    Py_RETURN_NONE;
}

/* invnet_apply_update(model, (lr, beta1, beta2, eps, weight_decay)): AdamW from the gradients as they stand */
static PyObject *invnet_apply_update(PyObject *self, PyObject *args) {
    PyObject *cap;
    ubd_adam_hparams hp;
    if (ubd_py_adamw_args(args, &cap, &hp) < 0) return NULL;
    ACQUIRE(h, cap);
    INVNET_CALL(h, ubd_invnet_apply_update(h->obj, hp));
    Py_RETURN_NONE;
}

/* invnet_step(model[, new_step]) -> AdamW step counter (set when given) */
static PyObject *invnet_step(PyObject *self, PyObject *args) {
    PyObject *cap;
    long long step = -1;
    if (!PyArg_ParseTuple(args, "O|L", &cap, &step)) return NULL;
    ACQUIRE(h, cap);
    if (PyTuple_GET_SIZE(args) > 1) {
        if (step < 0) {
            PyErr_Format(PyExc_ValueError, "invnet_step: step must be >= 0, got %lld", step);
            return NULL;
        }
        ((ubd_invnet *)h->obj)->step = step;
    }
    return PyLong_FromLongLong(((ubd_invnet *)h->obj)->step);
}

PyMethodDef ubd_py_invnet_methods[] = {
    {"invnet_layout", invnet_layout, METH_VARARGS,
     "invnet_layout(config) -> (params, stats, blocks): InversionNet tables without allocating."},
    {"invnet_create", invnet_create, METH_VARARGS,
     "invnet_create(config, seed, device='auto') -> model handle on 'cpu' or 'cuda'."},
    {"invnet_set_bn_sync", invnet_set_bn_sync, METH_VARARGS,
     "invnet_set_bn_sync(model, fn_address, ctx_address): BatchNorm statistics over all ranks (0: per process)."},
    {"invnet_init", invnet_init, METH_VARARGS, "invnet_init(model, seed): re-initialise."},
    {"invnet_device", invnet_device, METH_VARARGS, "invnet_device(model) -> 'cpu' | 'cuda'."},
    {"invnet_view", invnet_view, METH_VARARGS, "invnet_view(model, kind, name=None) -> zero-copy view (CPU only)."},
    {"invnet_get", invnet_get, METH_VARARGS, "invnet_get(model, kind, name=None) -> host copy."},
    {"invnet_set", invnet_set, METH_VARARGS, "invnet_set(model, kind, name, value): copy value in."},
    {"invnet_allreduce", invnet_allreduce, METH_VARARGS,
     "invnet_allreduce(model, kind, comm, start=0, stop=-1, root=-1): NCCL sum (root >= 0: broadcast)."},
    {"invnet_zero", invnet_zero, METH_VARARGS, "invnet_zero(model, kind, name=None): set to zero."},
    {"invnet_forward", invnet_forward, METH_VARARGS, "invnet_forward(model, out, seis, train)."},
    {"invnet_backward", invnet_backward, METH_VARARGS, "invnet_backward(model, dout, seis): grads +=."},
    {"invnet_train_step", invnet_train_step, METH_VARARGS,
     "invnet_train_step(model, losses, seis, vel, lr, beta1, beta2, eps, weight_decay, w_l1, w_mse)."},
    {"invnet_apply_update", invnet_apply_update, METH_VARARGS,
     "invnet_apply_update(model, (lr, b1, b2, eps, wd)): AdamW from the gradients; step += 1."},
    {"invnet_reserve", invnet_reserve, METH_VARARGS, "invnet_reserve(model, max_batch): re-size activations."},
    {"invnet_step", invnet_step, METH_VARARGS, "invnet_step(model[, step]) -> AdamW step counter."},
    {NULL, NULL, 0, NULL}};
