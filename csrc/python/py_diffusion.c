/* py_diffusion.c — bindings of the diffusion models (models/diffusion.h): the
 * latent diffusion around the 1-D U-Net (models/unet1d.h, diffusion_create)
 * and the pixel DDPM around the 2-D U-Net (models/unet2d.h,
 * diffusion_create_unet2d); every other call serves both, with the sample
 * shape of the model's denoiser. A model is a PyCapsule owning a ubd_diffusion on the
 * backend named at creation (device "cpu" | "cuda" | "auto"). Its buffers
 * (param, grad, m, v, ema) are reached through tensor_io.h: copies in and out
 * on every device (diffusion_get / _set / _zero), and on the CPU also
 * zero-copy NumPy views that keep the capsule alive (diffusion_view). Compute
 * calls take host arrays; the model stages them onto its device.
 * ubdiff/models/diffusion.py wraps these into LatentDiffusion, ubdiff/models/ddpm.py
 * into VelocityDDPM.
 * A model runs one call at a time: a call made while another thread is
 * inside one on the same model raises RuntimeError instead of racing. */
#include "handle.h" /* first: Python.h must precede system headers */
#include <math.h>
#include <string.h>

#include "tensor_io.h"

#include "../models/diffusion.h"

#define CAPSULE_NAME "ubdiff.LatentDiffusionCore"

static void dm_destroy(void *d) { ubd_diffusion_free(d); }
#define ACQUIRE(var, cap) UBD_HANDLE_ACQUIRE(var, cap, CAPSULE_NAME)
#define DM_CALL UBD_HANDLE_CALL
/* arrays handed to the model lie outside its own buffers */
#define OUTSIDE_MODEL(b, ...) UBD_PY_OUTSIDE_MODEL(ubd_diffusion_params((b)->obj), NULL, __VA_ARGS__)
/* py_unet2d.c: a UNet2D config tuple (dim, dim_mults, full_attn, channels, height, width, groups, heads,
 * dim_head) into c; 0 or -1 raised */
int ubd_py_unet2d_config(PyObject *obj, ubd_unet2d_config *c);

/* diffusion_create(dim, dim_mults, channels, seq_len, groups, heads, dim_head,
 *                  max_batch, timesteps, seed, device="auto") -> handle */
static PyObject *diffusion_create(PyObject *self, PyObject *args) {
    ubd_unet1d_config c;
    memset(&c, 0, sizeof c);
    PyObject *mults, *seed_obj;
    int max_batch, T;
    const char *device = "auto";
    if (!PyArg_ParseTuple(args, "iOiiiiiiiO|s", &c.dim, &mults, &c.channels, &c.seq_len, &c.groups, &c.heads,
                          &c.dim_head, &max_batch, &T, &seed_obj, &device))
        return NULL;
    UBD_PY_U64(seed, seed_obj);
    const ubd_backend *be = NULL;
    ubd_status bs = ubd_backend_find(device, &be);
    if (bs != UBD_OK) return ubd_py_raise(bs);
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
    Py_BEGIN_ALLOW_THREADS s = ubd_diffusion_create(&d, c, max_batch, T, (uint64_t)seed, be);
    Py_END_ALLOW_THREADS if (s != UBD_OK) return ubd_py_raise(s);
    return ubd_handle_new(d, dm_destroy, CAPSULE_NAME, "latent diffusion");
}

/* diffusion_create_unet2d(unet2d_config, max_batch, timesteps, seed, device="auto") -> handle:
 * the pixel DDPM (the config tuple as py_unet2d.c reads it) */
