/* nccl_stub.c — nccl_comm.h in a build without NCCL (csrc/cuda/nccl_comm.cu has
 * the real one): every entry says NCCL was not compiled in. */
#include "nccl_comm.h"

#ifndef UBDIFF_WITH_NCCL
static ubd_status missing(void) {
    return ubd_fail(UBD_ERR_RUNTIME, "nccl: this ubdiff was built without NCCL (setup.py compiles it in when "
                                     "nccl.h is found: the CUDA toolkit's or the nvidia-nccl wheel's)");
}

int ubd_nccl_compiled(int *version) {
    if (version) *version = 0;
    return 0;
}
ubd_status ubd_nccl_unique_id(unsigned char *id) {
    (void)id;
    return missing();
}
ubd_status ubd_nccl_comm_create(ubd_nccl_comm **out, const unsigned char *id, int nranks, int rank, int device) {
    (void)id, (void)nranks, (void)rank, (void)device;
    if (out) *out = NULL;
    return missing();
}
ubd_status ubd_nccl_allreduce_sum(ubd_nccl_comm *comm, float *buf, size_t n) {
    (void)comm, (void)buf, (void)n;
    return missing();
}
ubd_status ubd_nccl_broadcast(ubd_nccl_comm *comm, float *buf, size_t n, int root) {
    (void)comm, (void)buf, (void)n, (void)root;
    return missing();
}
void ubd_nccl_comm_free(ubd_nccl_comm *comm) { (void)comm; }
#endif
