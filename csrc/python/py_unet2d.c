/* py_unet2d.c — bindings of the 2-D U-Net (csrc/models/unet2d.h) and of its
 * new op, pixel-unshuffle (CPU, and in CUDA builds the host-roundtrip twin
 * cuda_pixel_unshuffle_* that tests compare with it).
 *
 * A model is a PyCapsule owning a ubd_unet2d on the backend named at creation
 * (device "cpu" | "cuda" | "auto"). Its tensors (param, grad, m, v, ema) are
 * reached through tensor_io.h: copies in and out on every device, zero-copy
 * views on the CPU. Compute calls take host arrays; the model stages them.
 * A config travels as the tuple
 *   (dim, (dim_mults...), (full_attn flags...), channels, height, width, groups, heads, dim_head).
 * Compute calls release the GIL; a model used by two threads at once raises
 * RuntimeError instead of racing. */
#include "handle.h" /* first: Python.h must precede system headers */
#include <limits.h>
#include <string.h>

#include "tensor_io.h"

#include "../shape_ops.h"
#include "models/unet2d.h"
#ifdef UBDIFF_WITH_CUDA
#include "roundtrip.h"
#endif

#define CAPSULE_NAME "ubdiff.UNet2D"

static void unet2d_destroy(void *m) { ubd_unet2d_free(m); }
#define ACQUIRE(var, cap) UBD_HANDLE_ACQUIRE(var, cap, CAPSULE_NAME)
/* Arrays handed to the model must not lie inside its own parameter buffers. */
#define OUTSIDE_MODEL(m, ...) UBD_PY_OUTSIDE_MODEL(ubd_unet2d_params(m), NULL, __VA_ARGS__)

/* A sequence of 1..UBD_UNET2D_MAX_LEVELS ints in [lo, hi] into out, read
 * from a tuple copy (an item's __index__ cannot change it under the loop);
 * returns the count or -1. */
static int int_seq(PyObject *obj, int *out, const char *what, long long lo, long long hi) {
    PyObject *seq = ubd_py_tuple(obj, "UNet2D config", what);
    if (!seq) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    if (n < 1 || n > UBD_UNET2D_MAX_LEVELS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "UNet2D config: %s needs 1..%d entries, got %zd", what, UBD_UNET2D_MAX_LEVELS,
                     n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v;
        if (ubd_py_int_item(seq, i, "UNet2D config", what, lo, hi, &v) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        out[i] = (int)v;
    }
    Py_DECREF(seq);
    return (int)n;
}

/* Also the pixel DDPM's config (py_diffusion.c, diffusion_create_unet2d). */
int ubd_py_unet2d_config(PyObject *obj, ubd_unet2d_config *c) {
    memset(c, 0, sizeof *c);
    PyObject *mults, *full;
    if (!PyTuple_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "UNet2D config must be a tuple (dim, dim_mults, full_attn, channels, "
                                         "height, width, groups, heads, dim_head)");
        return -1;
    }
    if (!PyArg_ParseTuple(obj, "iOOiiiiii;UNet2D config", &c->dim, &mults, &full, &c->channels, &c->height,
                          &c->width, &c->groups, &c->heads, &c->dim_head))
        return -1;
    int n = int_seq(mults, c->mults, "dim_mults", 1, 1 << 16);
    if (n < 0) return -1;
    int nf = int_seq(full, c->full_attn, "full_attn", 0, 1);
    if (nf < 0) return -1;
    if (nf != n) {
        PyErr_Format(PyExc_ValueError, "UNet2D config: full_attn has %d entries, dim_mults %d; they must match", nf, n);
        return -1;
    }
    c->nlevels = n;
    return 0;
}

