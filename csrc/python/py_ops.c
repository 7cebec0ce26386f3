/* py_ops.c — bindings of the basic ops (ops.h). Sizes are taken from the
 * array shapes and checked; outputs are caller-allocated arrays (the Python
 * layer ubdiff/ops.py allocates them). Function names drop the ubd_cpu_ prefix. */
#include "pyutil.h"  /* first: Python.h must precede system headers */
#include "../ops.h"

/* linear_forward(out (B,OC), inp (B,C), weight (OC,C), bias (OC) | None) */
static PyObject *linear_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i, *w, *b;
    if (!PyArg_ParseTuple(args, "OOOO", &o, &i, &w, &b)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    UBD_PY_OPT_IN(bias, b);
    UBD_PY_EXPECT(inp, 2, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1];
    UBD_PY_EXPECT(weight, 2, -1LL, C);
    long long OC = weight.shape[0];
    UBD_PY_EXPECT(out, 2, B, OC);
    UBD_PY_EXPECT_OPT(bias, 1, OC);
    UBD_PY_NO_OVERLAP(&out, &inp, &weight, &bias);
    UBD_PY_CALL(ubd_cpu_linear_forward(out.data, inp.data, weight.data, bias.data, (int)B, (int)C, (int)OC));
    Py_RETURN_NONE;
}

/* linear_backward(dinp|None, dweight|None, dbias|None, dout (B,OC), inp (B,C), weight (OC,C)) */
static PyObject *linear_backward(PyObject *self, PyObject *args) {
    PyObject *di, *dw, *db, *d, *i, *w;
    if (!PyArg_ParseTuple(args, "OOOOOO", &di, &dw, &db, &d, &i, &w)) return NULL;
    UBD_PY_OPT_OUT(dinp, di);
    UBD_PY_OPT_OUT(dweight, dw);
    UBD_PY_OPT_OUT(dbias, db);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_IN(weight, w);
    UBD_PY_EXPECT(inp, 2, -1LL, -1LL);
    long long B = inp.shape[0], C = inp.shape[1];
    UBD_PY_EXPECT(weight, 2, -1LL, C);
    long long OC = weight.shape[0];
    UBD_PY_EXPECT(dout, 2, B, OC);
    UBD_PY_EXPECT_OPT(dinp, 2, B, C);
    UBD_PY_EXPECT_OPT(dweight, 2, OC, C);
    UBD_PY_EXPECT_OPT(dbias, 1, OC);
    UBD_PY_NO_OVERLAP(&dinp, &dweight, &dbias, &dout, &inp, &weight);
    UBD_PY_CALL(ubd_cpu_linear_backward(dinp.data, dweight.data, dbias.data, dout.data, inp.data, weight.data, (int)B,
                                        (int)C, (int)OC));
    Py_RETURN_NONE;
}

/* act_forward(out, inp, kind, param) — any shape, same size */
static PyObject *act_forward(PyObject *self, PyObject *args) {
    PyObject *o, *i;
    int kind;
    float param = 0.0f;
    if (!PyArg_ParseTuple(args, "OOi|f", &o, &i, &kind, &param)) return NULL;
    UBD_PY_OUT(out, o);
    UBD_PY_IN(inp, i);
    UBD_PY_SAME_SIZE(out, inp);
    UBD_PY_NO_OVERLAP_INPLACE(&out, &inp);
    UBD_PY_CALL(ubd_cpu_act_forward(out.data, inp.data, (size_t)inp.size, (ubd_act)kind, param));
    Py_RETURN_NONE;
}

/* act_backward(dinp, dout, inp, kind, param) */
static PyObject *act_backward(PyObject *self, PyObject *args) {
    PyObject *di, *d, *i;
    int kind;
    float param = 0.0f;
    if (!PyArg_ParseTuple(args, "OOOi|f", &di, &d, &i, &kind, &param)) return NULL;
    UBD_PY_OUT(dinp, di);
    UBD_PY_IN(dout, d);
    UBD_PY_IN(inp, i);
    UBD_PY_SAME_SIZE(dinp, inp);
    UBD_PY_SAME_SIZE(dout, inp);
    UBD_PY_NO_OVERLAP_INPLACE(&dinp, &dout, &inp);
    UBD_PY_CALL(ubd_cpu_act_backward(dinp.data, dout.data, inp.data, (size_t)inp.size, (ubd_act)kind, param));
    Py_RETURN_NONE;
}

typedef ubd_status (*loss_fwd_fn)(float *, const float *, const float *, size_t);
typedef ubd_status (*loss_bwd_fn)(float *, const float *, const float *, size_t, float);

static PyObject *loss_forward(PyObject *args, loss_fwd_fn fn) {
    PyObject *p, *t;
    if (!PyArg_ParseTuple(args, "OO", &p, &t)) return NULL;
    UBD_PY_IN(pred, p);
    UBD_PY_IN(target, t);
    UBD_PY_SAME_SIZE(target, pred);
    if (pred.size == 0) return PyErr_Format(PyExc_ValueError, "loss: empty input");
    float loss = 0.0f;
    UBD_PY_CALL(fn(&loss, pred.data, target.data, (size_t)pred.size));
    return PyFloat_FromDouble(loss);
}

