/* py_attn.c — bindings of softmax and attention (attention.h). */
#include "pyutil.h" /* first: Python.h must precede system headers */

PyMethodDef ubd_py_attn_methods[] = {{NULL, NULL, 0, NULL}};
