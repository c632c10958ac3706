/* cache.c — the huggingface_hub cache layout: repo folders, refs, snapshots, blobs, locks. */
#include "hub_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ repo specs */

int blipc__hub_is_commit(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]) || isupper((unsigned char)s[n])) return 0;
    return n == 40;
}

static int valid_name_part(const char *s, size_t n) {
    if (n == 0 || n > 96) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.')) return 0;
        if (i + 1 < n && ((c == '-' && s[i + 1] == '-') || (c == '.' && s[i + 1] == '.'))) return 0;
    }
    if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.') return 0;
    return 1;
}

blipc_status blipc__hub_parse_spec(const char *s, blipc__hub_spec *sp, blipc_err *e) {
    if (!s || !*s) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "empty model name");
    const char *at = strchr(s, '@');
    size_t rn = at ? (size_t)(at - s) : strlen(s);
    const char *slash = memchr(s, '/', rn);
    int ok = rn < sizeof sp->repo;
    if (ok && slash) {
        size_t on = (size_t)(slash - s);
        ok = valid_name_part(s, on) && valid_name_part(slash + 1, rn - on - 1);
    } else if (ok) {
        ok = valid_name_part(s, rn); /* legacy repos without an organisation ("gpt2") */
    }
    if (!ok)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG,
                           "'%s' is neither an existing directory nor a Hugging Face repo id "
                           "(ORG/NAME or ORG/NAME@REVISION)", s);
    memcpy(sp->repo, s, rn);
    sp->repo[rn] = 0;
    const char *rev = at ? at + 1 : "main";
    size_t vn = strlen(rev);
    if (vn == 0 || vn >= sizeof sp->rev || strstr(rev, "..") || rev[0] == '/' || rev[vn - 1] == '/')
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "'%s': invalid revision '%s'", s, rev);
    for (size_t i = 0; i < vn; i++)
        if (isspace((unsigned char)rev[i]) || iscntrl((unsigned char)rev[i]) || rev[i] == '\\')
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "'%s': invalid revision '%s'", s, rev);
    memcpy(sp->rev, rev, vn + 1);
    return BLIPC_OK;
}

int blipc__hub_safe_filename(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 512 || name[0] == '/' || name[n - 1] == '/') return 0;
    const char *p = name;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += len;
        if (*p == '/') p++;
    }
    for (size_t i = 0; i < n; i++)
        if (iscntrl((unsigned char)name[i]) || name[i] == '\\') return 0;
    return 1;
}

/* ---------------------------------------------------------- string lists */

int blipc__strlist_has(const blipc__strlist *l, const char *s) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s)) return 1;
    return 0;
}

blipc_status blipc__strlist_add(blipc__strlist *l, const char *s, blipc_err *e) {
    if (blipc__strlist_has(l, s)) return BLIPC_OK;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory (file list)");
        l->v = nv;
        l->cap = nc;
    }
    char *d = strdup(s);
    if (!d) return blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory (file list)");
    l->v[l->n++] = d;
    return BLIPC_OK;
}

void blipc__strlist_free(blipc__strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* ------------------------------------------------------------ directories */

blipc_status blipc__hub_pathf(char *buf, size_t cap, blipc_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) return blipc__errf(e, BLIPC_ERR_LIMIT, "path too long: %.200s...", buf);
    return BLIPC_OK;
}

blipc_status blipc__hub_repo_dir(const blipc_hub *h, const char *repo, char *buf, size_t cap, blipc_err *e) {
    char folder[256];
    size_t k = 0;
    for (const char *p = repo; *p && k + 3 < sizeof folder; p++) {
        if (*p == '/') {
            folder[k++] = '-';
            folder[k++] = '-';
        } else {
            folder[k++] = *p;
        }
    }
    folder[k] = 0;
    int n = snprintf(buf, cap, "%s/models--%s", h->cache_dir, folder);
    if (n < 0 || (size_t)n >= cap) return blipc__errf(e, BLIPC_ERR_LIMIT, "cache path too long for %s", repo);
    return BLIPC_OK;
}

blipc_status blipc__mkdirs(const char *path, blipc_err *e) {
    char tmp[BLIPC_HUB_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return blipc__errf(e, BLIPC_ERR_LIMIT, "path too long: %s", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
                return blipc__errf(e, BLIPC_ERR_IO, "cannot create directory %s: %s", tmp, strerror(errno));
            tmp[i] = c;
        }
    }
    if (!blipc__dir_exists(path)) return blipc__errf(e, BLIPC_ERR_IO, "%s exists and is not a directory", path);
    return BLIPC_OK;
}

