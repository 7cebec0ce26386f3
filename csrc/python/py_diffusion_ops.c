/* py_diffusion_ops.c — the latent diffusion's ops (diffusion_ops.h) and
 * `replay` (backend.h) on NumPy arrays, on any backend: each call names a
 * device, copies its arrays into that backend's memory (be->alloc, be->copy),
 * runs the one op through the table, copies the outputs back and frees. The
 * same path on the CPU and a GPU, so tests compare the twins with a NumPy
 * reference and with each other.
 *
 * Arrays are borrowed as they are (no conversion): float32, int32 for times
 * and counters, and the 64-byte step records (ubdiff.models.diffusion.STEP_DTYPE)
 * as any C-contiguous array of a multiple of sizeof(ubd_sample_step) bytes. */
#include "pyutil.h" /* first: Python.h must precede system headers */
#include <string.h>

#include "../diffusion_ops.h"

#define MAX_ARGS 8

typedef struct {
    const ubd_backend *be;
    int n;
    void *host[MAX_ARGS], *dev[MAX_ARGS];
    size_t bytes[MAX_ARGS];
    int back[MAX_ARGS];
} call;

static int call_begin(call *c, const char *device) {
    memset(c, 0, sizeof *c);
    ubd_status s = ubd_backend_find(device, &c->be);
    if (s != UBD_OK) {
        ubd_py_raise(s);
        return -1;
    }
    return 0;
}

/* The next argument: a backend copy of `bytes` of host memory (host NULL: a NULL argument). */
static ubd_status push(call *c, void *host, size_t bytes, int back, void **dev) {
    *dev = NULL;
    if (!host) return UBD_OK;
    UBD_REQUIRE(c->n < MAX_ARGS, UBD_ERR_RUNTIME, "diffusion op binding: too many arguments");
    const int i = c->n++;
    c->host[i] = host, c->bytes[i] = bytes, c->back[i] = back;
    UBD_TRY(c->be->alloc(&c->dev[i], bytes));
    UBD_TRY(c->be->copy(c->dev[i], host, bytes, UBD_H2D));
    *dev = c->dev[i];
    return UBD_OK;
}

/* Waits, copies the outputs back, frees; None, or the first failure raised. */
static PyObject *call_end(call *c, ubd_status s) {
    if (s == UBD_OK) s = c->be->sync();
    for (int i = 0; i < c->n; i++) {
        if (s == UBD_OK && c->back[i]) s = c->be->copy(c->host[i], c->dev[i], c->bytes[i], UBD_D2H);
        c->be->free(c->dev[i]);
    }
    if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

#define PUSH(c, host, bytes, back, dev)                                    \
    do {                                                                   \
        ubd_status push_s_ = push(&(c), (host), (bytes), (back), (void **)(dev)); \
        if (push_s_ != UBD_OK) return call_end(&(c), push_s_);             \
    } while (0)

/* Borrows a C-contiguous aligned array of dtype `type` (NPY_NOTYPE: any, as bytes);
 * None gives NULL when optional. *n: its elements (bytes for NPY_NOTYPE). */
static int borrow(PyObject *obj, int type, int writable, int optional, const char *name, void **data, npy_intp *n) {
    *data = NULL, *n = 0;
    if (optional && obj == Py_None) return 0;
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (type != NPY_NOTYPE && (PyArray_TYPE(a) != type || !PyArray_ISNOTSWAPPED(a))) {
        PyErr_Format(PyExc_TypeError, "%s must be a native %s array", name, type == NPY_INT32 ? "int32" : "float32");
        return -1;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a) || (writable && !PyArray_ISWRITEABLE(a))) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous, aligned%s", name, writable ? " and writable" : "");
        return -1;
    }
    *data = PyArray_DATA(a);
    *n = type == NPY_NOTYPE ? PyArray_NBYTES(a) : PyArray_SIZE(a);
    return 0;
}

