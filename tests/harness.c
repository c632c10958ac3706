#include "harness.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

int th_failed_checks, th_cases_run, th_cases_failed;
const char *th_current = "";
static char th_tmp[256];

void th_run(const char *name, void (*fn)(void)) {
    int before = th_failed_checks;
    th_current = name;
    fn();
    th_cases_run++;
    if (th_failed_checks != before) {
        th_cases_failed++;
        fprintf(stderr, "not ok - %s\n", name);
    } else {
        fprintf(stderr, "ok - %s\n", name);
    }
}

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

int th_finish(void) {
    if (th_tmp[0] && !getenv("BLIPC_KEEP_TMP")) rm_rf(th_tmp);
    printf("%d passed, %d failed\n", th_cases_run - th_cases_failed, th_cases_failed);
    return th_cases_failed ? 1 : 0;
}

void th_skip_all(const char *why) {
    printf("SKIP: %s\n", why);
    fprintf(stderr, "SKIP: %s\n", why);
    exit(77);
}

static const char *th_path(const char *envname, const char *fallback, const char *rel) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ & 7];
    const char *root = getenv(envname);
    snprintf(b, sizeof bufs[0], "%s/%s", root && *root ? root : fallback, rel);
    return b;
}

const char *th_fixture(const char *rel) { return th_path("BLIPC_FIXTURES", "../shared/fixtures", rel); }
const char *th_testdata(const char *rel) { return th_path("BLIPC_TEST_DATA", "tests/fixtures", rel); }

void th_require_file(const char *path) {
    if (access(path, R_OK) != 0) {
        char msg[4200];
        snprintf(msg, sizeof msg,
                 "required fixture %s is absent (set BLIPC_FIXTURES to the shared/fixtures folder)", path);
        th_skip_all(msg);
    }
}

const char *th_tmpdir(void) {
    if (!th_tmp[0]) {
        snprintf(th_tmp, sizeof th_tmp, "/tmp/blipc-test-XXXXXX");
        if (!mkdtemp(th_tmp)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return th_tmp;
}

const char *th_tmp_path(const char *name) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", th_tmpdir(), name);
    return b;
}

char *th_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (size) *size = (size_t)n;
    }
    return buf;
}

int th_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, size, f);
    return (fclose(f) == 0 && w == size) ? 0 : -1;
}

double th_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

int th_copy_file(const char *src, const char *dst) {
    size_t n;
    char *d = th_read_file(src, &n);
    if (!d) return -1;
    int r = th_write_file(dst, d, n);
    free(d);
    return r;
}
