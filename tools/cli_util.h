/* cli_util.h — small helpers shared by the CLIs (header-only, static inline). */
#ifndef BLIPC_TOOLS_CLI_UTIL_H
#define BLIPC_TOOLS_CLI_UTIL_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* s is a whole decimal integer in [lo, hi]: store it in *out, return 1; else 0. */
static inline int cli_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* strdup without leading/trailing whitespace (as HF examples .strip() the
 * decoded text); NULL is "". NULL when out of memory. */
static inline char *cli_dup_trimmed(const char *s) {
    if (!s) s = "";
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

#endif
