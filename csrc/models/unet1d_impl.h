/* unet1d_impl.h — internals of the 1-D U-Net shared by unet1d.c (structure,
 * parameters, memory plan) and unet1d_blocks.c (the blocks' forward and
 * backward). Not a public header.
 *
 * Every block reads `in` and writes `out`; its gradients flow from `dout` into
 * `din` (+=). in/out/din/dout point into the model's one arena (arena.h, on
 * its backend), laid out once at creation for max_batch: the activations, then
 * the stream gradients (one contiguous region, zeroed by one call per
 * backward), the backward scratch and the conv workspace. A call with
 * B < max_batch uses the leading B samples of each (B, C, L) tensor.
 */
#ifndef UBD_UNET1D_IMPL_H
#define UBD_UNET1D_IMPL_H

#include "../arena.h"
#include "time_mlp.h"
#include "unet1d.h"

/* ResnetBlock(ci -> co) with time conditioning. */
typedef struct {
    int ci, co, L, has_res;
    size_t mlp_w, mlp_b, c1_w, c1_b, n1_g, n1_b, c2_w, c2_b, n2_g, n2_b, res_w, res_b; /* param offsets */
    /* activations, each (B, co, L) unless noted */
    float *ss;            /* (B, 2co) scale | shift */
    float *h1, *g1, *m1;  /* conv1 out, GroupNorm out, modulated */
    float *a1;            /* SiLU(m1) */
    float *h2, *g2;       /* conv2 out, GroupNorm out */
    float *r;             /* 1x1 residual conv out (has_res) */
    float *mean1, *rstd1, *mean2, *rstd2; /* (B, G) */
    const float *in;      /* (B, ci, L) */
    float *out;           /* (B, co, L) */
    float *din, *dout;
} ubd_unet_rb;

/* Residual(PreNorm(C, LinearAttention | Attention)). */
typedef struct {
    int C, L, linear;
    size_t norm_g, qkv_w, out_w, out_b, out_g; /* out_g: RMSNorm of to_out (linear only) */
    float *xn, *rn;      /* (B, C, L) pre-norm out, (B, L) */
    float *qkv;          /* (B, 3H, L) */
    float *qs, *ks, *ctx;/* linear: (B, H, L) x2, (B, NH, HD, HD) */
    float *att;          /* full: (B, NH, L, L) */
    float *o;            /* (B, H, L) attention out */
    float *y;            /* (B, C, L) to_out conv out */
    float *rn2;          /* (B, L) to_out RMSNorm (linear) */
    const float *in;
    float *out, *din, *dout;
} ubd_unet_attn;

/* Conv1d, optionally after nearest x2 upsampling. */
typedef struct {
    int ci, co, Lin, K, S, P, up;
    size_t w, b;
    float *upbuf; /* (B, ci, 2 Lin) when up */
    const float *in;
    float *out, *din, *dout;
} ubd_unet_conv;

struct ubd_unet1d {
    ubd_unet1d_config cfg;
    int max_batch, tdim;
    int dims[UBD_UNET_MAX_LEVELS + 1];
    ubd_params p;
    /* per-view initialisation rule: fan_in > 0 uniform, 0 ones, -1 zeros */
    int *init_fan;

    ubd_unet_conv init_conv;
    ubd_time_mlp tm;                        /* time conditioning (time_mlp.h) */
    float *tin;                             /* (B) copy of the times */
    float *xin;                             /* (B, ch, L) copy of the input */

    ubd_unet_rb down_rb[UBD_UNET_MAX_LEVELS][2];
    ubd_unet_attn down_at[UBD_UNET_MAX_LEVELS];
    ubd_unet_conv down_cv[UBD_UNET_MAX_LEVELS];
    ubd_unet_rb mid1, mid2;
    ubd_unet_attn mid_at;
    float *up_cat[UBD_UNET_MAX_LEVELS][2], *d_up_cat[UBD_UNET_MAX_LEVELS][2];
    ubd_unet_rb up_rb[UBD_UNET_MAX_LEVELS][2];
    ubd_unet_attn up_at[UBD_UNET_MAX_LEVELS];
    ubd_unet_conv up_cv[UBD_UNET_MAX_LEVELS];
    float *final_cat, *d_final_cat;
    ubd_unet_rb final_rb;
    ubd_unet_conv final_cv;

    const ubd_backend *be; /* where params and arena live; every op goes through it */
    ubd_arena arena;       /* all activation memory, one allocation */
    float *grad;           /* the stream gradients: one region of the arena, zeroed per backward */
    size_t grad_n;
    float *scratch;        /* per-block backward scratch */
    size_t scratch_n;
    float *work;           /* conv workspace */
    size_t work_n;

    const float *W;   /* weights of the last forward */
    int last_B, last_weights;
};

/* unet1d_blocks.c. W: parameter buffer base; G: gradient buffer base. */
ubd_status ubd_unet_rb_forward(const ubd_unet1d *m, ubd_unet_rb *b, const float *W, int B);
ubd_status ubd_unet_rb_backward(ubd_unet1d *m, ubd_unet_rb *b, const float *W, float *G, int B);
ubd_status ubd_unet_attn_forward(const ubd_unet1d *m, ubd_unet_attn *a, const float *W, int B);
ubd_status ubd_unet_attn_backward(ubd_unet1d *m, ubd_unet_attn *a, const float *W, float *G, int B);
ubd_status ubd_unet_conv_forward(const ubd_unet1d *m, ubd_unet_conv *c, const float *W, int B);
ubd_status ubd_unet_conv_backward(ubd_unet1d *m, ubd_unet_conv *c, const float *W, float *G, int B);
/* Scratch floats each block's backward needs at batch B. */
size_t ubd_unet_rb_scratch(const ubd_unet_rb *b, int B);
size_t ubd_unet_attn_scratch(const ubd_unet1d *m, const ubd_unet_attn *a, int B);
size_t ubd_unet_conv_scratch(const ubd_unet_conv *c, int B);
size_t ubd_unet_conv_work(const ubd_unet_conv *c, int B);

#endif