/* unet2d_layout(config) -> ([(name, shape)] in state_dict order, (PH, PW, top, left)), without a model */
static PyObject *unet2d_layout(PyObject *self, PyObject *args) {
    PyObject *cfg_obj;
    if (!PyArg_ParseTuple(args, "O", &cfg_obj)) return NULL;
    ubd_unet2d_config cfg;
    if (ubd_py_unet2d_config(cfg_obj, &cfg) < 0) return NULL;
    int PH, PW, top, left;
    ubd_status s = ubd_unet2d_geometry(&cfg, &PH, &PW, &top, &left);
    if (s != UBD_OK) return ubd_py_raise(s);
    ubd_params p;
    ubd_params_init(&p);
    s = ubd_unet2d_tables(&p, &cfg);
    if (s != UBD_OK) {
        ubd_params_free(&p);
        return ubd_py_raise(s);
    }
    PyObject *list = PyList_New(p.nviews);
    for (int i = 0; list && i < p.nviews; i++) {
        const ubd_view *v = &p.views[i];
        PyObject *shape = PyTuple_New(v->ndim);
        if (!shape) {
            Py_CLEAR(list);
            break;
        }
        for (int d = 0; d < v->ndim; d++) PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(v->shape[d]));
        PyList_SET_ITEM(list, i, Py_BuildValue("(sN)", v->name, shape));
    }
    ubd_params_free(&p);
    if (!list) return NULL;
    return Py_BuildValue("(N(iiii))", list, PH, PW, top, left);
}

/* unet2d_create(config, max_batch, seed, device="auto") -> model handle, initialised as torch does */
static PyObject *unet2d_create(PyObject *self, PyObject *args) {
    PyObject *cfg_obj;
    PyObject *seed_obj;
    int max_batch;
    const char *device = "auto";
    if (!PyArg_ParseTuple(args, "OiO|s", &cfg_obj, &max_batch, &seed_obj, &device)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ubd_unet2d_config cfg;
    if (ubd_py_unet2d_config(cfg_obj, &cfg) < 0) return NULL;
    const ubd_backend *be = NULL;
    ubd_status s = ubd_backend_find(device, &be);
    if (s != UBD_OK) return ubd_py_raise(s);
    ubd_unet2d *m = NULL;
    Py_BEGIN_ALLOW_THREADS s = ubd_unet2d_create(&m, &cfg, max_batch, be);
    if (s == UBD_OK) s = ubd_unet2d_init(m, (uint64_t)seed);
    Py_END_ALLOW_THREADS if (s != UBD_OK) {
        ubd_unet2d_free(m);
        return ubd_py_raise(s);
    }
    return ubd_handle_new(m, unet2d_destroy, CAPSULE_NAME, "UNet2D");
}

/* unet2d_init(model, seed): re-initialise parameters (EMA := params), Adam state and step */
static PyObject *unet2d_init(PyObject *self, PyObject *args) {
    PyObject *cap, *seed_obj;
    if (!PyArg_ParseTuple(args, "OO", &cap, &seed_obj)) return NULL;
    ACQUIRE(h, cap);
    UBD_PY_U64(seed, seed_obj);
    UBD_HANDLE_CALL(h, ubd_unet2d_init(h->obj, (uint64_t)seed));
    Py_RETURN_NONE;
}

/* A write of the weights (param, EMA) through set / zero / allreduce forgets the saved forward. */
static void forget(void *m) { ubd_unet2d_forget_forward(m); }

static int find_tensor(ubd_py_tensor *t, ubd_unet2d *m, const char *kind, PyObject *name) {
    for (int k = 0; k < UBD_NUM_BUFS; k++)
        if (strcmp(kind, ubd_buf_kind_name((ubd_buf_kind)k)) == 0)
            return ubd_py_tensor_forgets(
                t, ubd_py_tensor_find(t, ubd_unet2d_params(m), (ubd_buf_kind)k, name, "UNet2D", "parameter"), forget,
                m);
    PyErr_Format(PyExc_ValueError, "UNet2D: kind must be param, grad, m, v or ema; got '%s'", kind);
    return -1;
}

/* The model of a capsule without the busy check (views and metadata may be read while it runs). */
static ubd_unet2d *peek(PyObject *cap) {
    if (!PyCapsule_IsValid(cap, CAPSULE_NAME)) {
        PyErr_SetString(PyExc_TypeError, "expected a UNet2D model handle");
        return NULL;
    }
    return ((ubd_handle *)PyCapsule_GetPointer(cap, CAPSULE_NAME))->obj;
}

/* unet2d_view(model, kind, name=None) -> zero-copy view (CPU models only) */
static PyObject *unet2d_view(PyObject *self, PyObject *args) {
    PyObject *cap, *name_obj = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &cap, &kind, &name_obj)) return NULL;
    ubd_unet2d *m = peek(cap);
    if (!m) return NULL;
    ubd_py_tensor t;
    if (find_tensor(&t, m, kind, name_obj) < 0) return NULL;
    return ubd_py_tensor_view(cap, &t, "UNet2D");
}

