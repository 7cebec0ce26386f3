/* pyutil.h — the binding's helpers: borrowing NumPy arrays as float buffers
 * with checked shapes, and turning core status codes into exceptions.
 * Only csrc/python/ includes Python.h (shared/DESIGN.md). */
#ifndef UBD_PYUTIL_H
#define UBD_PYUTIL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL ubd_ARRAY_API
#include <numpy/arrayobject.h>

#include "ubd.h"

/* A borrowed float32 C-contiguous array: no copy, no new reference. */
typedef struct {
    float *data; /* NULL for an optional argument given as None */
    int ndim;
    npy_intp shape[NPY_MAXDIMS];
    npy_intp size;
} ubd_f32;

/* Borrows `obj` as a float32, C-contiguous, aligned array (writable if asked).
 * Anything else raises TypeError/ValueError naming `name` and what was given.
 * Returns 0 on success, -1 with an exception set. */
int ubd_py_f32(PyObject *obj, const char *name, int writable, ubd_f32 *out);
/* Same, but None gives data == NULL. */
int ubd_py_f32_opt(PyObject *obj, const char *name, int writable, ubd_f32 *out);
/* Requires ndim and each dim (a value < 0 matches anything). ValueError names
 * the function, argument, expected and received shapes. 0 ok / -1 raised. */
int ubd_py_expect(const ubd_f32 *a, const char *fn, const char *name, int ndim, ...);
/* A zero-copy float32 view of `data` shaped (dims[0..nd)) whose base is
 * `owner` (a new reference is taken), so the memory lives while the view does. */
PyObject *ubd_py_view(PyObject *owner, float *data, int nd, const npy_intp *dims);
/* Raises the exception that matches `s` with ubd_last_error(); returns NULL. */
PyObject *ubd_py_raise(ubd_status s);

/* Run a core call without the GIL and raise on failure:
 *   UBD_PY_CALL(ubd_cpu_x(...));  -- returns NULL from the caller on error. */
#define UBD_PY_CALL(expr)                          \
    do {                                           \
        ubd_status s_;                             \
        ubd_threads_adapt();                       \
        Py_BEGIN_ALLOW_THREADS s_ = (expr);        \
        Py_END_ALLOW_THREADS if (s_ != UBD_OK) return ubd_py_raise(s_); \
    } while (0)

/* Borrow argument object `obj` into a new local ubd_f32 called `var`
 * (error messages use the variable's name). */
#define UBD_PY_IN(var, obj)                                 \
    ubd_f32 var;                                            \
    if (ubd_py_f32((obj), #var, 0, &var) < 0) return NULL
#define UBD_PY_OUT(var, obj)                                \
    ubd_f32 var;                                            \
    if (ubd_py_f32((obj), #var, 1, &var) < 0) return NULL
#define UBD_PY_OPT_IN(var, obj)                             \
    ubd_f32 var;                                            \
    if (ubd_py_f32_opt((obj), #var, 0, &var) < 0) return NULL
#define UBD_PY_OPT_OUT(var, obj)                            \
    ubd_f32 var;                                            \
    if (ubd_py_f32_opt((obj), #var, 1, &var) < 0) return NULL
/* Shape check that returns NULL from the caller on mismatch. */
#define UBD_PY_EXPECT(var, ndim, ...) \
    if (ubd_py_expect(&var, __func__, #var, ndim, __VA_ARGS__) < 0) return NULL
/* For an optional (possibly None) argument. */
#define UBD_PY_EXPECT_OPT(var, ndim, ...) \
    if (var.data && ubd_py_expect(&var, __func__, #var, ndim, __VA_ARGS__) < 0) return NULL
/* All elements: same count as a reference array. */
#define UBD_PY_SAME_SIZE(var, ref)                                                                       \
    if (var.size != ref.size) {                                                                          \
        PyErr_Format(PyExc_ValueError, "%s: %s has %zd elements, %s has %zd", __func__, #var,            \
                     (Py_ssize_t)var.size, #ref, (Py_ssize_t)ref.size);                                  \
        return NULL;                                                                                     \
    }

/* Each binding file exports a NULL-terminated method table; module.c joins them. */
extern PyMethodDef ubd_py_core_methods[];
extern PyMethodDef ubd_py_ops_methods[];
extern PyMethodDef ubd_py_cuda_methods[];
extern PyMethodDef ubd_py_conv_methods[];    /* py_conv.c: conv2d, conv-transpose2d, conv1d */
extern PyMethodDef ubd_py_norm_methods[];    /* py_norm.c: batch/group/layer/rms norm, shape ops */
extern PyMethodDef ubd_py_attn_methods[];    /* py_attn.c: softmax, attention variants */
extern PyMethodDef ubd_py_physics_methods[]; /* py_physics.c: forward modelling */
extern PyMethodDef ubd_py_models_methods[];  /* py_models.c: models and training steps */
extern PyMethodDef ubd_py_invnet_methods[];  /* py_invnet.c: InversionNet */
extern PyMethodDef ubd_py_diffusion_methods[]; /* py_diffusion.c: latent diffusion + 1-D U-Net */
extern PyMethodDef ubd_py_featnet_methods[]; /* py_featnet.c: FID/KID feature CNN, cross-entropy */
extern PyMethodDef ubd_py_unet2d_methods[];  /* py_unet2d.c: the 2-D U-Net (pixel DDPM), pixel-unshuffle */
int ubd_py_add_params_type(PyObject *module);
struct ubd_params_s;
/* [(name, shape, offset)] of a parameter table (py_params.c). */
PyObject *ubd_py_params_spec(const struct ubd_params_s *p);

#endif
