/* py_norm.c — bindings of normalisation and shape ops (norm.h, shape_ops.h).
 * Sizes come from the array shapes and are checked; outputs are caller-owned
 * arrays (ubdiff/norm_ops.py allocates them). Names drop the ubd_cpu_ prefix.
 * Channel-first arrays (B, C, ...) take S = the product of the trailing dims. */
#include "pyutil.h" /* first: Python.h must precede system headers */

#include <limits.h>

#include "../norm.h"
#include "../shape_ops.h"
#ifdef UBDIFF_WITH_CUDA
#include "../cuda_api.h"
#include "roundtrip.h"
#endif

/* ---- one binding, two backends --------------------------------------------
 * Every binding validates its arrays once, then runs either the CPU op on the
 * host buffers or (cuda_<name>, CUDA builds) the CUDA twin on device copies:
 * bf_add() returns the buffer to pass (host data, or a fresh device copy of
 * it), and UBD_PY_RUN calls ubd_cpu_<fn> or ubd_cuda_<fn>, copies outputs
 * back and frees the copies. The CUDA path is for tests that compare the
 * backends (as py_cuda.c); models keep their data on the device. */
typedef struct {
    int cuda;
    ubd_status status;
#ifdef UBDIFF_WITH_CUDA
    ubd_rt rt;
#endif
} bufs;

static float *bf_add(bufs *bf, ubd_f32 *a, int out) {
#ifdef UBDIFF_WITH_CUDA
    if (!bf->cuda || !a->data) return a->data;
    if (bf->status != UBD_OK) return NULL;
    bf->status = ubd_rt_push(&bf->rt, a, out);
    return bf->status == UBD_OK ? bf->rt.dev[bf->rt.n - 1] : NULL;
#else
    (void)bf;
    (void)out;
    return a->data;
#endif
}

#ifdef UBDIFF_WITH_CUDA
/* Waits for the device, copies outputs back (gradients were copied in too:
 * they accumulate), frees every device copy; raises on any failure. */
