/* walk.c — image discovery (files and folders -> candidate files with a verdict
 * from their magic bytes) and content hashing (sha256 via libcrypto). */
#include "backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct scan_entry {
    char *path;
    char *reason;            /* NULL = "" */
    const char *format;      /* static */
    blipc_scan_kind kind;
    int64_t mtime, size;
} scan_entry;

struct blipc_index_scan {
    scan_entry *e;
    size_t n, cap;
};

/* ------------------------------------------------------------ sha256 */

blipc_status blipc_index_file_sha256(const char *path, char hex[65], char *errbuf, size_t errbuf_size) {
    if (errbuf && errbuf_size) errbuf[0] = 0;
    if (!path || !hex) {
        if (errbuf) snprintf(errbuf, errbuf_size, "file_sha256: NULL argument");
        return BLIPC_ERR_INVALID_ARG;
    }
    hex[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errbuf) snprintf(errbuf, errbuf_size, "%s: cannot open: %s", path, strerror(errno));
        return BLIPC_ERR_IO;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 16);
    blipc_status st = BLIPC_OK;
    if (!md || !buf) {
        if (errbuf) snprintf(errbuf, errbuf_size, "%s: out of memory hashing", path);
        st = BLIPC_ERR_NOMEM;
    } else if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        if (errbuf) snprintf(errbuf, errbuf_size, "%s: sha256 unavailable in libcrypto", path);
        st = BLIPC_ERR_INTERNAL;
    }
    while (!st) {
        ssize_t r = read(fd, buf, 1 << 16);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            if (errbuf) snprintf(errbuf, errbuf_size, "%s: read error: %s", path, strerror(errno));
            st = BLIPC_ERR_IO;
            break;
        }
        if (r == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)r);
    }
    if (!st) {
        unsigned char dig[32];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(md, dig, &dl);
        static const char hx[] = "0123456789abcdef";
        for (int i = 0; i < 32; i++) {
            hex[2 * i] = hx[dig[i] >> 4];
            hex[2 * i + 1] = hx[dig[i] & 15];
        }
        hex[64] = 0;
    }
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return st;
}

/* ------------------------------------------------------------ magic */

static const char *image_format(const unsigned char *b, size_t n) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "jpeg";
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "gif";
    if (n >= 14 && b[0] == 'B' && b[1] == 'M') return "bmp";
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "webp";
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))) return "tiff";
    return NULL;
}

static int has_image_ext(const char *path) {
    static const char *const ext[] = {"jpg", "jpeg", "jpe", "png", "gif", "bmp", "webp", "tif", "tiff", NULL};
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    for (int i = 0; ext[i]; i++)
        if (!strcasecmp(dot + 1, ext[i])) return 1;
    return 0;
}

/* ------------------------------------------------------------ list */

static blipc_status add_entry(blipc_index_scan *s, const char *path, blipc_scan_kind kind, const char *format,
                              const char *reason, const struct stat *sb, blipc_err *e) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        scan_entry *ne = realloc(s->e, nc * sizeof *ne);
        if (!ne) return blipc__errf(e, BLIPC_ERR_NOMEM, "scan: out of memory listing %s", path);
        s->e = ne;
        s->cap = nc;
    }
    scan_entry *x = &s->e[s->n];
    memset(x, 0, sizeof *x);
    x->path = blipc__strdup(path);
    x->reason = reason && reason[0] ? blipc__strdup(reason) : NULL;
    if (!x->path || (reason && reason[0] && !x->reason)) {
        free(x->path);
        free(x->reason);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "scan: out of memory listing %s", path);
    }
    x->kind = kind;
    x->format = format ? format : "";
    if (sb) {
        x->mtime = (int64_t)sb->st_mtime;
        x->size = (int64_t)sb->st_size;
    }
    s->n++;
    return BLIPC_OK;
}