blipc_status blipc__mkdirs_parent(const char *path, blipc_err *e) {
    char tmp[BLIPC_HUB_PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof tmp) return blipc__errf(e, BLIPC_ERR_LIMIT, "path too long: %s", path);
    memcpy(tmp, path, n + 1);
    char *s = strrchr(tmp, '/');
    if (!s || s == tmp) return BLIPC_OK;
    *s = 0;
    return blipc__mkdirs(tmp, e);
}

/* ------------------------------------------------------------------ refs */

blipc_status blipc__hub_cached_commit(const char *repo_dir, const char *rev, char commit[41], blipc_err *e) {
    if (blipc__hub_is_commit(rev)) {
        memcpy(commit, rev, 41);
        return BLIPC_OK;
    }
    char path[BLIPC_HUB_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev) >= (int)sizeof path)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "path too long: %s/refs/%s", repo_dir, rev);
    FILE *f = fopen(path, "rb");
    if (!f) return blipc__errf(e, BLIPC_ERR_NOT_FOUND, "%s: revision '%s' is not in the cache (no %s)", repo_dir, rev, path);
    char buf[128];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = buf;
    while (isspace((unsigned char)*p)) p++;
    size_t k = 0;
    while (p[k] && !isspace((unsigned char)p[k])) k++;
    p[k] = 0;
    if (!blipc__hub_is_commit(p))
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: does not hold a 40-hex commit hash", path);
    memcpy(commit, p, 41);
    return BLIPC_OK;
}

blipc_status blipc__hub_write_ref(const char *repo_dir, const char *rev, const char *commit, blipc_err *e) {
    if (!strcmp(rev, commit)) return BLIPC_OK;
    char path[BLIPC_HUB_PATH_MAX], tmp[BLIPC_HUB_PATH_MAX + 32];
    if (snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev) >= (int)sizeof path)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "path too long: %s/refs/%s", repo_dir, rev);
    char old[41];
    if (blipc__hub_cached_commit(repo_dir, rev, old, NULL) == BLIPC_OK && !strcmp(old, commit)) return BLIPC_OK;
    BLIPC_TRY(blipc__mkdirs_parent(path, e));
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return blipc__errf(e, BLIPC_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    size_t n = strlen(commit);
    int ok = fwrite(commit, 1, n, f) == n; /* huggingface_hub writes the bare hash, no newline */
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return blipc__errf(e, BLIPC_ERR_IO, "cannot write %s: %s", path, strerror(err));
    }
    return BLIPC_OK;
}

/* -------------------------------------------------------------- pointers */

static blipc_status copy_file(const char *src, const char *dst, blipc_err *e) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return blipc__errf(e, BLIPC_ERR_IO, "cannot open %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (out < 0) {
        int err = errno;
        close(in);
        return blipc__errf(e, BLIPC_ERR_IO, "cannot create %s: %s", dst, strerror(err));
    }
    char buf[1 << 16];
    blipc_status st = BLIPC_OK;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = blipc__errf(e, BLIPC_ERR_IO, "cannot read %s: %s", src, strerror(errno));
            break;
        }
        if (r == 0) break;
        for (ssize_t w = 0; w < r;) {
            ssize_t k = write(out, buf + w, (size_t)(r - w));
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) {
                st = blipc__errf(e, BLIPC_ERR_IO, "cannot write %s: %s", dst, strerror(errno));
                break;
            }
            w += k;
        }
        if (st) break;
    }
    close(in);
    if (close(out) != 0 && !st) st = blipc__errf(e, BLIPC_ERR_IO, "cannot write %s: %s", dst, strerror(errno));
    if (st) unlink(dst);
    return st;
}

