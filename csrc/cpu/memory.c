/* memory.c — the CPU backend's memory entries (backend.h): host memory, so
 * alloc is aligned_alloc, every copy direction a memcpy, sync a no-op. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

ubd_status ubd_cpu_alloc(void **p, size_t bytes) {
    UBD_REQUIRE_PTR(p);
    const size_t rounded = (bytes ? bytes + 63 : 64) / 64 * 64; /* aligned_alloc wants a multiple of the alignment */
    *p = aligned_alloc(64, rounded);
    UBD_REQUIRE(*p != NULL, UBD_ERR_MEMORY, "cpu: cannot allocate %.1f MiB of host memory",
                (double)bytes / (1 << 20));
    return UBD_OK;
}

ubd_status ubd_cpu_free(void *p) {
    free(p);
    return UBD_OK;
}

ubd_status ubd_cpu_zero(float *p, size_t n) {
    UBD_REQUIRE(p != NULL || n == 0, UBD_ERR_VALUE, "zero: p is NULL");
    if (n) memset(p, 0, n * sizeof *p);
    return UBD_OK;
}

ubd_status ubd_cpu_copy(void *dst, const void *src, size_t bytes, ubd_copy_dir dir) {
    UBD_REQUIRE(dir == UBD_H2D || dir == UBD_D2H || dir == UBD_D2D, UBD_ERR_VALUE, "copy: bad direction %d",
                (int)dir);
    UBD_REQUIRE((dst && src) || bytes == 0, UBD_ERR_VALUE, "copy: NULL %s", dst ? "source" : "destination");
    if (bytes && dst != src) memcpy(dst, src, bytes);
    return UBD_OK;
}

ubd_status ubd_cpu_sync(void) { return UBD_OK; }

ubd_status ubd_cpu_fill(float *p, size_t n, float value) {
    UBD_REQUIRE(p != NULL || n == 0, UBD_ERR_VALUE, "fill: p is NULL");
    for (size_t i = 0; i < n; i++) p[i] = value;
    return UBD_OK;
}
