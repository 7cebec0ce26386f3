/* py_norm.c — bindings of normalisation and shape ops (norm.h, shape_ops.h).
 * Sizes come from the array shapes and are checked; outputs are caller-owned
 * arrays (ubdiff/norm_ops.py allocates them). Names drop the ubd_cpu_ prefix.
 * Channel-first arrays (B, C, ...) take S = the product of the trailing dims. */
#include "pyutil.h" /* first: Python.h must precede system headers */

#include <limits.h>

#include "../norm.h"
#include "../shape_ops.h"

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
static PyObject *batchnorm_forward_train(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_batchnorm_forward_train(out.data, mean.data, rstd.data, running_mean.data, running_var.data,
                                                inp.data, gamma.data, beta.data, (int)B, (int)C, (int)S, momentum,
                                                eps));
    Py_RETURN_NONE;
}

/* batchnorm_forward_eval(out, inp, gamma, beta, running_mean, running_var, eps) */
static PyObject *batchnorm_forward_eval(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_batchnorm_forward_eval(out.data, inp.data, gamma.data, beta.data, running_mean.data,
                                               running_var.data, (int)B, (int)C, (int)S, eps));
    Py_RETURN_NONE;
}

/* batchnorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean, rstd) */
static PyObject *batchnorm_backward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_batchnorm_backward(dinp.data, dgamma.data, dbeta.data, dout.data, inp.data, gamma.data,
                                           mean.data, rstd.data, (int)B, (int)C, (int)S));
    Py_RETURN_NONE;
}

/* batchnorm_backward_eval(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, running_mean, running_var, eps) */
static PyObject *batchnorm_backward_eval(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_batchnorm_backward_eval(dinp.data, dgamma.data, dbeta.data, dout.data, inp.data, gamma.data,
                                                running_mean.data, running_var.data, (int)B, (int)C, (int)S, eps));
    Py_RETURN_NONE;
}

/* ---- GroupNorm (G from the shape of mean (B, G)) ------------------------- */

/* groupnorm_forward(out, mean (B,G), rstd (B,G), inp (B,C,...), gamma (C), beta (C), eps) */
static PyObject *groupnorm_forward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_groupnorm_forward(out.data, mean.data, rstd.data, inp.data, gamma.data, beta.data, (int)B,
                                          (int)C, (int)S, (int)G, eps));
    Py_RETURN_NONE;
}

/* groupnorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean (B,G), rstd (B,G)) */
static PyObject *groupnorm_backward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_groupnorm_backward(dinp.data, dgamma.data, dbeta.data, dout.data, inp.data, gamma.data,
                                           mean.data, rstd.data, (int)B, (int)C, (int)S, (int)G));
    Py_RETURN_NONE;
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
static PyObject *layernorm_forward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_layernorm_forward(out.data, mean.data, rstd.data, inp.data, gamma.data, beta.data, (int)N,
                                          (int)C, eps));
    Py_RETURN_NONE;
}

/* layernorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean (N), rstd (N)) */
static PyObject *layernorm_backward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_layernorm_backward(dinp.data, dgamma.data, dbeta.data, dout.data, inp.data, gamma.data,
                                           mean.data, rstd.data, (int)N, (int)C));
    Py_RETURN_NONE;
}

/* ---- RMSNorm (B, C, L) --------------------------------------------------- */

/* rmsnorm_forward(out, rnorm (B,L), inp (B,C,L), g (C)) */
static PyObject *rmsnorm_forward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_rmsnorm_forward(out.data, rnorm.data, inp.data, g.data, (int)B, (int)C, (int)L));
    Py_RETURN_NONE;
}

/* rmsnorm_backward(dinp|None, dg|None, dout, inp, g, rnorm) */
static PyObject *rmsnorm_backward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_rmsnorm_backward(dinp.data, dg.data, dout.data, inp.data, g.data, rnorm.data, (int)B,
                                         (int)C, (int)L));
    Py_RETURN_NONE;
}

/* ---- nearest x2 upsampling ----------------------------------------------- */