static PyObject *loss_backward(PyObject *args, loss_bwd_fn fn, const char *name) {
    PyObject *d, *p, *t;
    float scale = 1.0f;
    if (!PyArg_ParseTuple(args, "OOO|f", &d, &p, &t, &scale)) return NULL;
    UBD_PY_OUT(dpred, d);
    UBD_PY_IN(pred, p);
    UBD_PY_IN(target, t);
    UBD_PY_SAME_SIZE(target, pred);
    UBD_PY_SAME_SIZE(dpred, pred);
    if (pred.size == 0) return PyErr_Format(PyExc_ValueError, "loss: empty input");
    UBD_PY_NO_OVERLAP_FN(name, 1, &dpred, &pred, &target);
    UBD_PY_CALL(fn(dpred.data, pred.data, target.data, (size_t)pred.size, scale));
    Py_RETURN_NONE;
}

static PyObject *l1_forward(PyObject *self, PyObject *args) { return loss_forward(args, ubd_cpu_l1_forward); }
static PyObject *mse_forward(PyObject *self, PyObject *args) { return loss_forward(args, ubd_cpu_mse_forward); }
static PyObject *l1_backward(PyObject *self, PyObject *args) { return loss_backward(args, ubd_cpu_l1_backward, "l1_backward"); }
static PyObject *mse_backward(PyObject *self, PyObject *args) { return loss_backward(args, ubd_cpu_mse_backward, "mse_backward"); }

/* adam_update(param, m, v, grad, t, lr, beta1, beta2, eps, weight_decay, decoupled) */
static PyObject *adam_update(PyObject *self, PyObject *args) {
    PyObject *po, *mo, *vo, *go;
    long long t;
    ubd_adam_hparams hp;
    if (!PyArg_ParseTuple(args, "OOOOLfffffp", &po, &mo, &vo, &go, &t, &hp.lr, &hp.beta1, &hp.beta2, &hp.eps,
                          &hp.weight_decay, &hp.decoupled))
        return NULL;
    UBD_PY_OUT(param, po);
    UBD_PY_OUT(m, mo);
    UBD_PY_OUT(v, vo);
    UBD_PY_IN(grad, go);
    UBD_PY_SAME_SIZE(m, param);
    UBD_PY_SAME_SIZE(v, param);
    UBD_PY_SAME_SIZE(grad, param);
    UBD_PY_NO_OVERLAP_INPLACE(&param, &m, &v, &grad); /* grad may be param, m or v */
    UBD_PY_CALL(ubd_cpu_adam_update(param.data, m.data, v.data, grad.data, (size_t)param.size, hp, t));
    Py_RETURN_NONE;
}

/* ema_update(ema, param, decay) */
static PyObject *ema_update(PyObject *self, PyObject *args) {
    PyObject *eo, *po;
    float decay;
    if (!PyArg_ParseTuple(args, "OOf", &eo, &po, &decay)) return NULL;
    UBD_PY_OUT(ema, eo);
    UBD_PY_IN(param, po);
    UBD_PY_SAME_SIZE(ema, param);
    UBD_PY_NO_OVERLAP_INPLACE(&ema, &param);
    UBD_PY_CALL(ubd_cpu_ema_update(ema.data, param.data, (size_t)param.size, decay));
    Py_RETURN_NONE;
}

static PyObject *grad_norm(PyObject *self, PyObject *args) {
    PyObject *go;
    if (!PyArg_ParseTuple(args, "O", &go)) return NULL;
    UBD_PY_IN(grad, go);
    float norm = 0.0f;
    UBD_PY_CALL(ubd_cpu_grad_norm(&norm, grad.data, (size_t)grad.size));
    return PyFloat_FromDouble(norm);
}

/* clip_grad_norm(grad, max_norm) -> norm before clipping */
static PyObject *clip_grad_norm(PyObject *self, PyObject *args) {
    PyObject *go;
    float max_norm;
    if (!PyArg_ParseTuple(args, "Of", &go, &max_norm)) return NULL;
    UBD_PY_OUT(grad, go);
    float norm = 0.0f;
    UBD_PY_CALL(ubd_cpu_clip_grad_norm(&norm, grad.data, (size_t)grad.size, max_norm));
    return PyFloat_FromDouble(norm);
}

PyMethodDef ubd_py_ops_methods[] = {
    {"linear_forward", linear_forward, METH_VARARGS, "linear_forward(out, inp, weight, bias|None)"},
    {"linear_backward", linear_backward, METH_VARARGS,
     "linear_backward(dinp|None, dweight|None, dbias|None, dout, inp, weight); gradients +="},
    {"act_forward", act_forward, METH_VARARGS, "act_forward(out, inp, kind, param=0); in place if out is inp"},
    {"act_backward", act_backward, METH_VARARGS,
     "act_backward(dinp, dout, inp, kind, param=0); dinp +=; dinp may be dout or inp (in place)"},
    {"l1_forward", l1_forward, METH_VARARGS, "l1_forward(pred, target) -> mean |pred-target|"},
    {"l1_backward", l1_backward, METH_VARARGS,
     "l1_backward(dpred, pred, target, scale=1); dpred +=; dpred may be pred or target (in place)"},
    {"mse_forward", mse_forward, METH_VARARGS, "mse_forward(pred, target) -> mean (pred-target)^2"},
    {"mse_backward", mse_backward, METH_VARARGS,
     "mse_backward(dpred, pred, target, scale=1); dpred +=; dpred may be pred or target (in place)"},
    {"adam_update", adam_update, METH_VARARGS,
     "adam_update(param, m, v, grad, t, lr, beta1, beta2, eps, weight_decay, decoupled); grad may be param"},
    {"ema_update", ema_update, METH_VARARGS, "ema_update(ema, param, decay)"},
    {"grad_norm", grad_norm, METH_VARARGS, "grad_norm(grad) -> L2 norm"},
    {"clip_grad_norm", clip_grad_norm, METH_VARARGS, "clip_grad_norm(grad, max_norm) -> norm before"},
    {NULL, NULL, 0, NULL}};
