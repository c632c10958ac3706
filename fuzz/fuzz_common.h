/* fuzz_common.h — helpers shared by the libFuzzer targets (not library code:
 * fuzzers may print and abort; abort() is how a target reports a broken contract). */
#ifndef BLIPC_FUZZ_COMMON_H
#define BLIPC_FUZZ_COMMON_H

#include "err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FUZZ_FIXTURES_DIR
#define FUZZ_FIXTURES_DIR "../shared/fixtures"
#endif

/* The fixtures directory: $BLIPC_FIXTURES or the path meson configured. */
static inline const char *fuzz_fixtures(void) {
    const char *d = getenv("BLIPC_FIXTURES");
    return d && *d ? d : FUZZ_FIXTURES_DIR;
}

/* A private scratch directory for this process ($BLIPC_FUZZ_TMPDIR when set, as
 * tests/test_robust.c does; otherwise a new directory under $TMPDIR holding a
 * few small files). */
static inline const char *fuzz_tmpdir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *mine = getenv("BLIPC_FUZZ_TMPDIR");
        if (mine && *mine && strlen(mine) < sizeof dir) return strcpy(dir, mine);
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/blipc-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            abort();
        }
    }
    return dir;
}

static inline void fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* Copy a file (fixture) to dst; returns 0 when the source is missing. */
static inline int fuzz_copy(const char *src, const char *dst) {
    FILE *f = fopen(src, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) abort();
    fclose(f);
    fuzz_write(dst, buf, (size_t)n);
    free(buf);
    return 1;
}

/* The library's error contract: a failure carries the status it returned and a
 * non-empty message; success leaves no error behind. */
static inline void fuzz_check_status(const char *what, blipc_status rc, const blipc_err *e) {
    if (rc == BLIPC_OK) return;
    if ((int)rc < 0 || rc > BLIPC_ERR_INTERNAL || rc == BLIPC_ERR_INTERNAL) {
        fprintf(stderr, "%s: unexpected status %d (%s)\n", what, (int)rc, e ? e->msg : "");
        abort();
    }
    if (e && (!e->msg[0] || e->status != rc)) {
        fprintf(stderr, "%s: status %d with %s (err.status %d)\n", what, (int)rc,
                e->msg[0] ? "a mismatched error" : "an empty message", (int)e->status);
        abort();
    }
}

static inline void fuzz_check_msg(const char *what, blipc_status rc, const char *msg) {
    if (rc == BLIPC_OK) return;
    if ((int)rc < 0 || rc >= BLIPC_ERR_INTERNAL || !msg || !msg[0]) {
        fprintf(stderr, "%s: status %d with message \"%s\"\n", what, (int)rc, msg ? msg : "(null)");
        abort();
    }
}

#endif