/* upsample1d_forward(out (B,C,2L), inp (B,C,L)) */
static PyObject *upsample1d_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i;
    if (!PyArg_ParseTuple(args, "OO", &o, &i)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_EXPECT(inp, 3, -1LL, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1], L = inp.shape[2];
    UBD_PY_EXPECT(out, 3, B, C, 2 * L);
    UBD_PY_CALL(ubd_cpu_upsample1d_forward(out.data, inp.data, (int)B, (int)C, (int)L));
    Py_RETURN_NONE;
}

/* upsample1d_backward(dinp (B,C,L), dout (B,C,2L)) */
static PyObject *upsample1d_backward(PyObject *self, PyObject *args) {
    PyObject *di, *d;
    if (!PyArg_ParseTuple(args, "OO", &di, &d)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_EXPECT(dinp, 3, -1LL, -1LL, -1LL);
    long long B = dinp.shape[0], C = dinp.shape[1], L = dinp.shape[2];
    UBD_PY_EXPECT(dout, 3, B, C, 2 * L);
    UBD_PY_CALL(ubd_cpu_upsample1d_backward(dinp.data, dout.data, (int)B, (int)C, (int)L));
    Py_RETURN_NONE;
}

/* upsample2d_forward(out (B,C,2H,2W), inp (B,C,H,W)) */
static PyObject *upsample2d_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i;
    if (!PyArg_ParseTuple(args, "OO", &o, &i)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_EXPECT(inp, 4, -1LL, -1LL, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1], H = inp.shape[2], W = inp.shape[3];
    UBD_PY_EXPECT(out, 4, B, C, 2 * H, 2 * W);
    UBD_PY_CALL(ubd_cpu_upsample2d_forward(out.data, inp.data, (int)B, (int)C, (int)H, (int)W));
    Py_RETURN_NONE;
}

/* upsample2d_backward(dinp (B,C,H,W), dout (B,C,2H,2W)) */
static PyObject *upsample2d_backward(PyObject *self, PyObject *args) {
    PyObject *di, *d;
    if (!PyArg_ParseTuple(args, "OO", &di, &d)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_EXPECT(dinp, 4, -1LL, -1LL, -1LL, -1LL);
    long long B = dinp.shape[0], C = dinp.shape[1], H = dinp.shape[2], W = dinp.shape[3];
    UBD_PY_EXPECT(dout, 4, B, C, 2 * H, 2 * W);
    UBD_PY_CALL(ubd_cpu_upsample2d_backward(dinp.data, dout.data, (int)B, (int)C, (int)H, (int)W));
    Py_RETURN_NONE;
}

/* ---- crop / pad ------------------------------------------------------------ */

static int crop_out_size(const char *fn, long long H, long long W, int t, int b, int l, int r, long long *Ho,
                         long long *Wo) {
    *Ho = H - t - b;
    *Wo = W - l - r;
    if (*Ho <= 0 || *Wo <= 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: cropping (top=%d, bottom=%d, left=%d, right=%d) is larger than the %lldx%lld map", fn, t,
                     b, l, r, H, W);
        return -1;
    }
    return 0;
}

/* crop2d_forward(out (B,C,H-t-b,W-l-r), inp (B,C,H,W), top, bottom, left, right); negative = zero-pad */
static PyObject *crop2d_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i;
    int t, bo, l, r;
    if (!PyArg_ParseTuple(args, "OOiiii", &o, &i, &t, &bo, &l, &r)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_EXPECT(inp, 4, -1LL, -1LL, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1], H = inp.shape[2], W = inp.shape[3], Ho, Wo;
    if (crop_out_size(__func__, H, W, t, bo, l, r, &Ho, &Wo) < 0) return NULL;
    UBD_PY_EXPECT(out, 4, B, C, Ho, Wo);
    UBD_PY_CALL(ubd_cpu_crop2d_forward(out.data, inp.data, (int)B, (int)C, (int)H, (int)W, t, bo, l, r));
    Py_RETURN_NONE;
}

/* crop2d_backward(dinp (B,C,H,W), dout (B,C,H-t-b,W-l-r), top, bottom, left, right) */
static PyObject *crop2d_backward(PyObject *self, PyObject *args) {
    PyObject *di, *d;
    int t, bo, l, r;
    if (!PyArg_ParseTuple(args, "OOiiii", &di, &d, &t, &bo, &l, &r)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_EXPECT(dinp, 4, -1LL, -1LL, -1LL, -1LL);
    long long B = dinp.shape[0], C = dinp.shape[1], H = dinp.shape[2], W = dinp.shape[3], Ho, Wo;
    if (crop_out_size(__func__, H, W, t, bo, l, r, &Ho, &Wo) < 0) return NULL;
    UBD_PY_EXPECT(dout, 4, B, C, Ho, Wo);
    UBD_PY_CALL(ubd_cpu_crop2d_backward(dinp.data, dout.data, (int)B, (int)C, (int)H, (int)W, t, bo, l, r));
    Py_RETURN_NONE;
}

/* ---- channel concat ------------------------------------------------------ */

/* a and b: same batch and trailing dims; returns B, C1, C2, S. */
static int concat_sizes(const ubd_f32 *a, const ubd_f32 *b, const char *fn, long long *B, long long *C1,
                        long long *C2, long long *S) {
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
    if (!ok) PyErr_Format(PyExc_ValueError, "%s: %s has the wrong shape: expected the batch and trailing dims of the "
                              "other arrays with %lld channels", fn, name, C);
    return ok ? 0 : -1;
}

/* concat_forward(out (B,C1+C2,...), a (B,C1,...), b (B,C2,...)) */
static PyObject *concat_forward(PyObject *self, PyObject *args) {
    PyObject *o, *ao, *bo;
    if (!PyArg_ParseTuple(args, "OOO", &o, &ao, &bo)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(a, ao);
    UBD_PY_IN(b, bo);
    long long B, C1, C2, S;
    if (concat_sizes(&a, &b, __func__, &B, &C1, &C2, &S) < 0) return NULL;
    if (concat_out_shape(&out, &a, C1 + C2, __func__, "out") < 0) return NULL;
    UBD_PY_CALL(ubd_cpu_concat_forward(out.data, a.data, b.data, (int)B, (int)C1, (int)C2, (int)S));
    Py_RETURN_NONE;
}

/* concat_backward(da (B,C1,...)|None, db (B,C2,...)|None, dout (B,C1+C2,...), C1): the split point
 * is an argument so that either gradient may be None. */
static PyObject *concat_backward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_concat_backward(da.data, db.data, dout.data, (int)B, (int)C1, (int)(C - C1), (int)S));
    Py_RETURN_NONE;
}

/* ---- time embedding, scale-shift, axpy ----------------------------------- */

/* time_embedding(out (B,dim), t (B)) */
static PyObject *time_embedding(PyObject *self, PyObject *args) {
    PyObject *o, *t;
    if (!PyArg_ParseTuple(args, "OO", &o, &t)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(times, t);
    UBD_PY_EXPECT(times, 1, -1LL);
    UBD_PY_EXPECT(out, 2, (long long)times.shape[0], -1LL);
    UBD_PY_CALL(ubd_cpu_time_embedding(out.data, times.data, (int)times.shape[0], (int)out.shape[1]));
    Py_RETURN_NONE;
}

/* scale_shift_forward(out (B,C,L), x (B,C,L), ss (B,2C)) */
static PyObject *scale_shift_forward(PyObject *self, PyObject *args) {
    PyObject *o, *xo, *s;
    if (!PyArg_ParseTuple(args, "OOO", &o, &xo, &s)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(x, xo);
    UBD_PY_IN(ss, s);
    UBD_PY_EXPECT(x, 3, -1LL, -1LL, -1LL);
    long long B = x.shape[0], C = x.shape[1], L = x.shape[2];
    UBD_PY_SAME_SHAPE(out, x);
    UBD_PY_EXPECT(ss, 2, B, 2 * C);
    UBD_PY_CALL(ubd_cpu_scale_shift_forward(out.data, x.data, ss.data, (int)B, (int)C, (int)L));
    Py_RETURN_NONE;
}

/* scale_shift_backward(dx|None, dss|None, dout, x, ss) */
static PyObject *scale_shift_backward(PyObject *self, PyObject *args) {
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
    UBD_PY_CALL(ubd_cpu_scale_shift_backward(dx.data, dss.data, dout.data, x.data, ss.data, (int)B, (int)C, (int)L));
    Py_RETURN_NONE;
}

/* axpy(y, x, a): y += a x, same number of elements */
static PyObject *axpy(PyObject *self, PyObject *args) {
    PyObject *yo, *xo;
    float a;
    if (!PyArg_ParseTuple(args, "OOf", &yo, &xo, &a)) return NULL;
    UBD_PY_OUT(y, yo);
    UBD_PY_IN(x, xo);
    UBD_PY_SAME_SIZE(x, y);
    UBD_PY_CALL(ubd_cpu_axpy(y.data, x.data, (size_t)y.size, a));
    Py_RETURN_NONE;
}

PyMethodDef ubd_py_norm_methods[] = {
    {"batchnorm_forward_train", batchnorm_forward_train, METH_VARARGS,
     "batchnorm_forward_train(out, mean, rstd, running_mean|None, running_var|None, inp, gamma, beta, momentum, "
     "eps); running stats updated in place (unbiased variance)"},
    {"batchnorm_forward_eval", batchnorm_forward_eval, METH_VARARGS,
     "batchnorm_forward_eval(out, inp, gamma, beta, running_mean, running_var, eps)"},
    {"batchnorm_backward", batchnorm_backward, METH_VARARGS,
     "batchnorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean, rstd); gradients +="},
    {"batchnorm_backward_eval", batchnorm_backward_eval, METH_VARARGS,
     "batchnorm_backward_eval(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, running_mean, running_var, "
     "eps); gradients +="},
    {"groupnorm_forward", groupnorm_forward, METH_VARARGS,
     "groupnorm_forward(out, mean (B,G), rstd (B,G), inp, gamma, beta, eps); G from mean's shape"},
    {"groupnorm_backward", groupnorm_backward, METH_VARARGS,
     "groupnorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean, rstd); gradients +="},
    {"layernorm_forward", layernorm_forward, METH_VARARGS,
     "layernorm_forward(out, mean (N), rstd (N), inp (..., C), gamma, beta, eps)"},
    {"layernorm_backward", layernorm_backward, METH_VARARGS,
     "layernorm_backward(dinp|None, dgamma|None, dbeta|None, dout, inp, gamma, mean, rstd); gradients +="},
    {"rmsnorm_forward", rmsnorm_forward, METH_VARARGS, "rmsnorm_forward(out, rnorm (B,L), inp (B,C,L), g (C))"},
    {"rmsnorm_backward", rmsnorm_backward, METH_VARARGS,
     "rmsnorm_backward(dinp|None, dg|None, dout, inp, g, rnorm); gradients +="},
    {"upsample1d_forward", upsample1d_forward, METH_VARARGS, "upsample1d_forward(out (B,C,2L), inp (B,C,L))"},
    {"upsample1d_backward", upsample1d_backward, METH_VARARGS, "upsample1d_backward(dinp, dout); dinp +="},
    {"upsample2d_forward", upsample2d_forward, METH_VARARGS,
     "upsample2d_forward(out (B,C,2H,2W), inp (B,C,H,W))"},
    {"upsample2d_backward", upsample2d_backward, METH_VARARGS, "upsample2d_backward(dinp, dout); dinp +="},
    {"crop2d_forward", crop2d_forward, METH_VARARGS,
     "crop2d_forward(out, inp, top, bottom, left, right); negative values zero-pad"},
    {"crop2d_backward", crop2d_backward, METH_VARARGS,
     "crop2d_backward(dinp, dout, top, bottom, left, right); dinp +="},
    {"concat_forward", concat_forward, METH_VARARGS, "concat_forward(out, a, b): channel concatenation"},
    {"concat_backward", concat_backward, METH_VARARGS,
     "concat_backward(da|None, db|None, dout, C1); da, db +="},
    {"time_embedding", time_embedding, METH_VARARGS, "time_embedding(out (B,dim), t (B)): [sin, cos]"},
    {"scale_shift_forward", scale_shift_forward, METH_VARARGS,
     "scale_shift_forward(out, x (B,C,L), ss (B,2C)): x*(1+scale)+shift"},
    {"scale_shift_backward", scale_shift_backward, METH_VARARGS,
     "scale_shift_backward(dx|None, dss|None, dout, x, ss); gradients +="},
    {"axpy", axpy, METH_VARARGS, "axpy(y, x, a): y += a*x"},
    {NULL, NULL, 0, NULL}};
