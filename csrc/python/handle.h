/* handle.h — a C model owned by a PyCapsule, used by one call at a time.
 *
 * Models (autoencoder, diffusion, InversionNet, ...) live in C; Python holds
 * a capsule whose destructor frees the model. A compute call releases the
 * GIL, and converting an argument can run Python code (a label object's
 * __array__, an int's __index__) which lets other threads in, so two threads
 * could enter the same model at once. The busy flag turns that into a
 * RuntimeError instead of a data race: UBD_HANDLE_ACQUIRE checks and sets it
 * in one step with the GIL held, before any argument is converted, and it is
 * cleared when the acquiring function's scope ends, on every return path
 * (the compiler's cleanup attribute, gcc and clang). */
#ifndef UBD_HANDLE_H
#define UBD_HANDLE_H

#include "pyutil.h"

typedef struct {
    void *obj;                 /* the model (ubd_ae *, ubd_invnet *, ...) */
    void (*destroy)(void *);   /* frees obj */
    const char *what;          /* for messages: "autoencoder", ... */
    int busy;                  /* read and written only with the GIL held */
} ubd_handle;

/* Wraps `obj` in a new capsule named `name` (a string literal). On failure
 * `obj` is destroyed and NULL returned with an exception set. */
PyObject *ubd_handle_new(void *obj, void (*destroy)(void *), const char *name, const char *what);
/* The handle of capsule `cap` named `name`, marked busy; TypeError if it is
 * not one, RuntimeError if the model is in use. Use through UBD_HANDLE_ACQUIRE. */
ubd_handle *ubd_handle_acquire(PyObject *cap, const char *name);
/* Clears the busy mark of *h (if any): the cleanup of UBD_HANDLE_ACQUIRE. */
void ubd_handle_release(ubd_handle **h);

/* Declares `ubd_handle *var` for capsule `cap` named `name`, busy until the
 * enclosing scope ends; returns NULL from the caller if it cannot be had. */
#define UBD_HANDLE_ACQUIRE(var, cap, name)                                      \
    ubd_handle *var __attribute__((cleanup(ubd_handle_release))) = ubd_handle_acquire((cap), (name)); \
    if (!var) return NULL

/* Runs a core call on (acquired) handle `h` without the GIL; returns NULL
 * from the caller with the error raised on failure. */
#define UBD_HANDLE_CALL(h, expr)                   \
    do {                                           \
        ubd_status hs_;                            \
        (void)(h);                                 \
        ubd_threads_adapt();                       \
        Py_BEGIN_ALLOW_THREADS hs_ = (expr);       \
        Py_END_ALLOW_THREADS if (hs_ != UBD_OK) return ubd_py_raise(hs_); \
    } while (0)

#endif
