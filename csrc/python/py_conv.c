/* py_conv.c — bindings of convolutions (conv.h). */
#include "pyutil.h" /* first: Python.h must precede system headers */

PyMethodDef ubd_py_conv_methods[] = {{NULL, NULL, 0, NULL}};
