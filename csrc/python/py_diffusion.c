/* py_diffusion.c — bindings of the latent diffusion model (models/diffusion.h,
 * models/unet1d.h). A model is a PyCapsule owning a ubd_diffusion; its flat
 * buffers are handed out as zero-copy NumPy arrays that keep the capsule
 * alive. ubdiff/models/diffusion.py wraps these into LatentDiffusion.
 * A model runs one call at a time: a call made while another thread is
 * inside one on the same model raises RuntimeError instead of racing. */
#include "handle.h" /* first: Python.h must precede system headers */
#include <math.h>
#include <string.h>

#include "../models/diffusion.h"

#define CAPSULE_NAME "ubdiff.LatentDiffusionCore"

static void dm_destroy(void *d) { ubd_diffusion_free(d); }
#define ACQUIRE(var, cap) UBD_HANDLE_ACQUIRE(var, cap, CAPSULE_NAME)
#define DM_CALL UBD_HANDLE_CALL
/* arrays handed to the model lie outside its own buffers */
#define OUTSIDE_MODEL(b, ...) UBD_PY_OUTSIDE_MODEL(ubd_unet1d_params(ubd_diffusion_net((b)->obj)), NULL, __VA_ARGS__)

/* diffusion_create(dim, dim_mults, channels, seq_len, groups, heads, dim_head,
 *                  max_batch, timesteps, seed) -> handle */
static PyObject *diffusion_create(PyObject *self, PyObject *args) {
    ubd_unet1d_config c;
    memset(&c, 0, sizeof c);
    PyObject *mults, *seed_obj;
    int max_batch, T;
    if (!PyArg_ParseTuple(args, "iOiiiiiiiO", &c.dim, &mults, &c.channels, &c.seq_len, &c.groups, &c.heads,
                          &c.dim_head, &max_batch, &T, &seed_obj))
        return NULL;
    UBD_PY_U64(seed, seed_obj);
    PyObject *seq = ubd_py_tuple(mults, __func__, "dim_mults");
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    if (n < 1 || n > UBD_UNET_MAX_LEVELS) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "diffusion_create: need 1..%d dim_mults, got %zd", UBD_UNET_MAX_LEVELS,
                            n);
    }
    c.nlevels = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v;
        if (ubd_py_int_item(seq, i, __func__, "dim_mults", 1, 1 << 16, &v) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        c.mults[i] = (int)v;
    }
    Py_DECREF(seq);
    ubd_diffusion *d = NULL;
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_diffusion_create(&d, c, max_batch, T, (uint64_t)seed);
    Py_END_ALLOW_THREADS if (s != UBD_OK) return ubd_py_raise(s);
    return ubd_handle_new(d, dm_destroy, CAPSULE_NAME, "latent diffusion");
}

