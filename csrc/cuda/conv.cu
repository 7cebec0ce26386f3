// conv.cu — CUDA twins of conv2d, conv-transpose2d and conv1d (conv.h):
// im2col / col2im kernels + cuBLAS sgemm, cut into GEMMs exactly like the CPU
// code (cpu/conv_plan.h) so that they fit in the same ubd_conv*_workspace().
// col2im gathers (one thread per image element, fixed summation order), so
// results are deterministic without atomics.
#include "../conv.h"
#include "../cpu/conv_plan.h"
#include "common.cuh"

namespace {

constexpr unsigned kBlock = 256;

// col (C*KH*KW, G*OH*OW) = windows of img (G, C, H, W)
__global__ void im2col_k(float *col, const float *img, int G, ubd_im2col_geom g) {
    const size_t ohw = (size_t)g.OH * g.OW, N = (size_t)G * ohw;
    const size_t total = (size_t)g.C * g.KH * g.KW * N;
    const int KK = g.KH * g.KW;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / N);
        const size_t j = i % N;
        const int s = (int)(j / ohw);
        const int q = (int)(j % ohw), oh = q / g.OW, ow = q % g.OW;
        const int c = r / KK, kh = (r % KK) / g.KW, kw = r % g.KW;
        const int ih = oh * g.SH - g.PH + kh, iw = ow * g.SW - g.PW + kw;
        float v = 0.0f;
        if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) v = img[(((size_t)s * g.C + c) * g.H + ih) * g.W + iw];
        col[i] = v;
    }
}

// img (G, C, H, W) rows [ih0, ih1) += adjoint of im2col(col); one thread per image element
__global__ void col2im_k(float *img, const float *col, int G, ubd_im2col_geom g, int ih0, int ih1) {
    const size_t ohw = (size_t)g.OH * g.OW, N = (size_t)G * ohw;
    const int nh = ih1 - ih0;
    const size_t total = (size_t)G * g.C * nh * g.W;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int iw = (int)(i % g.W);
        const int ih = ih0 + (int)((i / g.W) % nh);
        const size_t sc = i / ((size_t)g.W * nh); // s * C + c
        const int c = (int)(sc % g.C), s = (int)(sc / g.C);
        float sum = 0.0f;
        for (int kh = 0; kh < g.KH; kh++) {
            const int t = ih + g.PH - kh;
            if (t < 0 || t % g.SH) continue;
            const int oh = t / g.SH;
            if (oh >= g.OH) continue;
            for (int kw = 0; kw < g.KW; kw++) {
                const int u = iw + g.PW - kw;
                if (u < 0 || u % g.SW) continue;
                const int ow = u / g.SW;
                if (ow >= g.OW) continue;
                sum += col[(((size_t)c * g.KH + kh) * g.KW + kw) * N + (size_t)s * ohw + (size_t)oh * g.OW + ow];
            }
        }
        img[(sc * g.H + ih) * g.W + iw] += sum;
    }
}

// dst (R, G*P) = src (G, R, P)
__global__ void pack_k(float *dst, const float *src, int G, int R, size_t P) {
    const size_t total = (size_t)G * R * P;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t p = i % P, sr = i / P; // source index (s, r, p)
        const size_t r = sr % R, s = sr / R;
        dst[(r * G + s) * P + p] = src[i];
    }
}

// dst (G, R, P) = src (R, G*P) + bias[r], or += src
__global__ void unpack_k(float *dst, const float *src, const float *bias, int G, int R, size_t P, int acc) {
    const size_t total = (size_t)G * R * P;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t p = i % P, sr = i / P;
        const size_t r = sr % R, s = sr / R;
        const float v = src[(r * G + s) * P + p];
        if (acc)
            dst[i] += v;
        else
            dst[i] = v + (bias ? bias[r] : 0.0f);
    }
}

// dst (B, R, P) = bias[r] (or 0)
__global__ void fill_planes_k(float *dst, const float *bias, int B, int R, size_t P) {
    const size_t total = (size_t)B * R * P;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = bias ? bias[(i / P) % R] : 0.0f;
}

// dbias (R) += sums of src (B, R, P) over b, p: one block per r, fixed-order tree reduction
__global__ void sum_planes_k(float *dbias, const float *src, int B, int R, size_t P) {
    __shared__ float part[kBlock];
    const int r = blockIdx.x;
    float s = 0.0f;
    const size_t n = (size_t)B * P;
    for (size_t k = threadIdx.x; k < n; k += blockDim.x) s += src[((k / P) * R + r) * P + k % P];
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) dbias[r] += part[0];
}

