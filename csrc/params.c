/* params.c — see params.h. */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ubd_params_init_on(ubd_params *p, const ubd_backend *be) {
    memset(p, 0, sizeof *p);
    p->be = be;
}

void ubd_params_init(ubd_params *p) { ubd_params_init_on(p, NULL); }

static const ubd_backend *backend_of(const ubd_params *p) { return p->be ? p->be : ubd_backend_cpu(); }

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
    const ubd_backend *be = backend_of(p);
    void *b = NULL;
    ubd_status s = be->alloc(&b, p->n * sizeof(float));
    if (s == UBD_OK) s = be->zero(b, p->n);
    if (s != UBD_OK) {
        char why[200]; /* copy: ubd_fail rewrites the message buffer */
        snprintf(why, sizeof why, "%s", ubd_last_error());
        if (b) be->free(b);
        return ubd_fail(s, "params_alloc: cannot allocate %zu bytes for '%s' on %s (%s)", p->n * sizeof(float),
                        ubd_buf_kind_name(kind), be->name, why);
    }
    p->buf[kind] = b;
    return UBD_OK;
}

/* Checks a host copy's range and buffer; returns the device address. */
static ubd_status span(const ubd_params *p, ubd_buf_kind kind, size_t off, size_t n, const void *host, float **dev) {
    UBD_REQUIRE(kind >= 0 && kind < UBD_NUM_BUFS, UBD_ERR_VALUE, "params: bad buffer kind %d", (int)kind);
    UBD_REQUIRE(p->buf[kind] != NULL, UBD_ERR_VALUE, "params: buffer '%s' is not allocated", ubd_buf_kind_name(kind));
    UBD_REQUIRE(off <= p->n && n <= p->n - off, UBD_ERR_VALUE, "params: floats [%zu, %zu) outside the %zu of '%s'",
                off, off + n, p->n, ubd_buf_kind_name(kind));
    UBD_REQUIRE(host != NULL || n == 0, UBD_ERR_VALUE, "params: NULL host buffer");
    *dev = p->buf[kind] + off;
    return UBD_OK;
}

ubd_status ubd_params_read(const ubd_params *p, ubd_buf_kind kind, size_t off, size_t n, float *host) {
    float *dev;
    UBD_TRY(span(p, kind, off, n, host, &dev));
    return n ? backend_of(p)->copy(host, dev, n * sizeof(float), UBD_D2H) : UBD_OK;
}

ubd_status ubd_params_write(ubd_params *p, ubd_buf_kind kind, size_t off, size_t n, const float *host) {
    float *dev;
    UBD_TRY(span(p, kind, off, n, host, &dev));
    return n ? backend_of(p)->copy(dev, host, n * sizeof(float), UBD_H2D) : UBD_OK;
}

void ubd_params_free(ubd_params *p) {
    const ubd_backend *be = backend_of(p);
    for (int b = 0; b < UBD_NUM_BUFS; b++)
        if (p->buf[b]) be->free(p->buf[b]);
    free(p->views);
    ubd_params_init_on(p, p->be);
}

ubd_status ubd_params_adam_step(ubd_params *p, const ubd_backend *be, ubd_adam_hparams hp, long long *step) {
    UBD_TRY(be->adam_update(p->buf[UBD_BUF_PARAM], p->buf[UBD_BUF_M], p->buf[UBD_BUF_V], p->buf[UBD_BUF_GRAD], p->n, hp,
                            *step + 1));
    (*step)++;
    return UBD_OK;
}
