// nccl_comm.cu — the NCCL communicator of nccl_comm.h; compiled to nothing
// unless setup.py found nccl.h (-DUBDIFF_WITH_NCCL=1, then csrc/nccl_stub.c is empty).
#include "../nccl_comm.h"

#ifdef UBDIFF_WITH_NCCL
#include <nccl.h>

#include <cstdlib>
#include <cstring>

#include "../backend.h"
#include "common.cuh"

static_assert(NCCL_UNIQUE_ID_BYTES == UBD_NCCL_ID_BYTES, "nccl_comm.h: UBD_NCCL_ID_BYTES must match NCCL's");

struct ubd_nccl_comm {
    ncclComm_t c;
    int device;
};

#define UBD_NCCL_TRY(call)                                                                              \
    do {                                                                                                \
        ncclResult_t r_ = (call);                                                                       \
        if (r_ != ncclSuccess) return ubd_fail(UBD_ERR_CUDA, "nccl: %s failed: %s", #call, ncclGetErrorString(r_)); \
    } while (0)

extern "C" int ubd_nccl_compiled(int *version) {
    if (version) {
        *version = 0;
        ncclGetVersion(version);
    }
    return 1;
}

extern "C" ubd_status ubd_nccl_unique_id(unsigned char *id) {
    UBD_REQUIRE_PTR(id);
    ncclUniqueId u;
    UBD_NCCL_TRY(ncclGetUniqueId(&u));
    memcpy(id, u.internal, UBD_NCCL_ID_BYTES);
    return UBD_OK;
}

extern "C" ubd_status ubd_nccl_comm_create(ubd_nccl_comm **out, const unsigned char *id, int nranks, int rank,
                                           int device) {
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(id);
    *out = NULL;
    UBD_REQUIRE(nranks >= 1 && rank >= 0 && rank < nranks, UBD_ERR_VALUE,
                "nccl: rank %d of %d ranks is not a rank", rank, nranks);
    int count = 0;
    UBD_CUDA_TRY(cudaGetDeviceCount(&count));
    if (device < 0) UBD_CUDA_TRY(cudaGetDevice(&device)); /* the device the models were made on */
    UBD_REQUIRE(device < count, UBD_ERR_VALUE, "nccl: no CUDA device %d (%d visible)", device, count);
    UBD_CUDA_TRY(cudaSetDevice(device));
    ncclUniqueId u;
    memcpy(u.internal, id, UBD_NCCL_ID_BYTES);
    ubd_nccl_comm *c = (ubd_nccl_comm *)calloc(1, sizeof *c);
    UBD_REQUIRE(c != NULL, UBD_ERR_MEMORY, "nccl: out of memory");
    c->device = device;
    ncclResult_t r = ncclCommInitRank(&c->c, nranks, u, rank);
    if (r != ncclSuccess) {
        free(c);
        return ubd_fail(UBD_ERR_CUDA, "nccl: ncclCommInitRank (rank %d of %d, device %d) failed: %s", rank, nranks,
                        device, ncclGetErrorString(r));
    }
    *out = c;
    return UBD_OK;
}

extern "C" ubd_status ubd_nccl_allreduce_sum(ubd_nccl_comm *c, float *buf, size_t n) {
    UBD_REQUIRE_PTR(c);
    UBD_REQUIRE(buf != NULL || n == 0, UBD_ERR_VALUE, "nccl: all-reduce of a NULL buffer");
    if (n == 0) return UBD_OK;
    cudaStream_t s = ubd_cuda_stream();
    UBD_NCCL_TRY(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, c->c, s));
    UBD_CUDA_TRY(cudaStreamSynchronize(s));
    return UBD_OK;
}

extern "C" ubd_status ubd_nccl_broadcast(ubd_nccl_comm *c, float *buf, size_t n, int root) {
    UBD_REQUIRE_PTR(c);
    UBD_REQUIRE(buf != NULL || n == 0, UBD_ERR_VALUE, "nccl: broadcast of a NULL buffer");
    int nranks = 0;
    UBD_NCCL_TRY(ncclCommCount(c->c, &nranks));
    UBD_REQUIRE(root >= 0 && root < nranks, UBD_ERR_VALUE, "nccl: broadcast root %d of %d ranks", root, nranks);
    if (n == 0) return UBD_OK;
    cudaStream_t s = ubd_cuda_stream();
    UBD_NCCL_TRY(ncclBroadcast(buf, buf, n, ncclFloat32, root, c->c, s));
    UBD_CUDA_TRY(cudaStreamSynchronize(s));
    return UBD_OK;
}

extern "C" void ubd_nccl_comm_free(ubd_nccl_comm *c) {
    if (!c) return;
    ncclCommDestroy(c->c);
    free(c);
}
#endif
