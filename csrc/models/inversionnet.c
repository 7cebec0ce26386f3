/* inversionnet.c — InversionNet: layout, parameters, forward, backward,
 * training step. See inversionnet.h. */
#include "inversionnet.h"

#include "invnet_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the architecture: one row per OpenFWI module ---------------------- */
/* Channel codes: 0 = in_channels, 1..5 = dim1..dim5, 6 = the single output channel. */
typedef struct {
    const char *name;
    int transposed, cin, cout;
    int KH, KW, SH, SW, PH, PW; /* KH = KW = 0: kernel = input size (convblock8) */
    int tanh, crop_before;
} arch_row;

static const arch_row ARCH[UBD_INVNET_BLOCKS] = {
    /* encoder: the time axis shrinks first (kernels k x 1), then both axes */
    {"convblock1", 0, 0, 1, 7, 1, 2, 1, 3, 0, 0, 0},
    {"convblock2_1", 0, 1, 2, 3, 1, 2, 1, 1, 0, 0, 0},
    {"convblock2_2", 0, 2, 2, 3, 1, 1, 1, 1, 0, 0, 0},
    {"convblock3_1", 0, 2, 2, 3, 1, 2, 1, 1, 0, 0, 0},
    {"convblock3_2", 0, 2, 2, 3, 1, 1, 1, 1, 0, 0, 0},
    {"convblock4_1", 0, 2, 3, 3, 1, 2, 1, 1, 0, 0, 0},
    {"convblock4_2", 0, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0},
    {"convblock5_1", 0, 3, 3, 3, 3, 2, 2, 1, 1, 0, 0},
    {"convblock5_2", 0, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0},
    {"convblock6_1", 0, 3, 4, 3, 3, 2, 2, 1, 1, 0, 0},
    {"convblock6_2", 0, 4, 4, 3, 3, 1, 1, 1, 1, 0, 0},
    {"convblock7_1", 0, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0},
    {"convblock7_2", 0, 4, 4, 3, 3, 1, 1, 1, 1, 0, 0},
    {"convblock8", 0, 4, 5, 0, 0, 1, 1, 0, 0, 0, 0},
    /* decoder: 1 -> 5 -> 10 -> 20 -> 40 -> 80, crop to 70, 1 channel */
    {"deconv1_1", 1, 5, 5, 5, 5, 2, 2, 0, 0, 0, 0},
    {"deconv1_2", 0, 5, 5, 3, 3, 1, 1, 1, 1, 0, 0},
    {"deconv2_1", 1, 5, 4, 4, 4, 2, 2, 1, 1, 0, 0},
    {"deconv2_2", 0, 4, 4, 3, 3, 1, 1, 1, 1, 0, 0},
    {"deconv3_1", 1, 4, 3, 4, 4, 2, 2, 1, 1, 0, 0},
    {"deconv3_2", 0, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0},
    {"deconv4_1", 1, 3, 2, 4, 4, 2, 2, 1, 1, 0, 0},
    {"deconv4_2", 0, 2, 2, 3, 3, 1, 1, 1, 1, 0, 0},
    {"deconv5_1", 1, 2, 1, 4, 4, 2, 2, 1, 1, 0, 0},
    {"deconv5_2", 0, 1, 1, 3, 3, 1, 1, 1, 1, 0, 0},
    {"deconv6", 0, 1, 6, 3, 3, 1, 1, 1, 1, 1, 1},
};

static int channels(const ubd_invnet_config *cfg, int code) {
    return code == 0 ? cfg->in_channels : code == 6 ? 1 : cfg->dim[code - 1];
}

