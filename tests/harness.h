/* harness.h — a tiny test harness: each test file defines cases with TEST(),
 * lists them in main via RUN(); failures print file:line and the check. */
#ifndef BLIPC_TEST_HARNESS_H
#define BLIPC_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int th_failed_checks;
extern int th_cases_run, th_cases_failed;
extern const char *th_current;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, th_current, #cond); \
            th_failed_checks++;                                                      \
        }                                                                            \
    } while (0)

#define CHECKF(cond, ...)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s: ", __FILE__, __LINE__, th_current, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            th_failed_checks++;                                                      \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                           \
    do {                                                                             \
        long long a__ = (long long)(a), b__ = (long long)(b);                        \
        CHECKF(a__ == b__, "%lld != %lld", a__, b__);                                \
    } while (0)

/* Fails (and returns from the test) when a status is not what was expected. */
#define CHECK_STATUS(expr, want, errmsg)                                             \
    do {                                                                             \
        int st__ = (int)(expr);                                                      \
        CHECKF(st__ == (int)(want), "status %d, want %d (%s)", st__, (int)(want), (errmsg)); \
    } while (0)

/* A substring must appear in a message (error messages must name file/field). */
#define CHECK_CONTAINS(hay, needle)                                                  \
    do {                                                                             \
        const char *h__ = (hay), *n__ = (needle);                                    \
        CHECKF(h__ && strstr(h__, n__), "\"%s\" does not contain \"%s\"", h__ ? h__ : "(null)", n__); \
    } while (0)

#define RUN(fn) th_run(#fn, fn)

void th_run(const char *name, void (*fn)(void));
/* Print the summary line ("N passed, N failed") and return the exit code. */
int th_finish(void);
/* Skip the whole test program (exit code 77 = meson's "skipped"). */
void th_skip_all(const char *why);

/* Path of a file in ../shared/fixtures (BLIPC_FIXTURES) or tests/fixtures
 * (BLIPC_TEST_DATA). Returned in a rotating static buffer. */
const char *th_fixture(const char *rel);
const char *th_testdata(const char *rel);
/* Skip (exit 77) with a clear message when a required fixture file is absent. */
void th_require_file(const char *path);
/* A fresh temporary directory for this test program (removed at exit). */
const char *th_tmpdir(void);
/* th_tmpdir() + "/" + name, in a rotating static buffer (8 at a time). */
const char *th_tmp_path(const char *name);

/* Read a whole file (malloc'd; NULL if unreadable). */
char *th_read_file(const char *path, size_t *size);
/* Write bytes to a file; returns 0 on success. */
int th_write_file(const char *path, const void *data, size_t size);
/* Copy a file; returns 0 on success. */
int th_copy_file(const char *src, const char *dst);

/* max |a-b| over n floats */
double th_max_abs_diff(const float *a, const float *b, size_t n);

#endif
