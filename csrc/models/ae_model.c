/* ae_model.c — creation, memory, PyTorch-default initialisation and
 * accessors of the co-latent autoencoder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae_internal.h"

void ubd_ae_free(ubd_ae *m) {
    if (!m) return;
    ubd_params_free(&m->params);
    ubd_params_free(&m->bufs);
    ubd_arena_release(&m->arena);
    free(m);
}

/* The activation arena for max_batch samples (arena.h: plan, commit, bind). */
static ubd_status reserve(ubd_ae *m) {
    ubd_arena a;
    ubd_arena_begin(&a, m->be);
    ae_lay_out(m, &a);
    char owner[64];
    snprintf(owner, sizeof owner, "autoencoder (max_batch %d)", m->cfg.max_batch);
    UBD_TRY(ubd_arena_commit(&a, owner));
    ae_lay_out(m, &a);
    ubd_status s = ubd_arena_end(&a);
    m->arena = a;
    UBD_TRY(s);
    return m->be->fill(m->one, 1, 1.0f);
}

ubd_status ubd_ae_create(ubd_ae **out, const ubd_ae_config *cfg, uint64_t seed, const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(cfg);
    *out = NULL;
    UBD_TRY(ubd_ae_config_check(cfg));
    ubd_ae *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "autoencoder: out of memory");
    m->cfg = *cfg;
    m->be = be ? be : ubd_backend_cpu();
    ubd_params_init_on(&m->params, m->be);
    ubd_params_init_on(&m->bufs, m->be);
    ubd_arena_begin(&m->arena, m->be);
    ubd_status s = ae_layout(m);
    for (int k = UBD_BUF_PARAM; s == UBD_OK && k <= UBD_BUF_V; k++) s = ubd_params_alloc(&m->params, (ubd_buf_kind)k);
    if (s == UBD_OK) s = ubd_params_alloc(&m->bufs, UBD_BUF_PARAM);
    if (s == UBD_OK) s = reserve(m);
    if (s == UBD_OK) s = ubd_ae_init(m, seed);
    if (s != UBD_OK) {
        ubd_ae_free(m);
        return s;
    }
    *out = m;
    return UBD_OK;
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
    /* the arena's encoder activations belong to the old weights: encode_backward must see a
     * new training-mode encode first (else it pairs them with the new weights); first, as a
     * failure below may leave the weights half-written */
    ubd_ae_forget_forward(m);
    const ubd_backend *be = m->be;
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
            UBD_TRY(be->init_uniform(x, v->size, (float)(1.0 / sqrt(fan_in)), seed, (uint64_t)i, 0));
        } else {
            UBD_TRY(be->fill(x, v->size, (ends_with(v->name, ".weight") && v->ndim == 1) ? 1.0f : 0.0f));
        }
    }
    ubd_params *Bf = &m->bufs;
    for (int i = 0; i < Bf->nviews; i++) {
        const ubd_view *v = &Bf->views[i];
        UBD_TRY(be->fill(Bf->buf[UBD_BUF_PARAM] + v->offset, v->size, ends_with(v->name, ".running_var") ? 1.0f : 0.0f));
    }
    UBD_TRY(be->zero(P->buf[UBD_BUF_GRAD], P->n));
    return ubd_ae_reset_optimizer(m);
}

void ubd_ae_forget_forward(ubd_ae *m) {
    if (m) m->enc_train_B = 0;
}

ubd_status ubd_ae_reset_optimizer(ubd_ae *m) {
    UBD_REQUIRE_PTR(m);
    UBD_TRY(m->be->zero(m->params.buf[UBD_BUF_M], m->params.n));
    UBD_TRY(m->be->zero(m->params.buf[UBD_BUF_V], m->params.n));
    for (int g = 0; g < UBD_AE_NGROUPS; g++) m->steps[g] = 0;
    return UBD_OK;
}

const ubd_ae_config *ubd_ae_get_config(const ubd_ae *m) { return &m->cfg; }
const ubd_backend *ubd_ae_backend(const ubd_ae *m) { return m->be; }
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

ubd_status ubd_ae_set_bn_sync(ubd_ae *m, ubd_allreduce_fn fn, void *ctx) {
    UBD_REQUIRE_PTR(m);
    /* syncbn.c loops over host memory; a device backend would need its own (NCCL) version */
    UBD_REQUIRE(fn == NULL || strcmp(m->be->name, "cpu") == 0, UBD_ERR_VALUE,
                "autoencoder: BatchNorm over all ranks (sync-bn) runs on the CPU only, this model is on '%s'",
                m->be->name);
    m->bn_sync.fn = fn;
    m->bn_sync.ctx = ctx;
    const ubd_bn_sync *sync = fn ? &m->bn_sync : NULL; /* the heads read m->bn_sync.fn themselves */
    for (int i = 0; i < UBD_AE_NENC; i++) m->enc[i].k.bn_sync = sync;
    for (int i = 0; i < UBD_AE_NDECV; i++) m->decv[i].k.bn_sync = sync;
    return UBD_OK;
}
