#include <stdint.h>
#include "fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Open a regular file read-only (close-on-exec) and stat it. */
static blipc_status open_regular(const char *path, int *fd_out, struct stat *st, blipc_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return blipc__errf(e, BLIPC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_IO, "%s: not a regular file", path);
    }
    *fd_out = fd;
    return BLIPC_OK;
}

blipc_status blipc__read_file(const char *path, size_t max_size, char **data, size_t *size, blipc_err *e) {
    *data = NULL;
    if (size) *size = 0;
    if (max_size == 0) max_size = (size_t)1 << 30;
    int fd = -1;
    struct stat st;
    BLIPC_TRY(open_regular(path, &fd, &st, e));
    if ((uint64_t)st.st_size > max_size) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_LIMIT, "%s: file is %lld bytes, over the %zu-byte limit", path,
                           (long long)st.st_size, max_size);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int err = errno;
            free(buf);
            close(fd);
            return blipc__errf(e, BLIPC_ERR_IO, "%s: read failed: %s", path, r == 0 ? "unexpected end" : strerror(err));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    if (size) *size = n;
    return BLIPC_OK;
}

blipc_status blipc__path_join(char *buf, size_t cap, const char *dir, const char *name, blipc_err *e) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return blipc__errf(e, BLIPC_ERR_LIMIT, "path too long: %s/%s", dir, name);
    return BLIPC_OK;
}

int blipc__file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int blipc__dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

blipc_status blipc__mmap_file(const char *path, blipc_mmap *m, blipc_err *e) {
    m->data = NULL;
    m->size = 0;
    int fd = -1;
    struct stat st;
    BLIPC_TRY(open_regular(path, &fd, &st, e));
    if (st.st_size == 0) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: file is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return blipc__errf(e, BLIPC_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return BLIPC_OK;
}

void blipc__munmap(blipc_mmap *m) {
    if (m && m->data) munmap(m->data, m->size);
    if (m) {
        m->data = NULL;
        m->size = 0;
    }
}
