/* denoiser.c — the 1-D and 2-D U-Nets behind the denoiser interface
 * (denoiser.h): thin adapters, no computation of their own. */
#include "denoiser.h"

#include <string.h>

/* ---- 1-D U-Net (the latent diffusion) ---- */
static ubd_status u1_forward(void *n, float *out, const float *x, const float *t, int B, ubd_buf_kind w) {
    return ubd_unet1d_forward(n, out, x, t, B, w);
}
static ubd_status u1_backward(void *n, float *dx, const float *dout, int B) {
    return ubd_unet1d_backward(n, dx, dout, B);
}
static ubd_params *u1_params(void *n) { return ubd_unet1d_params(n); }
static ubd_status u1_init(void *n, uint64_t seed) { return ubd_unet1d_init(n, seed); }
static void u1_forget(void *n) { ubd_unet1d_forget_forward(n); }
static size_t u1_floats(const void *n) { return ubd_unet1d_activation_floats(n); }
static void u1_free(void *n) { ubd_unet1d_free(n); }

ubd_status ubd_denoiser_unet1d(ubd_denoiser *out, ubd_unet1d_config cfg, int max_batch, const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    memset(out, 0, sizeof *out);
    ubd_unet1d *m = NULL;
    UBD_TRY(ubd_unet1d_create(&m, cfg, max_batch, be));
    out->net = m, out->kind = "unet1d", out->ndim = 2;
    out->shape[0] = cfg.channels, out->shape[1] = cfg.seq_len;
    out->per = (size_t)cfg.channels * cfg.seq_len;
    out->max_batch = max_batch, out->be = ubd_unet1d_backend(m);
    out->forward = u1_forward, out->backward = u1_backward, out->params = u1_params, out->init = u1_init;
    out->forget_forward = u1_forget;
    out->activation_floats = u1_floats, out->free = u1_free;
    return UBD_OK;
}

/* ---- 2-D U-Net (the pixel-space DDPM baseline on velocity maps) ---- */
static ubd_status u2_forward(void *n, float *out, const float *x, const float *t, int B, ubd_buf_kind w) {
    return ubd_unet2d_forward_dev(n, out, x, t, B, w);
}
static ubd_status u2_backward(void *n, float *dx, const float *dout, int B) {
    return ubd_unet2d_backward_dev(n, dx, dout, B);
}
static ubd_params *u2_params(void *n) { return ubd_unet2d_params(n); }
static ubd_status u2_init(void *n, uint64_t seed) { return ubd_unet2d_init(n, seed); }
static void u2_forget(void *n) { ubd_unet2d_forget_forward(n); }
static size_t u2_floats(const void *n) { return ubd_unet2d_activation_floats(n); }
static void u2_free(void *n) { ubd_unet2d_free(n); }

ubd_status ubd_denoiser_unet2d(ubd_denoiser *out, const ubd_unet2d_config *cfg, int max_batch,
                               const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(cfg);
    memset(out, 0, sizeof *out);
    ubd_unet2d *m = NULL;
    UBD_TRY(ubd_unet2d_create(&m, cfg, max_batch, be));
    out->net = m, out->kind = "unet2d", out->ndim = 3;
    out->shape[0] = cfg->channels, out->shape[1] = cfg->height, out->shape[2] = cfg->width;
    out->per = (size_t)cfg->channels * cfg->height * cfg->width;
    out->max_batch = max_batch, out->be = ubd_unet2d_backend(m);
    out->forward = u2_forward, out->backward = u2_backward, out->params = u2_params, out->init = u2_init;
    out->forget_forward = u2_forget;
    out->activation_floats = u2_floats, out->free = u2_free;
    return UBD_OK;
}
