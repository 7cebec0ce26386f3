/* pyutil.h — the binding's helpers: borrowing NumPy arrays as float buffers
 * with checked shapes, and turning core status codes into exceptions.
 * Only csrc/python/ includes Python.h (shared/DESIGN.md).
 *
 * Every entry point validates its arguments here, once, before the core runs:
 *  - arrays (ubd_py_f32): float32, native byte order, C-contiguous, aligned,
 *    writable when an output, every dimension and the element count within
 *    the C int the kernels take (so no size is ever truncated or overflows);
 *  - aliasing (UBD_PY_NO_OVERLAP): an output never shares memory with another
 *    argument, unless the op is elementwise and documented in-place, in which
 *    case it may be exactly that array (UBD_PY_NO_OVERLAP_INPLACE);
 *  - sequences (ubd_py_tuple): read from a tuple copy, so that an item's
 *    __index__ that changes the caller's list cannot pull items from under us;
 *  - seeds and other 64-bit counters (ubd_py_u64): 0 .. 2**64 - 1, no wrap. */
#ifndef UBD_PYUTIL_H
#define UBD_PYUTIL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL ubd_ARRAY_API
#include <numpy/arrayobject.h>

#include "ubd.h"
#include "ops.h" /* ubd_adam_hparams */

/* A borrowed float32 C-contiguous array: no copy, no new reference. */
typedef struct {
    float *data; /* NULL for an optional argument given as None */
    int ndim;
    npy_intp shape[NPY_MAXDIMS];
    npy_intp size;
    const char *name; /* the argument's name, for messages */
    int writable;     /* borrowed as an output (written by the call) */
} ubd_f32;

/* Borrows `obj` as a float32 array in native byte order, C-contiguous and
 * aligned, writable if asked, with every dimension and the number of elements
 * <= INT_MAX. Anything else
 * raises TypeError (type, dtype, byte order) or ValueError (layout, read-only,
 * size) naming `name` and what was given. Returns 0 on success, -1 with an
 * exception set. Reads no element (so fake-memory stride tricks are safe). */
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

/* Memory of the arrays arrs[0..n) (NULL entries and None arrays skipped):
 * every writable one must be disjoint from every other. With `inplace_ok` an
 * output may instead be exactly one of the inputs (same start, same size):
 * the elementwise ops read element i before writing element i, so that is
 * well-defined; a partial overlap never is, nor two outputs on the same
 * memory. ValueError naming both. 0 / -1. */
int ubd_py_no_overlap(const char *fn, int inplace_ok, int n, const ubd_f32 *const *arrs);
#define UBD_PY_NO_OVERLAP_FN(fn, inplace_ok, ...)                                                     \
    do {                                                                                          \
        const ubd_f32 *const ov_[] = {__VA_ARGS__};                                               \
        if (ubd_py_no_overlap((fn), (inplace_ok), (int)(sizeof ov_ / sizeof ov_[0]), ov_) < 0) return NULL; \
    } while (0)
/* UBD_PY_NO_OVERLAP(&out, &inp, &weight, ...): returns NULL on overlap. */
#define UBD_PY_NO_OVERLAP(...) UBD_PY_NO_OVERLAP_FN(__func__, 0, __VA_ARGS__)
#define UBD_PY_NO_OVERLAP_INPLACE(...) UBD_PY_NO_OVERLAP_FN(__func__, 1, __VA_ARGS__)

struct ubd_params_s;
/* Arrays arrs[0..n) (None skipped) handed to a model must not share memory
 * with any allocated buffer of its tables `params` and `stats` (either may be
 * NULL): the model reads and writes those itself during the call (a view of
 * its gradient buffer passed as an input would be zeroed under the call).
 * ValueError naming the array and the buffer; 0 / -1. */
int ubd_py_outside_model(const char *fn, const struct ubd_params_s *params, const struct ubd_params_s *stats, int n,
                         const ubd_f32 *const *arrs);
#define UBD_PY_OUTSIDE_MODEL(params, stats, ...)                                                            \
    do {                                                                                                \
        const ubd_f32 *const om_[] = {__VA_ARGS__};                                                     \
        if (ubd_py_outside_model(__func__, (params), (stats), (int)(sizeof om_ / sizeof om_[0]), om_) < 0) \
            return NULL;                                                                                \
    } while (0)

/* A tuple copy of sequence `obj` (new reference), or NULL with TypeError
 * "fn: name must be a sequence ...". Items are then read from the copy, which
 * holds its own references: nothing an item's __index__ does to `obj` can
 * free an item or change the length under the loop. */
PyObject *ubd_py_tuple(PyObject *obj, const char *fn, const char *name);
/* Item i of tuple `t` as an integer in [lo, hi] (via __index__; bool and
 * float are refused). TypeError / ValueError naming name[i]. 0 / -1. */
int ubd_py_int_item(PyObject *t, Py_ssize_t i, const char *fn, const char *name, long long lo, long long hi,
                    long long *out);
/* The UTF-8 of str `obj` (owned by obj) for a lookup by C string; NULL + TypeError when it is
 * not a str, ValueError when it holds a NUL (a C string would stop there: "w\0junk" must not
 * resolve to "w"). `what` names it in the message. */
const char *ubd_py_cstr(PyObject *obj, const char *what);
/* A seed, stream or offset: an integer in 0 .. 2**64 - 1 (Python int or
 * NumPy integer, never wrapped modulo 2**64). TypeError / ValueError. 0 / -1. */
int ubd_py_u64(PyObject *obj, const char *fn, const char *name, unsigned long long *out);
/* The same for an unsigned 32-bit word. */
int ubd_py_u32(PyObject *obj, const char *fn, const char *name, unsigned int *out);
/* args = (model, (lr, beta1, beta2, eps, weight_decay)) of a model's AdamW
 * apply_update: *cap the model capsule, *hp decoupled (AdamW). 0 ok / -1 raised. */
int ubd_py_adamw_args(PyObject *args, PyObject **cap, ubd_adam_hparams *hp);

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
/* Seed-like argument object `obj` into a new local unsigned long long `var`. */
#define UBD_PY_U64(var, obj)                                \
    unsigned long long var;                                 \
    if (ubd_py_u64((obj), __func__, #var, &var) < 0) return NULL
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
extern PyMethodDef ubd_py_nccl_methods[];    /* py_nccl.c: the NCCL communicator */
extern PyMethodDef ubd_py_seisenc_methods[]; /* py_seisenc.c: the seismic encoder of the baselines */
extern PyMethodDef ubd_py_diffusion_methods[]; /* py_diffusion.c: latent diffusion + 1-D U-Net */
extern PyMethodDef ubd_py_featnet_methods[]; /* py_featnet.c: FID/KID feature CNN, cross-entropy */
extern PyMethodDef ubd_py_unet2d_methods[];  /* py_unet2d.c: the 2-D U-Net (pixel DDPM), pixel-unshuffle */
int ubd_py_add_params_type(PyObject *module);
/* [(name, shape, offset)] of a parameter table (py_params.c). */
PyObject *ubd_py_params_spec(const struct ubd_params_s *p);

#endif
