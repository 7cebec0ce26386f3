// backend_cuda.cu — the CUDA backend tables: every entry of UBD_BACKEND_OPS
// (backend.h) is its ubd_cuda_<op>. Positional initialisers (C++17 has no
// designated ones): the struct and this list come from the same X-macro, so
// their orders agree; an op without a CUDA twin is an undefined symbol, which
// setup.py reports as a build failure.
//
// One table per math mode ("Math modes" in backend.h). The TF32 tables hold,
// for the ops the mode covers, a wrapper that switches the calling thread's
// TF32 flag on for the duration of the op (read by ubd_rm_sgemm and
// ubd_rm_sgemm_pairs in common.cuh, the only places products are issued) and
// restores it afterwards, whatever the op returned.
#include "../backend.h"
#include "common.cuh"

static thread_local int t_tf32 = 0;

extern "C" int ubd_cuda_tf32_get(void) { return t_tf32; }
extern "C" void ubd_cuda_tf32_set(int on) { t_tf32 = on != 0; }

namespace {

// Tf32<F>::call has F's signature and runs F with TF32 products.
template <auto F>
struct Tf32;
template <typename... A, ubd_status (*F)(A...)>
struct Tf32<F> {
    static ubd_status call(A... a) {
        const int was = t_tf32;
        t_tf32 = 1;
        const ubd_status s = F(a...);
        t_tf32 = was;
        return s;
    }
};

// The convolution ops (conv2d_*, convt2d_*, conv1d_*): their names start with
// "conv". Evaluated on the string literal at compile time.
constexpr bool is_conv_op(const char *name) {
    return name[0] == 'c' && name[1] == 'o' && name[2] == 'n' && name[3] == 'v';
}

}  // namespace

extern "C" const ubd_backend ubd_backend_table_cuda = {
    "cuda",
    0, /* device memory: staged copies, no zero-copy views */
    UBD_MATH_FP32,
#define UBD_CUDA_ENTRY(op, params) ubd_cuda_##op,
    UBD_BACKEND_OPS(UBD_CUDA_ENTRY)
#undef UBD_CUDA_ENTRY
};

// TF32 for the convolution GEMMs only (forward and backward), PyTorch/cuDNN's default.
extern "C" const ubd_backend ubd_backend_table_cuda_tf32_conv = {
    "cuda",
    0,
    UBD_MATH_TF32_CONV,
#define UBD_CUDA_TF32_CONV_ENTRY(op, params) is_conv_op(#op) ? &Tf32<ubd_cuda_##op>::call : &ubd_cuda_##op,
    UBD_BACKEND_OPS(UBD_CUDA_TF32_CONV_ENTRY)
#undef UBD_CUDA_TF32_CONV_ENTRY
};

// TF32 for every float32 product (ops without products are unaffected by the flag).
extern "C" const ubd_backend ubd_backend_table_cuda_tf32 = {
    "cuda",
    0,
    UBD_MATH_TF32,
#define UBD_CUDA_TF32_ENTRY(op, params) &Tf32<ubd_cuda_##op>::call,
    UBD_BACKEND_OPS(UBD_CUDA_TF32_ENTRY)
#undef UBD_CUDA_TF32_ENTRY
};
