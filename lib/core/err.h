/* err.h — internal error reporting: a status code plus a message buffer.
 * Every fallible internal function takes a `blipc_err *` (may be NULL) and
 * returns a blipc_status; the message names the file, tensor, field or input. */
#ifndef BLIPC_CORE_ERR_H
#define BLIPC_CORE_ERR_H

#include "blipc.h"
#include <stdarg.h>
#include <stddef.h>

#define BLIPC_ERRMSG_MAX 1024

typedef struct blipc_err {
    blipc_status status;
    char msg[BLIPC_ERRMSG_MAX];
} blipc_err;

/* Record status + printf-style message (if e != NULL); returns status. */
blipc_status blipc__errf(blipc_err *e, blipc_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the existing message with more context ("loading X: <old msg>"); returns e->status. */
blipc_status blipc__err_prefix(blipc_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void blipc__err_clear(blipc_err *e);
/* Copy the message into a caller buffer (buf may be NULL). */
void blipc__err_copy(const blipc_err *e, char *buf, size_t size);

/* Logging through an optional callback (never prints by itself). */
typedef struct blipc_logger {
    blipc_log_fn fn;
    void *user;
} blipc_logger;
void blipc__logf(const blipc_logger *lg, blipc_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define BLIPC_TRY(expr)                      \
    do {                                     \
        blipc_status st__ = (expr);          \
        if (st__ != BLIPC_OK) return st__;   \
    } while (0)

#endif