ubd_status im2col(float *col, const float *img, int G, const ubd_im2col_geom &g) {
    const size_t n = (size_t)g.C * g.KH * g.KW * G * g.OH * g.OW;
    im2col_k<<<ubd_grid(n, kBlock), kBlock, 0, ubd_cuda_stream()>>>(col, img, G, g);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

// Only image rows that the grid rows of g can reach are visited (bands touch a slice).
ubd_status col2im_add(float *img, const float *col, int G, const ubd_im2col_geom &g) {
    int ih0 = -g.PH, ih1 = (g.OH - 1) * g.SH - g.PH + g.KH;
    if (ih0 < 0) ih0 = 0;
    if (ih1 > g.H) ih1 = g.H;
    if (ih1 <= ih0) return UBD_OK;
    const size_t n = (size_t)G * g.C * (ih1 - ih0) * g.W;
    col2im_k<<<ubd_grid(n, kBlock), kBlock, 0, ubd_cuda_stream()>>>(img, col, G, g, ih0, ih1);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

ubd_status pack(float *dst, const float *src, int G, int R, size_t P) {
    pack_k<<<ubd_grid((size_t)G * R * P, kBlock), kBlock, 0, ubd_cuda_stream()>>>(dst, src, G, R, P);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

ubd_status unpack(float *dst, const float *src, const float *bias, int G, int R, size_t P, int acc) {
    unpack_k<<<ubd_grid((size_t)G * R * P, kBlock), kBlock, 0, ubd_cuda_stream()>>>(dst, src, bias, G, R, P, acc);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

ubd_status fill_planes(float *dst, const float *bias, int B, int R, size_t P) {
    fill_planes_k<<<ubd_grid((size_t)B * R * P, kBlock), kBlock, 0, ubd_cuda_stream()>>>(dst, bias, B, R, P);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

ubd_status sum_planes_add(float *dbias, const float *src, int B, int R, size_t P) {
    sum_planes_k<<<R, kBlock, 0, ubd_cuda_stream()>>>(dbias, src, B, R, P);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

}  // namespace

// ---- conv2d ------------------------------------------------------------------

extern "C" ubd_status ubd_cuda_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                                              float *work, ubd_conv2d_shape s) {
    int OH, OW;
    UBD_TRY(ubd_conv2d_check(s, &OH, &OW));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(weight);
    UBD_REQUIRE(work || ubd_conv2d_workspace(s) == 0, UBD_ERR_VALUE, "conv2d: work must not be NULL");
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const ubd_conv_plan p = ubd_conv2d_plan(s, OH, OW);
    const size_t in_sz = (size_t)s.C * s.H * s.W, out_sz = (size_t)s.OC * p.grid;
    float *col = work, *tmp = work + (size_t)p.rows * p.N;
    const int ld = (int)p.grid;
    for (int b0 = 0; b0 < s.B; b0 += p.G) {
        const int g = s.B - b0 < p.G ? s.B - b0 : p.G;
        const float *x = inp + b0 * in_sz;
        float *y = out + b0 * out_sz;
        if (p.G == 1) {
            const float beta = bias ? 1.0f : 0.0f;
            if (bias) UBD_TRY(fill_planes(y, bias, 1, s.OC, p.grid));
            if (ubd_conv2d_pointwise(s)) {
                UBD_TRY(ubd_rm_sgemm(h, 0, 0, s.OC, ld, p.rows, 1.0f, weight, p.rows, x, ld, beta, y, ld));
                continue;
            }
            for (int oh0 = 0; oh0 < OH; oh0 += p.band) {
                const int nb = OH - oh0 < p.band ? OH - oh0 : p.band, n = nb * OW;
                const ubd_im2col_geom gb = ubd_band_geom(&p.g, oh0, nb);
                UBD_TRY(im2col(col, x, 1, gb));
                UBD_TRY(ubd_rm_sgemm(h, 0, 0, s.OC, n, p.rows, 1.0f, weight, p.rows, col, n, beta, y + (size_t)oh0 * OW,
                                 ld));
            }
        } else {
            const int n = (int)((size_t)g * p.grid);
            UBD_TRY(im2col(col, x, g, p.g));
            UBD_TRY(ubd_rm_sgemm(h, 0, 0, s.OC, n, p.rows, 1.0f, weight, p.rows, col, n, 0.0f, tmp, n));
            UBD_TRY(unpack(y, tmp, bias, g, s.OC, p.grid, 0));
        }
    }
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                               const float *inp, const float *weight, float *work,
                                               ubd_conv2d_shape s) {
    int OH, OW;
    UBD_TRY(ubd_conv2d_check(s, &OH, &OW));
    UBD_REQUIRE_PTR(dout);
    if (dweight) UBD_REQUIRE_PTR(inp);
    if (dinp) UBD_REQUIRE_PTR(weight);
    UBD_REQUIRE(work || ubd_conv2d_workspace(s) == 0, UBD_ERR_VALUE, "conv2d: work must not be NULL");
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const ubd_conv_plan p = ubd_conv2d_plan(s, OH, OW);
    const size_t in_sz = (size_t)s.C * s.H * s.W, out_sz = (size_t)s.OC * p.grid;
    float *col = work, *tmp = work + (size_t)p.rows * p.N;
    const int pw = ubd_conv2d_pointwise(s), ld = (int)p.grid;

    if (dbias) UBD_TRY(sum_planes_add(dbias, dout, s.B, s.OC, p.grid));
    if (!dinp && !dweight) return UBD_OK;
    for (int b0 = 0; b0 < s.B; b0 += p.G) {
        const int g = s.B - b0 < p.G ? s.B - b0 : p.G;
        const float *x = inp ? inp + b0 * in_sz : nullptr;
        float *dx = dinp ? dinp + b0 * in_sz : nullptr;
        const float *dy = dout + b0 * out_sz;
        if (p.G == 1 && !pw) {  // bands of output rows
            for (int oh0 = 0; oh0 < OH; oh0 += p.band) {
                const int nb = OH - oh0 < p.band ? OH - oh0 : p.band, n = nb * OW;
                const ubd_im2col_geom gb = ubd_band_geom(&p.g, oh0, nb);
                const float *dyb = dy + (size_t)oh0 * OW;
                if (dweight) {
                    UBD_TRY(im2col(col, x, 1, gb));
                    UBD_TRY(ubd_rm_sgemm(h, 0, 1, s.OC, p.rows, n, 1.0f, dyb, ld, col, n, 1.0f, dweight, p.rows));
                }
                if (dx) {
                    UBD_TRY(ubd_rm_sgemm(h, 1, 0, p.rows, n, s.OC, 1.0f, weight, p.rows, dyb, ld, 0.0f, col, n));
                    UBD_TRY(col2im_add(dx, col, 1, gb));
                }
            }
            continue;
        }
        const int n = (int)((size_t)g * p.grid);
        if (p.G > 1) {
            UBD_TRY(pack(tmp, dy, g, s.OC, p.grid));
            dy = tmp;
        }
        if (dweight) {
            const float *cm = x;
            if (!(pw && p.G == 1)) {
                UBD_TRY(im2col(col, x, g, p.g));
                cm = col;
            }
            UBD_TRY(ubd_rm_sgemm(h, 0, 1, s.OC, p.rows, n, 1.0f, dy, n, cm, n, 1.0f, dweight, p.rows));
        }
        if (dinp) {
            if (pw && p.G == 1) {
                UBD_TRY(ubd_rm_sgemm(h, 1, 0, s.C, n, s.OC, 1.0f, weight, p.rows, dy, n, 1.0f, dx, n));
            } else {
                UBD_TRY(ubd_rm_sgemm(h, 1, 0, p.rows, n, s.OC, 1.0f, weight, p.rows, dy, n, 0.0f, col, n));
                UBD_TRY(col2im_add(dx, col, g, p.g));
            }
        }
    }
    return UBD_OK;
}

// ---- conv_transpose2d ----------------------------------------------------------

extern "C" ubd_status ubd_cuda_convt2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                                               float *work, ubd_convt2d_shape s) {
    int OH, OW;
    UBD_TRY(ubd_convt2d_check(s, &OH, &OW));
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(inp);
    UBD_REQUIRE_PTR(weight);
    UBD_REQUIRE_PTR(work);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    const ubd_conv_plan p = ubd_convt2d_plan(s, OH, OW);
    const size_t in_sz = (size_t)s.C * p.grid, out_sz = (size_t)s.OC * OH * OW;
    float *col = work, *tmp = work + (size_t)p.rows * p.N;
    UBD_TRY(fill_planes(out, bias, s.B, s.OC, (size_t)OH * OW));
    for (int b0 = 0; b0 < s.B; b0 += p.G) {
        const int g = s.B - b0 < p.G ? s.B - b0 : p.G;
        if (p.G == 1) {
            for (int h0 = 0; h0 < s.H; h0 += p.band) {
                const int nb = s.H - h0 < p.band ? s.H - h0 : p.band, n = nb * s.W;
                const ubd_im2col_geom gb = ubd_band_geom(&p.g, h0, nb);
                UBD_TRY(ubd_rm_sgemm(h, 1, 0, p.rows, n, s.C, 1.0f, weight, p.rows, inp + b0 * in_sz + (size_t)h0 * s.W,
                                 (int)p.grid, 0.0f, col, n));
                UBD_TRY(col2im_add(out + b0 * out_sz, col, 1, gb));
            }
            continue;
        }
        const int n = (int)((size_t)g * p.grid);
        UBD_TRY(pack(tmp, inp + b0 * in_sz, g, s.C, p.grid));
        UBD_TRY(ubd_rm_sgemm(h, 1, 0, p.rows, n, s.C, 1.0f, weight, p.rows, tmp, n, 0.0f, col, n));
        UBD_TRY(col2im_add(out + b0 * out_sz, col, g, p.g));
    }
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_convt2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                                const float *inp, const float *weight, float *work,
                                                ubd_convt2d_shape s) {
    int OH, OW;
    UBD_TRY(ubd_convt2d_check(s, &OH, &OW));
    UBD_REQUIRE_PTR(dout);
    if (dweight) UBD_REQUIRE_PTR(inp);
    if (dinp) UBD_REQUIRE_PTR(weight);
    const ubd_conv_plan p = ubd_convt2d_plan(s, OH, OW);
    const size_t in_sz = (size_t)s.C * p.grid, out_sz = (size_t)s.OC * OH * OW;
    if (dbias) UBD_TRY(sum_planes_add(dbias, dout, s.B, s.OC, (size_t)OH * OW));
    if (!dinp && !dweight) return UBD_OK;
    UBD_REQUIRE_PTR(work);
    cublasHandle_t h;
    UBD_TRY(ubd_cuda_blas_handle(&h));
    float *col = work, *tmp = work + (size_t)p.rows * p.N;
    const int ld = (int)p.grid;
    for (int b0 = 0; b0 < s.B; b0 += p.G) {
        const int g = s.B - b0 < p.G ? s.B - b0 : p.G;
        if (p.G == 1) {
            for (int h0 = 0; h0 < s.H; h0 += p.band) {
                const int nb = s.H - h0 < p.band ? s.H - h0 : p.band, n = nb * s.W;
                const ubd_im2col_geom gb = ubd_band_geom(&p.g, h0, nb);
                const size_t off = b0 * in_sz + (size_t)h0 * s.W;
                UBD_TRY(im2col(col, dout + b0 * out_sz, 1, gb));
                if (dinp)
                    UBD_TRY(ubd_rm_sgemm(h, 0, 0, s.C, n, p.rows, 1.0f, weight, p.rows, col, n, 1.0f, dinp + off, ld));
                if (dweight)
                    UBD_TRY(ubd_rm_sgemm(h, 0, 1, s.C, p.rows, n, 1.0f, inp + off, ld, col, n, 1.0f, dweight, p.rows));
            }
            continue;
        }
        const int n = (int)((size_t)g * p.grid);
        UBD_TRY(im2col(col, dout + b0 * out_sz, g, p.g));
        if (dinp) {
            UBD_TRY(ubd_rm_sgemm(h, 0, 0, s.C, n, p.rows, 1.0f, weight, p.rows, col, n, 0.0f, tmp, n));
            UBD_TRY(unpack(dinp + b0 * in_sz, tmp, nullptr, g, s.C, p.grid, 1));
        }
        if (dweight) {
            UBD_TRY(pack(tmp, inp + b0 * in_sz, g, s.C, p.grid));
            UBD_TRY(ubd_rm_sgemm(h, 0, 1, s.C, p.rows, n, 1.0f, tmp, n, col, n, 1.0f, dweight, p.rows));
        }
    }
    return UBD_OK;
}

// ---- conv1d: the 2-D code with H = 1 -------------------------------------------

static ubd_conv2d_shape conv1d_as_2d(ubd_conv1d_shape s) {
    return ubd_conv2d_shape{s.B, s.C, 1, s.L, s.OC, 1, s.K, 1, s.S, 0, s.P};
}

extern "C" ubd_status ubd_cuda_conv1d_forward(float *out, const float *inp, const float *weight, const float *bias,
                                              float *work, ubd_conv1d_shape s) {
    UBD_TRY(ubd_conv1d_check(s, nullptr));
    return ubd_cuda_conv2d_forward(out, inp, weight, bias, work, conv1d_as_2d(s));
}

extern "C" ubd_status ubd_cuda_conv1d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                               const float *inp, const float *weight, float *work,
                                               ubd_conv1d_shape s) {
    UBD_TRY(ubd_conv1d_check(s, nullptr));
    return ubd_cuda_conv2d_backward(dinp, dweight, dbias, dout, inp, weight, work, conv1d_as_2d(s));
}