/* Classify one regular file (sb from stat). */
static blipc_status add_file(blipc_index_scan *s, const char *path, const struct stat *sb, blipc_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char why[300];
        snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
        return add_entry(s, path, BLIPC_SCAN_UNREADABLE, NULL, why, sb, e);
    }
    unsigned char head[16];
    ssize_t r;
    do r = read(fd, head, sizeof head);
    while (r < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (r < 0) {
        char why[300];
        snprintf(why, sizeof why, "cannot read: %s", strerror(err));
        return add_entry(s, path, BLIPC_SCAN_UNREADABLE, NULL, why, sb, e);
    }
    if (r == 0) return add_entry(s, path, BLIPC_SCAN_NOT_IMAGE, NULL, "empty file", sb, e);
    const char *fmt = image_format(head, (size_t)r);
    if (fmt) return add_entry(s, path, BLIPC_SCAN_IMAGE, fmt, NULL, sb, e);
    return add_entry(s, path, BLIPC_SCAN_NOT_IMAGE, NULL,
                     has_image_ext(path) ? "has an image extension but its content is not a known image format"
                                         : "not an image (unknown content)",
                     sb, e);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static blipc_status walk_dir(blipc_index_scan *s, const char *dir, int depth, blipc_err *e) {
    if (depth > 64) return BLIPC_OK;   /* pathological nesting */
    DIR *d = opendir(dir);
    if (!d) {
        char why[300];
        snprintf(why, sizeof why, "cannot open directory: %s", strerror(errno));
        return add_entry(s, dir, BLIPC_SCAN_UNREADABLE, NULL, why, NULL, e);
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    blipc_status st = BLIPC_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;   /* hidden, . and .. */
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 32;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) {
                st = blipc__errf(e, BLIPC_ERR_NOMEM, "scan: out of memory listing %s", dir);
                break;
            }
            names = nn;
            cap = nc;
        }
        names[n] = blipc__strdup(de->d_name);
        if (!names[n]) {
            st = blipc__errf(e, BLIPC_ERR_NOMEM, "scan: out of memory listing %s", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (!st && n) qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n && !st; i++) {
        char path[PATH_MAX];
        int l = snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
        if (l < 0 || (size_t)l >= sizeof path) {
            st = add_entry(s, dir, BLIPC_SCAN_UNREADABLE, NULL, "path too long", NULL, e);
            continue;
        }
        struct stat lsb, sb;
        if (lstat(path, &lsb) != 0) {
            char why[300];
            snprintf(why, sizeof why, "cannot stat: %s", strerror(errno));
            st = add_entry(s, path, BLIPC_SCAN_UNREADABLE, NULL, why, NULL, e);
            continue;
        }
        if (S_ISLNK(lsb.st_mode)) {
            if (stat(path, &sb) != 0) {
                st = add_entry(s, path, BLIPC_SCAN_UNREADABLE, NULL, "dangling symbolic link", NULL, e);
                continue;
            }
            if (!S_ISREG(sb.st_mode)) continue;   /* links to directories are not followed */
            st = add_file(s, path, &sb, e);
        } else if (S_ISDIR(lsb.st_mode)) {
            st = walk_dir(s, path, depth + 1, e);
        } else if (S_ISREG(lsb.st_mode)) {
            st = add_file(s, path, &lsb, e);
        }
        /* sockets, fifos, devices: ignored */
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

static void entry_free(scan_entry *x) {
    free(x->path);
    free(x->reason);
}

static int idx_cmp_ctx_path(const void *a, const void *b, void *ctx) {
    const scan_entry *e = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(e[i].path, e[j].path);
    if (c) return c;
    return i < j ? -1 : (i > j);
}

/* Drop repeated paths, keeping the first occurrence (order preserved). */
static blipc_status dedupe(blipc_index_scan *s, blipc_err *e) {
    if (s->n < 2) return BLIPC_OK;
    size_t *ord = malloc(s->n * sizeof *ord);
    unsigned char *drop = calloc(s->n, 1);
    if (!ord || !drop) {
        free(ord);
        free(drop);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "scan: out of memory");
    }
    for (size_t i = 0; i < s->n; i++) ord[i] = i;
    qsort_r(ord, s->n, sizeof *ord, idx_cmp_ctx_path, s->e);
    for (size_t i = 1; i < s->n; i++)
        if (!strcmp(s->e[ord[i]].path, s->e[ord[i - 1]].path)) drop[ord[i]] = 1;
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (drop[i]) entry_free(&s->e[i]);
        else s->e[o++] = s->e[i];
    }
    s->n = o;
    free(ord);
    free(drop);
    return BLIPC_OK;
}

blipc_status blipc_index_scan_paths(const char *const *paths, size_t n, blipc_index_scan **out, char *errbuf,
                                    size_t errbuf_size) {
    blipc_err e;
    blipc__err_clear(&e);
    if (errbuf && errbuf_size) errbuf[0] = 0;
    if (!out || (n && !paths)) {
        if (errbuf) snprintf(errbuf, errbuf_size, "scan: NULL argument");
        return BLIPC_ERR_INVALID_ARG;
    }
    *out = NULL;
    blipc_index_scan *s = calloc(1, sizeof *s);
    if (!s) {
        if (errbuf) snprintf(errbuf, errbuf_size, "scan: out of memory");
        return BLIPC_ERR_NOMEM;
    }
    blipc_status st = BLIPC_OK;
    for (size_t i = 0; i < n && !st; i++) {
        const char *p = paths[i];
        if (!p || !p[0]) {
            st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "scan: path %zu is empty", i);
            break;
        }
        char abs[PATH_MAX];
        struct stat sb;
        if (stat(p, &sb) != 0) {
            int err = errno;
            char why[300];
            snprintf(why, sizeof why, "%s", err == ENOENT ? "no such file or directory" : strerror(err));
            st = add_entry(s, p, err == ENOENT || err == ENOTDIR ? BLIPC_SCAN_MISSING : BLIPC_SCAN_UNREADABLE, NULL,
                           why, NULL, &e);
            continue;
        }
        if (!realpath(p, abs)) snprintf(abs, sizeof abs, "%s", p);
        if (S_ISDIR(sb.st_mode)) st = walk_dir(s, abs, 0, &e);
        else if (S_ISREG(sb.st_mode)) st = add_file(s, abs, &sb, &e);
        else st = add_entry(s, abs, BLIPC_SCAN_NOT_IMAGE, NULL, "not a regular file or directory", &sb, &e);
    }
    if (!st) st = dedupe(s, &e);
    if (st) {
        if (errbuf) snprintf(errbuf, errbuf_size, "%s", e.msg);
        blipc_index_scan_free(s);
        return st;
    }
    *out = s;
    return BLIPC_OK;
}

