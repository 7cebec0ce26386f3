// softmax.cuh — the softmax kernels behind cuda/softmax.cu and the attention
// twins (mhsa.cu, unet_attention.cu): one formula, as cpu/softmax_row.h,
//   y = a * exp(x - max x) / sum exp(x - max x),
//   dx (+)= y * (dy - sum(y * dy) / a),
// over rows (contiguous vectors) or over the columns of (n, L) matrices
// (vectors of stride L). Internal to csrc/cuda (C++ linkage); callers validate
// sizes first.
#ifndef UBD_CUDA_SOFTMAX_CUH
#define UBD_CUDA_SOFTMAX_CUH

#include <limits.h>

#include "../ubd.h"

// Where item r (a row, or a matrix) of a family lies: items come in groups of
// `per`, group g starts at g * stride, and items within a group are packed.
// The attention code reads q, k, v in place inside qkv, where the items of one
// batch sample are packed but samples are 3*NH*HD*L floats apart.
struct ubd_groups {
    long long per, stride;
};
// Items packed one after another (no gaps): one group holding everything.
static inline ubd_groups ubd_packed(void) { return ubd_groups{LLONG_MAX, 0}; }
// Offset of item r of `item` floats.
__host__ __device__ __forceinline__ size_t ubd_item_offset(ubd_groups g, long long r, size_t item) {
    return (size_t)(r / g.per) * (size_t)g.stride + (size_t)(r % g.per) * item;
}

// Rows: y row r (packed, D floats) = a * softmax(x row r in layout gx). y == x is allowed with gx packed.
ubd_status ubd_cuda_softmax_rows(float *y, const float *x, ubd_groups gx, long long rows, int D, float a);
// dx row r (layout gdx) (+)= through y = a * softmax: dy, y packed rows. dx may be dy (packed) without accumulate.
ubd_status ubd_cuda_softmax_rows_backward(float *dx, ubd_groups gdx, const float *dy, const float *y, long long rows,
                                          int D, float a, int accumulate);
// Columns: y (mats, n, L) packed; column j of matrix m of x (layout gx, each (n, L)) is
// softmaxed over its n entries (stride L).
ubd_status ubd_cuda_softmax_cols(float *y, const float *x, ubd_groups gx, long long mats, int n, int L, float a);
// dx (layout gdx) (+)= the column-softmax backward; dy, y (mats, n, L) packed.
ubd_status ubd_cuda_softmax_cols_backward(float *dx, ubd_groups gdx, const float *dy, const float *y, long long mats,
                                          int n, int L, float a, int accumulate);

#endif
