/* py_seisenc.c — bindings of the seismic encoder (csrc/models/seis_encoder.h).
 *
 * A model is a PyCapsule owning a ubd_seisenc on the backend named at
 * creation (device "cpu" | "cuda" | "auto"); tensors through tensor_io.h
 * (views on the CPU, get / set / zero on every device), compute calls on host
 * arrays, the GIL released, a model used by two threads at once refused. A
 * config travels as the tuple
 *   ((dim1, dim2, dim3, dim4), latent, in_channels, nt, nx, max_batch, slope, bn_momentum, bn_eps). */
#include "handle.h" /* first: Python.h must precede system headers */
#include <string.h>

#include "tensor_io.h"

#include "models/seis_encoder.h"

#define CAPSULE_NAME "ubdiff.SeismicEncoder"

static void seisenc_destroy(void *m) { ubd_seisenc_free(m); }
#define ACQUIRE(var, cap) UBD_HANDLE_ACQUIRE(var, cap, CAPSULE_NAME)
#define OUTSIDE_MODEL(m, ...) UBD_PY_OUTSIDE_MODEL(&(m)->params, &(m)->stats, __VA_ARGS__)

static int parse_config(PyObject *obj, ubd_seisenc_config *c) {
    memset(c, 0, sizeof *c);
    if (!PyTuple_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "SeismicEncoder config must be a tuple ((dim1..dim4), latent, in_channels, "
                                         "nt, nx, max_batch, slope, bn_momentum, bn_eps)");
        return -1;
    }
    return PyArg_ParseTuple(obj, "(iiii)iiiiifff;SeismicEncoder config", &c->dim[0], &c->dim[1], &c->dim[2],
                            &c->dim[3], &c->latent, &c->in_channels, &c->nt, &c->nx, &c->max_batch, &c->slope,
                            &c->bn_momentum, &c->bn_eps)
               ? 0
               : -1;
}

/* seisenc_layout(config) -> (params [(name, shape, offset)], stats [(name, shape, offset)],
 *   blocks [(name, C, OC, H, W, KH, KW, SH, SW, PH, PW, OH, OW, act)]), allocating no model */
static PyObject *seisenc_layout(PyObject *self, PyObject *args) {
    PyObject *cfg_obj;
    if (!PyArg_ParseTuple(args, "O", &cfg_obj)) return NULL;
    ubd_seisenc_config cfg;
    if (parse_config(cfg_obj, &cfg) < 0) return NULL;
    ubd_invnet_block blocks[UBD_SEISENC_BLOCKS];
    ubd_status s = ubd_seisenc_layout(blocks, &cfg);
    if (s != UBD_OK) return ubd_py_raise(s);
    ubd_params params, stats;
    ubd_params_init(&params);
    ubd_params_init(&stats);
    s = ubd_seisenc_tables(&params, &stats, &cfg);
    PyObject *pl = NULL, *sl = NULL, *bl = NULL;
    if (s == UBD_OK) {
        pl = ubd_py_params_spec(&params);
        sl = ubd_py_params_spec(&stats);
        bl = PyList_New(UBD_SEISENC_BLOCKS);
    }
    ubd_params_free(&params);
    ubd_params_free(&stats);
    if (s != UBD_OK) return ubd_py_raise(s);
    if (!pl || !sl || !bl) {
        Py_XDECREF(pl);
        Py_XDECREF(sl);
        Py_XDECREF(bl);
        return NULL;
    }
    for (int l = 0; l < UBD_SEISENC_BLOCKS; l++) {
        const ubd_block2d *k = &blocks[l].k;
        PyList_SET_ITEM(bl, l,
                        Py_BuildValue("(siiiiiiiiiiiis)", blocks[l].name, k->C, k->OC, k->H, k->W, k->KH, k->KW, k->SH,
                                      k->SW, k->PH, k->PW, k->OH, k->OW,
                                      k->act == UBD_ACT_TANH ? "tanh" : "leaky_relu"));
    }
    return Py_BuildValue("(NNN)", pl, sl, bl);
}

