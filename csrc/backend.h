/* backend.h — the backend table: every op a model calls, once, for the CPU and
 * for CUDA.
 *
 * Why a table. A model is written once, as a sequence of op calls, and runs on
 * whichever device it was created for: it picks a backend at creation
 * (ubd_backend_get("cpu" | "cuda" | "auto")) and from then on calls ops only
 * through it, m->be->conv2d_forward(...), never ubd_cpu_* or memset/memcpy on
 * its buffers. The one list UBD_BACKEND_OPS below generates
 *   - the struct ubd_backend (one function pointer per entry),
 *   - the prototypes of ubd_cpu_<op> and, in CUDA builds, ubd_cuda_<op>
 *     (the definitions in cpu/ and cuda/ are compiled against them: a
 *     definition whose parameters differ from its entry does not compile),
 *   - the two tables, cpu/backend_cpu.c and cuda/backend_cuda.cu (an entry
 *     without both twins leaves an undefined symbol, which setup.py turns into
 *     a build failure).
 * No graph, no autograd: forward and backward stay written out in the models.
 *
 * How a model uses it.
 *   create:  const ubd_backend *be = ubd_backend_get(device);   (NULL + message if unavailable)
 *            m->be = be; ubd_params_init_on(&m->params, be); ubd_params_alloc(...);
 *            activations: one ubd_arena (arena.h) planned once, one be->alloc;
 *   run:     stage host inputs in (ubd_stage_in: a copy on a GPU, the host pointer itself on
 *            the CPU), call be-><op>(...) on arena/param pointers, be->zero before an op that
 *            accumulates (+=) into a fresh buffer, be->copy(..., UBD_D2H) the outputs out;
 *   free:    ubd_arena_release, ubd_params_free (both go back through be->free).
 * Python sees CPU memory as zero-copy views and device memory through explicit
 * copies (csrc/python/tensor_io.h); `host_memory` tells which.
 *
 * Who owns which memory. Every pointer an op receives is memory of ITS backend
 * (device memory for CUDA), owned by the caller (a model's params or arena);
 * ops never allocate. The exceptions are host-side descriptions: shape structs
 * by value, ubd_adam_hparams, and ubd_fwd_params with its position arrays.
 * Scalars an op returns (a loss, a norm, a count) are written to backend
 * memory too; the model copies them out with be->copy.
 *
 * How to add an op.
 *   1. Add X(name, (params)) to UBD_BACKEND_OPS with a shape comment;
 *      conventions of ubd.h: outputs first, then inputs, weights, sizes,
 *      scratch; gradients +=; a status code, never exit.
 *   2. Define ubd_cpu_<name> in csrc/cpu/ and ubd_cuda_<name> (extern "C") in
 *      csrc/cuda/ with exactly those parameters; include any family header
 *      (they end by including this file) so the compiler checks the signature.
 *   3. Test it: a NumPy reference (and a finite-difference gradient check for
 *      a backward), and the GPU against the CPU (tests/cuda_util.py).
 *
 * Types used by the list come from the family headers (ops.h: ubd_act,
 * ubd_adam_hparams; conv.h: shapes; physics.h: ubd_fwd_params), which also
 * hold each family's longer description; every one of them includes this file
 * at its end, so including a family header gives its prototypes.
 */
#ifndef UBD_BACKEND_H
#define UBD_BACKEND_H

#include "ubd.h"
/* the types the list uses (each of these includes backend.h after its types) */
#include "conv.h"
#include "diffusion_ops.h"
#include "ops.h"
#include "physics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Direction of be->copy. The backend's own memory is "device" memory; on the
 * CPU backend every direction is a plain memcpy. */
typedef enum { UBD_H2D = 0, UBD_D2H = 1, UBD_D2D = 2 } ubd_copy_dir;

/* A step for `replay`: queues one step's ops on the backend, in order. */
typedef ubd_status (*ubd_replay_fn)(void *ctx);

