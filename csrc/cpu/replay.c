/* replay.c — the CPU's `replay` (backend.h): there is no queue to record, so a
 * step is simply run, every time; no graph is ever made. */
#include "backend.h"

ubd_status ubd_cpu_replay(void **graph, ubd_replay_fn step, void *ctx) {
    UBD_REQUIRE_PTR(graph);
    UBD_REQUIRE_PTR(step);
    *graph = NULL;
    return step(ctx);
}

ubd_status ubd_cpu_replay_free(void *graph) {
    UBD_REQUIRE(graph == NULL, UBD_ERR_VALUE, "replay_free: the CPU makes no graphs, got a non-NULL one");
    return UBD_OK;
}
