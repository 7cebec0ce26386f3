/* nccl_comm.h — a NCCL communicator for the data-parallel all-reduce of a GPU
 * model's flat gradient buffer (ubdiff/distributed/nccl.py).
 *
 * One rank creates the 128-byte unique id (ubd_nccl_unique_id), the caller
 * sends it to every rank (ubdiff: an MPI broadcast through mpi4py), and every
 * rank joins with ubd_nccl_comm_create(id, nranks, rank, device). The
 * all-reduce sums a float buffer of device memory in place on the CUDA
 * backend's stream and waits for it, so the next op sees the sum.
 *
 * Compiled in (csrc/cuda/nccl_comm.cu) only when setup.py finds nccl.h next
 * to the CUDA toolkit or in the nvidia-nccl wheel (UBDIFF_WITH_NCCL); in other
 * builds (csrc/nccl_stub.c) every entry fails with a message saying so and
 * ubd_nccl_compiled() is 0. Plain C interface: no NCCL type is visible here.
 */
#ifndef UBD_NCCL_COMM_H
#define UBD_NCCL_COMM_H

#include <stddef.h>

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UBD_NCCL_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */

typedef struct ubd_nccl_comm ubd_nccl_comm; /* opaque */

/* 1 when NCCL was compiled in; *version (may be NULL) = NCCL's version code, else 0. */
int ubd_nccl_compiled(int *version);
/* id (UBD_NCCL_ID_BYTES) <- a new unique id: made on one rank, given to all. */
ubd_status ubd_nccl_unique_id(unsigned char *id);
/* *out <- this rank's communicator of nranks, on CUDA device `device` (< 0: the current
 * device, where the backend allocated the models); collective: every rank calls it with
 * the same id. Each rank needs its own GPU (NCCL refuses two ranks on one device). */
ubd_status ubd_nccl_comm_create(ubd_nccl_comm **out, const unsigned char *id, int nranks, int rank, int device);
/* buf (n floats, device memory of the communicator's device) <- the sum over all ranks. */
ubd_status ubd_nccl_allreduce_sum(ubd_nccl_comm *comm, float *buf, size_t n);
/* buf (n floats, device memory) <- rank root's buf, on every rank. */
ubd_status ubd_nccl_broadcast(ubd_nccl_comm *comm, float *buf, size_t n, int root);
void ubd_nccl_comm_free(ubd_nccl_comm *comm);

#ifdef __cplusplus
}
#endif
#endif