static int steps_of(PyObject *obj, int writable, const char *name, void **data, npy_intp *count) {
    npy_intp bytes;
    if (borrow(obj, NPY_NOTYPE, writable, 0, name, data, &bytes) < 0) return -1;
    if (bytes == 0 || bytes % (npy_intp)sizeof(ubd_sample_step)) {
        PyErr_Format(PyExc_ValueError, "%s must hold whole %zu-byte step records, got %zd bytes", name,
                     sizeof(ubd_sample_step), (Py_ssize_t)bytes);
        return -1;
    }
    *count = bytes / (npy_intp)sizeof(ubd_sample_step);
    return 0;
}

static int same(npy_intp a, npy_intp b, const char *what) {
    if (a == b) return 0;
    PyErr_Format(PyExc_ValueError, "%s: sizes differ (%zd vs %zd)", what, (Py_ssize_t)a, (Py_ssize_t)b);
    return -1;
}

/* diffusion_op_timesteps(device, ti (B) int32 out, tf (B) float32 in: uniforms, out: times, T) */
static PyObject *op_timesteps(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *tio, *tfo;
    int T;
    if (!PyArg_ParseTuple(args, "sOOi", &device, &tio, &tfo, &T)) return NULL;
    void *ti, *tf;
    npy_intp nb, nf;
    if (borrow(tio, NPY_INT32, 1, 0, "ti", &ti, &nb) < 0 || borrow(tfo, NPY_FLOAT32, 1, 0, "tf", &tf, &nf) < 0 ||
        same(nb, nf, "diffusion_op_timesteps: ti, tf") < 0)
        return NULL;
    call c;
    if (call_begin(&c, device) < 0) return NULL;
    int *dti;
    float *dtf;
    PUSH(c, ti, nb * sizeof(int), 1, &dti);
    PUSH(c, tf, nf * sizeof(float), 1, &dtf);
    return call_end(&c, c.be->diffusion_timesteps(dti, dtf, (int)nb, T));
}

/* The per-sample arrays of q_sample and the v-loss: t (B) int32, then B * per floats each. */
typedef struct {
    void *t;
    npy_intp B, per;
} batch;

static int batch_of(PyObject *to, PyObject *ref, batch *b, const char *fn) {
    void *d;
    npy_intp n;
    if (borrow(to, NPY_INT32, 0, 0, "t", &b->t, &b->B) < 0 || borrow(ref, NPY_FLOAT32, 0, 0, "pred", &d, &n) < 0)
        return -1;
    if (b->B < 1 || n % b->B) {
        PyErr_Format(PyExc_ValueError, "%s: %zd floats are not whole samples of a batch of %zd", fn, (Py_ssize_t)n,
                     (Py_ssize_t)b->B);
        return -1;
    }
    b->per = n / b->B;
    return 0;
}

/* Every t within the T schedule entries the op will index. */
static int times_inside(const batch *b, npy_intp T, const char *fn) {
    const int *t = b->t;
    for (npy_intp i = 0; i < b->B; i++)
        if (t[i] < 0 || t[i] >= T) {
            PyErr_Format(PyExc_ValueError, "%s: t[%zd] = %d outside the schedule's 0..%zd", fn, (Py_ssize_t)i, t[i],
                         (Py_ssize_t)T - 1);
            return -1;
        }
    return 0;
}

/* diffusion_op_q_sample(device, xt out, v out, z0, noise, t (B) int32, sa (T), s1 (T)) */
static PyObject *op_q_sample(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *o[7];
    if (!PyArg_ParseTuple(args, "sOOOOOOO", &device, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6])) return NULL;
    batch b;
    if (batch_of(o[4], o[2], &b, "diffusion_op_q_sample") < 0) return NULL;
    void *p[7];
    npy_intp n[7];
    const char *names[7] = {"xt", "v", "z0", "noise", "t", "sa", "s1"};
    for (int i = 0; i < 7; i++)
        if (borrow(o[i], i == 4 ? NPY_INT32 : NPY_FLOAT32, i < 2, 0, names[i], &p[i], &n[i]) < 0) return NULL;
    for (int i = 0; i < 4; i++)
        if (same(n[i], b.B * b.per, "diffusion_op_q_sample: xt, v, z0, noise") < 0) return NULL;
    if (same(n[5], n[6], "diffusion_op_q_sample: sa, s1") < 0 || times_inside(&b, n[5], "diffusion_op_q_sample") < 0)
        return NULL;
    call c;
    if (call_begin(&c, device) < 0) return NULL;
    void *d[7];
    for (int i = 0; i < 7; i++) PUSH(c, p[i], (size_t)n[i] * 4, i < 2, &d[i]);
    return call_end(&c, c.be->diffusion_q_sample(d[0], d[1], d[2], d[3], d[4], d[5], d[6], (int)b.B, (size_t)b.per));
}