/* unet2d_get / unet2d_set / unet2d_zero (model, kind, name[, value]): tensor_io.h */
UBD_PY_TENSOR_ACCESSORS(unet2d)

/* unet2d_info(model) -> {device, max_batch, num_parameters, activation_floats, step} */
static PyObject *unet2d_info(PyObject *self, PyObject *args) {
    PyObject *cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    ubd_unet2d *m = peek(cap);
    if (!m) return NULL;
    return Py_BuildValue("{s:s,s:i,s:n,s:n,s:L}", "device", ubd_unet2d_backend(m)->name, "max_batch",
                         ubd_unet2d_max_batch(m), "num_parameters", (Py_ssize_t)ubd_unet2d_params(m)->n,
                         "activation_floats", (Py_ssize_t)ubd_unet2d_activation_floats(m), "step",
                         ubd_unet2d_get_step(m));
}

/* Checks a (B, channels, height, width) array against the model; returns B or -1. */
static int check_maps(const ubd_f32 *a, const ubd_unet2d *m, const char *fn, const char *name) {
    const ubd_unet2d_config c = ubd_unet2d_get_config(m);
    if (ubd_py_expect(a, fn, name, 4, -1LL, (long long)c.channels, (long long)c.height, (long long)c.width) < 0)
        return -1;
    if (a->shape[0] < 1 || a->shape[0] > ubd_unet2d_max_batch(m)) {
        PyErr_Format(PyExc_ValueError, "%s: %s holds %zd samples, the model takes 1..%d (max_batch) per call", fn, name,
                     (Py_ssize_t)a->shape[0], ubd_unet2d_max_batch(m));
        return -1;
    }
    return (int)a->shape[0];
}

static int parse_weights(const char *w, ubd_buf_kind *k) {
    if (strcmp(w, "param") == 0) *k = UBD_BUF_PARAM;
    else if (strcmp(w, "ema") == 0) *k = UBD_BUF_EMA;
    else {
        PyErr_Format(PyExc_ValueError, "UNet2D: weights must be 'param' or 'ema', got '%s'", w);
        return -1;
    }
    return 0;
}

/* unet2d_forward(model, out, x, t (B,), weights="param") */
static PyObject *unet2d_forward(PyObject *self, PyObject *args) {
    PyObject *cap, *o, *xo, *to;
    const char *wname = "param";
    if (!PyArg_ParseTuple(args, "OOOO|s", &cap, &o, &xo, &to, &wname)) return NULL;
    ubd_buf_kind wk;
    if (parse_weights(wname, &wk) < 0) return NULL;
    ACQUIRE(h, cap);
    UBD_PY_OUT(out, o);
    UBD_PY_IN(x, xo);
    UBD_PY_IN(t, to);
    int B = check_maps(&x, h->obj, __func__, "x");
    if (B < 0) return NULL;
    UBD_PY_EXPECT(t, 1, (long long)B);
    UBD_PY_EXPECT(out, 4, (long long)B, (long long)x.shape[1], (long long)x.shape[2], (long long)x.shape[3]);
    UBD_PY_NO_OVERLAP(&out, &x, &t);
    OUTSIDE_MODEL(h->obj, &out, &x, &t);
    UBD_HANDLE_CALL(h, ubd_unet2d_forward(h->obj, out.data, x.data, t.data, B, wk));
    Py_RETURN_NONE;
}