static PyObject *bf_finish(bufs *bf, ubd_status s) { return ubd_rt_done(&bf->rt, s); }
#define UBD_PY_RUN(bf, fn, args)                                                                          \
    do {                                                                                                  \
        if ((bf).cuda) return bf_finish(&(bf), (bf).status != UBD_OK ? (bf).status : ubd_cuda_##fn args); \
        UBD_PY_CALL(ubd_cpu_##fn args);                                                                   \
        Py_RETURN_NONE;                                                                                   \
    } while (0)
#define UBD_PY_BOTH(name)                                                                  \
    static PyObject *py_##name(PyObject *self, PyObject *args) { return name(args, 0); } \
    static PyObject *cuda_##name(PyObject *self, PyObject *args) { return name(args, 1); }
#else
#define UBD_PY_RUN(bf, fn, args)        \
    do {                                \
        UBD_PY_CALL(ubd_cpu_##fn args); \
        Py_RETURN_NONE;                 \
    } while (0)
#define UBD_PY_BOTH(name) \
    static PyObject *py_##name(PyObject *self, PyObject *args) { return name(args, 0); }
#endif

/* (B, C, S) of a channel-first array of ndim >= min_ndim (S = 1 for 2-D). */
static int bcs(const ubd_f32 *a, const char *fn, const char *name, int min_ndim, long long *B, long long *C,
               long long *S) {
    if (a->ndim < min_ndim) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have at least %d dimensions (B, C, ...), got %d", fn, name,
                     min_ndim, a->ndim);
        return -1;
    }
    long long s = 1;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] <= 0 || a->shape[d] > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: %s has a dimension of size %ld (must be 1..INT_MAX)", fn, name,
                         (long)a->shape[d]);
            return -1;
        }
        if (d >= 2) s *= a->shape[d];
    }
    if (s > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: %s: trailing size %lld too large", fn, name, s);
        return -1;
    }
    *B = a->shape[0];
    *C = a->shape[1];
    *S = s;
    return 0;
}
#define UBD_PY_BCS(var, min_ndim, B, C, S) \
    if (bcs(&var, __func__, #var, min_ndim, &B, &C, &S) < 0) return NULL

/* `a` must have exactly the shape of `ref`. */
static int same_shape(const ubd_f32 *a, const ubd_f32 *ref, const char *fn, const char *name, const char *rname) {
    int ok = a->ndim == ref->ndim;
    for (int d = 0; ok && d < a->ndim; d++) ok = a->shape[d] == ref->shape[d];
    if (!ok) PyErr_Format(PyExc_ValueError, "%s: %s must have the shape of %s", fn, name, rname);
    return ok ? 0 : -1;
}
#define UBD_PY_SAME_SHAPE(var, ref) \
    if (same_shape(&var, &ref, __func__, #var, #ref) < 0) return NULL
#define UBD_PY_SAME_SHAPE_OPT(var, ref) \
    if (var.data && same_shape(&var, &ref, __func__, #var, #ref) < 0) return NULL

/* ---- BatchNorm ---------------------------------------------------------- */

/* batchnorm_forward_train(out, mean (C), rstd (C), running_mean|None, running_var|None,
 *                         inp (B,C,...), gamma (C), beta (C), momentum, eps) */
static PyObject *batchnorm_forward_train(PyObject *args, int cuda) {
    PyObject *o, *m, *r, *rm, *rv, *i, *g, *b;
    float momentum, eps;
    if (!PyArg_ParseTuple(args, "OOOOOOOOff", &o, &m, &r, &rm, &rv, &i, &g, &b, &momentum, &eps)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(mean, m);
    UBD_PY_OUT(rstd, r);
    UBD_PY_OPT_OUT(running_mean, rm);
    UBD_PY_OPT_OUT(running_var, rv);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(gamma, g);
    UBD_PY_IN(beta, b);
    long long B, C, S;
    UBD_PY_BCS(inp, 2, B, C, S);
    UBD_PY_SAME_SHAPE(out, inp);
    UBD_PY_EXPECT(mean, 1, C);
    UBD_PY_EXPECT(rstd, 1, C);
    UBD_PY_EXPECT_OPT(running_mean, 1, C);
    UBD_PY_EXPECT_OPT(running_var, 1, C);
    UBD_PY_EXPECT(gamma, 1, C);
    UBD_PY_EXPECT(beta, 1, C);
    UBD_PY_NO_OVERLAP(&out, &mean, &rstd, &running_mean, &running_var, &inp, &gamma, &beta);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_mean = bf_add(&bf, &mean, 1);
    float *p_rstd = bf_add(&bf, &rstd, 1);
    float *p_running_mean = bf_add(&bf, &running_mean, 1);
    float *p_running_var = bf_add(&bf, &running_var, 1);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_gamma = bf_add(&bf, &gamma, 0);
    float *p_beta = bf_add(&bf, &beta, 0);
    UBD_PY_RUN(bf, batchnorm_forward_train,
               (p_out, p_mean, p_rstd, p_running_mean, p_running_var, p_inp, p_gamma, p_beta, (int)B, (int)C, (int)S,
                momentum, eps));
}

/* batchnorm_forward_eval(out, inp, gamma, beta, running_mean, running_var, eps) */
static PyObject *batchnorm_forward_eval(PyObject *args, int cuda) {
    PyObject *o, *i, *g, *b, *rm, *rv;
    float eps;
    if (!PyArg_ParseTuple(args, "OOOOOOf", &o, &i, &g, &b, &rm, &rv, &eps)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(gamma, g);
    UBD_PY_IN(beta, b);
    UBD_PY_IN(running_mean, rm);
    UBD_PY_IN(running_var, rv);
    long long B, C, S;
    UBD_PY_BCS(inp, 2, B, C, S);
    UBD_PY_SAME_SHAPE(out, inp);
    UBD_PY_EXPECT(gamma, 1, C);
    UBD_PY_EXPECT(beta, 1, C);
    UBD_PY_EXPECT(running_mean, 1, C);
    UBD_PY_EXPECT(running_var, 1, C);
    UBD_PY_NO_OVERLAP(&out, &inp, &gamma, &beta, &running_mean, &running_var);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_gamma = bf_add(&bf, &gamma, 0);
    float *p_beta = bf_add(&bf, &beta, 0);
    float *p_running_mean = bf_add(&bf, &running_mean, 0);
    float *p_running_var = bf_add(&bf, &running_var, 0);
    UBD_PY_RUN(bf, batchnorm_forward_eval,
               (p_out, p_inp, p_gamma, p_beta, p_running_mean, p_running_var, (int)B, (int)C, (int)S, eps));
}

/* batchnorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean, rstd) */
static PyObject *batchnorm_backward(PyObject *args, int cuda) {
    PyObject *di, *dg, *db, *d, *i, *g, *m, *r;
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &di, &dg, &db, &d, &i, &g, &m, &r)) return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dgamma, dg);
    UBD_PY_OPT_OUT(dbeta, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(gamma, g);
    UBD_PY_IN(mean, m);
    UBD_PY_IN(rstd, r);
    long long B, C, S;
    UBD_PY_BCS(inp, 2, B, C, S);
    UBD_PY_SAME_SHAPE(dout, inp);
    UBD_PY_SAME_SHAPE_OPT(dinp, inp);
    UBD_PY_EXPECT_OPT(dgamma, 1, C);
    UBD_PY_EXPECT_OPT(dbeta, 1, C);
    UBD_PY_EXPECT(gamma, 1, C);
    UBD_PY_EXPECT(mean, 1, C);
    UBD_PY_EXPECT(rstd, 1, C);
    UBD_PY_NO_OVERLAP(&dinp, &dgamma, &dbeta, &dout, &inp, &gamma, &mean, &rstd);
    bufs bf = {.cuda = cuda};
    float *p_dinp = bf_add(&bf, &dinp, 1);
    float *p_dgamma = bf_add(&bf, &dgamma, 1);
    float *p_dbeta = bf_add(&bf, &dbeta, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_gamma = bf_add(&bf, &gamma, 0);
    float *p_mean = bf_add(&bf, &mean, 0);
    float *p_rstd = bf_add(&bf, &rstd, 0);
    UBD_PY_RUN(bf, batchnorm_backward,
               (p_dinp, p_dgamma, p_dbeta, p_dout, p_inp, p_gamma, p_mean, p_rstd, (int)B, (int)C, (int)S));
}

/* batchnorm_backward_eval(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, running_mean, running_var, eps) */
static PyObject *batchnorm_backward_eval(PyObject *args, int cuda) {
    PyObject *di, *dg, *db, *d, *i, *g, *rm, *rv;
    float eps;
    if (!PyArg_ParseTuple(args, "OOOOOOOOf", &di, &dg, &db, &d, &i, &g, &rm, &rv, &eps)) return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dgamma, dg);
    UBD_PY_OPT_OUT(dbeta, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(gamma, g);
    UBD_PY_IN(running_mean, rm);
    UBD_PY_IN(running_var, rv);
    long long B, C, S;
    UBD_PY_BCS(inp, 2, B, C, S);
    UBD_PY_SAME_SHAPE(dout, inp);
    UBD_PY_SAME_SHAPE_OPT(dinp, inp);
    UBD_PY_EXPECT_OPT(dgamma, 1, C);
    UBD_PY_EXPECT_OPT(dbeta, 1, C);
    UBD_PY_EXPECT(gamma, 1, C);
    UBD_PY_EXPECT(running_mean, 1, C);
    UBD_PY_EXPECT(running_var, 1, C);
    UBD_PY_NO_OVERLAP(&dinp, &dgamma, &dbeta, &dout, &inp, &gamma, &running_mean, &running_var);
    bufs bf = {.cuda = cuda};
    float *p_dinp = bf_add(&bf, &dinp, 1);
    float *p_dgamma = bf_add(&bf, &dgamma, 1);
    float *p_dbeta = bf_add(&bf, &dbeta, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_gamma = bf_add(&bf, &gamma, 0);
    float *p_running_mean = bf_add(&bf, &running_mean, 0);
    float *p_running_var = bf_add(&bf, &running_var, 0);
    UBD_PY_RUN(bf, batchnorm_backward_eval,
               (p_dinp, p_dgamma, p_dbeta, p_dout, p_inp, p_gamma, p_running_mean, p_running_var, (int)B, (int)C,
                (int)S, eps));
}

/* ---- GroupNorm (G from the shape of mean (B, G)) ------------------------- */

/* groupnorm_forward(out, mean (B,G), rstd (B,G), inp (B,C,...), gamma (C), beta (C), eps) */
static PyObject *groupnorm_forward(PyObject *args, int cuda) {
    PyObject *o, *m, *r, *i, *g, *b;
    float eps;
    if (!PyArg_ParseTuple(args, "OOOOOOf", &o, &m, &r, &i, &g, &b, &eps)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(mean, m);
    UBD_PY_OUT(rstd, r);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(gamma, g);
    UBD_PY_IN(beta, b);
    long long B, C, S;
    UBD_PY_BCS(inp, 2, B, C, S);
    UBD_PY_SAME_SHAPE(out, inp);
    UBD_PY_EXPECT(mean, 2, B, -1LL);
    long long G = mean.shape[1];
    UBD_PY_EXPECT(rstd, 2, B, G);
    UBD_PY_EXPECT(gamma, 1, C);
    UBD_PY_EXPECT(beta, 1, C);
    UBD_PY_NO_OVERLAP(&out, &mean, &rstd, &inp, &gamma, &beta);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_mean = bf_add(&bf, &mean, 1);
    float *p_rstd = bf_add(&bf, &rstd, 1);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_gamma = bf_add(&bf, &gamma, 0);
    float *p_beta = bf_add(&bf, &beta, 0);
    UBD_PY_RUN(bf, groupnorm_forward,
               (p_out, p_mean, p_rstd, p_inp, p_gamma, p_beta, (int)B, (int)C, (int)S, (int)G, eps));
}

/* groupnorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean (B,G), rstd (B,G)) */
static PyObject *groupnorm_backward(PyObject *args, int cuda) {
    PyObject *di, *dg, *db, *d, *i, *g, *m, *r;
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &di, &dg, &db, &d, &i, &g, &m, &r)) return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dgamma, dg);
    UBD_PY_OPT_OUT(dbeta, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(gamma, g);
    UBD_PY_IN(mean, m);
    UBD_PY_IN(rstd, r);
    long long B, C, S;
    UBD_PY_BCS(inp, 2, B, C, S);
    UBD_PY_SAME_SHAPE(dout, inp);
    UBD_PY_SAME_SHAPE_OPT(dinp, inp);
    UBD_PY_EXPECT_OPT(dgamma, 1, C);
    UBD_PY_EXPECT_OPT(dbeta, 1, C);
    UBD_PY_EXPECT(gamma, 1, C);
    UBD_PY_EXPECT(mean, 2, B, -1LL);
    long long G = mean.shape[1];
    UBD_PY_EXPECT(rstd, 2, B, G);
    UBD_PY_NO_OVERLAP(&dinp, &dgamma, &dbeta, &dout, &inp, &gamma, &mean, &rstd);
    bufs bf = {.cuda = cuda};
    float *p_dinp = bf_add(&bf, &dinp, 1);
    float *p_dgamma = bf_add(&bf, &dgamma, 1);
    float *p_dbeta = bf_add(&bf, &dbeta, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_gamma = bf_add(&bf, &gamma, 0);
    float *p_mean = bf_add(&bf, &mean, 0);
    float *p_rstd = bf_add(&bf, &rstd, 0);
    UBD_PY_RUN(bf, groupnorm_backward,
               (p_dinp, p_dgamma, p_dbeta, p_dout, p_inp, p_gamma, p_mean, p_rstd, (int)B, (int)C, (int)S, (int)G));
}

/* ---- LayerNorm over the last axis; N = all leading dims ------------------- */

static int rows_cols(const ubd_f32 *a, const char *fn, long long *N, long long *C) {
    if (a->ndim < 1 || a->size <= 0) {
        PyErr_Format(PyExc_ValueError, "%s: inp must be a non-empty array (..., C)", fn);
        return -1;
    }
    *C = a->shape[a->ndim - 1];
    *N = a->size / *C;
    if (*N > INT_MAX || *C > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: inp too large", fn);
        return -1;
    }
    return 0;
}

/* layernorm_forward(out, mean (N), rstd (N), inp (..., C), gamma (C), beta (C), eps) */
static PyObject *layernorm_forward(PyObject *args, int cuda) {
    PyObject *o, *m, *r, *i, *g, *b;
    float eps;
    if (!PyArg_ParseTuple(args, "OOOOOOf", &o, &m, &r, &i, &g, &b, &eps)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(mean, m);
    UBD_PY_OUT(rstd, r);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(gamma, g);
    UBD_PY_IN(beta, b);
    long long N, C;
    if (rows_cols(&inp, __func__, &N, &C) < 0) return NULL;
    UBD_PY_SAME_SHAPE(out, inp);
    UBD_PY_EXPECT(mean, 1, N);
    UBD_PY_EXPECT(rstd, 1, N);
    UBD_PY_EXPECT(gamma, 1, C);
    UBD_PY_EXPECT(beta, 1, C);
    UBD_PY_NO_OVERLAP(&out, &mean, &rstd, &inp, &gamma, &beta);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_mean = bf_add(&bf, &mean, 1);
    float *p_rstd = bf_add(&bf, &rstd, 1);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_gamma = bf_add(&bf, &gamma, 0);
    float *p_beta = bf_add(&bf, &beta, 0);
    UBD_PY_RUN(bf, layernorm_forward, (p_out, p_mean, p_rstd, p_inp, p_gamma, p_beta, (int)N, (int)C, eps));
}

/* layernorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean (N), rstd (N)) */
static PyObject *layernorm_backward(PyObject *args, int cuda) {
    PyObject *di, *dg, *db, *d, *i, *g, *m, *r;
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &di, &dg, &db, &d, &i, &g, &m, &r)) return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dgamma, dg);
    UBD_PY_OPT_OUT(dbeta, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(gamma, g);
    UBD_PY_IN(mean, m);
    UBD_PY_IN(rstd, r);
    long long N, C;
    if (rows_cols(&inp, __func__, &N, &C) < 0) return NULL;
    UBD_PY_SAME_SHAPE(dout, inp);
    UBD_PY_SAME_SHAPE_OPT(dinp, inp);
    UBD_PY_EXPECT_OPT(dgamma, 1, C);
    UBD_PY_EXPECT_OPT(dbeta, 1, C);
    UBD_PY_EXPECT(gamma, 1, C);
    UBD_PY_EXPECT(mean, 1, N);
    UBD_PY_EXPECT(rstd, 1, N);
    UBD_PY_NO_OVERLAP(&dinp, &dgamma, &dbeta, &dout, &inp, &gamma, &mean, &rstd);
    bufs bf = {.cuda = cuda};
    float *p_dinp = bf_add(&bf, &dinp, 1);
    float *p_dgamma = bf_add(&bf, &dgamma, 1);
    float *p_dbeta = bf_add(&bf, &dbeta, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_gamma = bf_add(&bf, &gamma, 0);
    float *p_mean = bf_add(&bf, &mean, 0);
    float *p_rstd = bf_add(&bf, &rstd, 0);
    UBD_PY_RUN(bf, layernorm_backward,
               (p_dinp, p_dgamma, p_dbeta, p_dout, p_inp, p_gamma, p_mean, p_rstd, (int)N, (int)C));
}

/* ---- RMSNorm (B, C, L) --------------------------------------------------- */

/* rmsnorm_forward(out, rnorm (B,L), inp (B,C,L), g (C)) */
static PyObject *rmsnorm_forward(PyObject *args, int cuda) {
    PyObject *o, *rn, *i, *go;
    if (!PyArg_ParseTuple(args, "OOOO", &o, &rn, &i, &go)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_OUT(rnorm, rn);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(g, go);
    UBD_PY_EXPECT(inp, 3, -1LL, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1], L = inp.shape[2];
    UBD_PY_SAME_SHAPE(out, inp);
    UBD_PY_EXPECT(rnorm, 2, B, L);
    UBD_PY_EXPECT(g, 1, C);
    UBD_PY_NO_OVERLAP(&out, &rnorm, &inp, &g);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_rnorm = bf_add(&bf, &rnorm, 1);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_g = bf_add(&bf, &g, 0);
    UBD_PY_RUN(bf, rmsnorm_forward, (p_out, p_rnorm, p_inp, p_g, (int)B, (int)C, (int)L));
}

/* rmsnorm_backward(dinp|None, dg|None, dout, inp, g, rnorm) */
static PyObject *rmsnorm_backward(PyObject *args, int cuda) {
    PyObject *di, *dgo, *d, *i, *go, *rn;
    if (!PyArg_ParseTuple(args, "OOOOOO", &di, &dgo, &d, &i, &go, &rn)) return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dg, dgo);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(g, go);
    UBD_PY_IN(rnorm, rn);
    UBD_PY_EXPECT(inp, 3, -1LL, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1], L = inp.shape[2];
    UBD_PY_SAME_SHAPE(dout, inp);
    UBD_PY_SAME_SHAPE_OPT(dinp, inp);
    UBD_PY_EXPECT_OPT(dg, 1, C);
    UBD_PY_EXPECT(g, 1, C);
    UBD_PY_EXPECT(rnorm, 2, B, L);
    UBD_PY_NO_OVERLAP(&dinp, &dg, &dout, &inp, &g, &rnorm);
    bufs bf = {.cuda = cuda};
    float *p_dinp = bf_add(&bf, &dinp, 1);
    float *p_dg = bf_add(&bf, &dg, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    float *p_inp = bf_add(&bf, &inp, 0);
    float *p_g = bf_add(&bf, &g, 0);
    float *p_rnorm = bf_add(&bf, &rnorm, 0);
    UBD_PY_RUN(bf, rmsnorm_backward, (p_dinp, p_dg, p_dout, p_inp, p_g, p_rnorm, (int)B, (int)C, (int)L));
}

/* ---- nearest x2 upsampling ----------------------------------------------- */

/* upsample1d_forward(out (B,C,2L), inp (B,C,L)) */
static PyObject *upsample1d_forward(PyObject *args, int cuda) {
    PyObject *o, *i;
    if (!PyArg_ParseTuple(args, "OO", &o, &i)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_EXPECT(inp, 3, -1LL, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1], L = inp.shape[2];
    UBD_PY_EXPECT(out, 3, B, C, 2 * L);
    UBD_PY_NO_OVERLAP(&out, &inp);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_inp = bf_add(&bf, &inp, 0);
    UBD_PY_RUN(bf, upsample1d_forward, (p_out, p_inp, (int)B, (int)C, (int)L));
}

/* upsample1d_backward(dinp (B,C,L), dout (B,C,2L)) */
static PyObject *upsample1d_backward(PyObject *args, int cuda) {
    PyObject *di, *d;
    if (!PyArg_ParseTuple(args, "OO", &di, &d)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_EXPECT(dinp, 3, -1LL, -1LL, -1LL);
    long long B = dinp.shape[0], C = dinp.shape[1], L = dinp.shape[2];
    UBD_PY_EXPECT(dout, 3, B, C, 2 * L);
    UBD_PY_NO_OVERLAP(&dinp, &dout);
    bufs bf = {.cuda = cuda};
    float *p_dinp = bf_add(&bf, &dinp, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    UBD_PY_RUN(bf, upsample1d_backward, (p_dinp, p_dout, (int)B, (int)C, (int)L));
}

/* upsample2d_forward(out (B,C,2H,2W), inp (B,C,H,W)) */
static PyObject *upsample2d_forward(PyObject *args, int cuda) {
    PyObject *o, *i;
    if (!PyArg_ParseTuple(args, "OO", &o, &i)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_EXPECT(inp, 4, -1LL, -1LL, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1], H = inp.shape[2], W = inp.shape[3];
    UBD_PY_EXPECT(out, 4, B, C, 2 * H, 2 * W);
    UBD_PY_NO_OVERLAP(&out, &inp);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_inp = bf_add(&bf, &inp, 0);
    UBD_PY_RUN(bf, upsample2d_forward, (p_out, p_inp, (int)B, (int)C, (int)H, (int)W));
}

/* upsample2d_backward(dinp (B,C,H,W), dout (B,C,2H,2W)) */
static PyObject *upsample2d_backward(PyObject *args, int cuda) {
    PyObject *di, *d;
    if (!PyArg_ParseTuple(args, "OO", &di, &d)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_EXPECT(dinp, 4, -1LL, -1LL, -1LL, -1LL);
    long long B = dinp.shape[0], C = dinp.shape[1], H = dinp.shape[2], W = dinp.shape[3];
    UBD_PY_EXPECT(dout, 4, B, C, 2 * H, 2 * W);
    UBD_PY_NO_OVERLAP(&dinp, &dout);
    bufs bf = {.cuda = cuda};
    float *p_dinp = bf_add(&bf, &dinp, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    UBD_PY_RUN(bf, upsample2d_backward, (p_dinp, p_dout, (int)B, (int)C, (int)H, (int)W));
}

/* ---- crop / pad ------------------------------------------------------------ */

static int crop_out_size(const char *fn, long long H, long long W, int t, int b, int l, int r, long long *Ho,
                         long long *Wo) {
    *Ho = H - t - b;
    *Wo = W - l - r;
    if (*Ho <= 0 || *Wo <= 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: cropping (top=%d, bottom=%d, left=%d, right=%d) is larger than the %lldx%lld map", fn, t, b,
                     l, r, H, W);
        return -1;
    }
    return 0;
}

/* crop2d_forward(out (B,C,H-t-b,W-l-r), inp (B,C,H,W), top, bottom, left, right); negative = zero-pad */
static PyObject *crop2d_forward(PyObject *args, int cuda) {
    PyObject *o, *i;
    int t, bo, l, r;
    if (!PyArg_ParseTuple(args, "OOiiii", &o, &i, &t, &bo, &l, &r)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_EXPECT(inp, 4, -1LL, -1LL, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1], H = inp.shape[2], W = inp.shape[3], Ho, Wo;
    if (crop_out_size(__func__, H, W, t, bo, l, r, &Ho, &Wo) < 0) return NULL;
    UBD_PY_EXPECT(out, 4, B, C, Ho, Wo);
    UBD_PY_NO_OVERLAP(&out, &inp);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_inp = bf_add(&bf, &inp, 0);
    UBD_PY_RUN(bf, crop2d_forward, (p_out, p_inp, (int)B, (int)C, (int)H, (int)W, t, bo, l, r));
}

/* crop2d_backward(dinp (B,C,H,W), dout (B,C,H-t-b,W-l-r), top, bottom, left, right) */
static PyObject *crop2d_backward(PyObject *args, int cuda) {
    PyObject *di, *d;
    int t, bo, l, r;
    if (!PyArg_ParseTuple(args, "OOiiii", &di, &d, &t, &bo, &l, &r)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_EXPECT(dinp, 4, -1LL, -1LL, -1LL, -1LL);
    long long B = dinp.shape[0], C = dinp.shape[1], H = dinp.shape[2], W = dinp.shape[3], Ho, Wo;
    if (crop_out_size(__func__, H, W, t, bo, l, r, &Ho, &Wo) < 0) return NULL;
    UBD_PY_EXPECT(dout, 4, B, C, Ho, Wo);
    UBD_PY_NO_OVERLAP(&dinp, &dout);
    bufs bf = {.cuda = cuda};
    float *p_dinp = bf_add(&bf, &dinp, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    UBD_PY_RUN(bf, crop2d_backward, (p_dinp, p_dout, (int)B, (int)C, (int)H, (int)W, t, bo, l, r));
}

/* ---- channel concat ------------------------------------------------------ */

/* a and b: same batch and trailing dims; returns B, C1, C2, S. */
static int concat_sizes(const ubd_f32 *a, const ubd_f32 *b, const char *fn, long long *B, long long *C1, long long *C2,
                        long long *S) {
    long long Bb, Sb;
    if (bcs(a, fn, "a", 2, B, C1, S) < 0 || bcs(b, fn, "b", 2, &Bb, C2, &Sb) < 0) return -1;
    int ok = a->ndim == b->ndim && Bb == *B;
    for (int d = 2; ok && d < a->ndim; d++) ok = a->shape[d] == b->shape[d];
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: a and b must agree in every dimension but the channel axis (1)", fn);
        return -1;
    }
    return 0;
}

/* `out` has the shape of `a` except for C channels. */
static int concat_out_shape(const ubd_f32 *out, const ubd_f32 *a, long long C, const char *fn, const char *name) {
    int ok = out->ndim == a->ndim;
    for (int d = 0; ok && d < a->ndim; d++) ok = out->shape[d] == (d == 1 ? C : a->shape[d]);
    if (!ok)
        PyErr_Format(PyExc_ValueError,
                     "%s: %s has the wrong shape: expected the batch and trailing dims of the "
                     "other arrays with %lld channels",
                     fn, name, C);
    return ok ? 0 : -1;
}

/* concat_forward(out (B,C1+C2,...), a (B,C1,...), b (B,C2,...)) */
static PyObject *concat_forward(PyObject *args, int cuda) {
    PyObject *o, *ao, *bo;
    if (!PyArg_ParseTuple(args, "OOO", &o, &ao, &bo)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(a, ao);
    UBD_PY_IN(b, bo);
    long long B, C1, C2, S;
    if (concat_sizes(&a, &b, __func__, &B, &C1, &C2, &S) < 0) return NULL;
    if (concat_out_shape(&out, &a, C1 + C2, __func__, "out") < 0) return NULL;
    UBD_PY_NO_OVERLAP(&out, &a, &b);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_a = bf_add(&bf, &a, 0);
    float *p_b = bf_add(&bf, &b, 0);
    UBD_PY_RUN(bf, concat_forward, (p_out, p_a, p_b, (int)B, (int)C1, (int)C2, (int)S));
}

/* concat_backward(da (B,C1,...)|None, db (B,C2,...)|None, dout (B,C1+C2,...), C1): the split point
 * is an argument so that either gradient may be None. */
static PyObject *concat_backward(PyObject *args, int cuda) {
    PyObject *dao, *dbo, *d;
    long long C1;
    if (!PyArg_ParseTuple(args, "OOOL", &dao, &dbo, &d, &C1)) return NULL;
    UBD_PY_OPT_OUT(da, dao);
    UBD_PY_OPT_OUT(db, dbo);
    UBD_PY_IN(dout, d);
    long long B, C, S;
    UBD_PY_BCS(dout, 2, B, C, S);
    if (C1 <= 0 || C1 >= C)
        return PyErr_Format(PyExc_ValueError, "%s: split C1=%lld must lie in 1..%lld (dout has %lld channels)",
                            __func__, C1, C - 1, C);
    if (da.data && concat_out_shape(&da, &dout, C1, __func__, "da") < 0) return NULL;
    if (db.data && concat_out_shape(&db, &dout, C - C1, __func__, "db") < 0) return NULL;
    UBD_PY_NO_OVERLAP(&da, &db, &dout);
    bufs bf = {.cuda = cuda};
    float *p_da = bf_add(&bf, &da, 1);
    float *p_db = bf_add(&bf, &db, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    UBD_PY_RUN(bf, concat_backward, (p_da, p_db, p_dout, (int)B, (int)C1, (int)(C - C1), (int)S));
}

/* ---- time embedding, scale-shift, axpy ----------------------------------- */

/* time_embedding(out (B,dim), t (B)) */
static PyObject *time_embedding(PyObject *args, int cuda) {
    PyObject *o, *t;
    if (!PyArg_ParseTuple(args, "OO", &o, &t)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(times, t);
    UBD_PY_EXPECT(times, 1, -1LL);
    UBD_PY_EXPECT(out, 2, (long long)times.shape[0], -1LL);
    UBD_PY_NO_OVERLAP(&out, &times);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_times = bf_add(&bf, &times, 0);
    UBD_PY_RUN(bf, time_embedding, (p_out, p_times, (int)times.shape[0], (int)out.shape[1]));
}

/* scale_shift_forward(out (B,C,L), x (B,C,L), ss (B,2C)) */
static PyObject *scale_shift_forward(PyObject *args, int cuda) {
    PyObject *o, *xo, *s;
    if (!PyArg_ParseTuple(args, "OOO", &o, &xo, &s)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(x, xo);
    UBD_PY_IN(ss, s);
    UBD_PY_EXPECT(x, 3, -1LL, -1LL, -1LL);
    long long B = x.shape[0], C = x.shape[1], L = x.shape[2];
    UBD_PY_SAME_SHAPE(out, x);
    UBD_PY_EXPECT(ss, 2, B, 2 * C);
    UBD_PY_NO_OVERLAP(&out, &x, &ss);
    bufs bf = {.cuda = cuda};
    float *p_out = bf_add(&bf, &out, 1);
    float *p_x = bf_add(&bf, &x, 0);
    float *p_ss = bf_add(&bf, &ss, 0);
    UBD_PY_RUN(bf, scale_shift_forward, (p_out, p_x, p_ss, (int)B, (int)C, (int)L));
}

/* scale_shift_backward(dx|None, dss|None, dout, x, ss) */
static PyObject *scale_shift_backward(PyObject *args, int cuda) {
    PyObject *dxo, *dso, *d, *xo, *s;
    if (!PyArg_ParseTuple(args, "OOOOO", &dxo, &dso, &d, &xo, &s)) return NULL;
    UBD_PY_OPT_OUT(dx, dxo);
    UBD_PY_OPT_OUT(dss, dso);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(x, xo);
    UBD_PY_IN(ss, s);
    UBD_PY_EXPECT(x, 3, -1LL, -1LL, -1LL);
    long long B = x.shape[0], C = x.shape[1], L = x.shape[2];
    UBD_PY_SAME_SHAPE(dout, x);
    UBD_PY_SAME_SHAPE_OPT(dx, x);
    UBD_PY_EXPECT(ss, 2, B, 2 * C);
    UBD_PY_EXPECT_OPT(dss, 2, B, 2 * C);
    UBD_PY_NO_OVERLAP(&dx, &dss, &dout, &x, &ss);
    bufs bf = {.cuda = cuda};
    float *p_dx = bf_add(&bf, &dx, 1);
    float *p_dss = bf_add(&bf, &dss, 1);
    float *p_dout = bf_add(&bf, &dout, 0);
    float *p_x = bf_add(&bf, &x, 0);
    float *p_ss = bf_add(&bf, &ss, 0);
    UBD_PY_RUN(bf, scale_shift_backward, (p_dx, p_dss, p_dout, p_x, p_ss, (int)B, (int)C, (int)L));
}

/* axpy(y, x, a): y += a x, same number of elements */
static PyObject *axpy(PyObject *args, int cuda) {
    PyObject *yo, *xo;
    float a;
    if (!PyArg_ParseTuple(args, "OOf", &yo, &xo, &a)) return NULL;
    UBD_PY_OUT(y, yo);
    UBD_PY_IN(x, xo);
    UBD_PY_SAME_SIZE(x, y);
    UBD_PY_NO_OVERLAP_INPLACE(&y, &x);
    bufs bf = {.cuda = cuda};
    float *p_y = bf_add(&bf, &y, 1);
    float *p_x = bf_add(&bf, &x, 0);
    UBD_PY_RUN(bf, axpy, (p_y, p_x, (size_t)y.size, a));
}

/* CPU entry points, and (CUDA builds) the host-roundtrip twins cuda_<name>. */
UBD_PY_BOTH(batchnorm_forward_train)
UBD_PY_BOTH(batchnorm_forward_eval)
UBD_PY_BOTH(batchnorm_backward)
UBD_PY_BOTH(batchnorm_backward_eval)
UBD_PY_BOTH(groupnorm_forward)
UBD_PY_BOTH(groupnorm_backward)
UBD_PY_BOTH(layernorm_forward)
UBD_PY_BOTH(layernorm_backward)
UBD_PY_BOTH(rmsnorm_forward)
UBD_PY_BOTH(rmsnorm_backward)
UBD_PY_BOTH(upsample1d_forward)
UBD_PY_BOTH(upsample1d_backward)
UBD_PY_BOTH(upsample2d_forward)
UBD_PY_BOTH(upsample2d_backward)
UBD_PY_BOTH(crop2d_forward)
UBD_PY_BOTH(crop2d_backward)
UBD_PY_BOTH(concat_forward)
UBD_PY_BOTH(concat_backward)
UBD_PY_BOTH(time_embedding)
UBD_PY_BOTH(scale_shift_forward)
UBD_PY_BOTH(scale_shift_backward)
UBD_PY_BOTH(axpy)

PyMethodDef ubd_py_norm_methods[] = {
    {"batchnorm_forward_train", py_batchnorm_forward_train, METH_VARARGS,
     "batchnorm_forward_train(out, mean, rstd, running_mean|None, running_var|None, inp, gamma, beta, momentum, "
     "eps); running stats updated in place (unbiased variance)"},
    {"batchnorm_forward_eval", py_batchnorm_forward_eval, METH_VARARGS,
     "batchnorm_forward_eval(out, inp, gamma, beta, running_mean, running_var, eps)"},
    {"batchnorm_backward", py_batchnorm_backward, METH_VARARGS,
     "batchnorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean, rstd); gradients +="},
    {"batchnorm_backward_eval", py_batchnorm_backward_eval, METH_VARARGS,
     "batchnorm_backward_eval(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, running_mean, running_var, "
     "eps); gradients +="},
    {"groupnorm_forward", py_groupnorm_forward, METH_VARARGS,
     "groupnorm_forward(out, mean (B,G), rstd (B,G), inp, gamma, beta, eps); G from mean's shape"},
    {"groupnorm_backward", py_groupnorm_backward, METH_VARARGS,
     "groupnorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean, rstd); gradients +="},
    {"layernorm_forward", py_layernorm_forward, METH_VARARGS,
     "layernorm_forward(out, mean (N), rstd (N), inp (..., C), gamma, beta, eps)"},
    {"layernorm_backward", py_layernorm_backward, METH_VARARGS,
     "layernorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean, rstd); gradients +="},
    {"rmsnorm_forward", py_rmsnorm_forward, METH_VARARGS, "rmsnorm_forward(out, rnorm (B,L), inp (B,C,L), g (C))"},
    {"rmsnorm_backward", py_rmsnorm_backward, METH_VARARGS,
     "rmsnorm_backward(dinp|None, dg|None, dout, inp, g, rnorm); gradients +="},
    {"upsample1d_forward", py_upsample1d_forward, METH_VARARGS, "upsample1d_forward(out (B,C,2L), inp (B,C,L))"},
    {"upsample1d_backward", py_upsample1d_backward, METH_VARARGS, "upsample1d_backward(dinp, dout); dinp +="},
    {"upsample2d_forward", py_upsample2d_forward, METH_VARARGS, "upsample2d_forward(out (B,C,2H,2W), inp (B,C,H,W))"},
    {"upsample2d_backward", py_upsample2d_backward, METH_VARARGS, "upsample2d_backward(dinp, dout); dinp +="},
    {"crop2d_forward", py_crop2d_forward, METH_VARARGS,
     "crop2d_forward(out, inp, top, bottom, left, right); negative values zero-pad"},
    {"crop2d_backward", py_crop2d_backward, METH_VARARGS,
     "crop2d_backward(dinp, dout, top, bottom, left, right); dinp +="},
    {"concat_forward", py_concat_forward, METH_VARARGS, "concat_forward(out, a, b): channel concatenation"},
    {"concat_backward", py_concat_backward, METH_VARARGS, "concat_backward(da|None, db|None, dout, C1); da, db +="},
    {"time_embedding", py_time_embedding, METH_VARARGS, "time_embedding(out (B,dim), t (B)): [sin, cos]"},
    {"scale_shift_forward", py_scale_shift_forward, METH_VARARGS,
     "scale_shift_forward(out, x (B,C,L), ss (B,2C)): x*(1+scale)+shift"},
    {"scale_shift_backward", py_scale_shift_backward, METH_VARARGS,
     "scale_shift_backward(dx|None, dss|None, dout, x, ss); gradients +="},
    {"axpy", py_axpy, METH_VARARGS, "axpy(y, x, a): y += a*x; x may be y (in place)"},
#ifdef UBDIFF_WITH_CUDA
    {"cuda_batchnorm_forward_train", cuda_batchnorm_forward_train, METH_VARARGS,
     "batchnorm_forward_train on the GPU, host arrays in/out (tests)."},
    {"cuda_batchnorm_forward_eval", cuda_batchnorm_forward_eval, METH_VARARGS,
     "batchnorm_forward_eval on the GPU, host arrays in/out (tests)."},
    {"cuda_batchnorm_backward", cuda_batchnorm_backward, METH_VARARGS,
     "batchnorm_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_batchnorm_backward_eval", cuda_batchnorm_backward_eval, METH_VARARGS,
     "batchnorm_backward_eval on the GPU, host arrays in/out (tests)."},
    {"cuda_groupnorm_forward", cuda_groupnorm_forward, METH_VARARGS,
     "groupnorm_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_groupnorm_backward", cuda_groupnorm_backward, METH_VARARGS,
     "groupnorm_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_layernorm_forward", cuda_layernorm_forward, METH_VARARGS,
     "layernorm_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_layernorm_backward", cuda_layernorm_backward, METH_VARARGS,
     "layernorm_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_rmsnorm_forward", cuda_rmsnorm_forward, METH_VARARGS,
     "rmsnorm_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_rmsnorm_backward", cuda_rmsnorm_backward, METH_VARARGS,
     "rmsnorm_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_upsample1d_forward", cuda_upsample1d_forward, METH_VARARGS,
     "upsample1d_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_upsample1d_backward", cuda_upsample1d_backward, METH_VARARGS,
     "upsample1d_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_upsample2d_forward", cuda_upsample2d_forward, METH_VARARGS,
     "upsample2d_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_upsample2d_backward", cuda_upsample2d_backward, METH_VARARGS,
     "upsample2d_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_crop2d_forward", cuda_crop2d_forward, METH_VARARGS,
     "crop2d_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_crop2d_backward", cuda_crop2d_backward, METH_VARARGS,
     "crop2d_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_concat_forward", cuda_concat_forward, METH_VARARGS,
     "concat_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_concat_backward", cuda_concat_backward, METH_VARARGS,
     "concat_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_time_embedding", cuda_time_embedding, METH_VARARGS,
     "time_embedding on the GPU, host arrays in/out (tests)."},
    {"cuda_scale_shift_forward", cuda_scale_shift_forward, METH_VARARGS,
     "scale_shift_forward on the GPU, host arrays in/out (tests)."},
    {"cuda_scale_shift_backward", cuda_scale_shift_backward, METH_VARARGS,
     "scale_shift_backward on the GPU, host arrays in/out (tests)."},
    {"cuda_axpy", cuda_axpy, METH_VARARGS, "axpy on the GPU, host arrays in/out (tests)."},
#endif
    {NULL, NULL, 0, NULL}};
