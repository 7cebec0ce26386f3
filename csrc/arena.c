/* arena.c — see arena.h. */
#include "arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64

static size_t round_up(size_t bytes) { return (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

void ubd_arena_begin(ubd_arena *a, const ubd_backend *be) {
    memset(a, 0, sizeof *a);
    a->be = be ? be : ubd_backend_cpu();
}

/* The one place slices are planned and bound. */
static void *take(ubd_arena *a, size_t bytes, const char *label) {
    if (a->err != UBD_OK || bytes == 0) return NULL;
    bytes = round_up(bytes);
    if (!a->base) { /* planning */
        if (a->nplan == a->cap) {
            int cap = a->cap ? 2 * a->cap : 64;
            ubd_arena_slice *p = realloc(a->plan, (size_t)cap * sizeof *p);
            if (!p) {
                a->err = ubd_fail(UBD_ERR_MEMORY, "arena: out of host memory planning slice '%s'", label);
                return NULL;
            }
            a->plan = p;
            a->cap = cap;
        }
        a->plan[a->nplan++] = (ubd_arena_slice){a->bytes, bytes, label};
        a->bytes += bytes;
        return NULL;
    }
    /* binding: the same slices in the same order */
    if (a->next >= a->nplan || a->plan[a->next].bytes != bytes) {
        a->err = ubd_fail(UBD_ERR_RUNTIME,
                          "arena: the binding pass asked for slice %d '%s' of %zu bytes, the plan has %s of %zu",
                          a->next, label, bytes, a->next < a->nplan ? a->plan[a->next].label : "none",
                          a->next < a->nplan ? a->plan[a->next].bytes : 0);
        return NULL;
    }
    return (char *)a->base + a->plan[a->next++].off;
}

void ubd_arena_take(ubd_arena *a, float **dst, size_t n, const char *label) {
    void *p = take(a, n * sizeof(float), label);
    if (a->base) *dst = p;
}

void ubd_arena_take_int(ubd_arena *a, int **dst, size_t n, const char *label) {
    void *p = take(a, n * sizeof(int), label);
    if (a->base) *dst = p;
}

void ubd_arena_stage(ubd_arena *a, float **dst, size_t n, const char *label) {
    if (a->be->host_memory) {
        if (a->base) *dst = NULL;
        return;
    }
    ubd_arena_take(a, dst, n, label);
}

void ubd_arena_stage_int(ubd_arena *a, int **dst, size_t n, const char *label) {
    if (a->be->host_memory) {
        if (a->base) *dst = NULL;
        return;
    }
    ubd_arena_take_int(a, dst, n, label);
}

ubd_status ubd_arena_commit(ubd_arena *a, const char *owner) {
    if (a->err != UBD_OK) {
        ubd_status s = a->err;
        ubd_arena_release(a);
        return s;
    }
    UBD_REQUIRE(a->base == NULL, UBD_ERR_RUNTIME, "arena: %s committed twice", owner);
    size_t bytes = a->bytes ? a->bytes : ARENA_ALIGN; /* one allocation even when nothing was planned */
    void *base = NULL;
    ubd_status s = a->be->alloc(&base, bytes);
    if (s == UBD_OK) s = a->be->zero(base, bytes / sizeof(float));
    if (s != UBD_OK) {
        char why[200]; /* copy: ubd_fail rewrites the message buffer */
        snprintf(why, sizeof why, "%s", ubd_last_error());
        if (base) a->be->free(base);
        ubd_arena_release(a);
        return ubd_fail(s, "%s: cannot allocate %.1f MiB of activations on %s (%s)", owner,
                        (double)bytes / (1 << 20), a->be->name, why);
    }
    a->base = base;
    a->next = 0;
    return UBD_OK;
}

ubd_status ubd_arena_end(ubd_arena *a) {
    if (a->err != UBD_OK) return a->err;
    UBD_REQUIRE(a->base != NULL, UBD_ERR_RUNTIME, "arena: end before commit");
    UBD_REQUIRE(a->next == a->nplan, UBD_ERR_RUNTIME, "arena: the binding pass took %d of %d planned slices",
                a->next, a->nplan);
    return UBD_OK;
}

void ubd_arena_release(ubd_arena *a) {
    const ubd_backend *be = a->be;
    if (a->base && be) be->free(a->base);
    free(a->plan);
    memset(a, 0, sizeof *a);
    a->be = be;
}
