#include "err.h"

#include <stdio.h>
#include <string.h>

blipc_status blipc__errf(blipc_err *e, blipc_status status, const char *fmt, ...) {
    if (e) {
        e->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

blipc_status blipc__err_prefix(blipc_err *e, const char *fmt, ...) {
    if (!e) return BLIPC_ERR_INTERNAL;
    char pre[BLIPC_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    size_t pl = strlen(pre), ml = strlen(e->msg);
    if (pl + 2 >= sizeof e->msg) pl = sizeof e->msg - 3;
    if (pl + 2 + ml >= sizeof e->msg) ml = sizeof e->msg - 1 - pl - 2;
    memmove(e->msg + pl + 2, e->msg, ml);
    memcpy(e->msg, pre, pl);
    e->msg[pl] = ':';
    e->msg[pl + 1] = ' ';
    e->msg[pl + 2 + ml] = 0;
    return e->status;
}

void blipc__err_clear(blipc_err *e) {
    if (e) {
        e->status = BLIPC_OK;
        e->msg[0] = 0;
    }
}

void blipc__err_copy(const blipc_err *e, char *buf, size_t size) {
    if (!buf || size == 0) return;
    snprintf(buf, size, "%s", e ? e->msg : "");
}

void blipc__logf(const blipc_logger *lg, blipc_log_level lvl, const char *fmt, ...) {
    if (!lg || !lg->fn) return;
    char msg[BLIPC_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lg->fn(lg->user, lvl, msg);
}