/* unet2d_backward(model, dx | None, dout): grads +=, dx += (after a forward with weights="param") */
static PyObject *unet2d_backward(PyObject *self, PyObject *args) {
    PyObject *cap, *dxo, *dd;
    if (!PyArg_ParseTuple(args, "OOO", &cap, &dxo, &dd)) return NULL;
    ACQUIRE(h, cap);
    UBD_PY_OPT_OUT(dx, dxo);
    UBD_PY_IN(dout, dd);
    int B = check_maps(&dout, h->obj, __func__, "dout");
    if (B < 0) return NULL;
    UBD_PY_EXPECT_OPT(dx, 4, (long long)B, (long long)dout.shape[1], (long long)dout.shape[2],
                      (long long)dout.shape[3]);
    UBD_PY_NO_OVERLAP(&dx, &dout);
    OUTSIDE_MODEL(h->obj, &dx, &dout);
    UBD_HANDLE_CALL(h, ubd_unet2d_backward(h->obj, dx.data, dout.data, B));
    Py_RETURN_NONE;
}

/* unet2d_train_step(model, losses (2), x, t, target, lr, beta1, beta2, eps, weight_decay, decoupled,
 *                   max_grad_norm): MSE regression step; losses = (loss, grad norm before clipping) */
static PyObject *unet2d_train_step(PyObject *self, PyObject *args) {
    PyObject *cap, *lo, *xo, *to, *yo;
    ubd_unet2d_hparams hp;
    int decoupled;
    if (!PyArg_ParseTuple(args, "OOOOOfffffpf", &cap, &lo, &xo, &to, &yo, &hp.adam.lr, &hp.adam.beta1,
                          &hp.adam.beta2, &hp.adam.eps, &hp.adam.weight_decay, &decoupled, &hp.max_grad_norm))
        return NULL;
    hp.adam.decoupled = decoupled;
    ACQUIRE(h, cap);
    UBD_PY_OUT(losses, lo);
    UBD_PY_IN(x, xo);
    UBD_PY_IN(t, to);
    UBD_PY_IN(target, yo);
    UBD_PY_EXPECT(losses, 1, 2LL);
    int B = check_maps(&x, h->obj, __func__, "x");
    if (B < 0) return NULL;
    UBD_PY_EXPECT(t, 1, (long long)B);
    UBD_PY_EXPECT(target, 4, (long long)B, (long long)x.shape[1], (long long)x.shape[2], (long long)x.shape[3]);
    UBD_PY_NO_OVERLAP(&losses, &x, &t, &target);
    OUTSIDE_MODEL(h->obj, &losses, &x, &t, &target);
    UBD_HANDLE_CALL(h, ubd_unet2d_train_step(h->obj, losses.data, x.data, t.data, target.data, B, hp));
    Py_RETURN_NONE;
}

/* unet2d_reserve(model, max_batch): re-plans the activations (parameter views stay valid) */
static PyObject *unet2d_reserve(PyObject *self, PyObject *args) {
    PyObject *cap;
    int max_batch;
    if (!PyArg_ParseTuple(args, "Oi", &cap, &max_batch)) return NULL;
    ACQUIRE(h, cap);
    UBD_HANDLE_CALL(h, ubd_unet2d_reserve(h->obj, max_batch));
    Py_RETURN_NONE;
}

