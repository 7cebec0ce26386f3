/* syncbn.h — BatchNorm2d whose batch statistics span every data-parallel rank
 * (PyTorch's SyncBatchNorm), for training InversionNet-style blocks with --sync-bn.
 *
 * Each rank holds its slice of the global batch. The per-channel sums a local
 * BatchNorm takes over (B, H, W) are summed over the ranks by a hook the caller
 * provides (in ubdiff: a ctypes callback around MPI_Allreduce, see
 * ubdiff/distributed/data_parallel.py), so the mean and variance are those of the
 * global batch, and so is the part of the input gradient that flows through them.
 * The parameter gradients dgamma, dbeta stay the rank's own (+=): the data-parallel
 * all-reduce of the flat gradient buffer sums them, as DDP does for SyncBatchNorm.
 * With one rank (or a hook that returns its input) this is BatchNorm2d up to float
 * rounding. The hook is called from the calling thread, outside OpenMP regions.
 *
 * CPU memory only (host loops): on another backend the hook would be NCCL's.
 */
#ifndef UBD_SYNCBN_H
#define UBD_SYNCBN_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sums n doubles over all ranks, in place; returns 0 on success. */
typedef int (*ubd_allreduce_fn)(double *buf, size_t n, void *ctx);

typedef struct {
    ubd_allreduce_fn fn;
    void *ctx;
} ubd_bn_sync;

/* Training-mode forward, the arguments of ubd_cpu_batchnorm_forward_train plus the hook:
 * out, inp (B,C,S); mean, rstd (C) of the global batch; running_mean/var (C) updated with
 * them (unbiased variance over the global count), or NULL. */
ubd_status ubd_syncbn_forward_train(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                    const float *inp, const float *gamma, const float *beta, int B, int C, int S,
                                    float momentum, float eps, const ubd_bn_sync *sync);
/* Backward of ubd_syncbn_forward_train: dinp (B,C,S) += (NULL: skipped), dgamma, dbeta (C) += the
 * rank's own sums (NULL: skipped); dout, inp (B,C,S); gamma, mean, rstd (C) as the forward's. */
ubd_status ubd_syncbn_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                               const float *gamma, const float *mean, const float *rstd, int B, int C, int S,
                               const ubd_bn_sync *sync);

#ifdef __cplusplus
}
#endif
#endif