static PyObject *diffusion_create_unet2d(PyObject *self, PyObject *args) {
    PyObject *cfg_obj, *seed_obj;
    int max_batch, T;
    const char *device = "auto";
    if (!PyArg_ParseTuple(args, "OiiO|s", &cfg_obj, &max_batch, &T, &seed_obj, &device)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ubd_unet2d_config c;
    if (ubd_py_unet2d_config(cfg_obj, &c) < 0) return NULL;
    const ubd_backend *be = NULL;
    ubd_status bs = ubd_backend_find(device, &be);
    if (bs != UBD_OK) return ubd_py_raise(bs);
    ubd_diffusion *d = NULL;
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = ubd_diffusion_create_unet2d(&d, &c, max_batch, T, (uint64_t)seed, be);
    Py_END_ALLOW_THREADS if (s != UBD_OK) return ubd_py_raise(s);
    return ubd_handle_new(d, dm_destroy, CAPSULE_NAME, "pixel diffusion");
}

/* diffusion_init(h, seed): re-initialise the parameters (EMA := params, m = v = 0). */
static PyObject *diffusion_init(PyObject *self, PyObject *args) {
    PyObject *h, *seed_obj;
    if (!PyArg_ParseTuple(args, "OO", &h, &seed_obj)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(b, h);
    DM_CALL(b, ubd_diffusion_init(b->obj, (uint64_t)seed));
    Py_RETURN_NONE;
}

/* diffusion_spec(h) -> [(name, shape, offset)] in state_dict order */
static PyObject *diffusion_spec(PyObject *self, PyObject *args) {
    PyObject *h;
    if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
    ACQUIRE(b, h);
    return ubd_py_params_spec(ubd_diffusion_params(b->obj));
}

/* A write of the weights (param, EMA) through set / zero / allreduce forgets the saved forward. */
static void forget(void *d) { ubd_diffusion_forget_forward(d); }

/* The tensor (kind, name or None) of a model: kind param | grad | m | v | ema. */
static int find_tensor(ubd_py_tensor *t, ubd_diffusion *d, const char *kind, PyObject *name) {
    ubd_params *p = ubd_diffusion_params(d);
    for (int k = 0; k < UBD_NUM_BUFS; k++)
        if (strcmp(kind, ubd_buf_kind_name((ubd_buf_kind)k)) == 0)
            return ubd_py_tensor_forgets(
                t, ubd_py_tensor_find(t, p, (ubd_buf_kind)k, name, "LatentDiffusion", "parameter"), forget, d);
    PyErr_Format(PyExc_ValueError, "buffer kind must be one of param, grad, m, v, ema; got '%s'", kind);
    return -1;
}

/* The model of a capsule without the busy check (views and the device name may
 * be asked for while the model runs). */
static ubd_diffusion *peek(PyObject *cap) {
    if (!PyCapsule_IsValid(cap, CAPSULE_NAME)) {
        PyErr_SetString(PyExc_TypeError, "expected a " CAPSULE_NAME " model handle");
        return NULL;
    }
    return ((ubd_handle *)PyCapsule_GetPointer(cap, CAPSULE_NAME))->obj;
}

/* diffusion_view(h, kind, name=None) -> zero-copy view of one tensor (or the
 * whole flat buffer when name is None); CPU models only */
static PyObject *diffusion_view(PyObject *self, PyObject *args) {
    PyObject *h, *name = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &h, &kind, &name)) return NULL;
    ubd_diffusion *d = peek(h);
    ubd_py_tensor t;
    if (!d || find_tensor(&t, d, kind, name) < 0) return NULL;
    return ubd_py_tensor_view(h, &t, "LatentDiffusion");
}

/* diffusion_get(h, kind, name=None) -> a host copy of one tensor (or the whole buffer) */
static PyObject *diffusion_get(PyObject *self, PyObject *args) {
    PyObject *h, *name = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &h, &kind, &name)) return NULL;
    ACQUIRE(b, h);
    ubd_py_tensor t;
    if (find_tensor(&t, b->obj, kind, name) < 0) return NULL;
    return ubd_py_tensor_get(&t);
}