/* unet2d_step(model[, new_step]) -> Adam step counter (set when given) */
static PyObject *unet2d_step(PyObject *self, PyObject *args) {
    PyObject *cap;
    long long step = -1;
    if (!PyArg_ParseTuple(args, "O|L", &cap, &step)) return NULL;
    ACQUIRE(h, cap);
    if (PyTuple_GET_SIZE(args) > 1) UBD_HANDLE_CALL(h, ubd_unet2d_set_step(h->obj, step));
    return PyLong_FromLongLong(ubd_unet2d_get_step(h->obj));
}

/* ---- pixel-unshuffle -------------------------------------------------------------- */

/* Checks inp-side (B, C, H, W) and out-side (B, C*r*r, H/r, W/r) arrays; 0 ok / -1 raised. */
static int unshuffle_shapes(const ubd_f32 *big, const ubd_f32 *small, int r, const char *fn, const char *bname,
                            const char *sname) {
    if (r < 1) {
        PyErr_Format(PyExc_ValueError, "%s: the factor r must be positive, got %d", fn, r);
        return -1;
    }
    if (ubd_py_expect(big, fn, bname, 4, -1LL, -1LL, -1LL, -1LL) < 0) return -1;
    const long long B = big->shape[0], C = big->shape[1], H = big->shape[2], W = big->shape[3];
    if (H % r || W % r) {
        PyErr_Format(PyExc_ValueError, "%s: %s is %lld x %lld, not a multiple of the factor %d", fn, bname, H, W, r);
        return -1;
    }
    if (B > INT_MAX || C * r * r > INT_MAX || H > INT_MAX || W > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: %s is too large", fn, bname);
        return -1;
    }
    return ubd_py_expect(small, fn, sname, 4, B, C * r * r, H / r, W / r);
}

