/* hub.c — public API of libblipc-hub: handles, resolving model names, pulls. */
#include "hub_internal.h"
#include "fileutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <curl/curl.h>

#define DEFAULT_ENDPOINT "https://huggingface.co"

void blipc_hub_default_params(blipc_hub_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->allow_pull = 1;
    p->use_env = 1;
    p->symlinks = 1;
    p->max_retries = 5;
    p->retry_delay_ms = 1000;
    p->connect_timeout_s = 15;
    p->stall_timeout_s = 60;
}

static const char *env(const blipc_hub_params *p, const char *name) {
    if (!p->use_env) return NULL;
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int env_true(const char *v) {
    return v && (!strcmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcasecmp(v, "true"));
}

/* "~/x" -> "$HOME/x" (malloc'd) */
static char *expand_user(const char *s) {
    const char *home = getenv("HOME");
    if (s[0] == '~' && (s[1] == '/' || s[1] == 0) && home && *home) {
        size_t n = strlen(home) + strlen(s);
        char *r = malloc(n + 1);
        if (r) snprintf(r, n + 1, "%s%s", home, s + 1);
        return r;
    }
    return strdup(s);
}

static char *join2(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *r = malloc(n);
    if (r) snprintf(r, n, "%s/%s", a, b);
    return r;
}

/* $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (malloc'd; NULL if unknown) */
static char *hf_home(const blipc_hub_params *p) {
    const char *v = env(p, "HF_HOME");
    if (v) return expand_user(v);
    v = env(p, "XDG_CACHE_HOME");
    if (v) return join2(v, "huggingface");
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    return join2(home, ".cache/huggingface");
}

static char *read_token_file(const char *path) {
    char *txt = NULL;
    size_t n;
    if (!blipc__file_exists(path) || blipc__read_file(path, 4096, &txt, &n, NULL)) return NULL;
    char *s = txt;
    while (isspace((unsigned char)*s)) s++;
    size_t k = strlen(s);
    while (k && isspace((unsigned char)s[k - 1])) s[--k] = 0;
    char *r = k ? strdup(s) : NULL;
    free(txt);
    return r;
}

blipc_status blipc_hub_open(const blipc_hub_params *p, blipc_hub **out, char *errbuf, size_t errbuf_size) {
    blipc_err e = {0};
    if (!out) {
        blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_hub_open: out is NULL");
        blipc__err_copy(&e, errbuf, errbuf_size);
        return e.status;
    }
    *out = NULL;
    blipc_hub_params d;
    if (!p) {
        blipc_hub_default_params(&d);
        p = &d;
    }
    blipc_hub *h = calloc(1, sizeof *h);
    if (!h) {
        blipc__errf(&e, BLIPC_ERR_NOMEM, "blipc_hub_open: out of memory");
        blipc__err_copy(&e, errbuf, errbuf_size);
        return e.status;
    }
    h->allow_pull = p->allow_pull;
    h->symlinks = p->symlinks;
    h->verify = p->verify;
    h->max_retries = p->max_retries < 0 ? 0 : p->max_retries > 100 ? 100 : p->max_retries;
    h->retry_delay_ms = p->retry_delay_ms < 0 ? 0 : p->retry_delay_ms;
    h->connect_timeout_s = p->connect_timeout_s > 0 ? p->connect_timeout_s : 15;
    h->stall_timeout_s = p->stall_timeout_s > 0 ? p->stall_timeout_s : 60;
    h->progress = p->progress;
    h->progress_user = p->progress_user;
    h->log.fn = p->log_fn;
    h->log.user = p->log_user;
    h->offline = p->offline ? 1 : env_true(env(p, "HF_HUB_OFFLINE"));

    const char *ep = p->endpoint ? p->endpoint : env(p, "HF_ENDPOINT");
    h->endpoint = strdup(ep ? ep : DEFAULT_ENDPOINT);
    char *home = NULL;
    if (p->cache_dir) {
        h->cache_dir = expand_user(p->cache_dir);
    } else if (env(p, "HF_HUB_CACHE")) {
        h->cache_dir = expand_user(env(p, "HF_HUB_CACHE"));
    } else if (env(p, "HUGGINGFACE_HUB_CACHE")) {
        h->cache_dir = expand_user(env(p, "HUGGINGFACE_HUB_CACHE"));
    } else {
        home = hf_home(p);
        if (!home) {
            blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "cannot locate the Hugging Face cache: HOME is not set; set "
                        "HF_HUB_CACHE or HF_HOME");
            goto fail;
        }
        h->cache_dir = join2(home, "hub");
    }
    if (p->token) {
        h->token = *p->token ? strdup(p->token) : NULL;
    } else if (env(p, "HF_TOKEN")) {
        h->token = strdup(env(p, "HF_TOKEN"));
    } else if (env(p, "HUGGING_FACE_HUB_TOKEN")) {
        h->token = strdup(env(p, "HUGGING_FACE_HUB_TOKEN"));
    } else if (p->use_env) {
        char *tp = env(p, "HF_TOKEN_PATH") ? expand_user(env(p, "HF_TOKEN_PATH")) : NULL;
        if (!tp) {
            if (!home) home = hf_home(p);
            if (home) tp = join2(home, "token");
        }
        if (tp) h->token = read_token_file(tp);
        free(tp);
    }
    if (!h->endpoint || !h->cache_dir) {
        blipc__errf(&e, BLIPC_ERR_NOMEM, "blipc_hub_open: out of memory");
        goto fail;
    }
    for (size_t n = strlen(h->endpoint); n > 0 && h->endpoint[n - 1] == '/'; n--) h->endpoint[n - 1] = 0;
    if (strncmp(h->endpoint, "https://", 8) && strncmp(h->endpoint, "http://", 7)) {
        blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "endpoint '%s' (HF_ENDPOINT) is not an http(s) URL", h->endpoint);
        goto fail;
    }
    for (size_t n = strlen(h->cache_dir); n > 1 && h->cache_dir[n - 1] == '/'; n--) h->cache_dir[n - 1] = 0;
    if (blipc__hub_load_manifest(h, p->manifest_path, p->use_env, &e) != BLIPC_OK) goto fail;
    free(home);
    *out = h;
    return BLIPC_OK;