/* diffusion_init(h, seed): re-initialise the parameters (EMA := params, m = v = 0). */
static PyObject *diffusion_init(PyObject *self, PyObject *args) {
    PyObject *h, *seed_obj;
    if (!PyArg_ParseTuple(args, "OO", &h, &seed_obj)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(b, h);
    DM_CALL(b, ubd_unet1d_init(ubd_diffusion_net(b->obj), (uint64_t)seed));
    Py_RETURN_NONE;
}

/* diffusion_spec(h) -> [(name, shape, offset)] in state_dict order */
static PyObject *diffusion_spec(PyObject *self, PyObject *args) {
    PyObject *h;
    if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
    ACQUIRE(b, h);
    return ubd_py_params_spec(ubd_unet1d_params(ubd_diffusion_net(b->obj)));
}

/* diffusion_buffer(h, kind) -> zero-copy 1-D float32 view of param|grad|m|v|ema */
static PyObject *diffusion_buffer(PyObject *self, PyObject *args) {
    PyObject *h;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os", &h, &kind)) return NULL;
    ACQUIRE(b, h);
    int k = -1;
    for (int i = 0; i < UBD_NUM_BUFS; i++)
        if (strcmp(kind, ubd_buf_kind_name((ubd_buf_kind)i)) == 0) k = i;
    if (k < 0) return PyErr_Format(PyExc_ValueError, "buffer kind must be one of param, grad, m, v, ema; got '%s'", kind);
    ubd_params *p = ubd_unet1d_params(ubd_diffusion_net(b->obj));
    npy_intp n = (npy_intp)p->n;
    return ubd_py_view(h, p->buf[k], 1, &n);
}

/* diffusion_schedule(h) -> {name: float64 array (T,)} (copies) */
static PyObject *diffusion_schedule(PyObject *self, PyObject *args) {
    PyObject *h;
    if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
    ACQUIRE(b, h);
    npy_intp T = ubd_diffusion_timesteps(b->obj);
    PyObject *dict = PyDict_New();
    if (!dict) return NULL;
    for (int k = 0; k < UBD_SCHED_NUM; k++) {
        PyObject *arr = PyArray_SimpleNew(1, &T, NPY_FLOAT64);
        if (!arr) {
            Py_DECREF(dict);
            return NULL;
        }
        memcpy(PyArray_DATA((PyArrayObject *)arr), ubd_diffusion_schedule(b->obj, (ubd_sched_array)k),
               (size_t)T * sizeof(double));
        int rc = PyDict_SetItemString(dict, ubd_sched_name((ubd_sched_array)k), arr);
        Py_DECREF(arr);
        if (rc < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    return dict;
}

/* diffusion_info(h) -> dict(timesteps, max_batch, num_parameters, activation_floats) */
static PyObject *diffusion_info(PyObject *self, PyObject *args) {
    PyObject *h;
    if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
    ACQUIRE(b, h);
    ubd_unet1d *net = ubd_diffusion_net(b->obj);
    return Py_BuildValue("{s:i,s:i,s:n,s:n}", "timesteps", ubd_diffusion_timesteps(b->obj), "max_batch",
                         ubd_unet1d_max_batch(net), "num_parameters", (Py_ssize_t)ubd_unet1d_params(net)->n,
                         "activation_floats", (Py_ssize_t)ubd_unet1d_activation_floats(net));
}

/* Checks x is (B, channels, seq_len) with 1 <= B <= max_batch; returns B or -1. */
static int batch_of(ubd_handle *b, const ubd_f32 *x, const char *fn, const char *name, int limit) {
    ubd_unet1d_config c = ubd_unet1d_get_config(ubd_diffusion_net(b->obj));
    if (ubd_py_expect(x, fn, name, 3, -1LL, (long long)c.channels, (long long)c.seq_len) < 0) return -1;
    int mb = ubd_unet1d_max_batch(ubd_diffusion_net(b->obj));
    if (x->shape[0] < 1 || (limit && x->shape[0] > mb)) {
        PyErr_Format(PyExc_ValueError, "%s: %s has batch %zd; need 1..%d (max_batch)", fn, name,
                     (Py_ssize_t)x->shape[0], mb);
        return -1;
    }
    return (int)x->shape[0];
}

/* unet_forward(h, out (B,C,L), x (B,C,L), t (B,), use_ema) */
static PyObject *unet_forward(PyObject *self, PyObject *args) {
    PyObject *h, *o, *xo, *to;
    int use_ema;
    if (!PyArg_ParseTuple(args, "OOOOp", &h, &o, &xo, &to, &use_ema)) return NULL;
    ACQUIRE(b, h);
    UBD_PY_OUT(out, o);
    UBD_PY_IN(x, xo);
    UBD_PY_IN(t, to);
    int B = batch_of(b, &x, __func__, "x", 1);
    if (B < 0) return NULL;
    UBD_PY_EXPECT(out, 3, (long long)B, x.shape[1], x.shape[2]);
    UBD_PY_EXPECT(t, 1, (long long)B);
    UBD_PY_NO_OVERLAP(&out, &x, &t);
    OUTSIDE_MODEL(b, &out, &x, &t);
    DM_CALL(b, ubd_unet1d_forward(ubd_diffusion_net(b->obj), out.data, x.data, t.data, B,
                                  use_ema ? UBD_BUF_EMA : UBD_BUF_PARAM));
    Py_RETURN_NONE;
}

/* unet_backward(h, dx (B,C,L) | None, dout (B,C,L)): grad buffer +=, dx += */
static PyObject *unet_backward(PyObject *self, PyObject *args) {
    PyObject *h, *dxo, *dao;
    if (!PyArg_ParseTuple(args, "OOO", &h, &dxo, &dao)) return NULL;
    ACQUIRE(b, h);
    UBD_PY_OPT_OUT(dx, dxo);
    UBD_PY_IN(dout, dao);
    int B = batch_of(b, &dout, __func__, "dout", 1);
    if (B < 0) return NULL;
    UBD_PY_EXPECT_OPT(dx, 3, (long long)B, dout.shape[1], dout.shape[2]);
    UBD_PY_NO_OVERLAP(&dx, &dout);
    OUTSIDE_MODEL(b, &dx, &dout);
    DM_CALL(b, ubd_unet1d_backward(ubd_diffusion_net(b->obj), dx.data, dout.data, B));
    Py_RETURN_NONE;
}

/* Integer time steps from a float32 array (exact integers required). */
static int times_of(const ubd_f32 *t, int *ti, int B, const char *fn) {
    for (int i = 0; i < B; i++) {
        float v = t->data[i];
        if (!(v == floorf(v)) || v < 0.0f || v > 1e8f) {
            PyErr_Format(PyExc_ValueError, "%s: t[%d] = %g is not a non-negative integer", fn, i, (double)v);
            return -1;
        }
        ti[i] = (int)v;
    }
    return 0;
}

/* diffusion_loss(h, per_sample (B,) | None, z0, t (B,) float32 integers, noise, grad_scale) -> loss */
static PyObject *diffusion_loss(PyObject *self, PyObject *args) {
    PyObject *h, *po, *zo, *to, *no;
    float grad_scale;
    if (!PyArg_ParseTuple(args, "OOOOOf", &h, &po, &zo, &to, &no, &grad_scale)) return NULL;
    ACQUIRE(b, h);
    UBD_PY_OPT_OUT(per_sample, po);
    UBD_PY_IN(z0, zo);
    UBD_PY_IN(t, to);
    UBD_PY_IN(noise, no);
    int B = batch_of(b, &z0, __func__, "z0", 1);
    if (B < 0) return NULL;
    UBD_PY_EXPECT(t, 1, (long long)B);
    UBD_PY_EXPECT(noise, 3, (long long)B, z0.shape[1], z0.shape[2]);
    UBD_PY_EXPECT_OPT(per_sample, 1, (long long)B);
    UBD_PY_NO_OVERLAP(&per_sample, &z0, &t, &noise);
    OUTSIDE_MODEL(b, &per_sample, &z0, &t, &noise);
    if (!(grad_scale >= 0.0f)) return PyErr_Format(PyExc_ValueError, "diffusion_loss: grad_scale must be >= 0");
    int ti[4096];
    if (B > 4096) return PyErr_Format(PyExc_ValueError, "diffusion_loss: batch too large");
    if (times_of(&t, ti, B, __func__) < 0) return NULL;
    float loss = 0.0f;
    DM_CALL(b, ubd_diffusion_loss(b->obj, &loss, per_sample.data, z0.data, ti, noise.data, B, grad_scale));
    return PyFloat_FromDouble(loss);
}

/* diffusion_train_step(h, z0 (accum*B,C,L), B, accum, seed, step, lr, beta1, beta2, eps,
 *                      weight_decay, max_grad_norm, ema_decay, ema_every) -> (loss, grad_norm) */
static PyObject *diffusion_train_step(PyObject *self, PyObject *args) {
    PyObject *h, *zo, *seed_obj;
    int B, accum, ema_every;
    long long step;
    ubd_diffusion_hparams hp;
    memset(&hp, 0, sizeof hp);
    if (!PyArg_ParseTuple(args, "OOiiOLfffffffi", &h, &zo, &B, &accum, &seed_obj, &step, &hp.adam.lr, &hp.adam.beta1,
                          &hp.adam.beta2, &hp.adam.eps, &hp.adam.weight_decay, &hp.max_grad_norm, &hp.ema_decay,
                          &ema_every))
        return NULL;
    UBD_PY_U64(seed, seed_obj);
    hp.ema_every = ema_every;
    hp.adam.decoupled = 0; /* torch.optim.Adam: L2 weight decay (0 in the paper) */
    ACQUIRE(b, h);
    UBD_PY_IN(z0, zo);
    if (batch_of(b, &z0, __func__, "z0", 0) < 0) return NULL;
    if (B < 1 || accum < 1 || (long long)z0.shape[0] != (long long)B * accum)
        return PyErr_Format(PyExc_ValueError,
                            "diffusion_train_step: z0 has %zd samples, expected batch * accum = %d * %d",
                            (Py_ssize_t)z0.shape[0], B, accum);
    OUTSIDE_MODEL(b, &z0);
    float loss = 0.0f, gnorm = 0.0f;
    DM_CALL(b, ubd_diffusion_train_step(b->obj, &loss, &gnorm, z0.data, B, accum, (uint64_t)seed, step, hp));
    return Py_BuildValue("(dd)", (double)loss, (double)gnorm);
}

static int sampler_args(ubd_handle *b, int sampler, int steps, int *nsteps) {
    ubd_status s = ubd_diffusion_sampler_steps(b->obj, (ubd_sampler)sampler, steps, nsteps);
    if (s != UBD_OK) {
        ubd_py_raise(s);
        return -1;
    }
    return 0;
}

/* diffusion_sampler_steps(h, sampler, steps) -> number of reverse steps */
static PyObject *diffusion_sampler_steps(PyObject *self, PyObject *args) {
    PyObject *h;
    int sampler, steps, n = 0;
    if (!PyArg_ParseTuple(args, "Oii", &h, &sampler, &steps)) return NULL;
    ACQUIRE(b, h);
    if (sampler_args(b, sampler, steps, &n) < 0) return NULL;
    return PyLong_FromLong(n);
}

/* diffusion_sample(h, z (N,C,L), seed, sampler, steps, eta, use_ema) */
static PyObject *diffusion_sample(PyObject *self, PyObject *args) {
    PyObject *h, *zo, *seed_obj;
    int sampler, steps, use_ema;
    float eta;
    if (!PyArg_ParseTuple(args, "OOOiifp", &h, &zo, &seed_obj, &sampler, &steps, &eta, &use_ema)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(b, h);
    UBD_PY_OUT(z, zo);
    int N = batch_of(b, &z, __func__, "z", 0);
    if (N < 0) return NULL;
    OUTSIDE_MODEL(b, &z);
    DM_CALL(b, ubd_diffusion_sample(b->obj, z.data, N, (uint64_t)seed, (ubd_sampler)sampler, steps, eta, use_ema));
    Py_RETURN_NONE;
}

/* diffusion_sample_init(h, x (n,C,L), first, seed) */
static PyObject *diffusion_sample_init(PyObject *self, PyObject *args) {
    PyObject *h, *xo, *seed_obj;
    long long first;
    if (!PyArg_ParseTuple(args, "OOLO", &h, &xo, &first, &seed_obj)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(b, h);
    UBD_PY_OUT(x, xo);
    int n = batch_of(b, &x, __func__, "x", 1);
    if (n < 0) return NULL;
    OUTSIDE_MODEL(b, &x);
    DM_CALL(b, ubd_diffusion_sample_init(b->obj, x.data, n, first, (uint64_t)seed));
    Py_RETURN_NONE;
}

/* diffusion_sample_step(h, x (n,C,L), first, seed, sampler, steps, eta, k, use_ema) */
static PyObject *diffusion_sample_step(PyObject *self, PyObject *args) {
    PyObject *h, *xo, *seed_obj;
    long long first;
    int sampler, steps, k, use_ema;
    float eta;
    if (!PyArg_ParseTuple(args, "OOLOiifip", &h, &xo, &first, &seed_obj, &sampler, &steps, &eta, &k, &use_ema))
        return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(b, h);
    UBD_PY_OUT(x, xo);
    int n = batch_of(b, &x, __func__, "x", 1);
    if (n < 0) return NULL;
    OUTSIDE_MODEL(b, &x);
    DM_CALL(b, ubd_diffusion_sample_step(b->obj, x.data, n, first, (uint64_t)seed, (ubd_sampler)sampler, steps, eta,
                                         k, use_ema));
    Py_RETURN_NONE;
}

PyMethodDef ubd_py_diffusion_methods[] = {
    {"diffusion_create", diffusion_create, METH_VARARGS,
     "diffusion_create(dim, dim_mults, channels, seq_len, groups, heads, dim_head, max_batch, timesteps, seed)"},
    {"diffusion_init", diffusion_init, METH_VARARGS, "diffusion_init(h, seed): PyTorch-default init"},
    {"diffusion_spec", diffusion_spec, METH_VARARGS, "diffusion_spec(h) -> [(name, shape, offset)]"},
    {"diffusion_buffer", diffusion_buffer, METH_VARARGS, "diffusion_buffer(h, kind) -> zero-copy flat view"},
    {"diffusion_schedule", diffusion_schedule, METH_VARARGS, "diffusion_schedule(h) -> {name: float64 array}"},
    {"diffusion_info", diffusion_info, METH_VARARGS, "diffusion_info(h) -> dict"},
    {"unet_forward", unet_forward, METH_VARARGS, "unet_forward(h, out, x, t, use_ema)"},
    {"unet_backward", unet_backward, METH_VARARGS, "unet_backward(h, dx|None, dout)"},
    {"diffusion_loss", diffusion_loss, METH_VARARGS,
     "diffusion_loss(h, per_sample|None, z0, t, noise, grad_scale) -> loss"},
    {"diffusion_train_step", diffusion_train_step, METH_VARARGS,
     "diffusion_train_step(h, z0, B, accum, seed, step, lr, beta1, beta2, eps, wd, max_grad_norm, ema_decay, "
     "ema_every) -> (loss, grad_norm)"},
    {"diffusion_sampler_steps", diffusion_sampler_steps, METH_VARARGS, "diffusion_sampler_steps(h, sampler, steps)"},
    {"diffusion_sample", diffusion_sample, METH_VARARGS, "diffusion_sample(h, z, seed, sampler, steps, eta, use_ema)"},
    {"diffusion_sample_init", diffusion_sample_init, METH_VARARGS, "diffusion_sample_init(h, x, first, seed)"},
    {"diffusion_sample_step", diffusion_sample_step, METH_VARARGS,
     "diffusion_sample_step(h, x, first, seed, sampler, steps, eta, k, use_ema)"},
    {NULL, NULL, 0, NULL}};