/* pixel_unshuffle_forward(out (B,C*r*r,H/r,W/r), inp (B,C,H,W), r) */
static PyObject *unshuffle_forward(PyObject *args, int cuda) {
    PyObject *o, *i;
    int r;
    if (!PyArg_ParseTuple(args, "OOi", &o, &i, &r)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    if (unshuffle_shapes(&inp, &out, r, "pixel_unshuffle_forward", "inp", "out") < 0) return NULL;
    UBD_PY_NO_OVERLAP_FN("pixel_unshuffle_forward", 0, &out, &inp);
    const int B = (int)inp.shape[0], C = (int)inp.shape[1], H = (int)inp.shape[2], W = (int)inp.shape[3];
#ifdef UBDIFF_WITH_CUDA
    if (cuda) {
        ubd_rt rt = {0};
        UBD_RT_PUSH(rt, out, 1);
        UBD_RT_PUSH(rt, inp, 0);
        return ubd_rt_done(&rt, ubd_cuda_pixel_unshuffle_forward(rt.dev[0], rt.dev[1], B, C, H, W, r));
    }
#endif
    (void)cuda;
    UBD_PY_CALL(ubd_cpu_pixel_unshuffle_forward(out.data, inp.data, B, C, H, W, r));
    Py_RETURN_NONE;
}

/* pixel_unshuffle_backward(dinp (B,C,H,W), dout (B,C*r*r,H/r,W/r), r): dinp += */
static PyObject *unshuffle_backward(PyObject *args, int cuda) {
    PyObject *di, *d;
    int r;
    if (!PyArg_ParseTuple(args, "OOi", &di, &d, &r)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    if (unshuffle_shapes(&dinp, &dout, r, "pixel_unshuffle_backward", "dinp", "dout") < 0) return NULL;
    UBD_PY_NO_OVERLAP_FN("pixel_unshuffle_backward", 0, &dinp, &dout);
    const int B = (int)dinp.shape[0], C = (int)dinp.shape[1], H = (int)dinp.shape[2], W = (int)dinp.shape[3];
#ifdef UBDIFF_WITH_CUDA
    if (cuda) {
        ubd_rt rt = {0};
        UBD_RT_PUSH(rt, dinp, 1); /* copied in too: the gradient accumulates */
        UBD_RT_PUSH(rt, dout, 0);
        return ubd_rt_done(&rt, ubd_cuda_pixel_unshuffle_backward(rt.dev[0], rt.dev[1], B, C, H, W, r));
    }
#endif
    (void)cuda;
    UBD_PY_CALL(ubd_cpu_pixel_unshuffle_backward(dinp.data, dout.data, B, C, H, W, r));
    Py_RETURN_NONE;
}

static PyObject *py_unshuffle_forward(PyObject *self, PyObject *args) { return unshuffle_forward(args, 0); }
static PyObject *py_unshuffle_backward(PyObject *self, PyObject *args) { return unshuffle_backward(args, 0); }
#ifdef UBDIFF_WITH_CUDA
static PyObject *cuda_unshuffle_forward(PyObject *self, PyObject *args) { return unshuffle_forward(args, 1); }
static PyObject *cuda_unshuffle_backward(PyObject *self, PyObject *args) { return unshuffle_backward(args, 1); }
#endif

PyMethodDef ubd_py_unet2d_methods[] = {
    {"unet2d_layout", unet2d_layout, METH_VARARGS,
     "unet2d_layout(config) -> ([(name, shape)], (PH, PW, top, left)): the 2-D U-Net's table, no model."},
    {"unet2d_create", unet2d_create, METH_VARARGS,
     "unet2d_create(config, max_batch, seed, device='auto') -> model handle on 'cpu' or 'cuda'."},
    {"unet2d_init", unet2d_init, METH_VARARGS, "unet2d_init(model, seed): re-initialise."},
    {"unet2d_info", unet2d_info, METH_VARARGS, "unet2d_info(model) -> dict(device, max_batch, ...)."},
    {"unet2d_view", unet2d_view, METH_VARARGS, "unet2d_view(model, kind, name=None) -> zero-copy view (CPU only)."},
    {"unet2d_get", unet2d_get, METH_VARARGS, "unet2d_get(model, kind, name=None) -> host copy."},
    {"unet2d_set", unet2d_set, METH_VARARGS, "unet2d_set(model, kind, name, value): copy value in."},
    {"unet2d_zero", unet2d_zero, METH_VARARGS, "unet2d_zero(model, kind, name=None): set to zero."},
    {"unet2d_forward", unet2d_forward, METH_VARARGS, "unet2d_forward(model, out, x, t, weights='param')."},
    {"unet2d_backward", unet2d_backward, METH_VARARGS, "unet2d_backward(model, dx|None, dout): grads +=, dx +=."},
    {"unet2d_train_step", unet2d_train_step, METH_VARARGS,
     "unet2d_train_step(model, losses, x, t, target, lr, beta1, beta2, eps, weight_decay, decoupled, "
     "max_grad_norm)."},
    {"unet2d_reserve", unet2d_reserve, METH_VARARGS, "unet2d_reserve(model, max_batch): re-size activations."},
    {"unet2d_step", unet2d_step, METH_VARARGS, "unet2d_step(model[, step]) -> Adam step counter."},
    {"pixel_unshuffle_forward", py_unshuffle_forward, METH_VARARGS,
     "pixel_unshuffle_forward(out (B,C*r*r,H/r,W/r), inp (B,C,H,W), r): space-to-depth"},
    {"pixel_unshuffle_backward", py_unshuffle_backward, METH_VARARGS,
     "pixel_unshuffle_backward(dinp (B,C,H,W), dout, r); dinp +="},
#ifdef UBDIFF_WITH_CUDA
    {"cuda_pixel_unshuffle_forward", cuda_unshuffle_forward, METH_VARARGS,
     "pixel_unshuffle_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_pixel_unshuffle_backward", cuda_unshuffle_backward, METH_VARARGS,
     "pixel_unshuffle_backward on the GPU, host arrays in/out (tests)."},
#endif
    {NULL, NULL, 0, NULL}};
