/* http.c — libcurl requests to the Hub (HEAD metadata, small GETs, resumable file GETs)
 * and the streaming hashes (sha256 for LFS blobs, git blob sha1 for the others). */
#include "hub_internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- hashing */

void *blipc__hash_new(int git, uint64_t size) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return NULL;
    if (EVP_DigestInit_ex(c, git ? EVP_sha1() : EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return NULL;
    }
    if (git) {
        char hdr[48];
        int n = snprintf(hdr, sizeof hdr, "blob %llu", (unsigned long long)size);
        EVP_DigestUpdate(c, hdr, (size_t)n + 1); /* includes the NUL */
    }
    return c;
}

int blipc__hash_update(void *ctx, const void *data, size_t n) {
    return EVP_DigestUpdate((EVP_MD_CTX *)ctx, data, n) == 1;
}

void blipc__hash_hex(void *ctx, char *hex) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex((EVP_MD_CTX *)ctx, md, &n);
    for (unsigned i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[2 * n] = 0;
    EVP_MD_CTX_free((EVP_MD_CTX *)ctx);
}

void blipc__hash_free(void *ctx) { EVP_MD_CTX_free((EVP_MD_CTX *)ctx); }

/* ---------------------------------------------------------------- helpers */

void blipc__hub_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

double blipc__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

blipc_status blipc__url_quote(const char *s, int keep_slash, char *out, size_t cap, blipc_err *e) {
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/');
        if (k + 4 >= cap) return blipc__errf(e, BLIPC_ERR_LIMIT, "URL too long for '%s'", s);
        if (plain) out[k++] = (char)*p;
        else k += (size_t)snprintf(out + k, cap - k, "%%%02X", *p);
    }
    out[k] = 0;
    return BLIPC_OK;
}

static size_t host_len(const char *u) {
    const char *p = strstr(u, "://");
    if (!p) return 0;
    p += 3;
    size_t n = strcspn(p, "/?#");
    return (size_t)(p - u) + n;
}

int blipc__url_same_host(const char *a, const char *b) {
    size_t na = host_len(a), nb = host_len(b);
    return na && na == nb && strncasecmp(a, b, na) == 0;
}

static void normalize_etag(const char *v, char *out, size_t cap) {
    while (isspace((unsigned char)*v)) v++;
    if (!strncmp(v, "W/", 2)) v += 2;
    size_t k = 0;
    for (; *v && k + 1 < cap; v++)
        if (*v != '"' && !isspace((unsigned char)*v)) out[k++] = *v;
    out[k] = 0;
}

/* ---------------------------------------------------------------- headers */

typedef struct hdr_state {
    blipc__http_resp *r;
    char etag[160], linked_etag[160];
    int64_t content_length, linked_size;
} hdr_state;

static void copy_trim(char *dst, size_t cap, const char *v, size_t n) {
    while (n && isspace((unsigned char)*v)) v++, n--;
    while (n && isspace((unsigned char)v[n - 1])) n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user) {
    hdr_state *hs = user;
    size_t n = size * nitems;
    if (n >= 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response (after a redirect): start over */
        blipc__http_resp *r = hs->r;
        long keep = r->status;
        memset(r, 0, sizeof *r);
        r->status = keep;
        r->size = r->range_start = -1;
        hs->etag[0] = hs->linked_etag[0] = 0;
        hs->content_length = hs->linked_size = -1;
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon) return n;
    size_t kn = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vn = n - kn - 1;
    char tmp[2048];
#define IS(name) (kn == strlen(name) && !strncasecmp(buf, name, kn))
    if (IS("ETag")) {
        copy_trim(tmp, sizeof tmp, v, vn);
        normalize_etag(tmp, hs->etag, sizeof hs->etag);
    } else if (IS("X-Linked-Etag")) {
        copy_trim(tmp, sizeof tmp, v, vn);
        normalize_etag(tmp, hs->linked_etag, sizeof hs->linked_etag);
    } else if (IS("X-Repo-Commit")) {
        copy_trim(hs->r->commit, sizeof hs->r->commit, v, vn);
    } else if (IS("Location")) {
        copy_trim(hs->r->location, sizeof hs->r->location, v, vn);
    } else if (IS("X-Error-Code")) {
        copy_trim(hs->r->error_code, sizeof hs->r->error_code, v, vn);
    } else if (IS("X-Error-Message")) {
        copy_trim(hs->r->error_message, sizeof hs->r->error_message, v, vn);
    } else if (IS("Content-Length")) {
        copy_trim(tmp, sizeof tmp, v, vn);
        hs->content_length = strtoll(tmp, NULL, 10);
    } else if (IS("X-Linked-Size")) {
        copy_trim(tmp, sizeof tmp, v, vn);
        hs->linked_size = strtoll(tmp, NULL, 10);
    } else if (IS("Content-Range")) { /* bytes START-END/TOTAL */
        copy_trim(tmp, sizeof tmp, v, vn);
        const char *p = tmp;
        if (!strncasecmp(p, "bytes", 5)) p += 5;
        while (*p == ' ') p++;
        if (isdigit((unsigned char)*p)) hs->r->range_start = strtoll(p, NULL, 10);
    }
#undef IS
    return n;
}

