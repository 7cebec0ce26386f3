/* tensor_io.h — a model's named tensors seen from Python, on any backend.
 *
 * A model keeps its tensors in ubd_params tables (params.h) on its backend.
 * A binding names one tensor by (table, buffer kind, name, or None for the
 * whole flat buffer) and then either
 *   - views it: a zero-copy NumPy array, only where the backend's memory is
 *     host memory (the CPU); on a device this raises and says to copy instead;
 *   - gets it: a new host array holding a copy (any backend);
 *   - sets it: copies a host float32 array of exactly its shape in (any backend);
 *   - zeroes it.
 * So Python code that only gets and sets runs unchanged on every device, and
 * checkpoints hold the same bytes whichever device wrote them.
 */
#ifndef UBD_TENSOR_IO_H
#define UBD_TENSOR_IO_H

#include "pyutil.h" /* first: Python.h must precede system headers */

#include "../params.h"

typedef struct {
    ubd_params *p;
    ubd_buf_kind kind;
    size_t offset, size; /* floats */
    int ndim;
    npy_intp dims[UBD_MAX_DIMS];
    const char *name;    /* the tensor's name, or "(whole buffer)" */
    /* What a write of this tensor tells its model (NULL: nothing): the binding's
     * find_tensor sets it for the tensors the saved forward read (param, EMA,
     * BatchNorm statistics; not grad, m, v) to the model's forget_forward, so a
     * backward after set / zero / allreduce raises instead of differentiating the
     * old weights' activations. Writes through zero-copy views bypass it. */
    void (*forget)(void *model);
    void *model;
} ubd_py_tensor;

/* Resolves `name` (a str, or None for the whole buffer) in table p, buffer
 * `kind`. KeyError names `model` and `what` ("parameter", "statistics") when
 * there is no such tensor. 0 ok / -1 raised. */
int ubd_py_tensor_find(ubd_py_tensor *t, ubd_params *p, ubd_buf_kind kind, PyObject *name, const char *model,
                       const char *what);
/* For a binding's find_tensor: after ubd_py_tensor_find returned `found`, sets
 * t->forget = forget, t->model = model when the tensor is one the forward
 * reads (kind UBD_BUF_PARAM, which also names a statistics table's values, or
 * UBD_BUF_EMA). Returns found. */
int ubd_py_tensor_forgets(ubd_py_tensor *t, int found, void (*forget)(void *), void *model);
/* Called just before anything writes the tensor: runs t->forget (if set). */
void ubd_py_tensor_written(const ubd_py_tensor *t);
/* Zero-copy view kept alive by `owner` (host-memory backends only). Writes
 * through it are not seen by the model (t->forget does not run): a backward
 * after them differentiates the forward of the old values. */
PyObject *ubd_py_tensor_view(PyObject *owner, const ubd_py_tensor *t, const char *model);
/* A new float32 array holding a copy of the tensor. */
PyObject *ubd_py_tensor_get(const ubd_py_tensor *t);
/* Copies `value` (float32, C-contiguous, the tensor's shape) into the tensor. 0 ok / -1 raised. */
int ubd_py_tensor_set(const ubd_py_tensor *t, PyObject *value, const char *fn);
/* Sets the tensor to zero. 0 ok / -1 raised. */
int ubd_py_tensor_zero(const ubd_py_tensor *t);

/* floats [start, stop) of the tensor (stop < 0: its end) <- their sum over the ranks of the
 * NCCL communicator capsule `comm` (py_nccl.c) (root >= 0: rank root's values instead), in
 * place on the model's CUDA device; the GIL is released while NCCL waits for the other
 * ranks. 0 ok / -1 raised. */
int ubd_py_tensor_allreduce(const ubd_py_tensor *t, PyObject *comm, Py_ssize_t start, Py_ssize_t stop, int root);

/* The get / set / zero entry points every model binding exposes, written once:
 *   P_get(model, kind, name=None)      -> a host copy of one tensor (or the whole buffer)
 *   P_set(model, kind, name, value)    copies value (float32, the tensor's shape) in
 *   P_zero(model, kind, name=None)     zeroes one tensor (or the whole buffer)
 *   P_allreduce(model, kind, comm, start=0, stop=-1, root=-1)  floats [start, stop) of the
 *                                      whole buffer summed over the ranks through NCCL (root >= 0:
 *                                      broadcast from rank root instead; GPU models)
 * The binding defines ACQUIRE(var, cap) (takes the handle with the busy flag)
 * and find_tensor(ubd_py_tensor *, model *, kind, name) before expanding it. */
#define UBD_PY_TENSOR_ACCESSORS(P)                                                                    \
    static PyObject *P##_get(PyObject *self, PyObject *args) {                                        \
        PyObject *cap, *name_obj = Py_None;                                                           \
        const char *kind;                                                                             \
        if (!PyArg_ParseTuple(args, "Os|O", &cap, &kind, &name_obj)) return NULL;                     \
        ACQUIRE(h, cap);                                                                              \
        ubd_py_tensor t;                                                                              \
        if (find_tensor(&t, h->obj, kind, name_obj) < 0) return NULL;                                 \
        return ubd_py_tensor_get(&t);                                                                 \
    }                                                                                                 \
    static PyObject *P##_set(PyObject *self, PyObject *args) {                                        \
        PyObject *cap, *name_obj, *value;                                                             \
        const char *kind;                                                                             \
        if (!PyArg_ParseTuple(args, "OsOO", &cap, &kind, &name_obj, &value)) return NULL;             \
        ACQUIRE(h, cap);                                                                              \
        ubd_py_tensor t;                                                                              \
        if (find_tensor(&t, h->obj, kind, name_obj) < 0 || ubd_py_tensor_set(&t, value, #P "_set") < 0) \
            return NULL;                                                                              \
        Py_RETURN_NONE;                                                                               \
    }                                                                                                 \
    static PyObject *P##_zero(PyObject *self, PyObject *args) {                                       \
        PyObject *cap, *name_obj = Py_None;                                                           \
        const char *kind;                                                                             \
        if (!PyArg_ParseTuple(args, "Os|O", &cap, &kind, &name_obj)) return NULL;                     \
        ACQUIRE(h, cap);                                                                              \
        ubd_py_tensor t;                                                                              \
        if (find_tensor(&t, h->obj, kind, name_obj) < 0 || ubd_py_tensor_zero(&t) < 0) return NULL;   \
        Py_RETURN_NONE;                                                                               \
    }                                                                                                 \
    UBD_PY_TENSOR_ALLREDUCE(P)

/* P_allreduce alone, for bindings that write their get / set / zero themselves. */
#define UBD_PY_TENSOR_ALLREDUCE(P)                                                                    \
    static PyObject *P##_allreduce(PyObject *self, PyObject *args) {                                  \
        PyObject *cap, *comm;                                                                         \
        const char *kind;                                                                             \
        Py_ssize_t start = 0, stop = -1;                                                              \
        int root = -1;                                                                                \
        if (!PyArg_ParseTuple(args, "OsO|nni", &cap, &kind, &comm, &start, &stop, &root)) return NULL; \
        ACQUIRE(h, cap);                                                                              \
        ubd_py_tensor t;                                                                              \
        if (find_tensor(&t, h->obj, kind, Py_None) < 0 || ubd_py_tensor_allreduce(&t, comm, start, stop, root) < 0) \
            return NULL;                                                                              \
        Py_RETURN_NONE;                                                                               \
    }

#endif
