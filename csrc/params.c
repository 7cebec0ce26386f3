/* params.c — see params.h. */
#include "params.h"

#include <stdlib.h>
#include <string.h>

void ubd_params_init(ubd_params *p) { memset(p, 0, sizeof *p); }

const char *ubd_buf_kind_name(ubd_buf_kind k) {
    static const char *names[UBD_NUM_BUFS] = {"param", "grad", "m", "v", "ema"};
    return (k >= 0 && k < UBD_NUM_BUFS) ? names[k] : "?";
}

int ubd_params_find(const ubd_params *p, const char *name) {
    for (int i = 0; i < p->nviews; i++)
        if (strcmp(p->views[i].name, name) == 0) return i;
    return -1;
}

ubd_status ubd_params_add(ubd_params *p, const char *name, int ndim, const int64_t *shape, size_t *offset_out) {
    UBD_REQUIRE(name && name[0], UBD_ERR_VALUE, "params_add: empty name");
    UBD_REQUIRE(strlen(name) < UBD_MAX_NAME, UBD_ERR_VALUE, "params_add: name '%s' longer than %d characters",
                name, UBD_MAX_NAME - 1);
    UBD_REQUIRE(ndim >= 1 && ndim <= UBD_MAX_DIMS, UBD_ERR_VALUE, "params_add: '%s' has ndim %d, need 1..%d", name,
                ndim, UBD_MAX_DIMS);
    for (int b = 0; b < UBD_NUM_BUFS; b++)
        UBD_REQUIRE(p->buf[b] == NULL, UBD_ERR_RUNTIME, "params_add: '%s' added after buffers were allocated", name);
    UBD_REQUIRE(ubd_params_find(p, name) < 0, UBD_ERR_VALUE, "params_add: duplicate name '%s'", name);
    size_t size = 1;
    for (int d = 0; d < ndim; d++) {
        UBD_REQUIRE(shape[d] > 0, UBD_ERR_VALUE, "params_add: '%s' dim %d is %lld, must be positive", name, d,
                    (long long)shape[d]);
        size *= (size_t)shape[d];
    }
    if (p->nviews == p->cap) {
        int cap = p->cap ? 2 * p->cap : 32;
        ubd_view *nv = realloc(p->views, (size_t)cap * sizeof *nv);
        UBD_REQUIRE(nv != NULL, UBD_ERR_MEMORY, "params_add: out of memory");
        p->views = nv;
        p->cap = cap;
    }
    ubd_view *v = &p->views[p->nviews++];
    memset(v, 0, sizeof *v);
    strcpy(v->name, name);
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++) v->shape[d] = shape[d];
    v->offset = p->n;
    v->size = size;
    p->n += size;
    if (offset_out) *offset_out = v->offset;
    return UBD_OK;
}

ubd_status ubd_params_alloc(ubd_params *p, ubd_buf_kind kind) {
    UBD_REQUIRE(kind >= 0 && kind < UBD_NUM_BUFS, UBD_ERR_VALUE, "params_alloc: bad buffer kind %d", (int)kind);
    UBD_REQUIRE(p->n > 0, UBD_ERR_VALUE, "params_alloc: no parameters were added");
    if (p->buf[kind]) return UBD_OK;
    size_t bytes = (p->n * sizeof(float) + 63) / 64 * 64;
    float *b = aligned_alloc(64, bytes);
    UBD_REQUIRE(b != NULL, UBD_ERR_MEMORY, "params_alloc: cannot allocate %zu bytes for '%s'", bytes,
                ubd_buf_kind_name(kind));
    memset(b, 0, bytes);
    p->buf[kind] = b;
    return UBD_OK;
}

void ubd_params_free(ubd_params *p) {
    for (int b = 0; b < UBD_NUM_BUFS; b++) free(p->buf[b]);
    free(p->views);
    ubd_params_init(p);
}