static ubd_status check_config(const ubd_invnet_config *cfg) {
    UBD_REQUIRE_PTR(cfg);
    for (int i = 0; i < 5; i++)
        UBD_REQUIRE(cfg->dim[i] > 0, UBD_ERR_VALUE, "inversionnet: dim%d must be positive, got %d", i + 1,
                    cfg->dim[i]);
    UBD_REQUIRE(cfg->in_channels > 0, UBD_ERR_VALUE, "inversionnet: in_channels must be positive, got %d",
                cfg->in_channels);
    UBD_REQUIRE(cfg->nt > 0 && cfg->nx > 0, UBD_ERR_VALUE, "inversionnet: nt and nx must be positive, got %d, %d",
                cfg->nt, cfg->nx);
    UBD_REQUIRE(cfg->max_batch > 0, UBD_ERR_VALUE, "inversionnet: max_batch must be positive, got %d",
                cfg->max_batch);
    UBD_REQUIRE(cfg->slope > 0.0f, UBD_ERR_VALUE, "inversionnet: LeakyReLU slope must be positive, got %g",
                cfg->slope);
    return UBD_OK;
}

ubd_status ubd_invnet_layout(ubd_invnet_block *blocks, const ubd_invnet_config *cfg) {
    UBD_REQUIRE_PTR(blocks);
    UBD_TRY(check_config(cfg));
    int H = cfg->nt, W = cfg->nx;
    for (int l = 0; l < UBD_INVNET_BLOCKS; l++) {
        const arch_row *r = &ARCH[l];
        ubd_invnet_block *b = &blocks[l];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%s", r->name);
        b->crop_before = r->crop_before;
        if (r->crop_before) {
            UBD_REQUIRE(H > 2 * UBD_INVNET_CROP && W > 2 * UBD_INVNET_CROP, UBD_ERR_VALUE,
                        "inversionnet: %s input %dx%d too small to crop", r->name, H, W);
            H -= 2 * UBD_INVNET_CROP;
            W -= 2 * UBD_INVNET_CROP;
        }
        ubd_block2d *k = &b->k;
        k->transposed = r->transposed;
        k->C = channels(cfg, r->cin);
        k->OC = channels(cfg, r->cout);
        k->H = H;
        k->W = W;
        k->KH = r->KH ? r->KH : H; /* convblock8: the whole remaining map */
        k->KW = r->KW ? r->KW : W;
        k->SH = r->SH, k->SW = r->SW, k->PH = r->PH, k->PW = r->PW;
        k->act = r->tanh ? UBD_ACT_TANH : UBD_ACT_LEAKY_RELU;
        k->act_param = r->tanh ? 0.0f : cfg->slope;
        k->bn_momentum = cfg->bn_momentum;
        k->bn_eps = cfg->bn_eps;
        ubd_status s = ubd_block2d_check(k);
        if (s != UBD_OK) {
            char why[256]; /* copy: ubd_fail rewrites the message buffer */
            snprintf(why, sizeof why, "%s", ubd_last_error());
            return ubd_fail(s, "inversionnet: block %s (input %dx%d from nt=%d, nx=%d) is invalid: %s", r->name, H, W,
                            cfg->nt, cfg->nx, why);
        }
        H = k->OH;
        W = k->OW;
    }
    UBD_REQUIRE(H == UBD_INVNET_OUT && W == UBD_INVNET_OUT, UBD_ERR_RUNTIME,
                "inversionnet: output is %dx%d, expected %dx%d", H, W, UBD_INVNET_OUT, UBD_INVNET_OUT);
    return UBD_OK;
}

ubd_status ubd_invnet_tables(ubd_params *params, ubd_params *stats, const ubd_invnet_config *cfg) {
    UBD_REQUIRE(params && stats, UBD_ERR_VALUE, "inversionnet_tables: NULL table");
    ubd_invnet_block blocks[UBD_INVNET_BLOCKS];
    UBD_TRY(ubd_invnet_layout(blocks, cfg));
    return ubd_invnet_run_tables(params, stats, NULL, blocks, UBD_INVNET_BLOCKS);
}

/* ---- creation ------------------------------------------------------------ */
static size_t out_floats(int B) { return (size_t)B * UBD_INVNET_OUT * UBD_INVNET_OUT; }