static void finish_headers(hdr_state *hs) {
    blipc__http_resp *r = hs->r;
    snprintf(r->etag, sizeof r->etag, "%s", hs->linked_etag[0] ? hs->linked_etag : hs->etag);
    r->size = hs->linked_size >= 0 ? hs->linked_size : hs->content_length;
}

/* ---------------------------------------------------------------- requests */

static CURL *prepare(blipc_hub *h, const char *url, int with_auth, struct curl_slist **hl, hdr_state *hs,
                     blipc__http_resp *r, blipc_err *e) {
    if (!h->curl) {
        h->curl = curl_easy_init();
        if (!h->curl) {
            blipc__errf(e, BLIPC_ERR_NOMEM, "cannot create a libcurl handle");
            return NULL;
        }
    }
    CURL *c = h->curl;
    curl_easy_reset(c);
    memset(r, 0, sizeof *r);
    r->size = r->range_start = -1;
    memset(hs, 0, sizeof *hs);
    hs->r = r;
    hs->content_length = hs->linked_size = -1;
    *hl = NULL;
    char auth[4200];
    struct curl_slist *l = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (l && with_auth && h->token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->token);
        struct curl_slist *l2 = curl_slist_append(l, auth);
        if (!l2) {
            curl_slist_free_all(l);
            l = NULL;
        } else {
            l = l2;
        }
    }
    if (!l) {
        blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory (HTTP headers)");
        return NULL;
    }
    *hl = l;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "libblipc-hub/" "0.1");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, hs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->stall_timeout_s);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    return c;
}

static blipc_status curl_error(CURLcode cc, const char *url, const char *curl_msg, blipc_err *e) {
    if (cc == CURLE_ABORTED_BY_CALLBACK) return blipc__errf(e, BLIPC_ERR_ABORTED, "%s: aborted", url);
    return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: %s%s%s", url, curl_easy_strerror(cc), curl_msg[0] ? ": " : "",
                       curl_msg);
}