fail:
    free(home);
    blipc__err_copy(&e, errbuf, errbuf_size);
    blipc_hub_free(h);
    return e.status;
}

void blipc_hub_free(blipc_hub *h) {
    if (!h) return;
    if (h->curl) curl_easy_cleanup(h->curl);
    cJSON_Delete(h->manifest);
    free(h->endpoint);
    if (h->token) {
        memset(h->token, 0, strlen(h->token));
        free(h->token);
    }
    free(h->cache_dir);
    free(h);
}

const char *blipc_hub_errmsg(const blipc_hub *h) { return h ? h->err.msg : "hub handle is NULL"; }
const char *blipc_hub_cache_dir(const blipc_hub *h) { return h ? h->cache_dir : NULL; }
int blipc_hub_is_offline(const blipc_hub *h) { return h ? h->offline : 1; }

static blipc_status out_path(const char *path, char *dir, size_t cap, blipc_err *e) {
    if (!dir) return BLIPC_OK;
    size_t n = strlen(path);
    if (n + 1 > cap)
        return blipc__errf(e, BLIPC_ERR_BUFFER_TOO_SMALL, "output buffer of %zu bytes is too small for %s (%zu)", cap,
                           path, n + 1);
    memcpy(dir, path, n + 1);
    return BLIPC_OK;
}

/* ------------------------------------------------------------------ pull */

typedef struct pull_file {
    char name[512];
    char etag[160];
    char url[2048];
    uint64_t size;
    uint64_t have; /* bytes already in an .incomplete */
} pull_file;

typedef struct pull_ctx {
    blipc_hub *h;
    const blipc__hub_spec *sp;
    char repo_dir[BLIPC_HUB_PATH_MAX];
    char commit[41];
    char rev_q[800];          /* revision used in URLs (the commit once known) */
    int have_listing;
    blipc__strlist listing;
    blipc_hub_progress prog;
} pull_ctx;

static int backoff_ms(const blipc_hub *h, int attempt) {
    long d = h->retry_delay_ms;
    for (int i = 0; i < attempt && d < 30000; i++) d *= 2;
    return d > 30000 ? 30000 : (int)d;
}

static int notify_retry(pull_ctx *c, const char *file, int attempt, const char *why) {
    blipc_hub *h = c->h;
    blipc__logf(&h->log, BLIPC_LOG_INFO, "%s: %s; retry %d of %d", file, why, attempt, h->max_retries);
    if (h->progress) {
        blipc_hub_progress p = c->prog;
        p.event = BLIPC_HUB_EVENT_RETRY;
        p.filename = file;
        p.message = why;
        if (!h->progress(h->progress_user, &p)) return 0;
    }
    blipc__hub_sleep_ms(backoff_ms(h, attempt - 1));
    return 1;
}

static blipc_status file_url(pull_ctx *c, const char *name, char *url, size_t cap, blipc_err *e) {
    char fq[1600];
    BLIPC_TRY(blipc__url_quote(name, 1, fq, sizeof fq, e));
    int n = snprintf(url, cap, "%s/%s/resolve/%s/%s", c->h->endpoint, c->sp->repo, c->rev_q, fq);
    if (n < 0 || (size_t)n >= cap) return blipc__errf(e, BLIPC_ERR_LIMIT, "URL too long for %s", name);
    return BLIPC_OK;
}

static void set_commit(pull_ctx *c, const char *commit) {
    if (c->commit[0] || !blipc__hub_is_commit(commit)) return;
    memcpy(c->commit, commit, 41);
    snprintf(c->rev_q, sizeof c->rev_q, "%s", commit); /* later requests pin the snapshot */
    c->prog.commit = c->commit;
}