void ubd_invnet_free(ubd_invnet *m) {
    if (!m) return;
    ubd_params_free(&m->params);
    ubd_params_free(&m->stats);
    ubd_arena_release(&m->arena);
    free(m);
}

ubd_status ubd_invnet_create(ubd_invnet **out, const ubd_invnet_config *cfg, const ubd_backend *be) {
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(cfg);
    *out = NULL;
    ubd_invnet *m = calloc(1, sizeof *m);
    UBD_REQUIRE(m != NULL, UBD_ERR_MEMORY, "inversionnet: out of memory");
    m->be = be ? be : ubd_backend_cpu();
    ubd_params_init_on(&m->params, m->be);
    ubd_params_init_on(&m->stats, m->be);
    ubd_arena_begin(&m->arena, m->be);
    m->cfg = *cfg;
    ubd_status s = ubd_invnet_layout(m->blocks, cfg);
    if (s == UBD_OK) s = ubd_invnet_run_tables(&m->params, &m->stats, m->st, m->blocks, UBD_INVNET_BLOCKS);
    for (int b = UBD_BUF_PARAM; s == UBD_OK && b <= UBD_BUF_V; b++) s = ubd_params_alloc(&m->params, (ubd_buf_kind)b);
    if (s == UBD_OK) s = ubd_params_alloc(&m->stats, UBD_BUF_PARAM);
    if (s == UBD_OK) s = ubd_invnet_reserve(m, cfg->max_batch);
    if (s != UBD_OK) {
        ubd_invnet_free(m);
        return s;
    }
    *out = m;
    return UBD_OK;
}

/* The activation memory for batches up to B, slice by slice (arena.h: run
 * once to plan, once to bind). gsize and wsize are the largest activation and
 * conv workspace of any block. */
static void lay_out(ubd_invnet *m, ubd_arena *a, size_t B, size_t gsize, size_t wsize) {
    ubd_invnet_run_lay_out(a, m->st, m->blocks, UBD_INVNET_BLOCKS, B);
    ubd_arena_take(a, &m->crop, B * (size_t)m->cfg.dim[0] * UBD_INVNET_OUT * UBD_INVNET_OUT, "crop");
    for (int i = 0; i < 3; i++) ubd_arena_take(a, &m->g[i], gsize, "gradient scratch");
    ubd_arena_take(a, &m->work, wsize, "conv workspace");
    ubd_arena_take(a, &m->loss, 2, "losses");
    const ubd_invnet_config *c = &m->cfg;
    ubd_arena_stage(a, &m->seis_in, B * (size_t)c->in_channels * c->nt * c->nx, "seis staging");
    ubd_arena_stage(a, &m->vel_in, out_floats((int)B), "velocity staging");
}

ubd_status ubd_invnet_reserve(ubd_invnet *m, int max_batch) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_POSITIVE(max_batch);
    const size_t B = (size_t)max_batch;
    size_t gmax, wmax;
    ubd_invnet_run_sizes(m->blocks, UBD_INVNET_BLOCKS, B, &gmax, &wmax);
    /* the new arena first: on failure the model keeps its old one */
    ubd_arena a;
    ubd_arena_begin(&a, m->be);
    lay_out(m, &a, B, gmax, wmax);
    char owner[64];
    snprintf(owner, sizeof owner, "inversionnet (max_batch %d)", max_batch);
    UBD_TRY(ubd_arena_commit(&a, owner));
    lay_out(m, &a, B, gmax, wmax);
    ubd_status s = ubd_arena_end(&a);
    ubd_arena_release(&m->arena); /* only activations lived there: parameters and statistics stay put */
    m->arena = a;
    m->cfg.max_batch = max_batch;
    m->gsize = gmax;
    m->wsize = wmax;
    ubd_invnet_forget_forward(m);
    return s;
}

