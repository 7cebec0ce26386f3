/* handle.h — a C model owned by a PyCapsule, used by one call at a time.
 *
 * Models (autoencoder, diffusion, InversionNet, ...) live in C; Python holds
 * a capsule whose destructor frees the model. A compute call releases the
 * GIL, so two Python threads could enter the same model at once: the busy
 * flag (set and cleared with the GIL held) turns that into a RuntimeError
 * instead of a data race. */
#ifndef UBD_HANDLE_H
#define UBD_HANDLE_H

#include "pyutil.h"

typedef struct {
    void *obj;                 /* the model (ubd_ae *, ubd_invnet *, ...) */
    void (*destroy)(void *);   /* frees obj */
    const char *what;          /* for messages: "autoencoder", ... */
    int busy;
} ubd_handle;

/* Wraps `obj` in a new capsule named `name` (a string literal). On failure
 * `obj` is destroyed and NULL returned with an exception set. */
PyObject *ubd_handle_new(void *obj, void (*destroy)(void *), const char *name, const char *what);
/* The handle of capsule `cap` named `name`; TypeError if it is not one,
 * RuntimeError if the model is in use. */
ubd_handle *ubd_handle_get(PyObject *cap, const char *name);

/* Runs a core call on handle `h` without the GIL, the model marked busy;
 * returns NULL from the caller with the error raised on failure. */
#define UBD_HANDLE_CALL(h, expr)                   \
    do {                                           \
        ubd_status hs_;                            \
        (h)->busy = 1;                             \
        ubd_threads_adapt();                       \
        Py_BEGIN_ALLOW_THREADS hs_ = (expr);       \
        Py_END_ALLOW_THREADS(h)->busy = 0;         \
        if (hs_ != UBD_OK) return ubd_py_raise(hs_); \
    } while (0)

#endif