/* Math modes: how a backend's float32 matrix products are computed (mixed
 * precision as an option of the backend, never of one kernel).
 *   FP32       strict float32 everywhere: the default, and the CPU's only mode
 *              (PyTorch's default for matmuls);
 *   TF32_CONV  the convolution GEMMs (conv2d, conv-transpose2d, conv1d, forward
 *              and backward) on TF32 tensor cores, other products strict: what
 *              PyTorch/cuDNN does by default for convolutions;
 *   TF32       every float32 GEMM on TF32 (convolutions, linear layers,
 *              attention): PyTorch's torch.set_float32_matmul_precision("high").
 * TF32 rounds each operand to 10 mantissa bits and accumulates in float32.
 * On CUDA each mode is its own table (cuda/backend_cuda.cu), so a model keeps
 * the mode it was created with; the CPU table serves every mode in strict
 * float32 (the CPU has no TF32). bfloat16 for the seismic decoder's large
 * product is not here yet: benchmarks/precision.py estimates its cost. */
typedef enum { UBD_MATH_FP32 = 0, UBD_MATH_TF32_CONV = 1, UBD_MATH_TF32 = 2, UBD_MATH_NUM } ubd_math_mode;

/* clang-format off */
#define UBD_BACKEND_OPS(X) \
    /* ---- memory ------------------------------------------------------------------------------------- */ \
    X(alloc, (void **p, size_t bytes))                     /* *p: backend memory, 64-byte aligned, not zeroed */ \
    X(free, (void *p))                                     /* p from alloc, or NULL */ \
    X(zero, (float *p, size_t n))                          /* p (n) = 0 */ \
    X(copy, (void *dst, const void *src, size_t bytes, ubd_copy_dir dir)) /* host <-> backend memory */ \
    X(sync, (void))                                        /* wait for all queued work */ \
    X(fill, (float *p, size_t n, float value))             /* p (n) = value */ \
    /* ---- linear (ops.h): out = inp @ weight^T + bias ---------------------------------------------------- */ \
    /* out (B,OC); inp (B,C); weight (OC,C); bias (OC) or NULL */ \
    X(linear_forward, (float *out, const float *inp, const float *weight, const float *bias, int B, int C, int OC)) \
    /* dinp (B,C) +=; dweight (OC,C) +=; dbias (OC) +=; dout (B,OC) */ \
    X(linear_backward, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, \
                        const float *weight, int B, int C, int OC)) \
    /* ---- activations (ops.h): out (n), inp (n); dinp (n) += dout * f'(inp) ------------------------------ */ \
    X(act_forward, (float *out, const float *inp, size_t n, ubd_act act, float param)) \
    X(act_backward, (float *dinp, const float *dout, const float *inp, size_t n, ubd_act act, float param)) \
    /* ---- losses (ops.h), means over n: loss (1); dpred (n) += scale * dloss/dpred ---------------------- */ \
    X(l1_forward, (float *loss, const float *pred, const float *target, size_t n)) \
    X(l1_backward, (float *dpred, const float *pred, const float *target, size_t n, float scale)) \
    X(mse_forward, (float *loss, const float *pred, const float *target, size_t n)) \
    X(mse_backward, (float *dpred, const float *pred, const float *target, size_t n, float scale)) \
    /* softmax cross-entropy (xent.h): loss (1); probs (B,K); correct (1) int or NULL; labels (B) int */ \
    X(xent_forward, (float *loss, float *probs, int *correct, const float *logits, const int *labels, int B, \
                     int K)) \
    X(xent_backward, (float *dlogits, const float *probs, const int *labels, int B, int K, float scale)) \
    /* ---- optimiser over flat buffers (ops.h) ------------------------------------------------------------ */ \
    X(adam_update, (float *param, float *m, float *v, const float *grad, size_t n, ubd_adam_hparams hp, \
                    long long t))                          /* step t >= 1 */ \
    X(ema_update, (float *ema, const float *param, size_t n, float decay)) \
    X(grad_norm, (float *norm, const float *grad, size_t n))              /* norm (1) */ \
    X(clip_grad_norm, (float *norm, float *grad, size_t n, float max_norm)) /* norm (1): before clipping */ \
    /* ---- random streams (philox.h): element (offset + i) of stream (seed, stream) ---------------------- */ \
    X(rand_uniform, (float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)) \
    X(rand_normal, (float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)) \
    /* out (n) = (2u - 1) * bound, u = rand_uniform: PyTorch's default init U(-bound, bound) */ \
    X(init_uniform, (float *out, size_t n, float bound, uint64_t seed, uint64_t stream, uint64_t offset)) \
    /* ---- convolutions (conv.h); work: ubd_conv*_workspace(s) floats of backend memory ------------------ */ \
    /* out (B,OC,OH,OW); inp (B,C,H,W); weight (OC,C,KH,KW); bias (OC) or NULL */ \
    X(conv2d_forward, (float *out, const float *inp, const float *weight, const float *bias, float *work, \
                       ubd_conv2d_shape s)) \
    X(conv2d_backward, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, \
                        const float *weight, float *work, ubd_conv2d_shape s)) \
    /* weight (C,OC,KH,KW) */ \
    X(convt2d_forward, (float *out, const float *inp, const float *weight, const float *bias, float *work, \
                        ubd_convt2d_shape s)) \
    X(convt2d_backward, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, \
                         const float *weight, float *work, ubd_convt2d_shape s)) \
    /* out (B,OC,OL); inp (B,C,L); weight (OC,C,K) */ \
    X(conv1d_forward, (float *out, const float *inp, const float *weight, const float *bias, float *work, \
                       ubd_conv1d_shape s)) \
    X(conv1d_backward, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, \
                        const float *weight, float *work, ubd_conv1d_shape s)) \
    /* ---- normalisation (norm.h) -------------------------------------------------------------------------- */ \
    /* BatchNorm over channels of (B,C,S): out (B,C,S); mean, rstd (C) saved; running stats (C) or NULL */ \
    X(batchnorm_forward_train, (float *out, float *mean, float *rstd, float *running_mean, float *running_var, \
                                const float *inp, const float *gamma, const float *beta, int B, int C, int S, \
                                float momentum, float eps)) \
    X(batchnorm_forward_eval, (float *out, const float *inp, const float *gamma, const float *beta, \
                               const float *running_mean, const float *running_var, int B, int C, int S, \
                               float eps)) \
    X(batchnorm_backward, (float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp, \
                           const float *gamma, const float *mean, const float *rstd, int B, int C, int S)) \
    X(batchnorm_backward_eval, (float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp, \
                                const float *gamma, const float *running_mean, const float *running_var, int B, \
                                int C, int S, float eps)) \
    /* GroupNorm of (B,C,S) in G groups; mean, rstd (B,G) */ \
    X(groupnorm_forward, (float *out, float *mean, float *rstd, const float *inp, const float *gamma, \
                          const float *beta, int B, int C, int S, int G, float eps)) \
    X(groupnorm_backward, (float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp, \
                           const float *gamma, const float *mean, const float *rstd, int B, int C, int S, int G)) \
    /* LayerNorm over the last axis of (N,C); mean, rstd (N) */ \
    X(layernorm_forward, (float *out, float *mean, float *rstd, const float *inp, const float *gamma, \
                          const float *beta, int N, int C, float eps)) \
    X(layernorm_backward, (float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp, \
                           const float *gamma, const float *mean, const float *rstd, int N, int C)) \
    /* RMSNorm over channels of (B,C,L); g (C); rnorm (B,L) */ \
    X(rmsnorm_forward, (float *out, float *rnorm, const float *inp, const float *g, int B, int C, int L)) \
    X(rmsnorm_backward, (float *dinp, float *dg, const float *dout, const float *inp, const float *g, \
                         const float *rnorm, int B, int C, int L)) \
    /* ---- softmax and attention (attention.h) -------------------------------------------------------------- */ \
    X(softmax_forward, (float *out, const float *inp, int N, int D))      /* over the last axis of (N,D) */ \
    X(softmax_backward, (float *dinp, const float *dout, const float *out, int N, int D)) \
    /* seismic transformer: qkv (B,T,3C); out (B,T,C); att (B,NH,T,T) saved; datt scratch */ \
    X(mhsa_forward, (float *out, float *att, const float *qkv, int B, int T, int C, int NH)) \
    X(mhsa_backward, (float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B, \
                      int T, int C, int NH)) \
    /* U-Net full attention: qkv (B,3*NH*HD,L); out (B,NH*HD,L); att (B,NH,L,L) saved; datt scratch */ \
    X(full_attention_forward, (float *out, float *att, const float *qkv, int B, int NH, int HD, int L, \
                               float scale)) \
    X(full_attention_backward, (float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, \
                                int B, int NH, int HD, int L, float scale)) \
    /* U-Net linear attention: qs, ks (B,NH*HD,L), context (B,NH,HD,HD) saved; \
     * work (2*B*NH*HD*L + B*NH*HD*HD) scratch */ \
    X(linear_attention_forward, (float *out, float *qs, float *ks, float *context, const float *qkv, int B, \
                                 int NH, int HD, int L, float scale)) \
    X(linear_attention_backward, (float *dqkv, float *work, const float *dout, const float *qkv, \
                                  const float *qs, const float *ks, const float *context, int B, int NH, int HD, \
                                  int L, float scale)) \
    /* ---- shape ops (shape_ops.h) -------------------------------------------------------------------------- */ \
    X(upsample1d_forward, (float *out, const float *inp, int B, int C, int L))   /* (B,C,L) -> (B,C,2L) */ \
    X(upsample1d_backward, (float *dinp, const float *dout, int B, int C, int L)) \
    X(upsample2d_forward, (float *out, const float *inp, int B, int C, int H, int W)) /* -> (B,C,2H,2W) */ \
    X(upsample2d_backward, (float *dinp, const float *dout, int B, int C, int H, int W)) \
    /* (B,C,H,W) -> (B,C,H-top-bottom,W-left-right); dinp (B,C,H,W) += */ \
    X(crop2d_forward, (float *out, const float *inp, int B, int C, int H, int W, int top, int bottom, int left, \
                       int right)) \
    X(crop2d_backward, (float *dinp, const float *dout, int B, int C, int H, int W, int top, int bottom, \
                        int left, int right)) \
    /* a (B,C1,S), b (B,C2,S) -> out (B,C1+C2,S) */ \
    X(concat_forward, (float *out, const float *a, const float *b, int B, int C1, int C2, int S)) \
    X(concat_backward, (float *da, float *db, const float *dout, int B, int C1, int C2, int S)) \
    X(time_embedding, (float *out, const float *t, int B, int dim))       /* t (B) -> out (B,dim) */ \
    /* out (B,C,L) = x * (1 + scale) + shift, ss (B,2C) = [scale | shift] */ \
    X(scale_shift_forward, (float *out, const float *x, const float *ss, int B, int C, int L)) \
    X(scale_shift_backward, (float *dx, float *dss, const float *dout, const float *x, const float *ss, int B, \
                             int C, int L)) \
    X(axpy, (float *y, const float *x, size_t n, float a))              /* y (n) += a * x (n) */ \
    /* ---- p2-rest: pooling and scaled-normal initialisation (feature net) ------------------------------- */ \
    /* global average pooling over the last axis: out (N) = mean of inp (N,S), each sum in double */ \
    X(mean_pool_forward, (float *out, const float *inp, int N, int S)) \
    X(mean_pool_backward, (float *dinp, const float *dout, int N, int S)) /* dinp (N,S) += dout (N) / S */ \
    /* out (n) = std * rand_normal (same element k of the same stream): He / scaled-normal initialisation */ \
    X(init_normal, (float *out, size_t n, float std, uint64_t seed, uint64_t stream, uint64_t offset)) \
    /* ---- pixel-unshuffle (space-to-depth): the 2-D U-Net's Downsample (cpu/pixel_unshuffle.c) -------- \
     * out (B, C*r*r, H/r, W/r)[b, (c*r + i)*r + j, y, x] = inp (B, C, H, W)[b, c, r*y + i, r*x + j];      \
     * H, W multiples of r (einops 'b c (h p1) (w p2) -> b (c p1 p2) h w', torch's pixel_unshuffle).        \
     * A permutation, so backward is its inverse: dinp (B,C,H,W) += dout rearranged back. */               \
    X(pixel_unshuffle_forward, (float *out, const float *inp, int B, int C, int H, int W, int r)) \
    X(pixel_unshuffle_backward, (float *dinp, const float *dout, int B, int C, int H, int W, int r)) \
    /* ---- forward modelling (physics.h); p and its position arrays are host memory ------------------------ */ \
    X(forward_model_work, (size_t *floats, int N, int H, int W, const ubd_fwd_params *p)) /* work floats */ \
    X(forward_model, (float *seis, const float *vel, int N, int H, int W, const ubd_fwd_params *p, float *work, \
                      size_t work_floats))                 /* seis (N,ns,nt,nr); vel (N,H,W) */ \
    /* ---- replaying a step (p2-diff) ------------------------------------------------------------------------ */ \
    /* Runs step(ctx). CPU: calls it. CUDA: the first call with *graph == NULL captures the ops step queues \
     * into a CUDA graph (on a capture stream of its own; a sync, an allocation or a legacy-stream call in \
     * step fails the capture) and stores it in *graph; every call then launches *graph on the backend's \
     * stream. The graph holds step's pointers and scalars: free it when they change. */ \
    X(replay, (void **graph, ubd_replay_fn step, void *ctx)) \
    X(replay_free, (void *graph))                          /* graph from replay, or NULL */ \
    /* ---- latent diffusion (diffusion_ops.h; p2-diff) ------------------------------------------------------- */ \
    /* ti (B) int; tf (B): uniforms in, (float) ti out */ \
    X(diffusion_timesteps, (int *ti, float *tf, int B, int T)) \
    /* xt, v (B,per); z0, noise (B,per); t (B) int; sa, s1 (T) */ \
    X(diffusion_q_sample, (float *xt, float *v, const float *z0, const float *noise, const int *t, const float *sa, \
                           const float *s1, int B, size_t per)) \
    /* loss (1); per_sample (B) or NULL; pred, v (B,per); t (B) int; w (T) */ \
    X(diffusion_vloss_forward, (float *loss, float *per_sample, const float *pred, const float *v, const int *t, \
                                const float *w, int B, size_t per)) \
    /* dpred (B,per) += */ \
    X(diffusion_vloss_backward, (float *dpred, const float *pred, const float *v, const int *t, const float *w, \
                                 int B, size_t per, float scale)) \
    /* cur (1) = plan[*k]; tf (B) = cur->time; *k += 1 (k (1) int) */ \
    X(diffusion_step_begin, (ubd_sample_step *cur, float *tf, int *k, const ubd_sample_step *plan, int B)) \
    /* x (n) advanced by cur (1) from pred (n); noise (n) scratch */ \
    X(diffusion_step_update, (float *x, const float *pred, const ubd_sample_step *cur, size_t n, float *noise)) \
    /* ---- co-latent autoencoder (p2-ae): the ViT token assembly of D_s (cpu/tokens.c) ------------------ */ \
    /* x0 (B,T,C): row 0 = cls + pos[0], row t >= 1 = tok[:, t-1] + pos[t]; tok (B,T-1,C); cls (C); pos (T,C) */ \
    X(tokens_forward, (float *x0, const float *tok, const float *cls, const float *pos, int B, int T, int C)) \
    /* dtok (B,T-1,C) +=, dcls (C) +=, dpos (T,C) += (any may be NULL), sums over b in order b = 0..B-1 */ \
    X(tokens_backward, (float *dtok, float *dcls, float *dpos, const float *dx0, int B, int T, int C))