/* HEAD a file: etag, size, download URL. not_found (may be NULL) turns a 404 into *not_found = 1. */
static blipc_status head_file(pull_ctx *c, const char *name, pull_file *f, int *not_found, blipc_err *e) {
    blipc_hub *h = c->h;
    char url[2048], what[800];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    BLIPC_TRY(file_url(c, name, url, sizeof url, e));
    snprintf(what, sizeof what, "%s@%s: %s", c->sp->repo, c->sp->rev, name);
    blipc__http_resp r;
    for (int attempt = 0;; attempt++) {
        blipc_status st = blipc__http_head(h, url, &r, e);
        if (st == BLIPC_OK && (r.status < 300 || (r.status < 400 && r.location[0]))) break;
        if (st == BLIPC_OK && r.status == 404 && not_found && (!r.error_code[0] || !strcmp(r.error_code, "EntryNotFound"))) {
            *not_found = 1;
            if (blipc__hub_is_commit(r.commit)) { /* remember it like huggingface_hub's .no_exist/ */
                char ne[BLIPC_HUB_PATH_MAX];
                if (snprintf(ne, sizeof ne, "%s/.no_exist/%s/%s", c->repo_dir, r.commit, name) < (int)sizeof ne &&
                    blipc__mkdirs_parent(ne, NULL) == BLIPC_OK) {
                    int fd = open(ne, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
                    if (fd >= 0) close(fd);
                }
            }
            return BLIPC_OK;
        }
        if (st == BLIPC_OK && !blipc__http_transient(&r, st)) return blipc__http_status_error(h, &r, what, e);
        if (st != BLIPC_OK && !blipc__http_transient(&r, st)) return st;
        if (attempt >= h->max_retries) {
            if (st == BLIPC_OK) blipc__http_status_error(h, &r, what, e);
            return blipc__err_prefix(e, "%s: giving up after %d tries", what, attempt + 1);
        }
        char why[300];
        if (st == BLIPC_OK) snprintf(why, sizeof why, "HTTP %ld", r.status);
        else snprintf(why, sizeof why, "%.290s", e ? e->msg : "network error");
        if (!notify_retry(c, name, attempt + 1, why)) return blipc__errf(e, BLIPC_ERR_ABORTED, "%s: aborted", what);
    }
    if (!r.commit[0])
        return blipc__errf(e, BLIPC_ERR_NETWORK,
                           "%s: the server's answer has no X-Repo-Commit header: %s does not look like a Hugging Face "
                           "Hub (check HF_ENDPOINT, proxy and firewall settings)", what, h->endpoint);
    if (!blipc__hub_is_commit(r.commit))
        return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: X-Repo-Commit '%s' is not a commit hash", what, r.commit);
    if (c->commit[0] && strcmp(c->commit, r.commit))
        return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: served from commit %s, expected %s", what, r.commit, c->commit);
    set_commit(c, r.commit);
    if (!r.etag[0])
        return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: the server sent no ETag: cannot verify the file", what);
    for (const char *p = r.etag; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: unusable ETag '%s'", what, r.etag);
    if (r.size < 0) return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: the server sent no file size", what);
    snprintf(f->etag, sizeof f->etag, "%s", r.etag);
    f->size = (uint64_t)r.size;
    if (r.status >= 300 && r.location[0]) snprintf(f->url, sizeof f->url, "%s", r.location);
    else snprintf(f->url, sizeof f->url, "%s", url);
    return BLIPC_OK;
}

static int etag_kind(const char *etag) { /* 2 = sha256 (LFS), 1 = git sha1, 0 = unknown */
    size_t n = strlen(etag);
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)etag[i])) return 0;
    return n == 64 ? 2 : n == 40 ? 1 : 0;
}

static blipc_status check_hash(const char *path, const pull_file *f, blipc_err *e) {
    int k = etag_kind(f->etag);
    if (!k) return BLIPC_OK;
    char hex[2 * 64 + 1];
    BLIPC_TRY(blipc__hub_hash_file(path, k == 1, hex, e));
    if (strcasecmp(hex, f->etag))
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: %s %s does not match the Hub's %s", path,
                           k == 2 ? "sha256" : "git oid", hex, f->etag);
    return BLIPC_OK;
}

static uint64_t file_size_of(const char *path, int *exists) {
    struct stat st;
    *exists = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    return *exists ? (uint64_t)st.st_size : 0;
}

/* Is the file already in the snapshot (or its blob in blobs/)? Links the blob if only the
 * pointer is missing; removes files that fail the checks. Returns 1 when nothing to download. */
static int already_cached(pull_ctx *c, const pull_file *f, blipc_status *st, blipc_err *e) {
    blipc_hub *h = c->h;
    char ptr[BLIPC_HUB_PATH_MAX], blob[BLIPC_HUB_PATH_MAX];
    *st = BLIPC_OK;
    if ((*st = blipc__hub_pathf(ptr, sizeof ptr, e, "%s/snapshots/%s/%s", c->repo_dir, c->commit, f->name)) ||
        (*st = blipc__hub_pathf(blob, sizeof blob, e, "%s/blobs/%s", c->repo_dir, f->etag)))
        return 1;
    int ex;
    uint64_t sz = file_size_of(ptr, &ex);
    if (ex) {
        blipc_err tmp = {0};
        if (sz == f->size && (!h->verify || check_hash(ptr, f, &tmp) == BLIPC_OK)) return 1;
        blipc__logf(&h->log, BLIPC_LOG_WARN, "%s: cached copy is corrupt (%s); fetching it again", f->name,
                    sz != f->size ? "wrong size" : tmp.msg);
        struct stat ls;
        if (lstat(ptr, &ls) == 0 && S_ISLNK(ls.st_mode)) unlink(blob);
        unlink(ptr);
    }
    sz = file_size_of(blob, &ex);
    if (ex) {
        blipc_err tmp = {0};
        if (sz == f->size && (!h->verify || check_hash(blob, f, &tmp) == BLIPC_OK)) {
            *st = blipc__hub_link_pointer(h, c->repo_dir, c->commit, f->name, f->etag, 0, e);
            return 1;
        }
        blipc__logf(&h->log, BLIPC_LOG_WARN, "%s: blob %s is corrupt; fetching it again", f->name, blob);
        unlink(blob);
    }
    return 0;
}

