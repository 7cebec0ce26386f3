/* unet2d_impl.h — internals of the 2-D U-Net shared by unet2d.c (structure,
 * parameters, memory plan, forward/backward order) and unet2d_blocks.c (the
 * blocks' forward and backward). Not a public header.
 *
 * Every block reads `in` and writes `out`; its gradient flows from `dout`
 * into `din` (+=). All of them point into the model's one arena, laid out for
 * max_batch; a call with B < max_batch uses the leading B samples of each
 * (B, C, H, W) tensor. Everything runs on m->be.
 */
#ifndef UBD_UNET2D_IMPL_H
#define UBD_UNET2D_IMPL_H

#include "../arena.h"
#include "time_mlp.h"
#include "unet2d.h"

/* ResnetBlock(ci -> co) with time conditioning, on (H, W) maps. */
typedef struct {
    int ci, co, H, W, has_res;
    size_t mlp_w, mlp_b, c1_w, c1_b, n1_g, n1_b, c2_w, c2_b, n2_g, n2_b, res_w, res_b; /* param offsets */
    /* activations, each (B, co, H, W) unless noted */
    float *ss;            /* (B, 2co) scale | shift */
    float *h1, *g1, *m1;  /* conv1 out, GroupNorm out, modulated */
    float *a1;            /* SiLU(m1) */
    float *h2, *g2;       /* conv2 out, GroupNorm out */
    float *r;             /* 1x1 residual conv out (has_res) */
    float *mean1, *rstd1, *mean2, *rstd2; /* (B, groups) */
    const float *in;      /* (B, ci, H, W) */
    float *out;           /* (B, co, H, W) */
    float *din, *dout;
} ubd_unet2d_rb;

/* x + LinearAttention(x) | x + Attention(x), the RMSNorm inside. */
typedef struct {
    int C, H, W, linear;
    size_t norm_g, qkv_w, out_w, out_b, out_g; /* out_g: to_out's RMSNorm (linear only) */
    float *xn, *rn;       /* (B, C, L) RMSNorm out, (B, L); L = H W */
    float *qkv;           /* (B, 3 NH HD, L) */
    float *qs, *ks, *ctx; /* linear: (B, NH HD, L) x2, (B, NH, HD, HD) */
    float *att;           /* full: (B, NH, L, L) */
    float *o;             /* (B, NH HD, L) attention out */
    float *y;             /* (B, C, L) to_out conv out (linear: before its RMSNorm) */
    float *rn2;           /* (B, L) to_out RMSNorm (linear) */
    const float *in;
    float *out, *din, *dout;
} ubd_unet2d_attn;

/* A convolution, optionally after a rearrangement of its input. */
typedef enum {
    UBD_UNET2D_PLAIN = 0, /* Conv2d(ci -> co, K x K, pad P) */
    UBD_UNET2D_DOWN = 1,  /* pixel-unshuffle x2, then Conv2d(4ci -> co, 1x1) */
    UBD_UNET2D_UP = 2     /* nearest x2, then Conv2d(ci -> co, 3x3, pad 1) */
} ubd_unet2d_conv_kind;

typedef struct {
    ubd_unet2d_conv_kind kind;
    int ci, co, H, W; /* input channels and map */
    int K, P;         /* the convolution's kernel and padding */
    size_t w, b;
    float *pre;       /* the rearranged input: (B, 4ci, H/2, W/2) down, (B, ci, 2H, 2W) up */
    const float *in;
    float *out, *din, *dout;
} ubd_unet2d_conv;

#define UBD_UNET2D_MAX_GRADS 160 /* gradient buffers zeroed before each backward */

struct ubd_unet2d {
    ubd_unet2d_config cfg;
    const ubd_backend *be;
    int max_batch, tdim;
    int dims[UBD_UNET2D_MAX_LEVELS + 1];
    int PH, PW, top, left; /* padded map and where the input sits in it */
    ubd_params p;          /* param, grad, m, v, ema */
    int *init_fan;         /* per view: fan_in > 0 uniform, 0 ones, -1 zeros */