/* diffusion_op_vloss_forward(device, per_sample (B) out | None, pred, v, t (B) int32, w (T)) -> loss */
static PyObject *op_vloss_forward(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *po, *pro, *vo, *to, *wo;
    if (!PyArg_ParseTuple(args, "sOOOOO", &device, &po, &pro, &vo, &to, &wo)) return NULL;
    batch b;
    if (batch_of(to, pro, &b, "diffusion_op_vloss_forward") < 0) return NULL;
    void *ps, *pred, *v, *w;
    npy_intp nps, np_, nv, nw;
    if (borrow(po, NPY_FLOAT32, 1, 1, "per_sample", &ps, &nps) < 0 ||
        borrow(pro, NPY_FLOAT32, 0, 0, "pred", &pred, &np_) < 0 || borrow(vo, NPY_FLOAT32, 0, 0, "v", &v, &nv) < 0 ||
        borrow(wo, NPY_FLOAT32, 0, 0, "w", &w, &nw) < 0 || same(np_, nv, "diffusion_op_vloss_forward: pred, v") < 0 ||
        (ps && same(nps, b.B, "diffusion_op_vloss_forward: per_sample, t") < 0) ||
        times_inside(&b, nw, "diffusion_op_vloss_forward") < 0)
        return NULL;
    float loss = 0.0f;
    call c;
    if (call_begin(&c, device) < 0) return NULL;
    void *dl, *dps, *dpred, *dv, *dt, *dw;
    PUSH(c, &loss, sizeof loss, 1, &dl);
    PUSH(c, ps, (size_t)nps * 4, 1, &dps);
    PUSH(c, pred, (size_t)np_ * 4, 0, &dpred);
    PUSH(c, v, (size_t)nv * 4, 0, &dv);
    PUSH(c, b.t, (size_t)b.B * 4, 0, &dt);
    PUSH(c, w, (size_t)nw * 4, 0, &dw);
    PyObject *r =
        call_end(&c, c.be->diffusion_vloss_forward(dl, dps, dpred, dv, dt, dw, (int)b.B, (size_t)b.per));
    if (!r) return NULL;
    Py_DECREF(r);
    return PyFloat_FromDouble((double)loss);
}

/* diffusion_op_vloss_backward(device, dpred +=, pred, v, t (B) int32, w (T), scale) */
static PyObject *op_vloss_backward(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *dpo, *pro, *vo, *to, *wo;
    float scale;
    if (!PyArg_ParseTuple(args, "sOOOOOf", &device, &dpo, &pro, &vo, &to, &wo, &scale)) return NULL;
    batch b;
    if (batch_of(to, pro, &b, "diffusion_op_vloss_backward") < 0) return NULL;
    void *dp, *pred, *v, *w;
    npy_intp ndp, np_, nv, nw;
    if (borrow(dpo, NPY_FLOAT32, 1, 0, "dpred", &dp, &ndp) < 0 ||
        borrow(pro, NPY_FLOAT32, 0, 0, "pred", &pred, &np_) < 0 || borrow(vo, NPY_FLOAT32, 0, 0, "v", &v, &nv) < 0 ||
        borrow(wo, NPY_FLOAT32, 0, 0, "w", &w, &nw) < 0 || same(np_, nv, "diffusion_op_vloss_backward: pred, v") < 0 ||
        same(ndp, np_, "diffusion_op_vloss_backward: dpred, pred") < 0 ||
        times_inside(&b, nw, "diffusion_op_vloss_backward") < 0)
        return NULL;
    call c;
    if (call_begin(&c, device) < 0) return NULL;
    void *ddp, *dpred, *dv, *dt, *dw;
    PUSH(c, dp, (size_t)ndp * 4, 1, &ddp);
    PUSH(c, pred, (size_t)np_ * 4, 0, &dpred);
    PUSH(c, v, (size_t)nv * 4, 0, &dv);
    PUSH(c, b.t, (size_t)b.B * 4, 0, &dt);
    PUSH(c, w, (size_t)nw * 4, 0, &dw);
    return call_end(&c, c.be->diffusion_vloss_backward(ddp, dpred, dv, dt, dw, (int)b.B, (size_t)b.per, scale));
}

