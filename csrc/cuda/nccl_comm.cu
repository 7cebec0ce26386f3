// nccl_comm.cu — the NCCL communicator of nccl_comm.h; compiled to nothing
// unless setup.py found nccl.h (-DUBDIFF_WITH_NCCL=1, then csrc/nccl_stub.c is empty).
#include "../nccl_comm.h"

#ifdef UBDIFF_WITH_NCCL
#include <dlfcn.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "../backend.h"
#include "common.cuh"

static_assert(NCCL_UNIQUE_ID_BYTES == UBD_NCCL_ID_BYTES, "nccl_comm.h: UBD_NCCL_ID_BYTES must match NCCL's");

struct ubd_nccl_comm {
    ncclComm_t c;
    int device;
};

/* libnccl is opened at the first communicator, never at import: linking it made `import ubdiff`
 * load the CUDA toolkit's libnccl.so.2 (2.28 here) into the process, and a later `import torch`
 * then bound its own libnccl.so.2 dependency to it and failed (undefined symbol ncclCommResume).
 * dlopen by soname returns an NCCL already loaded (PyTorch's, when torch came first); otherwise the
 * one setup.py built against (UBDIFF_NCCL_LIB). Only the calls below are used. */
static struct {
    std::once_flag once;
    void *lib;
    char why[512];
    ncclResult_t (*GetUniqueId)(ncclUniqueId *);
    ncclResult_t (*CommInitRank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*AllReduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*Broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*CommCount)(const ncclComm_t, int *);
    ncclResult_t (*CommDestroy)(ncclComm_t);
    const char *(*GetErrorString)(ncclResult_t);
} nccl;

static void nccl_open(void) {
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
#ifdef UBDIFF_NCCL_LIB
    if (!h) h = dlopen(UBDIFF_NCCL_LIB, RTLD_NOW | RTLD_LOCAL);
#endif
    if (!h) {
        snprintf(nccl.why, sizeof nccl.why, "cannot open libnccl.so.2: %s", dlerror());
        return;
    }
    struct { void **fn; const char *name; } syms[] = {
        {(void **)&nccl.GetUniqueId, "ncclGetUniqueId"},   {(void **)&nccl.CommInitRank, "ncclCommInitRank"},
        {(void **)&nccl.AllReduce, "ncclAllReduce"},       {(void **)&nccl.Broadcast, "ncclBroadcast"},
        {(void **)&nccl.CommCount, "ncclCommCount"},       {(void **)&nccl.CommDestroy, "ncclCommDestroy"},
        {(void **)&nccl.GetErrorString, "ncclGetErrorString"},
    };
    for (auto &s : syms) {
        *s.fn = dlsym(h, s.name);
        if (!*s.fn) {
            snprintf(nccl.why, sizeof nccl.why, "libnccl.so.2 has no %s", s.name);
            dlclose(h);
            return;
        }
    }
    nccl.lib = h;
}

static ubd_status nccl_ready(void) {
    std::call_once(nccl.once, nccl_open);
    if (!nccl.lib) return ubd_fail(UBD_ERR_CUDA, "nccl: %s", nccl.why);
    return UBD_OK;
}

#define UBD_NCCL_TRY(call)                                                                              \
    do {                                                                                                \
        ncclResult_t r_ = (call);                                                                       \
        if (r_ != ncclSuccess) return ubd_fail(UBD_ERR_CUDA, "nccl: %s failed: %s", #call, nccl.GetErrorString(r_)); \
    } while (0)

/* version: the NCCL headers this build was compiled against (the library is opened later) */
extern "C" int ubd_nccl_compiled(int *version) {
    if (version) *version = NCCL_VERSION_CODE;
    return 1;
}

extern "C" ubd_status ubd_nccl_unique_id(unsigned char *id) {
    UBD_REQUIRE_PTR(id);
    UBD_TRY(nccl_ready());
    ncclUniqueId u;
    UBD_NCCL_TRY(nccl.GetUniqueId(&u));
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
    UBD_TRY(nccl_ready());
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
    ncclResult_t r = nccl.CommInitRank(&c->c, nranks, u, rank);
    if (r != ncclSuccess) {
        free(c);
        return ubd_fail(UBD_ERR_CUDA, "nccl: ncclCommInitRank (rank %d of %d, device %d) failed: %s", rank, nranks,
                        device, nccl.GetErrorString(r));
    }
    *out = c;
    return UBD_OK;
}

extern "C" ubd_status ubd_nccl_allreduce_sum(ubd_nccl_comm *c, float *buf, size_t n) {
    UBD_REQUIRE_PTR(c);
    UBD_REQUIRE(buf != NULL || n == 0, UBD_ERR_VALUE, "nccl: all-reduce of a NULL buffer");
    if (n == 0) return UBD_OK;
    cudaStream_t s = ubd_cuda_stream();
    UBD_NCCL_TRY(nccl.AllReduce(buf, buf, n, ncclFloat32, ncclSum, c->c, s));
    UBD_CUDA_TRY(cudaStreamSynchronize(s));
    return UBD_OK;
}

extern "C" ubd_status ubd_nccl_broadcast(ubd_nccl_comm *c, float *buf, size_t n, int root) {
    UBD_REQUIRE_PTR(c);
    UBD_REQUIRE(buf != NULL || n == 0, UBD_ERR_VALUE, "nccl: broadcast of a NULL buffer");
    int nranks = 0;
    UBD_NCCL_TRY(nccl.CommCount(c->c, &nranks));
    UBD_REQUIRE(root >= 0 && root < nranks, UBD_ERR_VALUE, "nccl: broadcast root %d of %d ranks", root, nranks);
    if (n == 0) return UBD_OK;
    cudaStream_t s = ubd_cuda_stream();
    UBD_NCCL_TRY(nccl.Broadcast(buf, buf, n, ncclFloat32, root, c->c, s));
    UBD_CUDA_TRY(cudaStreamSynchronize(s));
    return UBD_OK;
}

extern "C" void ubd_nccl_comm_free(ubd_nccl_comm *c) {
    if (!c) return;
    if (nccl.lib) nccl.CommDestroy(c->c); /* a communicator exists only once the library is open */
    free(c);
}
#endif
