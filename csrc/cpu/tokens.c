/* tokens.c — the token assembly of the autoencoder's seismic decoder D_s (the
 * authors' ViT): a class token and T-1 patch tokens per sample, plus a learned
 * position embedding,
 *   x0[b, 0] = cls + pos[0],   x0[b, t] = tok[b, t-1] + pos[t]   (t = 1..T-1),
 * and its backward, whose parameter gradients sum over the batch in the order
 * b = 0, 1, ..., B-1 (the CUDA twin keeps that order, one thread per sum, so
 * both devices give the same bits). */
#include "backend.h"

static ubd_status check(const char *fn, int B, int T, int C) {
    UBD_REQUIRE(B > 0 && T >= 1 && C > 0, UBD_ERR_VALUE, "%s: sizes must be positive (T >= 1), got B=%d T=%d C=%d",
                fn, B, T, C);
    return UBD_OK;
}

ubd_status ubd_cpu_tokens_forward(float *x0, const float *tok, const float *cls, const float *pos, int B, int T,
                                  int C) {
    UBD_TRY(check(__func__, B, T, C));
    UBD_REQUIRE(x0 && cls && pos && (tok || T == 1), UBD_ERR_VALUE, "%s: NULL buffer", __func__);
    for (int b = 0; b < B; b++) {
        float *r = x0 + (size_t)b * T * C;
        for (int c = 0; c < C; c++) r[c] = cls[c] + pos[c];
        for (int t = 1; t < T; t++) {
            const float *tk = tok + ((size_t)b * (T - 1) + (t - 1)) * C, *p = pos + (size_t)t * C;
            float *rt = r + (size_t)t * C;
            for (int c = 0; c < C; c++) rt[c] = tk[c] + p[c];
        }
    }
    return UBD_OK;
}

ubd_status ubd_cpu_tokens_backward(float *dtok, float *dcls, float *dpos, const float *dx0, int B, int T, int C) {
    UBD_TRY(check(__func__, B, T, C));
    UBD_REQUIRE_PTR(dx0);
    for (int b = 0; b < B; b++) {
        const float *r = dx0 + (size_t)b * T * C;
        for (int c = 0; c < C; c++) {
            if (dcls) dcls[c] += r[c];
            if (dpos) dpos[c] += r[c];
        }
        for (int t = 1; t < T; t++) {
            const float *rt = r + (size_t)t * C;
            if (dpos)
                for (int c = 0; c < C; c++) dpos[(size_t)t * C + c] += rt[c];
            if (dtok) {
                float *dt = dtok + ((size_t)b * (T - 1) + (t - 1)) * C;
                for (int c = 0; c < C; c++) dt[c] += rt[c];
            }
        }
    }
    return UBD_OK;
}
