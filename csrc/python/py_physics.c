/* py_physics.c — bindings of acoustic forward modelling (physics.h).
 * Positions come as sequences of ints; one call runs a batch on the named
 * device through ubd_forward_model_run (workspace and staging in one arena of
 * that backend, freed before it returns). ubdiff/physics.py is the friendly
 * layer on top. */
#include "pyutil.h" /* first: Python.h must precede system headers */
#include <math.h>

#include "../backend.h"
#include "../physics.h"

/* The four position sequences as one int block: src_z, src_x (ns), rec_z, rec_x (nr). */
typedef struct {
    int *buf;
    int ns, nr;
} positions;

/* 0 ok / -1 raised; on success free with PyMem_Free(pos->buf). Each
 * sequence is read from a tuple copy (ubd_py_tuple): its length is fixed
 * once, and an item's __index__ cannot change what the loop reads. */
static int parse_positions(PyObject *sz, PyObject *sx, PyObject *rz, PyObject *rx, positions *pos) {
    static const char *names[4] = {"src_z", "src_x", "rec_z", "rec_x"};
    PyObject *objs[4] = {sz, sx, rz, rx}, *t[4] = {NULL, NULL, NULL, NULL};
    int rc = -1;
    pos->buf = NULL;
    for (int k = 0; k < 4; k++)
        if (!(t[k] = ubd_py_tuple(objs[k], "forward_model", names[k]))) goto done;
    Py_ssize_t nsz = PyTuple_GET_SIZE(t[0]), nsx = PyTuple_GET_SIZE(t[1]);
    Py_ssize_t nrz = PyTuple_GET_SIZE(t[2]), nrx = PyTuple_GET_SIZE(t[3]);
    if (nsz != nsx || nrz != nrx) {
        PyErr_Format(PyExc_ValueError,
                     "forward_model: src_z/src_x have %zd/%zd entries and rec_z/rec_x %zd/%zd; each pair must match",
                     nsz, nsx, nrz, nrx);
        goto done;
    }
    if (nsx == 0 || nrx == 0) {
        PyErr_SetString(PyExc_ValueError, "forward_model: need at least one source and one receiver");
        goto done;
    }
    if (nsx > INT32_MAX / 4 || nrx > INT32_MAX / 4) {
        PyErr_SetString(PyExc_ValueError, "forward_model: too many sources or receivers");
        goto done;
    }
    pos->ns = (int)nsx;
    pos->nr = (int)nrx;
    pos->buf = PyMem_Malloc(sizeof(int) * 2 * (size_t)(nsx + nrx));
    if (!pos->buf) {
        PyErr_NoMemory();
        goto done;
    }
    int *dst[4] = {pos->buf, pos->buf + nsx, pos->buf + 2 * nsx, pos->buf + 2 * nsx + nrx};
    for (int k = 0; k < 4; k++)
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t[k]); i++) {
            long long v;
            if (ubd_py_int_item(t[k], i, "forward_model", names[k], INT32_MIN, INT32_MAX, &v) < 0) {
                PyMem_Free(pos->buf);
                pos->buf = NULL;
                goto done;
            }
            dst[k][i] = (int)v;
        }
    rc = 0;
done:
    for (int k = 0; k < 4; k++) Py_XDECREF(t[k]);
    return rc;
}

static ubd_fwd_params make_params(const positions *pos, int nt, float freq, float dt, float dx, int nbc) {
    ubd_fwd_params p;
    p.dx = dx;
    p.dt = dt;
    p.freq = freq;
    p.nt = nt;
    p.nbc = nbc;
    p.ns = pos->ns;
    p.src_z = pos->buf;
    p.src_x = pos->buf + pos->ns;
    p.nr = pos->nr;
    p.rec_z = pos->buf + 2 * pos->ns;
    p.rec_x = pos->buf + 2 * pos->ns + pos->nr;
    return p;
}

/* Argument handling: borrows seis (N, ns, nt, nr) and vel (N, H, W), parses
 * positions and the device name. 0 ok / -1 raised. */
typedef struct {
    ubd_f32 seis, vel;
    positions pos;
    ubd_fwd_params p;
    const char *device;
} fwd_args;

static int parse_fwd(PyObject *args, const char *fn, fwd_args *a) {
    PyObject *so, *vo, *sz, *sx, *rz, *rx;
    float freq, dt, dx;
    int nbc;
    a->device = "cpu";
    if (!PyArg_ParseTuple(args, "OOOOOOfffi|s", &so, &vo, &sz, &sx, &rz, &rx, &freq, &dt, &dx, &nbc, &a->device))
        return -1;
    if (ubd_py_f32(so, "seis", 1, &a->seis) < 0 || ubd_py_f32(vo, "vel", 0, &a->vel) < 0) return -1;
    const ubd_f32 *both[2] = {&a->seis, &a->vel};
    if (ubd_py_no_overlap(fn, 0, 2, both) < 0) return -1;
    if (ubd_py_expect(&a->vel, fn, "vel", 3, -1LL, -1LL, -1LL) < 0) return -1;
    if (a->vel.shape[0] == 0 || a->vel.shape[1] == 0 || a->vel.shape[2] == 0) {
        PyErr_Format(PyExc_ValueError, "%s: vel has an empty dimension", fn);
        return -1;
    }
    if (a->vel.shape[0] > INT32_MAX || a->vel.shape[1] > 65536 || a->vel.shape[2] > 65536) {
        PyErr_Format(PyExc_ValueError, "%s: vel is too large", fn);
        return -1;
    }
    if (parse_positions(sz, sx, rz, rx, &a->pos) < 0) return -1;
    if (ubd_py_expect(&a->seis, fn, "seis", 4, (long long)a->vel.shape[0], (long long)a->pos.ns, -1LL,
                      (long long)a->pos.nr) < 0 ||
        a->seis.shape[2] == 0 || a->seis.shape[2] > INT32_MAX) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "%s: seis must have 1 .. 2^31-1 time samples", fn);
        PyMem_Free(a->pos.buf);
        return -1;
    }
    a->p = make_params(&a->pos, (int)a->seis.shape[2], freq, dt, dx, nbc);
    return 0;
}

