/* handle.c — see handle.h. */
#include "handle.h" /* first: Python.h must precede system headers */

static void handle_free(PyObject *cap) {
    ubd_handle *h = PyCapsule_GetPointer(cap, PyCapsule_GetName(cap));
    if (!h) return;
    if (h->obj) h->destroy(h->obj);
    PyMem_Free(h);
}

PyObject *ubd_handle_new(void *obj, void (*destroy)(void *), const char *name, const char *what) {
    ubd_handle *h = PyMem_Calloc(1, sizeof *h);
    if (!h) {
        destroy(obj);
        return PyErr_NoMemory();
    }
    h->obj = obj;
    h->destroy = destroy;
    h->what = what;
    PyObject *cap = PyCapsule_New(h, name, handle_free);
    if (!cap) {
        destroy(obj);
        PyMem_Free(h);
    }
    return cap;
}

ubd_handle *ubd_handle_acquire(PyObject *cap, const char *name) {
    if (!PyCapsule_IsValid(cap, name)) {
        PyErr_Format(PyExc_TypeError, "expected a %s model handle, got %s", name, Py_TYPE(cap)->tp_name);
        return NULL;
    }
    ubd_handle *h = PyCapsule_GetPointer(cap, name);
    /* check and set with no Python code in between: the GIL makes it atomic */
    if (h->busy) {
        PyErr_Format(PyExc_RuntimeError, "%s: the model is in use by another thread", h->what);
        return NULL;
    }
    h->busy = 1;
    return h;
}

void ubd_handle_release(ubd_handle **h) {
    if (*h) (*h)->busy = 0;
}
