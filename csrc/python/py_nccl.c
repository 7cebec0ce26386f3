/* py_nccl.c — the NCCL communicator (csrc/nccl_comm.h) seen from Python, and the
 * all-reduce of a model's tensor range on its device (tensor_io.h: P_allreduce).
 * In a build without NCCL every call but nccl_compiled() raises RuntimeError. */
#include "tensor_io.h" /* first: Python.h must precede system headers */
#include <string.h>

#include "../nccl_comm.h"

#define NCCL_CAPSULE "ubdiff.nccl_comm"

static void comm_destroy(PyObject *cap) { ubd_nccl_comm_free(PyCapsule_GetPointer(cap, NCCL_CAPSULE)); }

/* nccl_compiled() -> (compiled: bool, NCCL version code or 0) */
static PyObject *nccl_compiled(PyObject *self, PyObject *args) {
    int v = 0;
    int on = ubd_nccl_compiled(&v);
    return Py_BuildValue("(Oi)", on ? Py_True : Py_False, v);
}

/* nccl_unique_id() -> bytes (UBD_NCCL_ID_BYTES): made on one rank, broadcast to all */
static PyObject *nccl_unique_id(PyObject *self, PyObject *args) {
    unsigned char id[UBD_NCCL_ID_BYTES];
    UBD_PY_CALL(ubd_nccl_unique_id(id));
    return PyBytes_FromStringAndSize((const char *)id, UBD_NCCL_ID_BYTES);
}

/* nccl_comm_create(id: bytes, nranks, rank, device) -> communicator capsule (collective) */
static PyObject *nccl_comm_create(PyObject *self, PyObject *args) {
    const char *id;
    Py_ssize_t len;
    int nranks, rank, device;
    if (!PyArg_ParseTuple(args, "y#iii", &id, &len, &nranks, &rank, &device)) return NULL;
    if (len != UBD_NCCL_ID_BYTES)
        return PyErr_Format(PyExc_ValueError, "nccl_comm_create: the id must be %d bytes, got %zd",
                            UBD_NCCL_ID_BYTES, len);
    ubd_nccl_comm *c = NULL;
    UBD_PY_CALL(ubd_nccl_comm_create(&c, (const unsigned char *)id, nranks, rank, device));
    PyObject *cap = PyCapsule_New(c, NCCL_CAPSULE, comm_destroy);
    if (!cap) ubd_nccl_comm_free(c);
    return cap;
}

int ubd_py_tensor_allreduce(const ubd_py_tensor *t, PyObject *comm, Py_ssize_t start, Py_ssize_t stop, int root) {
    ubd_nccl_comm *c = PyCapsule_GetPointer(comm, NCCL_CAPSULE);
    if (!c) return -1;
    const Py_ssize_t size = (Py_ssize_t)t->size;
    if (stop < 0) stop = size;
    if (start < 0 || start > stop || stop > size) {
        PyErr_Format(PyExc_ValueError, "allreduce: range [%zd, %zd) is not within the %zd floats of %s", start, stop,
                     size, t->name);
        return -1;
    }
    if (t->p->be == NULL || strcmp(t->p->be->name, "cuda") != 0) {
        PyErr_SetString(PyExc_ValueError, "allreduce (NCCL): the model is not on a CUDA device");
        return -1;
    }
    float *buf = t->p->buf[t->kind] + t->offset + start;
    ubd_py_tensor_written(t); /* a sum or broadcast of the weights changes them */
    ubd_status s;
    Py_BEGIN_ALLOW_THREADS s = root < 0 ? ubd_nccl_allreduce_sum(c, buf, (size_t)(stop - start))
                                        : ubd_nccl_broadcast(c, buf, (size_t)(stop - start), root);
    Py_END_ALLOW_THREADS
    if (s != UBD_OK) {
        ubd_py_raise(s);
        return -1;
    }
    return 0;
}

PyMethodDef ubd_py_nccl_methods[] = {
    {"nccl_compiled", nccl_compiled, METH_NOARGS, "nccl_compiled() -> (compiled, NCCL version code)."},
    {"nccl_unique_id", nccl_unique_id, METH_NOARGS, "nccl_unique_id() -> bytes: a new NCCL unique id."},
    {"nccl_comm_create", nccl_comm_create, METH_VARARGS,
     "nccl_comm_create(id, nranks, rank, device) -> this rank's NCCL communicator (every rank calls it)."},
    {NULL, NULL, 0, NULL},
};
