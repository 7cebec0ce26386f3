/* ae_model.c — creation, memory, PyTorch-default initialisation and
 * accessors of the co-latent autoencoder. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ae_internal.h"

static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    if (bytes == 0) bytes = 64;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void ubd_ae_free(ubd_ae *m) {
    if (!m) return;
    ubd_params_free(&m->params);
    ubd_params_free(&m->bufs);
    free(m->arena);
    free(m->work);
    free(m);
}

ubd_status ubd_ae_create(ubd_ae **out, const ubd_ae_config *cfg, uint64_t seed) {
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(cfg);
    *out = NULL;
    /* a first pass sizes the arena; the second points the buffers into it */
    size_t an = 0, wn = 0, an2 = 0, wn2 = 0;
    UBD_TRY(ubd_ae_config_check(cfg));
    ubd_ae *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "autoencoder: out of memory");
    m->cfg = *cfg;
    ubd_status s = ae_layout(m, &an, &wn);
    ubd_params_free(&m->params);
    ubd_params_free(&m->bufs);
    if (s != UBD_OK) goto fail;
    m->arena = alloc_floats(an);
    m->work = alloc_floats(wn);
    m->arena_n = an;
    m->work_n = wn;
    if (!m->arena || !m->work) {
        s = ubd_fail(UBD_ERR_MEMORY, "autoencoder: cannot allocate %zu activation floats", an + wn);
        goto fail;
    }
    if ((s = ae_layout(m, &an2, &wn2)) != UBD_OK) goto fail;
    if (an2 != an || wn2 != wn) {
        s = ubd_fail(UBD_ERR_RUNTIME, "autoencoder: inconsistent memory plan");
        goto fail;
    }
    for (int k = UBD_BUF_PARAM; k <= UBD_BUF_V; k++)
        if ((s = ubd_params_alloc(&m->params, (ubd_buf_kind)k)) != UBD_OK) goto fail;
    if ((s = ubd_params_alloc(&m->bufs, UBD_BUF_PARAM)) != UBD_OK) goto fail;
    if ((s = ubd_ae_init(m, seed)) != UBD_OK) goto fail;
    *out = m;
    return UBD_OK;
fail:
    ubd_ae_free(m);
    return s;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* PyTorch's defaults, decided from the tensor names and shapes:
 *  X.weight with ndim >= 2 (Conv2d, ConvTranspose2d, Linear): kaiming_uniform(a=sqrt(5))
 *    = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = prod(shape[1:]) (PyTorch uses
 *    dim 1 for ConvTranspose2d too); X.bias alike with X.weight's fan_in;
 *  1-D X.weight / X.bias of BatchNorm and LayerNorm: 1 / 0;
 *  cls_token, pos_embed: 0 (torch.zeros in the authors' ViT). */
ubd_status ubd_ae_init(ubd_ae *m, uint64_t seed) {
    UBD_REQUIRE_PTR(m);
    ubd_params *P = &m->params;
    float *p = P->buf[UBD_BUF_PARAM];
    for (int i = 0; i < P->nviews; i++) {
        const ubd_view *v = &P->views[i];
        float *x = p + v->offset;
        double fan_in = 0.0;
        if (ends_with(v->name, ".weight") && v->ndim >= 2) {
            fan_in = 1.0;
            for (int d = 1; d < v->ndim; d++) fan_in *= (double)v->shape[d];
        } else if (ends_with(v->name, ".bias")) {
            char wname[UBD_MAX_NAME];
            size_t len = strlen(v->name) - strlen("bias");
            memcpy(wname, v->name, len);
            strcpy(wname + len, "weight");
            int j = ubd_params_find(P, wname);
            if (j >= 0 && P->views[j].ndim >= 2) {
                fan_in = 1.0;
                for (int d = 1; d < P->views[j].ndim; d++) fan_in *= (double)P->views[j].shape[d];
            }
        }
        if (fan_in > 0.0) {
            float bound = (float)(1.0 / sqrt(fan_in));
            UBD_TRY(ubd_cpu_rand_uniform(x, v->size, seed, (uint64_t)i, 0));
#pragma omp parallel for schedule(static) if (v->size > 65536)
            for (size_t e = 0; e < v->size; e++) x[e] = (2.0f * x[e] - 1.0f) * bound;
        } else {
            float val = (ends_with(v->name, ".weight") && v->ndim == 1) ? 1.0f : 0.0f;
            for (size_t e = 0; e < v->size; e++) x[e] = val;
        }
    }
    ubd_params *Bf = &m->bufs;
    for (int i = 0; i < Bf->nviews; i++) {
        const ubd_view *v = &Bf->views[i];
        float val = ends_with(v->name, ".running_var") ? 1.0f : 0.0f;
        for (size_t e = 0; e < v->size; e++) Bf->buf[UBD_BUF_PARAM][v->offset + e] = val;
    }
    memset(P->buf[UBD_BUF_GRAD], 0, P->n * sizeof(float));
    ubd_ae_reset_optimizer(m);
    return UBD_OK;
}

void ubd_ae_reset_optimizer(ubd_ae *m) {
    if (!m) return;
    memset(m->params.buf[UBD_BUF_M], 0, m->params.n * sizeof(float));
    memset(m->params.buf[UBD_BUF_V], 0, m->params.n * sizeof(float));
    for (int g = 0; g < UBD_AE_NGROUPS; g++) m->steps[g] = 0;
}

const ubd_ae_config *ubd_ae_get_config(const ubd_ae *m) { return &m->cfg; }
ubd_params *ubd_ae_params(ubd_ae *m) { return &m->params; }
ubd_params *ubd_ae_buffers(ubd_ae *m) { return &m->bufs; }

void ubd_ae_group_range(const ubd_ae *m, int g, size_t *off, size_t *n) {
    int ok = g >= 0 && g < UBD_AE_NGROUPS;
    if (off) *off = ok ? m->group_off[g] : 0;
    if (n) *n = ok ? m->group_n[g] : 0;
}

long long ubd_ae_group_steps(const ubd_ae *m, int g) { return (g >= 0 && g < UBD_AE_NGROUPS) ? m->steps[g] : -1; }

ubd_status ubd_ae_set_group_steps(ubd_ae *m, int g, long long steps) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE(g >= 0 && g < UBD_AE_NGROUPS, UBD_ERR_VALUE, "autoencoder: no parameter group %d", g);
    UBD_REQUIRE(steps >= 0, UBD_ERR_VALUE, "autoencoder: step count must be >= 0, got %lld", steps);
    m->steps[g] = steps;
    return UBD_OK;
}