blipc_status blipc__hub_link_pointer(const blipc_hub *h, const char *repo_dir, const char *commit,
                                     const char *filename, const char *etag, int new_blob, blipc_err *e) {
    char blob[BLIPC_HUB_PATH_MAX], ptr[BLIPC_HUB_PATH_MAX], tmp[BLIPC_HUB_PATH_MAX + 32], target[BLIPC_HUB_PATH_MAX];
    if (snprintf(blob, sizeof blob, "%s/blobs/%s", repo_dir, etag) >= (int)sizeof blob ||
        snprintf(ptr, sizeof ptr, "%s/snapshots/%s/%s", repo_dir, commit, filename) >= (int)sizeof ptr)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "path too long for %s in %s", filename, repo_dir);
    BLIPC_TRY(blipc__mkdirs_parent(ptr, e));
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", ptr, (long)getpid());
    unlink(tmp);
    if (h->symlinks) {
        /* relative: one "../" per directory between snapshots/<commit>/<file> and the repo folder */
        size_t k = 0;
        int depth = 2;
        for (const char *p = filename; *p; p++) depth += *p == '/';
        for (int i = 0; i < depth; i++) k += (size_t)snprintf(target + k, sizeof target - k, "../");
        snprintf(target + k, sizeof target - k, "blobs/%s", etag);
        if (symlink(target, tmp) == 0) {
            if (rename(tmp, ptr) != 0) {
                int err = errno;
                unlink(tmp);
                return blipc__errf(e, BLIPC_ERR_IO, "cannot create %s: %s", ptr, strerror(err));
            }
            return BLIPC_OK;
        }
        if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
            return blipc__errf(e, BLIPC_ERR_IO, "cannot create symlink %s: %s", tmp, strerror(errno));
        blipc__logf(&h->log, BLIPC_LOG_WARN,
                    "%s: the filesystem has no symlinks; storing files directly in snapshots/ "
                    "(as huggingface_hub does there; blobs are not shared between revisions)",
                    h->cache_dir);
    }
    /* No symlinks: a new blob is moved into place (as huggingface_hub does), an old one copied. */
    if (new_blob) {
        if (rename(blob, ptr) != 0)
            return blipc__errf(e, BLIPC_ERR_IO, "cannot move %s to %s: %s", blob, ptr, strerror(errno));
        return BLIPC_OK;
    }
    BLIPC_TRY(copy_file(blob, tmp, e));
    if (rename(tmp, ptr) != 0) {
        int err = errno;
        unlink(tmp);
        return blipc__errf(e, BLIPC_ERR_IO, "cannot create %s: %s", ptr, strerror(err));
    }
    return BLIPC_OK;
}

/* ------------------------------------------------------------------ locks */

blipc_status blipc__hub_lock(blipc_hub *h, const char *repo, const char *etag, const char *filename, int *fd,
                             blipc_err *e) {
    *fd = -1;
    char path[BLIPC_HUB_PATH_MAX], rd[BLIPC_HUB_PATH_MAX];
    BLIPC_TRY(blipc__hub_repo_dir(h, repo, rd, sizeof rd, e));
    const char *folder = strrchr(rd, '/') + 1;
    if (snprintf(path, sizeof path, "%s/.locks/%s/%s.lock", h->cache_dir, folder, etag) >= (int)sizeof path)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "lock path too long for %s", filename);
    BLIPC_TRY(blipc__mkdirs_parent(path, e));
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (f < 0) return blipc__errf(e, BLIPC_ERR_IO, "cannot create lock %s: %s", path, strerror(errno));
    int reported = 0;
    /* bounded: gives up after 24 hours (a slow 15 GB download of another process) */
    for (long i = 0; i < 24L * 3600 * 5; i++) {
        if (flock(f, LOCK_EX | LOCK_NB) == 0) {
            *fd = f;
            return BLIPC_OK;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int err = errno;
            close(f);
            return blipc__errf(e, BLIPC_ERR_IO, "cannot lock %s: %s", path, strerror(err));
        }
        if (!reported || i % 50 == 0) {
            reported = 1;
            blipc__logf(&h->log, BLIPC_LOG_INFO, "waiting for another process downloading %s (%s)", filename, path);
            if (h->progress) {
                blipc_hub_progress p = {.event = BLIPC_HUB_EVENT_WAIT_LOCK, .repo_id = repo, .commit = "",
                                        .filename = filename, .message = "another process is downloading this file"};
                if (!h->progress(h->progress_user, &p)) {
                    close(f);
                    return blipc__errf(e, BLIPC_ERR_ABORTED, "aborted while waiting for the lock %s", path);
                }
            }
        }
        blipc__hub_sleep_ms(200);
    }
    close(f);
    return blipc__errf(e, BLIPC_ERR_IO, "gave up waiting for the lock %s", path);
}

void blipc__hub_unlock(int fd) {
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

blipc_status blipc__hub_hash_file(const char *path, int want_git, char *hex, blipc_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return blipc__errf(e, BLIPC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_IO, "cannot stat %s", path);
    }
    void *ctx = blipc__hash_new(want_git, (uint64_t)st.st_size);
    if (!ctx) {
        close(fd);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "cannot create a hash context for %s", path);
    }
    char *buf = malloc(1 << 20);
    if (!buf) {
        blipc__hash_free(ctx);
        close(fd);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory hashing %s", path);
    }
    blipc_status stt = BLIPC_OK;
    for (;;) {
        ssize_t r = read(fd, buf, 1 << 20);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            stt = blipc__errf(e, BLIPC_ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        if (!blipc__hash_update(ctx, buf, (size_t)r)) {
            stt = blipc__errf(e, BLIPC_ERR_INTERNAL, "hashing %s failed", path);
            break;
        }
    }
    free(buf);
    close(fd);
    if (stt) {
        blipc__hash_free(ctx);
        return stt;
    }
    blipc__hash_hex(ctx, hex);
    return BLIPC_OK;
}
