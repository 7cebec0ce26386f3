/* arena.h — one block of backend memory behind all of a model's activations,
 * scratch and staging buffers.
 *
 * A model describes its activation memory in ONE layout function that names
 * every slice it needs, ubd_arena_take(&a, &ptr, n, "label"), and runs it
 * twice:
 *
 *     ubd_arena a;
 *     ubd_arena_begin(&a, m->be);       planning: takes record sizes, write nothing
 *     lay_out(m, &a);
 *     UBD_TRY(ubd_arena_commit(&a, "inversionnet"));   one be->alloc of the total, zeroed
 *     lay_out(m, &a);                   binding: each take writes its pointer
 *     UBD_TRY(ubd_arena_end(&a));       the second pass took exactly the planned slices
 *
 * Planning writes nothing into the model, and a failed commit releases
 * everything it took, so a model that re-plans (a larger max_batch) keeps its
 * old arena until the new one exists; it then releases the old one. Because
 * the binding pass sees real pointers, a layout may wire one block's input to
 * another's output as it goes. Every slice starts 64-byte aligned.
 *
 * Staging buffers: ubd_arena_stage(&a, &ptr, n, "seis") reserves n floats only
 * on a backend whose memory is not host memory (a GPU) and leaves ptr NULL on
 * the CPU, where ubd_stage_in (backend.h) uses the caller's host array in
 * place. Inputs and outputs thus cross the bus once per call, through these
 * slices, and cost nothing on the CPU (ubd_stage_out gives an op the host
 * output array itself there).
 */
#ifndef UBD_ARENA_H
#define UBD_ARENA_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t off, bytes;  /* offset from the base, size (both multiples of 64) */
    const char *label;  /* a string literal: what the slice holds (for messages) */
} ubd_arena_slice;

typedef struct {
    const ubd_backend *be;
    void *base;             /* the one allocation (NULL while planning) */
    size_t bytes;           /* planned total */
    ubd_arena_slice *plan;  /* the slices in the order they were taken */
    int nplan, cap;
    int next;               /* binding pass: the next slice to hand out */
    ubd_status err;         /* first failure (planning out of memory, binding mismatch) */
} ubd_arena;

/* Starts planning an arena on backend `be` (NULL: the CPU). */
void ubd_arena_begin(ubd_arena *a, const ubd_backend *be);
/* A slice of n floats (n = 0: *dst = NULL). Planning: records it. Binding:
 * *dst = its address. Failures are reported by commit / end. */
void ubd_arena_take(ubd_arena *a, float **dst, size_t n, const char *label);
/* The same for n ints (class labels, counters). */
void ubd_arena_take_int(ubd_arena *a, int **dst, size_t n, const char *label);
/* A staging slice for n floats crossing host <-> device: taken only when the
 * backend's memory is not host memory; otherwise *dst = NULL when binding. */
void ubd_arena_stage(ubd_arena *a, float **dst, size_t n, const char *label);
void ubd_arena_stage_int(ubd_arena *a, int **dst, size_t n, const char *label);
/* Ends planning: one be->alloc of everything planned, zeroed; `owner` names
 * the model in the out-of-memory message. On failure nothing stays allocated. */
ubd_status ubd_arena_commit(ubd_arena *a, const char *owner);
/* Ends binding: fails unless every planned slice was bound, in order, with
 * the planned size (a bug in the layout function). The memory stays
 * allocated either way: the model's pointers now point into it. */
ubd_status ubd_arena_end(ubd_arena *a);
/* Frees the memory (be->free) and the plan; the struct may be begun again. */
void ubd_arena_release(ubd_arena *a);

#ifdef __cplusplus
}
#endif
#endif
