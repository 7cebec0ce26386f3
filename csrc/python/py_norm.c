/* py_norm.c — bindings of normalisation and shape ops (norm.h, shape_ops.h). */
#include "pyutil.h" /* first: Python.h must precede system headers */

PyMethodDef ubd_py_norm_methods[] = {{NULL, NULL, 0, NULL}};