/* The blocks as a run (invnet_run.h), with the model's buffers. */
static ubd_invnet_run run_of(ubd_invnet *m) {
    return (ubd_invnet_run){m->be, m->blocks, m->st, UBD_INVNET_BLOCKS, &m->params, &m->stats, m->work, m->wsize,
                            m->crop, m->g};
}

ubd_status ubd_invnet_init(ubd_invnet *m, uint64_t seed) {
    UBD_REQUIRE_PTR(m);
    ubd_invnet_forget_forward(m); /* first: a failure below may leave the weights half-written */
    const ubd_invnet_run r = run_of(m);
    UBD_TRY(ubd_invnet_run_init(&r, seed));
    m->step = 0;
    return UBD_OK;
}

void ubd_invnet_forget_forward(ubd_invnet *m) {
    if (m) m->last_train_B = 0;
}

/* ---- forward / backward ----------------------------------------------------- */
static ubd_status check_batch(const ubd_invnet *m, const float *seis, int B) {
    UBD_REQUIRE_PTR(m);
    UBD_REQUIRE_PTR(seis);
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE(B <= m->cfg.max_batch, UBD_ERR_VALUE, "inversionnet: batch %d exceeds the model's max_batch %d", B,
                m->cfg.max_batch);
    return UBD_OK;
}

/* Forward of seis (B,C,nt,nx), backend memory; the output stays in the last
 * block's `a` (B,1,70,70). */
static ubd_status forward_impl(ubd_invnet *m, const float *seis, int B, int train) {
    ubd_invnet_forget_forward(m); /* until this forward completes (an eval forward keeps nothing for backward) */
    const ubd_invnet_run r = run_of(m);
    UBD_TRY(ubd_invnet_run_forward(&r, seis, B, train));
    if (train) m->last_train_B = B;
    return UBD_OK;
}

/* The model's copy of host seis (B,C,nt,nx): staged on a GPU, in place on the CPU. */
static ubd_status stage_seis(ubd_invnet *m, const float **dev, const float *seis, int B) {
    const ubd_invnet_config *c = &m->cfg;
    return ubd_stage_in(m->be, dev, m->seis_in, seis, (size_t)B * c->in_channels * c->nt * c->nx);
}

ubd_status ubd_invnet_forward(ubd_invnet *m, float *out, const float *seis, int B, int train) {
    UBD_TRY(check_batch(m, seis, B));
    UBD_REQUIRE_PTR(out);
    const float *x;
    UBD_TRY(stage_seis(m, &x, seis, B));
    UBD_TRY(forward_impl(m, x, B, train));
    return m->be->copy(out, m->st[UBD_INVNET_BLOCKS - 1].a, out_floats(B) * sizeof(float), UBD_D2H);
}

ubd_status ubd_invnet_set_bn_sync(ubd_invnet *m, ubd_allreduce_fn fn, void *ctx) {
    UBD_REQUIRE_PTR(m);
    /* syncbn.c loops over host memory; a device backend would need its own (NCCL) version */
    UBD_REQUIRE(fn == NULL || strcmp(m->be->name, "cpu") == 0, UBD_ERR_VALUE,
                "inversionnet: BatchNorm over all ranks (sync-bn) runs on the CPU only, this model is on '%s'",
                m->be->name);
    m->bn_sync.fn = fn;
    m->bn_sync.ctx = ctx;
    for (int l = 0; l < UBD_INVNET_BLOCKS; l++) m->blocks[l].k.bn_sync = fn ? &m->bn_sync : NULL;
    return UBD_OK;
}

ubd_status ubd_invnet_predict(ubd_invnet *m, float *vel_out, const float *seis, int B) {
    return ubd_invnet_forward(m, vel_out, seis, B, 0);
}

/* Backward from m->g[ig] holding dL/d(output) (B,1,70,70); the three buffers
 * rotate. seis: the forward's input, backend memory. */