/* clang-format on */

/* The prototypes: ubd_cpu_<op> always, ubd_cuda_<op> in CUDA builds. */
#define UBD_DECLARE_CPU_OP(name, params) ubd_status ubd_cpu_##name params;
UBD_BACKEND_OPS(UBD_DECLARE_CPU_OP)
#undef UBD_DECLARE_CPU_OP
#ifdef UBDIFF_WITH_CUDA
#define UBD_DECLARE_CUDA_OP(name, params) ubd_status ubd_cuda_##name params;
UBD_BACKEND_OPS(UBD_DECLARE_CUDA_OP)
#undef UBD_DECLARE_CUDA_OP
#endif

typedef struct ubd_backend {
    const char *name; /* "cpu" | "cuda" */
    int host_memory;  /* 1: its memory is host memory (the CPU): inputs need no staging copy and
                       * Python may view buffers in place; 0: device memory, reached by be->copy */
    int math;         /* ubd_math_mode its float32 products run in */
#define UBD_BACKEND_MEMBER(name, params) ubd_status(*name) params;
    UBD_BACKEND_OPS(UBD_BACKEND_MEMBER)
#undef UBD_BACKEND_MEMBER
} ubd_backend;

/* The backend for `device`: "cpu", "cuda", or "auto" (CUDA when this build has
 * it and a GPU is visible, else the CPU). Unknown names fail with
 * UBD_ERR_VALUE; "cuda" in a CPU-only build or without a GPU with
 * UBD_ERR_RUNTIME; the message says which. */