static blipc_status hash_prefix(int fd, uint64_t n, void *ctx, const char *path, blipc_err *e) {
    char *buf = malloc(1 << 20);
    if (!buf) return blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory hashing %s", path);
    uint64_t off = 0;
    while (off < n) {
        size_t want = n - off > (1 << 20) ? (1 << 20) : (size_t)(n - off);
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return blipc__errf(e, BLIPC_ERR_IO, "cannot read %s: %s", path, r ? strerror(errno) : "short file");
        }
        blipc__hash_update(ctx, buf, (size_t)r);
        off += (uint64_t)r;
    }
    free(buf);
    return BLIPC_OK;
}

/* Download one blob (under its lock), verify it, move it into blobs/ and link the pointer. */
static blipc_status download_file(pull_ctx *c, pull_file *f, uint64_t pull_base, blipc_err *e) {
    blipc_hub *h = c->h;
    char blob[BLIPC_HUB_PATH_MAX], inc[BLIPC_HUB_PATH_MAX + 16], what[800];
    BLIPC_TRY(blipc__hub_pathf(blob, sizeof blob, e, "%s/blobs/%s", c->repo_dir, f->etag));
    BLIPC_TRY(blipc__hub_pathf(inc, sizeof inc, e, "%s.incomplete", blob));
    snprintf(what, sizeof what, "%s@%s: %s", c->sp->repo, c->commit, f->name);
    BLIPC_TRY(blipc__mkdirs_parent(blob, e));
    int lock;
    BLIPC_TRY(blipc__hub_lock(h, c->sp->repo, f->etag, f->name, &lock, e));
    int ex;
    char ptr[BLIPC_HUB_PATH_MAX];
    if (blipc__hub_pathf(ptr, sizeof ptr, NULL, "%s/snapshots/%s/%s", c->repo_dir, c->commit, f->name) == BLIPC_OK &&
        file_size_of(ptr, &ex) == f->size && ex) { /* another process put it there (without symlinks) */
        blipc__hub_unlock(lock);
        return BLIPC_OK;
    }
    uint64_t sz = file_size_of(blob, &ex);
    if (ex && sz == f->size) { /* another process finished it while we waited */
        blipc_status st = blipc__hub_link_pointer(h, c->repo_dir, c->commit, f->name, f->etag, 0, e);
        blipc__hub_unlock(lock);
        return st;
    }
    int kind = etag_kind(f->etag);
    blipc_status st = BLIPC_OK;
    int fd = -1;
    blipc__dl dl = {0};
    dl.hub = h;
    dl.prog = &c->prog;
    dl.pull_base = pull_base;
    dl.expected = f->size;
    dl.git = kind == 1;
    int with_auth = blipc__url_same_host(f->url, h->endpoint);
    int attempt = 0, bad_sums = 0;
    for (;;) {
        if (fd < 0) {
            fd = open(inc, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
            if (fd < 0) {
                st = blipc__errf(e, BLIPC_ERR_IO, "cannot create %s: %s", inc, strerror(errno));
                break;
            }
            struct stat s;
            fstat(fd, &s);
            dl.offset = (uint64_t)s.st_size;
            if (dl.offset > f->size) {
                if (ftruncate(fd, 0) != 0) {
                    st = blipc__errf(e, BLIPC_ERR_IO, "cannot truncate %s: %s", inc, strerror(errno));
                    break;
                }
                dl.offset = 0;
            }
            lseek(fd, (off_t)dl.offset, SEEK_SET);
            dl.fd = fd;
            dl.hash = blipc__hash_new(dl.git, f->size);
            if (!dl.hash) {
                st = blipc__errf(e, BLIPC_ERR_NOMEM, "cannot create a hash context");
                break;
            }
            if ((st = hash_prefix(fd, dl.offset, dl.hash, inc, e))) break;
            c->prog.event = BLIPC_HUB_EVENT_FILE_START;
            c->prog.filename = f->name;
            c->prog.file_done = dl.offset;
            c->prog.file_total = f->size;
            c->prog.bytes_done = pull_base + dl.offset;
            if (dl.offset)
                blipc__logf(&h->log, BLIPC_LOG_INFO, "%s: resuming at %llu of %llu bytes", f->name,
                            (unsigned long long)dl.offset, (unsigned long long)f->size);
            if (h->progress && !h->progress(h->progress_user, &c->prog)) {
                st = blipc__errf(e, BLIPC_ERR_ABORTED, "%s: aborted", what);
                break;
            }
        }
        char why[600] = "";
        if (dl.offset < f->size) {
            blipc__http_resp r;
            st = blipc__http_get_file(h, f->url, with_auth, &dl, &r, e);
            if (st == BLIPC_OK && r.status == 416) { /* our partial file is not a prefix the server knows */
                if (ftruncate(fd, 0) != 0) {
                    st = blipc__errf(e, BLIPC_ERR_IO, "cannot truncate %s: %s", inc, strerror(errno));
                    break;
                }
                blipc__hash_free(dl.hash);
                dl.hash = NULL;
                close(fd);
                fd = -1;
                snprintf(why, sizeof why, "the server refused to resume (HTTP 416): starting over");
            } else if (st == BLIPC_OK && r.status != 200 && r.status != 206) {
                if (!blipc__http_transient(&r, st)) {
                    st = blipc__http_status_error(h, &r, what, e);
                    break;
                }
                snprintf(why, sizeof why, "HTTP %ld", r.status);
            } else if (st == BLIPC_OK && dl.offset < f->size) {
                snprintf(why, sizeof why, "connection closed at %llu of %llu bytes", (unsigned long long)dl.offset,
                         (unsigned long long)f->size);
            } else if (st == BLIPC_ERR_NETWORK) {
                snprintf(why, sizeof why, "%.590s", e ? e->msg : "network error");
            } else if (st != BLIPC_OK) {
                if (st == BLIPC_ERR_IO) blipc__err_prefix(e, "%s: %s", what, inc);
                break; /* disk error, abort, out of memory: keep the .incomplete for later */
            }
            if (dl.written > 0) attempt = 0; /* progress was made: a flaky line is not a failure */
        }
        if (!why[0] && dl.offset == f->size) {
            char hex[129] = "";
            if (fdatasync(fd) != 0 && errno != EINVAL && errno != EROFS) {
                st = blipc__errf(e, BLIPC_ERR_IO, "%s: %s: cannot flush to disk: %s", what, inc, strerror(errno));
                break;
            }
            blipc__hash_hex(dl.hash, hex);
            dl.hash = NULL;
            if (kind && strcasecmp(hex, f->etag)) {
                /* wrong bytes: never keep them, start over */
                snprintf(why, sizeof why, "checksum mismatch: %s of the download is %s, the Hub says %s",
                         kind == 2 ? "sha256" : "git oid", hex, f->etag);
                close(fd);
                fd = -1;
                unlink(inc);
                bad_sums++; /* never reset by progress: bytes arrived, but wrong ones */
                if (bad_sums > h->max_retries) {
                    st = blipc__errf(e, BLIPC_ERR_NETWORK, "%s: %s (after %d tries)", what, why, bad_sums);
                    break;
                }
                if (!notify_retry(c, f->name, bad_sums, why)) {
                    st = blipc__errf(e, BLIPC_ERR_ABORTED, "%s: aborted", what);
                    break;
                }
                continue;
            }
            if (!kind) blipc__logf(&h->log, BLIPC_LOG_DEBUG, "%s: ETag %s is no hash: checked by size only", f->name, f->etag);
            close(fd);
            fd = -1;
            if (rename(inc, blob) != 0) {
                st = blipc__errf(e, BLIPC_ERR_IO, "cannot move %s to %s: %s", inc, blob, strerror(errno));
                break;
            }
            st = blipc__hub_link_pointer(h, c->repo_dir, c->commit, f->name, f->etag, 1, e);
            break;
        }
        attempt++;
        if (attempt > h->max_retries) {
            st = blipc__errf(e, BLIPC_ERR_NETWORK, "%s: download failed after %d tries (%s); the partial file %s is kept "
                             "and the next pull resumes it", what, attempt, why, inc);
            break;
        }
        if (!notify_retry(c, f->name, attempt, why)) {
            st = blipc__errf(e, BLIPC_ERR_ABORTED, "%s: aborted", what);
            break;
        }
        st = BLIPC_OK;
    }
    if (dl.hash) blipc__hash_free(dl.hash);
    if (fd >= 0) close(fd);
    blipc__hub_unlock(lock);
    if (!st) {
        c->prog.event = BLIPC_HUB_EVENT_FILE_DONE;
        c->prog.file_done = f->size;
        c->prog.bytes_done = pull_base + f->size;
        if (h->progress) h->progress(h->progress_user, &c->prog);
    }
    c->prog.filename = NULL; /* f may not outlive this call: never leave a dangling name in the event */
    return st;
}

/* Make sure one (small) file is in the snapshot, downloading it without a plan event. */
static blipc_status fetch_small(pull_ctx *c, const char *name, int *not_found, blipc_err *e) {
    pull_file f;
    int nf = 0;
    BLIPC_TRY(head_file(c, name, &f, not_found ? &nf : NULL, e));
    if (nf) {
        *not_found = 1;
        return BLIPC_OK;
    }
    if (not_found) *not_found = 0;
    blipc_status st;
    if (already_cached(c, &f, &st, e)) return st;
    c->prog.file_index = 0;
    c->prog.n_files = 1;
    c->prog.bytes_total = f.size;
    return download_file(c, &f, 0, e);
}

static blipc_status read_snapshot_file(pull_ctx *c, const char *name, char **txt, size_t max, blipc_err *e) {
    char p[BLIPC_HUB_PATH_MAX];
    BLIPC_TRY(blipc__hub_pathf(p, sizeof p, e, "%s/snapshots/%s/%s", c->repo_dir, c->commit, name));
    size_t n;
    return blipc__read_file(p, max, txt, &n, e);
}

/* GET the model info API: commit and file listing. Returns BLIPC_OK with have_listing = 0
 * when the endpoint has no usable API (a plain mirror): files are then probed one by one. */
static blipc_status model_info(pull_ctx *c, blipc_err *e) {
    blipc_hub *h = c->h;
    char url[2048], rq[800], what[600];
    BLIPC_TRY(blipc__url_quote(c->sp->rev, 0, rq, sizeof rq, e));
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", h->endpoint, c->sp->repo, rq);
    snprintf(what, sizeof what, "%s@%s", c->sp->repo, c->sp->rev);
    blipc__http_resp r;
    char *body = NULL;
    blipc_status st;
    for (int attempt = 0;; attempt++) {
        st = blipc__http_get_mem(h, url, 64u << 20, &body, NULL, &r, e);
        if (st == BLIPC_OK && r.status == 200) break;
        free(body);
        body = NULL;
        if (st == BLIPC_OK && (r.status == 401 || r.status == 403 || (r.status == 404 && r.error_code[0])))
            return blipc__http_status_error(h, &r, what, e);
        if (st != BLIPC_OK && st != BLIPC_ERR_NETWORK) return st;
        if (st == BLIPC_ERR_NETWORK && (!blipc__http_transient(&r, st) || attempt >= h->max_retries))
            return blipc__err_prefix(e, "%s", what);
        if (!blipc__http_transient(&r, st) || attempt >= h->max_retries) {
            blipc__logf(&h->log, BLIPC_LOG_WARN, "%s: no model info from %s (%s); probing files one by one", what,
                        h->endpoint, st ? (e ? e->msg : "error") : "HTTP error");
            return BLIPC_OK;
        }
        char why[300];
        snprintf(why, sizeof why, "model info: %.280s", st ? (e ? e->msg : "network error") : "server error");
        if (!notify_retry(c, "(model info)", attempt + 1, why)) return blipc__errf(e, BLIPC_ERR_ABORTED, "%s: aborted", what);
    }
    cJSON *j = cJSON_Parse(body);
    free(body);
    if (!j) {
        blipc__logf(&h->log, BLIPC_LOG_WARN, "%s: model info is not JSON; probing files one by one", what);
        return BLIPC_OK;
    }
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(j, "siblings"), *it;
    st = BLIPC_OK;
    if (cJSON_IsString(sha) && blipc__hub_is_commit(sha->valuestring) && cJSON_IsArray(sib)) {
        set_commit(c, sha->valuestring);
        cJSON_ArrayForEach(it, sib) {
            const cJSON *rf = cJSON_GetObjectItemCaseSensitive(it, "rfilename");
            if (cJSON_IsString(rf) && (st = blipc__strlist_add(&c->listing, rf->valuestring, e))) break;
        }
        c->have_listing = !st;
    }
    cJSON_Delete(j);
    return st;
}

/* Is an optional file there? (listing, else HEAD) */
static blipc_status exists_remote(pull_ctx *c, const char *name, int *yes, pull_file *f, blipc_err *e) {
    if (c->have_listing) {
        *yes = blipc__strlist_has(&c->listing, name);
        if (*yes) return head_file(c, name, f, NULL, e);
        return BLIPC_OK;
    }
    int nf = 0;
    BLIPC_TRY(head_file(c, name, f, &nf, e));
    *yes = !nf;
    return BLIPC_OK;
}

static blipc_status pull_impl(blipc_hub *h, const blipc__hub_spec *sp, char *dir, size_t cap, blipc_err *e) {
    if (h->offline)
        return blipc__errf(e, BLIPC_ERR_NETWORK, "%s@%s: cannot download in offline mode (HF_HUB_OFFLINE is set)",
                           sp->repo, sp->rev);
    pull_ctx c;
    memset(&c, 0, sizeof c);
    c.h = h;
    c.sp = sp;
    c.prog.repo_id = sp->repo;
    c.prog.commit = "";
    BLIPC_TRY(blipc__hub_repo_dir(h, sp->repo, c.repo_dir, sizeof c.repo_dir, e));
    BLIPC_TRY(blipc__url_quote(sp->rev, 0, c.rev_q, sizeof c.rev_q, e));
    if (blipc__hub_is_commit(sp->rev)) set_commit(&c, sp->rev);
    blipc_status st = model_info(&c, e);
    pull_file *files = NULL;
    size_t nfiles = 0;
    blipc__hub_kind k = {0};
    blipc__strlist names = {0};
    char *txt = NULL;
    cJSON *cfg = NULL;
    char cfg_what[600];
    if (st) goto done;
    if (c.have_listing && !blipc__strlist_has(&c.listing, "config.json")) {
        st = blipc__errf(e, BLIPC_ERR_NOT_FOUND, "%s@%s has no config.json: not a transformers model repository",
                         sp->repo, sp->rev);
        goto done;
    }
    /* 1. config.json decides the kind, hence the files */
    if ((st = fetch_small(&c, "config.json", NULL, e))) goto done;
    if ((st = read_snapshot_file(&c, "config.json", &txt, 16u << 20, e))) goto done;
    snprintf(cfg_what, sizeof cfg_what, "%s@%s: config.json", sp->repo, c.commit);
    cfg = cJSON_Parse(txt);
    free(txt);
    txt = NULL;
    if (!cfg) {
        st = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not valid JSON", cfg_what);
        goto done;
    }
    if ((st = blipc__hub_detect_kind(h, cfg, cfg_what, &k, e))) goto done;
    if ((st = blipc__hub_check_config(h, cfg, cfg_what, k.name, sp->repo, e))) goto done;
    /* as huggingface_hub: the ref is written as soon as the commit is known, so an interrupted
     * pull leaves a snapshot whose missing files resolve() can name */
    if ((st = blipc__hub_write_ref(c.repo_dir, sp->rev, c.commit, e))) goto done;
    /* 2. weights: sharded (index) or a single file */
    int idx_missing = 1;
    if (!c.have_listing || blipc__strlist_has(&c.listing, "model.safetensors.index.json"))
        if ((st = fetch_small(&c, "model.safetensors.index.json", &idx_missing, e))) goto done;
    if (!idx_missing) {
        if ((st = read_snapshot_file(&c, "model.safetensors.index.json", &txt, 64u << 20, e))) goto done;
        char p[900];
        snprintf(p, sizeof p, "%s@%s: model.safetensors.index.json", sp->repo, c.commit);
        st = blipc__hub_index_shards(txt, p, &names, e);
        free(txt);
        txt = NULL;
        if (st) goto done;
    } else {
        if (c.have_listing && !blipc__strlist_has(&c.listing, "model.safetensors")) {
            st = blipc__errf(e, BLIPC_ERR_UNSUPPORTED,
                             "%s@%s has no safetensors weights (no model.safetensors or model.safetensors.index.json); "
                             "libblipc reads safetensors checkpoints only", sp->repo, sp->rev);
            goto done;
        }
        if ((st = blipc__strlist_add(&names, "model.safetensors", e))) goto done;
    }
    /* 3. metadata of every file: what is required, what exists, what is missing locally */
    size_t nreq_w = names.n;
    for (size_t i = 0; i < k.required.n && !st; i++) st = blipc__strlist_add(&names, k.required.v[i], e);
    size_t nreq = names.n;
    for (size_t i = 0; i < k.optional.n && !st; i++) st = blipc__strlist_add(&names, k.optional.v[i], e);
    if (st) goto done;
    (void)nreq_w;
    files = calloc(names.n ? names.n : 1, sizeof *files);
    if (!files) {
        st = blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory (file list)");
        goto done;
    }
    uint64_t total = 0, have = 0;
    for (size_t i = 0; i < names.n; i++) {
        pull_file f;
        int yes = 1;
        if (!strcmp(names.v[i], "config.json")) continue; /* already there */
        if (i < nreq) {
            if (c.have_listing && !blipc__strlist_has(&c.listing, names.v[i])) {
                st = blipc__errf(e, BLIPC_ERR_NOT_FOUND, "%s@%s has no %s, which a %s model needs", sp->repo,
                                 c.commit, names.v[i], k.name);
                goto done;
            }
            int nf = 0;
            if ((st = head_file(&c, names.v[i], &f, &nf, e))) goto done;
            if (nf) {
                st = blipc__errf(e, BLIPC_ERR_NOT_FOUND, "%s@%s has no %s, which a %s model needs", sp->repo,
                                 c.commit[0] ? c.commit : sp->rev, names.v[i], k.name);
                goto done;
            }
        } else {
            if ((st = exists_remote(&c, names.v[i], &yes, &f, e))) goto done;
            if (!yes) continue;
        }
        if (already_cached(&c, &f, &st, e)) {
            if (st) goto done;
            continue;
        }
        char inc[BLIPC_HUB_PATH_MAX + 16];
        if ((st = blipc__hub_pathf(inc, sizeof inc, e, "%s/blobs/%s.incomplete", c.repo_dir, f.etag))) goto done;
        int ex;
        f.have = file_size_of(inc, &ex);
        if (f.have > f.size) f.have = 0;
        total += f.size;
        have += f.have;
        files[nfiles++] = f;
    }
    /* 4. the plan, a disk-space check, the downloads */
    if (nfiles) {
        char blobs[BLIPC_HUB_PATH_MAX];
        if ((st = blipc__hub_pathf(blobs, sizeof blobs, e, "%s/blobs", c.repo_dir))) goto done;
        if ((st = blipc__mkdirs(blobs, e))) goto done;
        struct statvfs vfs;
        if (statvfs(blobs, &vfs) == 0) {
            uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
            if (avail < total - have) {
                st = blipc__errf(e, BLIPC_ERR_IO, "%s: not enough disk space in %s: %llu bytes to download, %llu "
                                 "available (set HF_HUB_CACHE to a larger disk)", sp->repo, blobs,
                                 (unsigned long long)(total - have), (unsigned long long)avail);
                goto done;
            }
        }
        blipc__logf(&h->log, BLIPC_LOG_INFO, "%s@%s: downloading %zu file(s), %llu bytes", sp->repo, c.commit, nfiles,
                    (unsigned long long)(total - have));
        c.prog.event = BLIPC_HUB_EVENT_PLAN;
        c.prog.filename = NULL;
        c.prog.n_files = (int)nfiles;
        c.prog.bytes_total = total;
        c.prog.bytes_done = have;
        if (h->progress && !h->progress(h->progress_user, &c.prog)) {
            st = blipc__errf(e, BLIPC_ERR_ABORTED, "%s: aborted", sp->repo);
            goto done;
        }
        uint64_t base = 0;
        for (size_t i = 0; i < nfiles; i++) {
            c.prog.file_index = (int)i;
            if ((st = download_file(&c, &files[i], base, e))) goto done;
            base += files[i].size;
        }
    }
    /* 5. refs/<rev> and a final check of the snapshot */
    if ((st = blipc__hub_write_ref(c.repo_dir, sp->rev, c.commit, e))) goto done;
    char snap[BLIPC_HUB_PATH_MAX];
    if ((st = blipc__hub_pathf(snap, sizeof snap, e, "%s/snapshots/%s", c.repo_dir, c.commit))) goto done;
    if ((st = blipc__hub_check_dir(h, snap, sp->repo, NULL, 0, NULL, e))) goto done;
    st = out_path(snap, dir, cap, e);
done:
    cJSON_Delete(cfg);
    free(txt);
    free(files);
    blipc__strlist_free(&names);
    blipc__strlist_free(&c.listing);
    blipc__hub_kind_free(&k);
    return st;
}

blipc_status blipc_hub_pull(blipc_hub *h, const char *repo_spec, char *dir, size_t cap) {
    if (!h) return BLIPC_ERR_INVALID_ARG;
    blipc__err_clear(&h->err);
    blipc__hub_spec sp;
    BLIPC_TRY(blipc__hub_parse_spec(repo_spec, &sp, &h->err));
    return pull_impl(h, &sp, dir, cap, &h->err);
}

/* --------------------------------------------------------------- resolve */

static int looks_like_path(const char *s) {
    if (s[0] == '/' || s[0] == '.' || s[0] == '~') return 1;
    const char *a = strchr(s, '/');
    return a && strchr(a + 1, '/') && !strchr(s, '@');
}

blipc_status blipc_hub_resolve(blipc_hub *h, const char *model, char *dir, size_t cap) {
    if (!h) return BLIPC_ERR_INVALID_ARG;
    blipc_err *e = &h->err;
    blipc__err_clear(e);
    if (!model || !*model) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "blipc_hub_resolve: empty model name");
    if (blipc__dir_exists(model)) {
        BLIPC_TRY(blipc__hub_check_dir(h, model, NULL, NULL, 0, NULL, e));
        return out_path(model, dir, cap, e);
    }
    if (looks_like_path(model))
        return blipc__errf(e, BLIPC_ERR_IO, "%s: no such model directory", model);
    blipc__hub_spec sp;
    BLIPC_TRY(blipc__hub_parse_spec(model, &sp, e));
    char rd[BLIPC_HUB_PATH_MAX], snap[BLIPC_HUB_PATH_MAX], commit[41];
    BLIPC_TRY(blipc__hub_repo_dir(h, sp.repo, rd, sizeof rd, e));
    blipc__strlist missing = {0};
    blipc_err ce = {0};
    blipc_status cst = blipc__hub_cached_commit(rd, sp.rev, commit, &ce);
    if (cst == BLIPC_OK) {
        BLIPC_TRY(blipc__hub_pathf(snap, sizeof snap, e, "%s/snapshots/%s", rd, commit));
        cst = blipc__hub_check_dir(h, snap, sp.repo, NULL, 0, &missing, &ce);
        if (cst == BLIPC_OK) {
            blipc__strlist_free(&missing);
            return out_path(snap, dir, cap, e);
        }
        if (cst != BLIPC_ERR_IO) { /* a wrong or unsupported model: downloading will not help */
            blipc__strlist_free(&missing);
            *e = ce;
            return cst;
        }
    }
    size_t n_missing = missing.n;
    blipc__strlist_free(&missing);
    if (!h->offline && h->allow_pull) {
        if (cst != BLIPC_ERR_NOT_FOUND)
            blipc__logf(&h->log, BLIPC_LOG_INFO, "%s: cached snapshot incomplete (%s); pulling", model, ce.msg);
        return pull_impl(h, &sp, dir, cap, e);
    }
    const char *why = h->offline ? "offline: HF_HUB_OFFLINE is set" : "downloads disabled";
    if (cst == BLIPC_ERR_NOT_FOUND)
        return blipc__errf(e, BLIPC_ERR_NOT_FOUND,
                           "%s is not in the Hugging Face cache %s (%s): run `blipc-pull %s` on a machine with "
                           "network access and copy %s/ into the cache, or pass a model directory",
                           model, h->cache_dir, why, model, strrchr(rd, '/') + 1);
    return blipc__errf(e, n_missing ? BLIPC_ERR_NOT_FOUND : cst,
                       "%s: the cached snapshot is not usable (%s): %s; run `blipc-pull %s` with network access, or "
                       "pass a model directory", model, why, ce.msg, model);
}

blipc_status blipc_hub_check_dir(blipc_hub *h, const char *dir, const char *repo_id, char *kind, size_t kind_cap) {
    if (!h) return BLIPC_ERR_INVALID_ARG;
    blipc__err_clear(&h->err);
    if (!dir) return blipc__errf(&h->err, BLIPC_ERR_INVALID_ARG, "blipc_hub_check_dir: dir is NULL");
    blipc__strlist missing = {0};
    blipc_status st = blipc__hub_check_dir(h, dir, repo_id, kind, kind_cap, &missing, &h->err);
    blipc__strlist_free(&missing);
    return st;
}
