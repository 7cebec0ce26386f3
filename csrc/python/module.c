/* module.c — the ubdiff._ubdiff extension: joins the binding files' method
 * tables and registers the ParamBuffer type. */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first: Python.h must precede system headers */
#include <string.h>
#define PY_ARRAY_UNIQUE_SYMBOL ubd_ARRAY_API
#include <numpy/arrayobject.h>

#include "pyutil.h"

extern PyMethodDef ubd_py_backend_methods[]; /* py_backend.c: the backend table and the arena */
extern PyMethodDef ubd_py_diffusion_ops_methods[]; /* py_diffusion_ops.c: the diffusion's ops, replay */
extern PyMethodDef ubd_py_devops_methods[];  /* py_devops.c: single table ops on a named device (tests) */

#define UBD_MAX_METHODS 512
static PyMethodDef all_methods[UBD_MAX_METHODS];

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_ubdiff",
                                    "ubdiff C/CUDA core (use the ubdiff package, not this module directly).", -1,
                                    all_methods};

static int join_tables(void) {
    PyMethodDef *tables[] = {ubd_py_core_methods,  ubd_py_ops_methods,     ubd_py_cuda_methods,
                             ubd_py_conv_methods,  ubd_py_norm_methods,    ubd_py_attn_methods,
                             ubd_py_physics_methods, ubd_py_models_methods, ubd_py_invnet_methods,
                             ubd_py_seisenc_methods,
                             ubd_py_diffusion_methods, ubd_py_featnet_methods, ubd_py_backend_methods,
                             ubd_py_diffusion_ops_methods, ubd_py_devops_methods,
                             ubd_py_unet2d_methods, ubd_py_nccl_methods, NULL};
    int k = 0;
    for (int t = 0; tables[t]; t++)
        for (PyMethodDef *m = tables[t]; m->ml_name; m++) {
            if (k >= UBD_MAX_METHODS - 1) return -1;
            all_methods[k++] = *m;
        }
    memset(&all_methods[k], 0, sizeof all_methods[k]);
    return 0;
}

PyMODINIT_FUNC PyInit__ubdiff(void) {
    import_array();
    if (join_tables() < 0) {
        PyErr_SetString(PyExc_ImportError, "_ubdiff: too many methods, raise UBD_MAX_METHODS");
        return NULL;
    }
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    if (ubd_py_add_params_type(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#ifdef UBDIFF_WITH_CUDA
    PyModule_AddIntConstant(m, "CUDA_COMPILED", 1);
#else
    PyModule_AddIntConstant(m, "CUDA_COMPILED", 0);
#endif
    return m;
}