ubd_status ubd_backend_find(const char *device, const ubd_backend **out);
/* Same, returning NULL (message in ubd_last_error()) when unavailable. */
const ubd_backend *ubd_backend_get(const char *device);
/* ubd_backend_find for an explicit math mode (the CPU table for any mode). */
ubd_status ubd_backend_find_math(const char *device, ubd_math_mode math, const ubd_backend **out);
/* The process-wide math mode ubd_backend_find gives GPU tables (default FP32;
 * the environment variable UBDIFF_MATH = fp32 | tf32-conv | tf32 sets the
 * start value). Models created later get it; existing ones keep theirs. */
ubd_status ubd_set_math_mode(ubd_math_mode math);
ubd_math_mode ubd_get_math_mode(void);
/* "fp32" | "tf32-conv" | "tf32" (NULL for anything else); the parse (-1 if unknown). */
const char *ubd_math_mode_name(int math);
int ubd_math_mode_parse(const char *name);
/* The CPU table (always available). */
const ubd_backend *ubd_backend_cpu(void);

/* Host data into backend memory, once per call: on a host-memory backend
 * *dev = host (no copy, `stage` unused and may be NULL); otherwise host (n
 * floats) is copied into `stage` (n floats of backend memory) and *dev = stage. */
ubd_status ubd_stage_in(const ubd_backend *be, const float **dev, float *stage, const float *host, size_t n);
/* The same for n ints (class labels). */
ubd_status ubd_stage_in_int(const ubd_backend *be, const int **dev, int *stage, const int *host, size_t n);
/* Where an op should write an output bound for host memory: `host` itself on
 * a host-memory backend, `stage` otherwise. Then be->copy(host, ptr, bytes,
 * UBD_D2H) brings it over (on the CPU a no-op: the same address). */
float *ubd_stage_out(const ubd_backend *be, float *stage, float *host);

#ifdef __cplusplus
}
#endif
#endif /* UBD_BACKEND_H */