/* diffusion_set(h, kind, name, value): copies value (float32, the tensor's shape) in */
static PyObject *diffusion_set(PyObject *self, PyObject *args) {
    PyObject *h, *name, *value;
    const char *kind;
    if (!PyArg_ParseTuple(args, "OsOO", &h, &kind, &name, &value)) return NULL;
    ACQUIRE(b, h);
    ubd_py_tensor t;
    if (find_tensor(&t, b->obj, kind, name) < 0 || ubd_py_tensor_set(&t, value, "diffusion_set") < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* diffusion_zero(h, kind, name=None): zeroes one tensor (or the whole buffer) */
static PyObject *diffusion_zero(PyObject *self, PyObject *args) {
    PyObject *h, *name = Py_None;
    const char *kind;
    if (!PyArg_ParseTuple(args, "Os|O", &h, &kind, &name)) return NULL;
    ACQUIRE(b, h);
    ubd_py_tensor t;
    if (find_tensor(&t, b->obj, kind, name) < 0 || ubd_py_tensor_zero(&t) < 0) return NULL;
    Py_RETURN_NONE;
}

/* diffusion_allreduce(model, kind, comm, start=0, stop=-1, root=-1): tensor_io.h */
UBD_PY_TENSOR_ALLREDUCE(diffusion)

/* diffusion_device(h) -> "cpu" | "cuda" */
static PyObject *diffusion_device(PyObject *self, PyObject *args) {
    PyObject *h;
    if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
    ubd_diffusion *d = peek(h);
    return d ? PyUnicode_FromString(ubd_diffusion_backend(d)->name) : NULL;
}

/* diffusion_graphs(h[, use]) -> whether sampling replays captured graphs (set when given) */
static PyObject *diffusion_graphs(PyObject *self, PyObject *args) {
    PyObject *h;
    int use = -1;
    if (!PyArg_ParseTuple(args, "O|p", &h, &use)) return NULL;
    ACQUIRE(b, h);
    return PyBool_FromLong(ubd_diffusion_graphs(b->obj, use));
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

/* diffusion_info(h) -> dict(timesteps, max_batch, num_parameters, activation_floats, device, denoiser,
 * sample_shape) */
static PyObject *diffusion_info(PyObject *self, PyObject *args) {
    PyObject *h;
    if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
    ACQUIRE(b, h);
    const ubd_denoiser *net = ubd_diffusion_denoiser(b->obj);
    PyObject *shape = PyTuple_New(net->ndim);
    if (!shape) return NULL;
    for (int i = 0; i < net->ndim; i++) PyTuple_SET_ITEM(shape, i, PyLong_FromLong(net->shape[i]));
    return Py_BuildValue("{s:i,s:i,s:n,s:n,s:s,s:s,s:N}", "timesteps", ubd_diffusion_timesteps(b->obj), "max_batch",
                         net->max_batch, "num_parameters", (Py_ssize_t)ubd_diffusion_params(b->obj)->n,
                         "activation_floats",
                         (Py_ssize_t)(net->activation_floats(net->net) + ubd_diffusion_arena_floats(b->obj)),
                         "device", ubd_diffusion_backend(b->obj)->name, "denoiser", net->kind, "sample_shape",
                         shape);
}

/* Checks x is (B, *sample shape) with 1 <= B <= max_batch (B >= 1 only when
 * limit is 0); returns B or -1. */
static int batch_of(ubd_handle *b, const ubd_f32 *x, const char *fn, const char *name, int limit) {
    const ubd_denoiser *net = ubd_diffusion_denoiser(b->obj);
    const int *S = net->shape;
    int ok = net->ndim == 2 ? ubd_py_expect(x, fn, name, 3, -1LL, (long long)S[0], (long long)S[1])
                            : ubd_py_expect(x, fn, name, 4, -1LL, (long long)S[0], (long long)S[1], (long long)S[2]);
    if (ok < 0) return -1;
    int mb = net->max_batch;
    if (x->shape[0] < 1 || (limit && x->shape[0] > mb)) {
        PyErr_Format(PyExc_ValueError, "%s: %s has batch %zd; need 1..%d (max_batch)", fn, name,
                     (Py_ssize_t)x->shape[0], mb);
        return -1;
    }
    return (int)x->shape[0];
}

/* Checks a has exactly the shape of ref (already checked against the model). */
static int same_samples(const ubd_f32 *a, const ubd_f32 *ref, const char *fn) {
    if (ref->ndim == 3) return ubd_py_expect(a, fn, a->name, 3, (long long)ref->shape[0], (long long)ref->shape[1],
                                             (long long)ref->shape[2]);
    return ubd_py_expect(a, fn, a->name, 4, (long long)ref->shape[0], (long long)ref->shape[1],
                         (long long)ref->shape[2], (long long)ref->shape[3]);
}

/* unet_forward(h, out (B,*S), x (B,*S), t (B,), use_ema); S: the sample shape, (C,L) or (C,H,W) */
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
    if (same_samples(&out, &x, __func__) < 0) return NULL;
    UBD_PY_EXPECT(t, 1, (long long)B);
    UBD_PY_NO_OVERLAP(&out, &x, &t);
    OUTSIDE_MODEL(b, &out, &x, &t);
    DM_CALL(b, ubd_diffusion_net_forward(b->obj, out.data, x.data, t.data, B, use_ema ? UBD_BUF_EMA : UBD_BUF_PARAM));
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
    if (dx.data && same_samples(&dx, &dout, __func__) < 0) return NULL;
    UBD_PY_NO_OVERLAP(&dx, &dout);
    OUTSIDE_MODEL(b, &dx, &dout);
    DM_CALL(b, ubd_diffusion_net_backward(b->obj, dx.data, dout.data, B));
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
    if (same_samples(&noise, &z0, __func__) < 0) return NULL;
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

/* Checks z0 (B * accum, C, L) for batch B and accum; 0 ok, -1 raised. */
static int check_steps(ubd_handle *b, const ubd_f32 *z0, int B, int accum, const char *fn) {
    if (batch_of(b, z0, fn, "z0", 0) < 0) return -1;
    if (B < 1 || accum < 1 || (long long)z0->shape[0] != (long long)B * accum) {
        PyErr_Format(PyExc_ValueError, "%s: z0 has %zd samples, expected batch * accum = %d * %d", fn,
                     (Py_ssize_t)z0->shape[0], B, accum);
        return -1;
    }
    return 0;
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
    if (check_steps(b, &z0, B, accum, __func__) < 0) return NULL;
    OUTSIDE_MODEL(b, &z0);
    float loss = 0.0f, gnorm = 0.0f;
    DM_CALL(b, ubd_diffusion_train_step(b->obj, &loss, &gnorm, z0.data, B, accum, (uint64_t)seed, step, hp));
    return Py_BuildValue("(dd)", (double)loss, (double)gnorm);
}

/* diffusion_forward_backward(h, z0 (accum*B,C,L), B, accum, seed, step[, first]) -> loss:
 * the grad buffer holds the step's gradient afterwards (no update); sample j of z0 draws
 * its t and noise as position first + j of the step's batch (default 0) */
static PyObject *diffusion_forward_backward(PyObject *self, PyObject *args) {
    PyObject *h, *zo, *seed_obj;
    int B, accum;
    long long step, first = 0;
    if (!PyArg_ParseTuple(args, "OOiiOL|L", &h, &zo, &B, &accum, &seed_obj, &step, &first)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(b, h);
    UBD_PY_IN(z0, zo);
    if (check_steps(b, &z0, B, accum, __func__) < 0) return NULL;
    OUTSIDE_MODEL(b, &z0);
    float loss = 0.0f;
    DM_CALL(b, ubd_diffusion_forward_backward(b->obj, &loss, z0.data, B, accum, (uint64_t)seed, step, first));
    return PyFloat_FromDouble((double)loss);
}

/* diffusion_apply_update(h, step, lr, beta1, beta2, eps, weight_decay, max_grad_norm, ema_decay,
 *                        ema_every) -> grad_norm (before clipping) */
static PyObject *diffusion_apply_update(PyObject *self, PyObject *args) {
    PyObject *h;
    long long step;
    int ema_every;
    ubd_diffusion_hparams hp;
    memset(&hp, 0, sizeof hp);
    if (!PyArg_ParseTuple(args, "OLfffffffi", &h, &step, &hp.adam.lr, &hp.adam.beta1, &hp.adam.beta2, &hp.adam.eps,
                          &hp.adam.weight_decay, &hp.max_grad_norm, &hp.ema_decay, &ema_every))
        return NULL;
    hp.ema_every = ema_every;
    hp.adam.decoupled = 0;
    ACQUIRE(b, h);
    float gnorm = 0.0f;
    DM_CALL(b, ubd_diffusion_apply_update(b->obj, &gnorm, step, hp));
    return PyFloat_FromDouble((double)gnorm);
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

/* diffusion_sample_begin(h, n, first, seed, sampler, steps, eta, use_ema): a run of n samples
 * (global indices first, first+1, ...) on the model's device */
static PyObject *diffusion_sample_begin(PyObject *self, PyObject *args) {
    PyObject *h;
    int n, sampler, steps, use_ema;
    long long first;
    PyObject *seed_obj;
    float eta;
    if (!PyArg_ParseTuple(args, "OiLOiifp", &h, &n, &first, &seed_obj, &sampler, &steps, &eta, &use_ema)) return NULL;
    UBD_PY_U64(seed, seed_obj);
    ACQUIRE(b, h);
    DM_CALL(b, ubd_diffusion_sample_begin(b->obj, n, first, (uint64_t)seed, (ubd_sampler)sampler, steps, eta,
                                          use_ema));
    Py_RETURN_NONE;
}

/* diffusion_sample_run(h, count, wait) -> (done, total): advance the run by count steps */
static PyObject *diffusion_sample_run(PyObject *self, PyObject *args) {
    PyObject *h;
    int count, wait;
    if (!PyArg_ParseTuple(args, "Oip", &h, &count, &wait)) return NULL;
    ACQUIRE(b, h);
    DM_CALL(b, ubd_diffusion_sample_run(b->obj, count, wait));
    int done = 0, total = 0;
    ubd_diffusion_sample_progress(b->obj, &done, &total);
    return Py_BuildValue("(ii)", done, total);
}

/* diffusion_sample_read(h, x (n,C,L)): the run's samples into x */
static PyObject *diffusion_sample_read(PyObject *self, PyObject *args) {
    PyObject *h, *xo;
    if (!PyArg_ParseTuple(args, "OO", &h, &xo)) return NULL;
    ACQUIRE(b, h);
    UBD_PY_OUT(x, xo);
    int n = batch_of(b, &x, __func__, "x", 1);
    if (n < 0) return NULL;
    OUTSIDE_MODEL(b, &x);
    int done = 0, total = 0;
    ubd_diffusion_sample_progress(b->obj, &done, &total);
    if (total == 0) return PyErr_Format(PyExc_ValueError, "diffusion_sample_read: no sampling run begun");
    DM_CALL(b, ubd_diffusion_sample_read(b->obj, x.data, n));
    Py_RETURN_NONE;
}

PyMethodDef ubd_py_diffusion_methods[] = {
    {"diffusion_create", diffusion_create, METH_VARARGS,
     "diffusion_create(dim, dim_mults, channels, seq_len, groups, heads, dim_head, max_batch, timesteps, seed, "
     "device='auto')"},
    {"diffusion_create_unet2d", diffusion_create_unet2d, METH_VARARGS,
     "diffusion_create_unet2d(unet2d_config, max_batch, timesteps, seed, device='auto'): the pixel DDPM"},
    {"diffusion_init", diffusion_init, METH_VARARGS, "diffusion_init(h, seed): PyTorch-default init"},
    {"diffusion_spec", diffusion_spec, METH_VARARGS, "diffusion_spec(h) -> [(name, shape, offset)]"},
    {"diffusion_device", diffusion_device, METH_VARARGS, "diffusion_device(h) -> 'cpu' | 'cuda'"},
    {"diffusion_view", diffusion_view, METH_VARARGS,
     "diffusion_view(h, kind, name=None) -> zero-copy view (CPU only)"},
    {"diffusion_get", diffusion_get, METH_VARARGS, "diffusion_get(h, kind, name=None) -> host copy"},
    {"diffusion_set", diffusion_set, METH_VARARGS, "diffusion_set(h, kind, name, value): copy value in"},
    {"diffusion_allreduce", diffusion_allreduce, METH_VARARGS,
     "diffusion_allreduce(model, kind, comm, start=0, stop=-1, root=-1): NCCL sum (root >= 0: broadcast)."},
    {"diffusion_zero", diffusion_zero, METH_VARARGS, "diffusion_zero(h, kind, name=None): set to zero"},
    {"diffusion_schedule", diffusion_schedule, METH_VARARGS, "diffusion_schedule(h) -> {name: float64 array}"},
    {"diffusion_info", diffusion_info, METH_VARARGS, "diffusion_info(h) -> dict"},
    {"diffusion_graphs", diffusion_graphs, METH_VARARGS,
     "diffusion_graphs(h[, use]) -> whether sampling replays captured CUDA graphs"},
    {"unet_forward", unet_forward, METH_VARARGS, "unet_forward(h, out, x, t, use_ema)"},
    {"unet_backward", unet_backward, METH_VARARGS, "unet_backward(h, dx|None, dout)"},
    {"diffusion_loss", diffusion_loss, METH_VARARGS,
     "diffusion_loss(h, per_sample|None, z0, t, noise, grad_scale) -> loss"},
    {"diffusion_train_step", diffusion_train_step, METH_VARARGS,
     "diffusion_train_step(h, z0, B, accum, seed, step, lr, beta1, beta2, eps, wd, max_grad_norm, ema_decay, "
     "ema_every) -> (loss, grad_norm)"},
    {"diffusion_forward_backward", diffusion_forward_backward, METH_VARARGS,
     "diffusion_forward_backward(h, z0, B, accum, seed, step[, first]) -> loss (gradients accumulated, no update; "
     "sample j draws as batch position first + j)"},
    {"diffusion_apply_update", diffusion_apply_update, METH_VARARGS,
     "diffusion_apply_update(h, step, lr, beta1, beta2, eps, wd, max_grad_norm, ema_decay, ema_every) -> "
     "grad_norm"},
    {"diffusion_sampler_steps", diffusion_sampler_steps, METH_VARARGS, "diffusion_sampler_steps(h, sampler, steps)"},
    {"diffusion_sample", diffusion_sample, METH_VARARGS, "diffusion_sample(h, z, seed, sampler, steps, eta, use_ema)"},
    {"diffusion_sample_begin", diffusion_sample_begin, METH_VARARGS,
     "diffusion_sample_begin(h, n, first, seed, sampler, steps, eta, use_ema)"},
    {"diffusion_sample_run", diffusion_sample_run, METH_VARARGS,
     "diffusion_sample_run(h, count, wait) -> (done, total)"},
    {"diffusion_sample_read", diffusion_sample_read, METH_VARARGS, "diffusion_sample_read(h, x)"},
    {NULL, NULL, 0, NULL}};
