// graph.cu — `replay` (backend.h): one step's ops captured once into a CUDA
// graph and launched as a unit afterwards (one launch instead of one per op).
//
// Capture runs on a stream made for it: this thread's current stream points
// there while `step` queues its ops (common.cuh), so work other threads queue
// on the backend's stream is not captured. The capture mode is thread-local:
// in this thread a synchronising or allocating call (cudaMalloc, a
// synchronous cudaMemcpy, cudaDeviceSynchronize) fails the capture, and since
// the capture stream is blocking, so does any work queued on the legacy
// stream by an op that ignores the current stream. Such a step never becomes
// a graph that silently lacks part of its work; the caller gets the error.
// The cuBLAS handle follows the current stream and has its own workspace
// (device.cu), so products capture without allocating.
#include <stdio.h>

#include "../backend.h"
#include "common.cuh"

static ubd_status capture(cudaGraphExec_t *exec, ubd_replay_fn step, void *ctx) {
    cudaStream_t cs = nullptr;
    UBD_CUDA_TRY(cudaStreamCreateWithFlags(&cs, cudaStreamDefault));
    cudaError_t e = cudaStreamBeginCapture(cs, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cudaStreamDestroy(cs);
        return ubd_fail(UBD_ERR_CUDA, "replay: cudaStreamBeginCapture failed: %s", cudaGetErrorString(e));
    }
    cudaStream_t prev = ubd_cuda_set_stream(cs);
    ubd_status s = step(ctx);
    char why[256] = "";
    if (s != UBD_OK) snprintf(why, sizeof why, "%s", ubd_last_error());  // copy: ubd_fail rewrites it
    ubd_cuda_set_stream(prev);
    cudaGraph_t g = nullptr;
    cudaError_t end = cudaStreamEndCapture(cs, &g);  // always: ends the capture even after a failure
    cudaStreamDestroy(cs);
    if (s != UBD_OK || end != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();  // capture errors are not sticky: clear them
        if (s != UBD_OK)
            return ubd_fail(s, "replay: capturing the step as a CUDA graph failed (%s); run it without graphs", why);
        return ubd_fail(UBD_ERR_CUDA,
                        "replay: cudaStreamEndCapture failed (%s): an op of the step synchronised, allocated or used "
                        "the legacy stream; run it without graphs", cudaGetErrorString(end));
    }
    e = cudaGraphInstantiate(exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return ubd_fail(UBD_ERR_CUDA, "replay: cudaGraphInstantiate failed: %s", cudaGetErrorString(e));
    }
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_replay(void **graph, ubd_replay_fn step, void *ctx) {
    UBD_REQUIRE_PTR(graph);
    UBD_REQUIRE_PTR(step);
    if (!*graph) {
        cudaGraphExec_t exec = nullptr;
        UBD_TRY(capture(&exec, step, ctx));
        *graph = (void *)exec;
    }
    UBD_CUDA_TRY(cudaGraphLaunch((cudaGraphExec_t)*graph, ubd_cuda_stream()));
    return UBD_OK;
}

extern "C" ubd_status ubd_cuda_replay_free(void *graph) {
    if (graph) UBD_CUDA_TRY(cudaGraphExecDestroy((cudaGraphExec_t)graph));
    return UBD_OK;
}