blipc_status blipc__http_head(blipc_hub *h, const char *url, blipc__http_resp *r, blipc_err *e) {
    char cur[2048];
    snprintf(cur, sizeof cur, "%s", url);
    for (int hop = 0; hop < 5; hop++) {
        struct curl_slist *hl;
        hdr_state hs;
        CURL *c = prepare(h, cur, 1, &hl, &hs, r, e);
        if (!c) return e ? e->status : BLIPC_ERR_NOMEM;
        char cerr[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
        CURLcode cc = curl_easy_perform(c);
        curl_slist_free_all(hl);
        if (cc != CURLE_OK) {
            r->curl_code = (int)cc;
            return curl_error(cc, cur, cerr, e);
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        finish_headers(&hs);
        /* follow relative redirects only (a renamed repo); absolute ones point at the CDN */
        if (r->status >= 300 && r->status < 400 && r->location[0] == '/') {
            size_t hn = host_len(cur);
            char next[2048];
            if (hn == 0 || hn + strlen(r->location) >= sizeof next)
                return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: bad redirect to %s", cur, r->location);
            memcpy(next, cur, hn);
            snprintf(next + hn, sizeof next - hn, "%s", r->location);
            snprintf(cur, sizeof cur, "%s", next);
            continue;
        }
        return BLIPC_OK;
    }
    return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: too many redirects", url);
}

typedef struct mem_sink {
    char *buf;
    size_t n, cap, max;
    int too_big, nomem;
} mem_sink;

static size_t on_mem(char *p, size_t size, size_t nm, void *user) {
    mem_sink *m = user;
    size_t n = size * nm;
    if (m->n + n > m->max) {
        m->too_big = 1;
        return 0;
    }
    if (m->n + n + 1 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16384;
        while (nc < m->n + n + 1) nc *= 2;
        char *nb = realloc(m->buf, nc);
        if (!nb) {
            m->nomem = 1;
            return 0;
        }
        m->buf = nb;
        m->cap = nc;
    }
    memcpy(m->buf + m->n, p, n);
    m->n += n;
    return n;
}

blipc_status blipc__http_get_mem(blipc_hub *h, const char *url, size_t max, char **body, size_t *n,
                                 blipc__http_resp *r, blipc_err *e) {
    *body = NULL;
    if (n) *n = 0;
    struct curl_slist *hl;
    hdr_state hs;
    CURL *c = prepare(h, url, 1, &hl, &hs, r, e);
    if (!c) return e ? e->status : BLIPC_ERR_NOMEM;
    mem_sink m = {.max = max};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_mem);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(hl);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    finish_headers(&hs);
    if (m.nomem) {
        free(m.buf);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "%s: out of memory for the response", url);
    }
    if (m.too_big) {
        free(m.buf);
        return blipc__errf(e, BLIPC_ERR_LIMIT, "%s: response over %zu bytes", url, max);
    }
    if (cc != CURLE_OK) {
        free(m.buf);
        r->curl_code = (int)cc;
        return curl_error(cc, url, cerr, e);
    }
    if (!m.buf) {
        m.buf = malloc(1);
        if (!m.buf) return blipc__errf(e, BLIPC_ERR_NOMEM, "out of memory");
    }
    m.buf[m.n] = 0;
    *body = m.buf;
    if (n) *n = m.n;
    return BLIPC_OK;
}

static void report(blipc__dl *dl, int force) {
    if (!dl->prog || !dl->hub->progress) return;
    double now = blipc__now();
    if (!force && now - dl->last_report < 0.1 && dl->offset - dl->last_offset < (1u << 20)) return;
    dl->last_report = now;
    dl->last_offset = dl->offset;
    dl->prog->event = BLIPC_HUB_EVENT_FILE_PROGRESS;
    dl->prog->file_done = dl->offset;
    dl->prog->bytes_done = dl->pull_base + dl->offset;
    if (!dl->hub->progress(dl->hub->progress_user, dl->prog)) dl->aborted = 1;
}

static size_t on_file(char *p, size_t size, size_t nm, void *user) {
    blipc__dl *dl = user;
    size_t n = size * nm;
    long status = 0;
    curl_easy_getinfo(dl->hub->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && status != 206) return n; /* an error page: ignore its body */
    if (dl->written == 0) {
        if (status == 200 && dl->offset > 0) {
            /* the server ignored Range: start the file over */
            if (ftruncate(dl->fd, 0) != 0 || lseek(dl->fd, 0, SEEK_SET) != 0) {
                dl->write_errno = errno;
                return 0;
            }
            blipc__hash_free(dl->hash);
            dl->hash = blipc__hash_new(dl->git, dl->expected);
            if (!dl->hash) {
                dl->write_errno = ENOMEM;
                return 0;
            }
            dl->offset = 0;
            dl->restarted = 1;
        }
    }
    if (dl->offset + n > dl->expected) {
        dl->bad_range = 1; /* more bytes than the Hub said: never write past the expected size */
        return 0;
    }
    for (size_t w = 0; w < n;) {
        ssize_t k = write(dl->fd, p + w, n - w);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            dl->write_errno = errno;
            return 0;
        }
        w += (size_t)k;
    }
    if (!blipc__hash_update(dl->hash, p, n)) {
        dl->write_errno = EIO;
        return 0;
    }
    dl->offset += n;
    dl->written += n;
    report(dl, 0);
    return dl->aborted ? 0 : n;
}

static int on_head_check(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    blipc__dl *dl = user;
    if (dl->prog && dl->hub->progress) report(dl, 0);
    return dl->aborted;
}

