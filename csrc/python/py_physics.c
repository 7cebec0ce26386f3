/* py_physics.c — bindings of acoustic forward modelling (physics.h). */
#include "pyutil.h" /* first: Python.h must precede system headers */

PyMethodDef ubd_py_physics_methods[] = {{NULL, NULL, 0, NULL}};