    ubd_unet2d_conv init_conv;
    ubd_time_mlp tm;                   /* time conditioning (time_mlp.h) */
    float *xpad;                       /* (B, channels, PH, PW) the padded input */
    float *dxpad;                      /* its gradient */

    ubd_unet2d_rb down_rb[UBD_UNET2D_MAX_LEVELS][2];
    ubd_unet2d_attn down_at[UBD_UNET2D_MAX_LEVELS];
    ubd_unet2d_conv down_cv[UBD_UNET2D_MAX_LEVELS];
    ubd_unet2d_rb mid1, mid2;
    ubd_unet2d_attn mid_at;
    float *up_cat[UBD_UNET2D_MAX_LEVELS][2], *d_up_cat[UBD_UNET2D_MAX_LEVELS][2];
    ubd_unet2d_rb up_rb[UBD_UNET2D_MAX_LEVELS][2];
    ubd_unet2d_attn up_at[UBD_UNET2D_MAX_LEVELS];
    ubd_unet2d_conv up_cv[UBD_UNET2D_MAX_LEVELS];
    float *final_cat, *d_final_cat;
    ubd_unet2d_rb final_rb;
    ubd_unet2d_conv final_cv;

    /* the arena and what lives in it besides the blocks */
    ubd_arena arena;
    float *scratch;           /* per-block backward scratch, scratch_n floats */
    size_t scratch_n;
    float *work;              /* conv workspace, work_n floats */
    size_t work_n;
    float *pred, *dpred;      /* (B, channels, height, width): train_step's output and its gradient */
    float *loss;              /* (2) train_step's loss and gradient norm */
    float *x_st, *t_st, *out_st, *dout_st, *dx_st, *target_st; /* staging (NULL on the CPU) */
    float *gz[UBD_UNET2D_MAX_GRADS]; /* gradient buffers to zero before a backward */
    size_t gz_n[UBD_UNET2D_MAX_GRADS];
    int ngz;

    long long step;           /* Adam steps of train_step */
    const float *W;           /* weights of the last forward */
    int last_B, last_weights; /* last_B = 0: no forward to differentiate */
};

/* unet2d_blocks.c. W: parameter buffer base; G: gradient buffer base. */
ubd_status ubd_unet2d_rb_forward(const ubd_unet2d *m, ubd_unet2d_rb *b, const float *W, int B);
ubd_status ubd_unet2d_rb_backward(ubd_unet2d *m, ubd_unet2d_rb *b, const float *W, float *G, int B);
ubd_status ubd_unet2d_attn_forward(const ubd_unet2d *m, ubd_unet2d_attn *a, const float *W, int B);
ubd_status ubd_unet2d_attn_backward(ubd_unet2d *m, ubd_unet2d_attn *a, const float *W, float *G, int B);
ubd_status ubd_unet2d_conv_forward(const ubd_unet2d *m, ubd_unet2d_conv *c, const float *W, int B);
ubd_status ubd_unet2d_conv_backward(ubd_unet2d *m, ubd_unet2d_conv *c, const float *W, float *G, int B);
/* Output map of a conv block. */
int ubd_unet2d_conv_oh(const ubd_unet2d_conv *c);
int ubd_unet2d_conv_ow(const ubd_unet2d_conv *c);
/* Scratch floats each block's backward needs at batch B, and conv workspace. */
size_t ubd_unet2d_rb_scratch(const ubd_unet2d_rb *b, int B);
size_t ubd_unet2d_attn_scratch(const ubd_unet2d *m, const ubd_unet2d_attn *a, int B);
size_t ubd_unet2d_conv_scratch(const ubd_unet2d_conv *c, int B);
size_t ubd_unet2d_rb_work(const ubd_unet2d_rb *b, int B);
size_t ubd_unet2d_attn_work(const ubd_unet2d *m, const ubd_unet2d_attn *a, int B);
size_t ubd_unet2d_conv_work(const ubd_unet2d_conv *c, int B);

#endif
