// backend_cuda.cu — the CUDA backend table: every entry of UBD_BACKEND_OPS
// (backend.h) is its ubd_cuda_<op>. Positional initialisers (C++17 has no
// designated ones): the struct and this list come from the same X-macro, so
// their orders agree; an op without a CUDA twin is an undefined symbol, which
// setup.py reports as a build failure.
#include "../backend.h"

extern "C" const ubd_backend ubd_backend_table_cuda = {
    "cuda",
    0, /* device memory: staged copies, no zero-copy views */
#define UBD_CUDA_ENTRY(op, params) ubd_cuda_##op,
    UBD_BACKEND_OPS(UBD_CUDA_ENTRY)
#undef UBD_CUDA_ENTRY
};