/* diffusion_op_step_begin(device, cur (1 record) out, tf (B) out, k (1) int32 in/out, plan (records)) */
static PyObject *op_step_begin(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *co, *tfo, *ko, *po;
    if (!PyArg_ParseTuple(args, "sOOOO", &device, &co, &tfo, &ko, &po)) return NULL;
    void *cur, *tf, *k, *plan;
    npy_intp ncur, ntf, nk, nplan;
    if (steps_of(co, 1, "cur", &cur, &ncur) < 0 || borrow(tfo, NPY_FLOAT32, 1, 0, "tf", &tf, &ntf) < 0 ||
        borrow(ko, NPY_INT32, 1, 0, "k", &k, &nk) < 0 || steps_of(po, 0, "plan", &plan, &nplan) < 0 ||
        same(ncur, 1, "diffusion_op_step_begin: cur records") < 0 || same(nk, 1, "diffusion_op_step_begin: k") < 0)
        return NULL;
    const int kk = *(int *)k;
    if (kk < 0 || kk >= nplan)
        return PyErr_Format(PyExc_ValueError, "diffusion_op_step_begin: k = %d outside the plan's 0..%zd", kk,
                            (Py_ssize_t)nplan - 1);
    call c;
    if (call_begin(&c, device) < 0) return NULL;
    void *dc, *dtf, *dk, *dp;
    PUSH(c, cur, sizeof(ubd_sample_step), 1, &dc);
    PUSH(c, tf, (size_t)ntf * 4, 1, &dtf);
    PUSH(c, k, sizeof(int), 1, &dk);
    PUSH(c, plan, (size_t)nplan * sizeof(ubd_sample_step), 0, &dp);
    return call_end(&c, c.be->diffusion_step_begin(dc, dtf, dk, dp, (int)ntf));
}

/* diffusion_op_step_update(device, x in/out, pred, cur (1 record)) */
static PyObject *op_step_update(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *xo, *po, *co;
    if (!PyArg_ParseTuple(args, "sOOO", &device, &xo, &po, &co)) return NULL;
    void *x, *pred, *cur;
    npy_intp nx, np_, nc;
    if (borrow(xo, NPY_FLOAT32, 1, 0, "x", &x, &nx) < 0 || borrow(po, NPY_FLOAT32, 0, 0, "pred", &pred, &np_) < 0 ||
        steps_of(co, 0, "cur", &cur, &nc) < 0 || same(nx, np_, "diffusion_op_step_update: x, pred") < 0 ||
        same(nc, 1, "diffusion_op_step_update: cur records") < 0)
        return NULL;
    call c;
    if (call_begin(&c, device) < 0) return NULL;
    void *dx, *dp, *dc, *dn;
    PUSH(c, x, (size_t)nx * 4, 1, &dx);
    PUSH(c, pred, (size_t)np_ * 4, 0, &dp);
    PUSH(c, cur, sizeof(ubd_sample_step), 0, &dc);
    PUSH(c, pred, (size_t)np_ * 4, 0, &dn); /* scratch for the noise, n floats */
    return call_end(&c, c.be->diffusion_step_update(dx, dp, dc, (size_t)nx, dn));
}