/* forward_model(seis (N,ns,nt,nr), vel (N,H,W), src_z, src_x, rec_z, rec_x, freq, dt, dx, nbc,
 *               device="cpu"): seis = the records, computed on that device */
static PyObject *forward_model(PyObject *self, PyObject *args) {
    fwd_args a;
    if (parse_fwd(args, "forward_model", &a) < 0) return NULL;
    const ubd_backend *be = NULL;
    ubd_status s = ubd_backend_find(a.device, &be);
    if (s != UBD_OK) {
        PyMem_Free(a.pos.buf);
        return ubd_py_raise(s);
    }
    ubd_threads_adapt();
    Py_BEGIN_ALLOW_THREADS s = ubd_forward_model_run(be, a.seis.data, a.vel.data, (int)a.vel.shape[0],
                                                     (int)a.vel.shape[1], (int)a.vel.shape[2], &a.p);
    Py_END_ALLOW_THREADS PyMem_Free(a.pos.buf);
    if (s != UBD_OK) return ubd_py_raise(s);
    Py_RETURN_NONE;
}

/* ricker(w (n), freq, dt): fills w */
static PyObject *ricker(PyObject *self, PyObject *args) {
    PyObject *wo;
    float freq, dt;
    if (!PyArg_ParseTuple(args, "Off", &wo, &freq, &dt)) return NULL;
    UBD_PY_OUT(w, wo);
    UBD_PY_EXPECT(w, 1, -1LL);
    if (w.size > INT32_MAX) return PyErr_Format(PyExc_ValueError, "ricker: too many samples");
    UBD_PY_CALL(ubd_ricker(w.data, (int)w.size, freq, dt));
    Py_RETURN_NONE;
}

static PyObject *ricker_length(PyObject *self, PyObject *args) {
    float freq, dt;
    if (!PyArg_ParseTuple(args, "ff", &freq, &dt)) return NULL;
    if (!(freq > 0.0f) || !(dt > 0.0f))
        return PyErr_Format(PyExc_ValueError, "ricker: freq and dt must be positive, got %g and %g", freq, dt);
    return PyLong_FromLong(ubd_ricker_length(freq, dt));
}

/* check_velocity(vel (N,H,W), dt, dx, nbc): raises ValueError naming the bad map */
static PyObject *check_velocity(PyObject *self, PyObject *args) {
    PyObject *vo;
    float dt, dx;
    int nbc;
    if (!PyArg_ParseTuple(args, "Offi", &vo, &dt, &dx, &nbc)) return NULL;
    UBD_PY_IN(vel, vo);
    UBD_PY_EXPECT(vel, 3, -1LL, -1LL, -1LL);
    if (vel.size == 0) return PyErr_Format(PyExc_ValueError, "check_velocity: vel is empty");
    if (vel.shape[0] > INT32_MAX || vel.shape[1] > 65536 || vel.shape[2] > 65536)
        return PyErr_Format(PyExc_ValueError, "check_velocity: vel is too large");
    if (!(dt > 0.0f) || !(dx > 0.0f) || !isfinite(dt) || !isfinite(dx) || nbc < 2)
        return PyErr_Format(PyExc_ValueError, "check_velocity: need finite dt, dx > 0 and nbc >= 2, got %g, %g, %d",
                            dt, dx, nbc);
    ubd_fwd_params p = {0};
    p.dt = dt;
    p.dx = dx;
    p.nbc = nbc;
    UBD_PY_CALL(ubd_fwd_check_velocity(vel.data, (int)vel.shape[0], (int)vel.shape[1], (int)vel.shape[2], &p));
    Py_RETURN_NONE;
}

PyMethodDef ubd_py_physics_methods[] = {
    {"forward_model", forward_model, METH_VARARGS,
     "forward_model(seis (N,ns,nt,nr), vel (N,H,W), src_z, src_x, rec_z, rec_x, freq, dt, dx, nbc, device='cpu')"},
    {"ricker", ricker, METH_VARARGS, "ricker(w (n), freq, dt): fills w with the Ricker wavelet"},
    {"ricker_length", ricker_length, METH_VARARGS, "ricker_length(freq, dt) -> samples of the wavelet"},
    {"check_velocity", check_velocity, METH_VARARGS, "check_velocity(vel (N,H,W), dt, dx, nbc): ValueError if unusable"},
    {NULL, NULL, 0, NULL}};
