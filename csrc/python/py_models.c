/* py_models.c — bindings of models and their training steps. */
#include "pyutil.h" /* first: Python.h must precede system headers */

PyMethodDef ubd_py_models_methods[] = {{NULL, NULL, 0, NULL}};
