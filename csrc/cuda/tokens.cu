// tokens.cu — CUDA twins of cpu/tokens.c (the token assembly of the
// autoencoder's seismic decoder). Forward: one thread per element of x0.
// Backward: one thread per element of dcls / dpos / dtok; a parameter
// gradient's thread sums over b = 0..B-1 in order, as the CPU does, so both
// devices give the same bits (no atomics).
#include "../backend.h"
#include "common.cuh"

__global__ void tokens_forward_k(float *x0, const float *tok, const float *cls, const float *pos, size_t n, int T,
                                 int C) {
    UBD_GRID_STRIDE(i, n) {  // i = (b * T + t) * C + c
        const size_t c = i % C, t = (i / C) % T, b = i / ((size_t)C * T);
        x0[i] = t == 0 ? cls[c] + pos[c] : tok[(b * (T - 1) + (t - 1)) * C + c] + pos[t * C + c];
    }
}

// dpos (T*C threads) and dcls (C threads, when given): sums over the batch.
__global__ void tokens_param_grad_k(float *dcls, float *dpos, const float *dx0, int B, int T, int C) {
    UBD_GRID_STRIDE(i, (size_t)T * C) {  // i = t * C + c
        float acc_pos = dpos ? dpos[i] : 0.0f, acc_cls = (dcls && i < (size_t)C) ? dcls[i] : 0.0f;
        for (int b = 0; b < B; b++) {
            const float g = dx0[(size_t)b * T * C + i];
            acc_pos += g;
            acc_cls += g;  // used only for t = 0 (i < C)
        }
        if (dpos) dpos[i] = acc_pos;
        if (dcls && i < (size_t)C) dcls[i] = acc_cls;
    }
}

__global__ void tokens_dtok_k(float *dtok, const float *dx0, size_t n, int T, int C) {
    UBD_GRID_STRIDE(i, n) {  // i = (b * (T - 1) + s) * C + c, token t = s + 1
        const size_t c = i % C, s = (i / C) % (T - 1), b = i / ((size_t)C * (T - 1));
        dtok[i] += dx0[(b * T + s + 1) * C + c];
    }
}

static ubd_status check(const char *fn, int B, int T, int C) {
    UBD_REQUIRE(B > 0 && T >= 1 && C > 0, UBD_ERR_VALUE, "%s: sizes must be positive (T >= 1), got B=%d T=%d C=%d",
                fn, B, T, C);
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_tokens_forward(float *x0, const float *tok, const float *cls, const float *pos, int B,
                                              int T, int C) {
    UBD_TRY(check(__func__, B, T, C));
    UBD_REQUIRE(x0 && cls && pos && (tok || T == 1), UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    const size_t n = (size_t)B * T * C;
    tokens_forward_k<<<ubd_grid(n, 256), 256>>>(x0, tok, cls, pos, n, T, C);
    UBD_CUDA_LAUNCHED();
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_tokens_backward(float *dtok, float *dcls, float *dpos, const float *dx0, int B, int T,
                                               int C) {
    UBD_TRY(check(__func__, B, T, C));
    UBD_REQUIRE_PTR(dx0);
    if (dcls || dpos) {
        const size_t n = (size_t)T * C;
        tokens_param_grad_k<<<ubd_grid(n, 256), 256>>>(dcls, dpos, dx0, B, T, C);
        UBD_CUDA_LAUNCHED();
    }
    if (dtok && T > 1) {
        const size_t n = (size_t)B * (T - 1) * C;
        tokens_dtok_k<<<ubd_grid(n, 256), 256>>>(dtok, dx0, n, T, C);
        UBD_CUDA_LAUNCHED();
    }
    return UBD_OK;
}
