/* params.h — a model's flat parameter buffers with a table of named views.
 *
 * All parameters of a model live in ONE contiguous float buffer (and likewise
 * its gradients, Adam m and v, and EMA copy), so optimiser steps, EMA, zeroing
 * and checkpointing are single calls over n floats. A view (name, shape,
 * offset) names a slice.
 *
 * The buffers are memory of the table's backend (backend.h), allocated with
 * be->alloc: host memory on the CPU, where Python sees views as zero-copy
 * NumPy arrays, device memory on a GPU, reached from the host only through
 * ubd_params_read / ubd_params_write (and be->copy).
 */
#ifndef UBD_PARAMS_H
#define UBD_PARAMS_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UBD_MAX_NAME 96
#define UBD_MAX_DIMS 4

typedef struct {
    char name[UBD_MAX_NAME];
    int ndim;
    int64_t shape[UBD_MAX_DIMS];
    size_t offset; /* in floats, from the buffer start */
    size_t size;   /* product of shape */
} ubd_view;

typedef enum { UBD_BUF_PARAM = 0, UBD_BUF_GRAD, UBD_BUF_M, UBD_BUF_V, UBD_BUF_EMA, UBD_NUM_BUFS } ubd_buf_kind;

typedef struct ubd_params_s {
    ubd_view *views;
    int nviews, cap;
    size_t n;                 /* total floats (= number of parameters) */
    float *buf[UBD_NUM_BUFS]; /* NULL until allocated; memory of `be` */
    const ubd_backend *be;    /* where the buffers live (NULL: the CPU) */
} ubd_params;

/* An empty table whose buffers will live on the CPU. */
void ubd_params_init(ubd_params *p);
/* An empty table whose buffers will live on backend `be` (NULL: the CPU). */
void ubd_params_init_on(ubd_params *p, const ubd_backend *be);
/* Appends a view; fails on a duplicate name, bad shape, or after allocation. */
ubd_status ubd_params_add(ubd_params *p, const char *name, int ndim, const int64_t *shape, size_t *offset_out);
/* Allocates (zeroed, 64-byte aligned, on the table's backend) the buffer `kind` if not there yet. */
ubd_status ubd_params_alloc(ubd_params *p, ubd_buf_kind kind);
/* Host copies of n floats at float offset `off` of buffer `kind`:
 * host (n) = buf[kind][off .. off+n), and the reverse. */
ubd_status ubd_params_read(const ubd_params *p, ubd_buf_kind kind, size_t off, size_t n, float *host);
ubd_status ubd_params_write(ubd_params *p, ubd_buf_kind kind, size_t off, size_t n, const float *host);
/* Index of the view called `name`, or -1. */
int ubd_params_find(const ubd_params *p, const char *name);
/* One Adam(W) step of the whole table on `be`: param, m, v from grad with step
 * number *step + 1 (bias correction); *step advances. Hyper-parameters checked
 * by the caller. */
ubd_status ubd_params_adam_step(ubd_params *p, const ubd_backend *be, ubd_adam_hparams hp, long long *step);
/* Frees the buffers and views; the table stays on its backend, empty. */
void ubd_params_free(ubd_params *p);
const char *ubd_buf_kind_name(ubd_buf_kind k);

#ifdef __cplusplus
}
#endif
#endif