blipc_status blipc__http_get_file(blipc_hub *h, const char *url, int with_auth, blipc__dl *dl,
                                  blipc__http_resp *r, blipc_err *e) {
    struct curl_slist *hl;
    hdr_state hs;
    CURL *c = prepare(h, url, with_auth, &hl, &hs, r, e);
    if (!c) return e ? e->status : BLIPC_ERR_NOMEM;
    char cerr[CURL_ERROR_SIZE] = "", range[64];
    dl->written = 0;
    dl->write_errno = dl->aborted = dl->restarted = dl->bad_range = 0;
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_file);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, dl);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_head_check);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, dl);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    if (dl->offset > 0) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)dl->offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(hl);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    finish_headers(&hs);
    if (dl->aborted) return blipc__errf(e, BLIPC_ERR_ABORTED, "%s: download aborted", url);
    if (dl->write_errno)
        return blipc__errf(e, BLIPC_ERR_IO, "writing the download failed after %llu bytes: %s",
                           (unsigned long long)dl->offset, strerror(dl->write_errno));
    if (dl->bad_range)
        return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: the server sent more than the expected %llu bytes", url,
                           (unsigned long long)dl->expected);
    if (r->status == 206 && r->range_start >= 0 && (uint64_t)r->range_start != dl->offset - dl->written)
        return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: answered Range %llu- with Content-Range starting at %lld", url,
                           (unsigned long long)(dl->offset - dl->written), (long long)r->range_start);
    if (cc != CURLE_OK) {
        r->curl_code = (int)cc;
        return curl_error(cc, url, cerr, e);
    }
    report(dl, 1);
    return BLIPC_OK;
}

int blipc__http_transient(const blipc__http_resp *r, blipc_status st) {
    /* no DNS answer: the machine is offline or the endpoint is wrong; retrying only makes the user wait */
    if (st == BLIPC_ERR_NETWORK) return r->curl_code != CURLE_COULDNT_RESOLVE_HOST && r->curl_code != CURLE_URL_MALFORMAT &&
                                        r->curl_code != CURLE_UNSUPPORTED_PROTOCOL;
    if (st != BLIPC_OK) return 0;
    return r->status >= 500 || r->status == 429 || r->status == 408;
}

blipc_status blipc__http_status_error(const blipc_hub *h, const blipc__http_resp *r, const char *what,
                                      blipc_err *e) {
    const char *code = r->error_code;
    const char *xm = r->error_message[0] ? r->error_message : "";
    if (!strcmp(code, "RepoNotFound"))
        return blipc__errf(e, BLIPC_ERR_NOT_FOUND,
                           "%s: repository not found on %s (HTTP %ld%s%s); check the name%s", what, h->endpoint,
                           r->status, xm[0] ? ": " : "", xm,
                           h->token ? "" : ", or set HF_TOKEN if it is private or gated");
    if (!strcmp(code, "RevisionNotFound"))
        return blipc__errf(e, BLIPC_ERR_NOT_FOUND, "%s: revision not found on %s (HTTP %ld)", what, h->endpoint,
                           r->status);
    if (!strcmp(code, "EntryNotFound"))
        return blipc__errf(e, BLIPC_ERR_NOT_FOUND, "%s: file not found in the repository (HTTP %ld)", what, r->status);
    if (!strcmp(code, "GatedRepo") || r->status == 401 || r->status == 403) {
        const char *hint = !h->token ? "this repository is gated or private: set HF_TOKEN to an access token of an "
                                       "account that has accepted its conditions"
                           : r->status == 401 ? "the token in HF_TOKEN was not accepted"
                                              : "the account of HF_TOKEN has no access: accept the repository's "
                                                "conditions on its Hub page";
        return blipc__errf(e, BLIPC_ERR_AUTH, "%s: HTTP %ld%s%s%s%s: %s", what, r->status, code[0] ? " " : "", code,
                           xm[0] ? ": " : "", xm, hint);
    }
    if (r->status == 404) return blipc__errf(e, BLIPC_ERR_NOT_FOUND, "%s: not found (HTTP 404)", what);
    return blipc__errf(e, BLIPC_ERR_NETWORK, "%s: HTTP %ld%s%s", what, r->status, xm[0] ? ": " : "", xm);
}