static ubd_status backward_impl(ubd_invnet *m, int ig, const float *seis, int B) {
    UBD_REQUIRE(m->last_train_B == B, UBD_ERR_VALUE,
                "inversionnet: backward needs a training forward of the same batch first (last: %d, now: %d)",
                m->last_train_B, B);
    const ubd_invnet_run r = run_of(m);
    return ubd_invnet_run_backward(&r, ig, seis, B);
}

ubd_status ubd_invnet_backward(ubd_invnet *m, const float *dout, const float *seis, int B) {
    UBD_TRY(check_batch(m, seis, B));
    UBD_REQUIRE_PTR(dout);
    const float *x;
    UBD_TRY(stage_seis(m, &x, seis, B));
    UBD_TRY(m->be->copy(m->g[0], dout, out_floats(B) * sizeof(float), UBD_H2D));
    return backward_impl(m, 0, x, B);
}

static ubd_status check_hparams(ubd_invnet_hparams hp) {
    const ubd_adam_hparams ah = {hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, 1};
    UBD_TRY(ubd_adam_check("inversionnet", ah));
    UBD_REQUIRE(isfinite(hp.w_l1) && isfinite(hp.w_mse) && hp.w_l1 >= 0.0f && hp.w_mse >= 0.0f, UBD_ERR_VALUE,
                "inversionnet: loss weights must be finite and >= 0, got l1 %g, mse %g", hp.w_l1, hp.w_mse);
    return UBD_OK;
}

/* One AdamW step of the flat buffers (hyper-parameters checked by the caller). */
static ubd_status update(ubd_invnet *m, ubd_adam_hparams ah) {
    ubd_invnet_forget_forward(m); /* the weights move: the saved forward is the old weights' */
    return ubd_params_adam_step(&m->params, m->be, ah, &m->step);
}

ubd_status ubd_invnet_apply_update(ubd_invnet *m, ubd_adam_hparams adam) {
    UBD_REQUIRE_PTR(m);
    UBD_TRY(ubd_adam_check("inversionnet", adam));
    return update(m, adam);
}

ubd_status ubd_invnet_train_step(ubd_invnet *m, float *losses_out, const float *seis, const float *vel, int B,
                                 ubd_invnet_hparams hp) {
    UBD_TRY(check_batch(m, seis, B));
    UBD_REQUIRE_PTR(losses_out);
    UBD_REQUIRE_PTR(vel);
    UBD_TRY(check_hparams(hp)); /* before anything changes (running statistics, step) */
    const ubd_backend *be = m->be;
    const size_t n = out_floats(B);
    const float *x, *target;
    UBD_TRY(stage_seis(m, &x, seis, B));
    UBD_TRY(ubd_stage_in(be, &target, m->vel_in, vel, n));
    UBD_TRY(be->zero(m->params.buf[UBD_BUF_GRAD], m->params.n));
    UBD_TRY(forward_impl(m, x, B, 1));
    const float *pred = m->st[UBD_INVNET_BLOCKS - 1].a; /* (B,1,70,70) */
    UBD_TRY(be->l1_forward(&m->loss[0], pred, target, n));
    UBD_TRY(be->mse_forward(&m->loss[1], pred, target, n));
    UBD_TRY(be->zero(m->g[0], n));
    if (hp.w_l1 > 0.0f) UBD_TRY(be->l1_backward(m->g[0], pred, target, n, hp.w_l1));
    if (hp.w_mse > 0.0f) UBD_TRY(be->mse_backward(m->g[0], pred, target, n, hp.w_mse));
    UBD_TRY(backward_impl(m, 0, x, B));
    UBD_TRY(update(m, (ubd_adam_hparams){hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, 1}));
    /* the losses of the forward above, read back once at the end so a GPU never waits mid-step */
    float l[2];
    UBD_TRY(be->copy(l, m->loss, sizeof l, UBD_D2H));
    losses_out[0] = hp.w_l1 * l[0] + hp.w_mse * l[1];
    losses_out[1] = l[0];
    losses_out[2] = l[1];
    return UBD_OK;
}