void blipc_index_scan_free(blipc_index_scan *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) entry_free(&s->e[i]);
    free(s->e);
    free(s);
}

size_t blipc_index_scan_count(const blipc_index_scan *s) {
    return s ? s->n : 0;
}

static const scan_entry *ent(const blipc_index_scan *s, size_t i) {
    return (s && i < s->n) ? &s->e[i] : NULL;
}

const char *blipc_index_scan_path(const blipc_index_scan *s, size_t i) {
    const scan_entry *x = ent(s, i);
    return x ? x->path : NULL;
}
blipc_scan_kind blipc_index_scan_kind(const blipc_index_scan *s, size_t i) {
    const scan_entry *x = ent(s, i);
    return x ? x->kind : BLIPC_SCAN_MISSING;
}
const char *blipc_index_scan_reason(const blipc_index_scan *s, size_t i) {
    const scan_entry *x = ent(s, i);
    return x ? (x->reason ? x->reason : "") : "";
}
const char *blipc_index_scan_format(const blipc_index_scan *s, size_t i) {
    const scan_entry *x = ent(s, i);
    return x ? x->format : "";
}
int64_t blipc_index_scan_mtime(const blipc_index_scan *s, size_t i) {
    const scan_entry *x = ent(s, i);
    return x ? x->mtime : 0;
}
int64_t blipc_index_scan_size(const blipc_index_scan *s, size_t i) {
    const scan_entry *x = ent(s, i);
    return x ? x->size : 0;
}