/* seisenc_create(config, seed, device="auto") -> model handle, initialised as torch does by default */
static PyObject *seisenc_create(PyObject *self, PyObject *args) {
    PyObject *cfg_obj, *seed_obj;
    const char *device = "auto";
    if (!PyArg_ParseTuple(args, "OO|s", &cfg_obj, &seed_obj, &device)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ubd_seisenc_config cfg;
    if (parse_config(cfg_obj, &cfg) < 0) return NULL;
    const ubd_backend *be = NULL;
    ubd_status s = ubd_backend_find(device, &be);
    if (s != UBD_OK) return ubd_py_raise(s);
    ubd_seisenc *m = NULL;
    Py_BEGIN_ALLOW_THREADS s = ubd_seisenc_create(&m, &cfg, be);
    if (s == UBD_OK) s = ubd_seisenc_init(m, seed);
    Py_END_ALLOW_THREADS if (s != UBD_OK) {
        ubd_seisenc_free(m);
        return ubd_py_raise(s);
    }
    return ubd_handle_new(m, seisenc_destroy, CAPSULE_NAME, "SeismicEncoder");
}

/* seisenc_init(model, seed): re-initialise parameters, statistics, Adam state, step */
static PyObject *seisenc_init(PyObject *self, PyObject *args) {
    PyObject *cap, *seed_obj;
    if (!PyArg_ParseTuple(args, "OO", &cap, &seed_obj)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(h, cap);
    UBD_HANDLE_CALL(h, ubd_seisenc_init(h->obj, seed));
    Py_RETURN_NONE;
}

/* A write of the weights or statistics through set / zero / allreduce forgets the saved forward. */
static void forget(void *m) { ubd_seisenc_forget_forward(m); }

static int find_tensor(ubd_py_tensor *t, ubd_seisenc *m, const char *kind, PyObject *name) {
    static const char *kinds[] = {"param", "grad", "m", "v"};
    if (strcmp(kind, "stats") == 0)
        return ubd_py_tensor_forgets(
            t, ubd_py_tensor_find(t, &m->stats, UBD_BUF_PARAM, name, "SeismicEncoder", "statistics"), forget, m);
    for (int k = 0; k < 4; k++)
        if (strcmp(kind, kinds[k]) == 0)
            return ubd_py_tensor_forgets(
                t, ubd_py_tensor_find(t, &m->params, (ubd_buf_kind)k, name, "SeismicEncoder", "parameter"), forget, m);
    PyErr_Format(PyExc_ValueError, "SeismicEncoder: kind must be param, grad, m, v or stats; got '%s'", kind);
    return -1;
}

static ubd_seisenc *peek(PyObject *cap) { /* no busy check: views and the device name may be read any time */
    if (!PyCapsule_IsValid(cap, CAPSULE_NAME)) {
        PyErr_SetString(PyExc_TypeError, "expected a SeismicEncoder model handle");
        return NULL;
    }
    return ((ubd_handle *)PyCapsule_GetPointer(cap, CAPSULE_NAME))->obj;
}

/* seisenc_view(model, kind, name=None) -> zero-copy view (CPU models only) */
static PyObject *seisenc_view(PyObject *self, PyObject *args) {
    PyObject *cap, *name_obj = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &cap, &kind, &name_obj)) return NULL;
    ubd_seisenc *m = peek(cap);
    if (!m) return NULL;
    ubd_py_tensor t;
    if (find_tensor(&t, m, kind, name_obj) < 0) return NULL;
    return ubd_py_tensor_view(cap, &t, "SeismicEncoder");
}

/* seisenc_get / seisenc_set / seisenc_zero (model, kind, name[, value]): tensor_io.h */
UBD_PY_TENSOR_ACCESSORS(seisenc)

/* seisenc_device(model) -> "cpu" | "cuda" */
static PyObject *seisenc_device(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    ubd_seisenc *m = peek(cap);
    return m ? PyUnicode_FromString(m->be->name) : NULL;
}

/* seis (B, in_channels, nt, nx) against the model: B, or -1 raised */
static int check_seis(const ubd_f32 *seis, const ubd_seisenc *m, const char *fn) {
    const ubd_seisenc_config *c = &m->cfg;
    if (ubd_py_expect(seis, fn, "seis", 4, -1LL, (long long)c->in_channels, (long long)c->nt, (long long)c->nx) < 0)
        return -1;
    if (seis->shape[0] < 1 || seis->shape[0] > c->max_batch) {
        PyErr_Format(PyExc_ValueError, "%s: batch of %zd samples, the model takes 1..%d (max_batch) per call", fn,
                     (Py_ssize_t)seis->shape[0], c->max_batch);
        return -1;
    }
    return (int)seis->shape[0];
}

/* seisenc_forward(model, z_out (B, latent), seis (B,C,nt,nx), train) */
static PyObject *seisenc_forward(PyObject *self, PyObject *args) {
    PyObject *cap, *o, *x;
    int train;
    if (!PyArg_ParseTuple(args, "OOOp", &cap, &o, &x, &train)) return NULL;
    ACQUIRE(h, cap);
    ubd_seisenc *m = h->obj;
    UBD_PY_OUT(z_out, o);
    UBD_PY_IN(seis, x);
    int B = check_seis(&seis, m, __func__);
    if (B < 0) return NULL;
    UBD_PY_EXPECT(z_out, 2, (long long)B, (long long)m->cfg.latent);
    UBD_PY_NO_OVERLAP(&z_out, &seis);
    OUTSIDE_MODEL(m, &z_out, &seis);
    UBD_HANDLE_CALL(h, ubd_seisenc_forward(m, z_out.data, seis.data, B, train));
    Py_RETURN_NONE;
}

