/* error.c — thread-local error message behind ubd_fail / ubd_last_error. */
#include "ubd.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char ubd_msg_[1024];

const char *ubd_last_error(void) { return ubd_msg_; }

void ubd_clear_error(void) { ubd_msg_[0] = '\0'; }

ubd_status ubd_fail(ubd_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ubd_msg_, sizeof ubd_msg_, fmt, ap);
    va_end(ap);
    return code;
}