/* ---- replay ---------------------------------------------------------------------------- */
typedef struct {
    const ubd_backend *be;
    float *x, *y, host;
    size_t n;
    int bad;
} axpy_step;

/* x += y; `bad`: also reads x[0] back to the host, which a captured step must not do */
static ubd_status run_axpy(void *ctx) {
    axpy_step *s = ctx;
    UBD_TRY(s->be->axpy(s->x, s->y, s->n, 1.0f));
    return s->bad ? s->be->copy(&s->host, s->x, sizeof(float), UBD_D2H) : UBD_OK;
}

/* replay_exercise(device, x in/out, y, times, bad) -> whether a graph was made:
 * x += y `times` times through be->replay (one step, captured on the first call where
 * the backend has graphs). bad: the step also copies to the host (capture must fail). */
static PyObject *replay_exercise(PyObject *self, PyObject *args) {
    const char *device;
    PyObject *xo, *yo;
    int times, bad;
    if (!PyArg_ParseTuple(args, "sOOip", &device, &xo, &yo, &times, &bad)) return NULL;
    void *x, *y;
    npy_intp nx, ny;
    if (borrow(xo, NPY_FLOAT32, 1, 0, "x", &x, &nx) < 0 || borrow(yo, NPY_FLOAT32, 0, 0, "y", &y, &ny) < 0 ||
        same(nx, ny, "replay_exercise: x, y") < 0)
        return NULL;
    call c;
    if (call_begin(&c, device) < 0) return NULL;
    axpy_step st = {c.be, NULL, NULL, 0.0f, (size_t)nx, bad};
    PUSH(c, x, (size_t)nx * 4, 1, &st.x);
    PUSH(c, y, (size_t)ny * 4, 0, &st.y);
    void *graph = NULL;
    ubd_status s = UBD_OK;
    for (int i = 0; i < times && s == UBD_OK; i++) s = c.be->replay(&graph, run_axpy, &st);
    const int made = graph != NULL;
    if (graph) {
        ubd_status f = c.be->sync();
        if (s == UBD_OK) s = f;
        f = c.be->replay_free(graph);
        if (s == UBD_OK) s = f;
    }
    PyObject *r = call_end(&c, s);
    if (!r) return NULL;
    Py_DECREF(r);
    return PyBool_FromLong(made);
}

/* diffusion_step_record_size() -> sizeof(ubd_sample_step) */
static PyObject *step_record_size(PyObject *self, PyObject *args) {
    return PyLong_FromSize_t(sizeof(ubd_sample_step));
}

PyMethodDef ubd_py_diffusion_ops_methods[] = {
    {"diffusion_op_timesteps", op_timesteps, METH_VARARGS, "diffusion_op_timesteps(device, ti, tf, T)"},
    {"diffusion_op_q_sample", op_q_sample, METH_VARARGS, "diffusion_op_q_sample(device, xt, v, z0, noise, t, sa, s1)"},
    {"diffusion_op_vloss_forward", op_vloss_forward, METH_VARARGS,
     "diffusion_op_vloss_forward(device, per_sample|None, pred, v, t, w) -> loss"},
    {"diffusion_op_vloss_backward", op_vloss_backward, METH_VARARGS,
     "diffusion_op_vloss_backward(device, dpred, pred, v, t, w, scale): dpred +="},
    {"diffusion_op_step_begin", op_step_begin, METH_VARARGS, "diffusion_op_step_begin(device, cur, tf, k, plan)"},
    {"diffusion_op_step_update", op_step_update, METH_VARARGS, "diffusion_op_step_update(device, x, pred, cur)"},
    {"diffusion_step_record_size", step_record_size, METH_NOARGS, "sizeof(ubd_sample_step)"},
    {"replay_exercise", replay_exercise, METH_VARARGS, "replay_exercise(device, x, y, times, bad) -> graph made"},
    {NULL, NULL, 0, NULL}};