/* seisenc_backward(model, dz (B, latent), seis): grads += (after a training forward) */
static PyObject *seisenc_backward(PyObject *self, PyObject *args) {
    PyObject *cap, *d, *x;
    if (!PyArg_ParseTuple(args, "OOO", &cap, &d, &x)) return NULL;
    ACQUIRE(h, cap);
    ubd_seisenc *m = h->obj;
    UBD_PY_IN(dz, d);
    UBD_PY_IN(seis, x);
    int B = check_seis(&seis, m, __func__);
    if (B < 0) return NULL;
    UBD_PY_EXPECT(dz, 2, (long long)B, (long long)m->cfg.latent);
    OUTSIDE_MODEL(m, &dz, &seis);
    UBD_HANDLE_CALL(h, ubd_seisenc_backward(m, dz.data, seis.data, B));
    Py_RETURN_NONE;
}

/* seisenc_apply_update(model, (lr, beta1, beta2, eps, weight_decay)): AdamW from the gradients */
static PyObject *seisenc_apply_update(PyObject *self, PyObject *args) {
    PyObject *cap;
    ubd_adam_hparams hp;
    if (ubd_py_adamw_args(args, &cap, &hp) < 0) return NULL;
    ACQUIRE(h, cap);
    UBD_HANDLE_CALL(h, ubd_seisenc_apply_update(h->obj, hp));
    Py_RETURN_NONE;
}

/* seisenc_reserve(model, max_batch) */
static PyObject *seisenc_reserve(PyObject *self, PyObject *args) {
    PyObject *cap;
    int max_batch;
    if (!PyArg_ParseTuple(args, "Oi", &cap, &max_batch)) return NULL;
    ACQUIRE(h, cap);
    UBD_HANDLE_CALL(h, ubd_seisenc_reserve(h->obj, max_batch));
    Py_RETURN_NONE;
}

/* seisenc_step(model[, new_step]) -> AdamW step counter (set when given) */
static PyObject *seisenc_step(PyObject *self, PyObject *args) {
    PyObject *cap;
    long long step = -1;
    if (!PyArg_ParseTuple(args, "O|L", &cap, &step)) return NULL;
    ACQUIRE(h, cap);
    if (PyTuple_GET_SIZE(args) > 1) {
        if (step < 0) {
            PyErr_Format(PyExc_ValueError, "seisenc_step: step must be >= 0, got %lld", step);
            return NULL;
        }
        ((ubd_seisenc *)h->obj)->step = step;
    }
    return PyLong_FromLongLong(((ubd_seisenc *)h->obj)->step);
}

PyMethodDef ubd_py_seisenc_methods[] = {
    {"seisenc_layout", seisenc_layout, METH_VARARGS,
     "seisenc_layout(config) -> (params, stats, blocks): seismic-encoder tables without allocating."},
    {"seisenc_create", seisenc_create, METH_VARARGS,
     "seisenc_create(config, seed, device='auto') -> model handle on 'cpu' or 'cuda'."},
    {"seisenc_init", seisenc_init, METH_VARARGS, "seisenc_init(model, seed): re-initialise."},
    {"seisenc_device", seisenc_device, METH_VARARGS, "seisenc_device(model) -> 'cpu' | 'cuda'."},
    {"seisenc_view", seisenc_view, METH_VARARGS, "seisenc_view(model, kind, name=None) -> zero-copy view (CPU)."},
    {"seisenc_get", seisenc_get, METH_VARARGS, "seisenc_get(model, kind, name=None) -> host copy."},
    {"seisenc_set", seisenc_set, METH_VARARGS, "seisenc_set(model, kind, name, value): copy value in."},
    {"seisenc_zero", seisenc_zero, METH_VARARGS, "seisenc_zero(model, kind, name=None): set to zero."},
    {"seisenc_forward", seisenc_forward, METH_VARARGS, "seisenc_forward(model, z_out, seis, train)."},
    {"seisenc_backward", seisenc_backward, METH_VARARGS, "seisenc_backward(model, dz, seis): grads +=."},
    {"seisenc_apply_update", seisenc_apply_update, METH_VARARGS,
     "seisenc_apply_update(model, (lr, b1, b2, eps, wd)): AdamW from the gradients."},
    {"seisenc_reserve", seisenc_reserve, METH_VARARGS, "seisenc_reserve(model, max_batch): re-size activations."},
    {"seisenc_step", seisenc_step, METH_VARARGS, "seisenc_step(model[, step]) -> AdamW step counter."},
    {NULL, NULL, 0, NULL}};
