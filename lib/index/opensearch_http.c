/* opensearch_http.c — libcurl transport of the OpenSearch backend (see opensearch_http.h). */
#include "opensearch_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define OS_MAX_RESPONSE ((size_t)512 << 20)

struct blipc__os_http {
    CURL *curl;
    char *base;
    char *user, *password, *cacert, *sigv4;
    int insecure, aoss;
    int timeout_ms, max_retries, retry_base_ms, retry_max_ms;
    uint64_t rng;
    blipc_logger log;
    char curl_err[CURL_ERROR_SIZE];
    blipc__os_buf resp;
    blipc__os_buf gz;
    long retry_after_ms;
    unsigned long n_requests, n_retries;
};

/* ------------------------------------------------------------ buffers */

void blipc__os_buf_free(blipc__os_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void blipc__os_buf_reset(blipc__os_buf *b) {
    b->len = 0;
    b->oom = 0;
    if (b->data) b->data[0] = 0;
}

static int buf_reserve(blipc__os_buf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = 1;
        return 0;
    }
    b->data = d;
    b->cap = cap;
    return 1;
}

void blipc__os_buf_add(blipc__os_buf *b, const void *p, size_t n) {
    if (!buf_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void blipc__os_buf_str(blipc__os_buf *b, const char *s) { blipc__os_buf_add(b, s, strlen(s)); }

void blipc__os_buf_printf(blipc__os_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        blipc__os_buf_add(b, tmp, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void blipc__os_buf_json_str(blipc__os_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    blipc__os_buf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    const unsigned char *run = p;
    for (; *p; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        blipc__os_buf_add(b, run, (size_t)(p - run));
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        blipc__os_buf_add(b, esc, n);
        run = p + 1;
    }
    blipc__os_buf_add(b, run, (size_t)(p - run));
    blipc__os_buf_add(b, "\"", 1);
}

void blipc__os_buf_json_floats(blipc__os_buf *b, const float *v, int n) {
    blipc__os_buf_add(b, "[", 1);
    for (int i = 0; i < n; i++) {
        char tmp[32];
        int k = snprintf(tmp, sizeof tmp, "%s%.9g", i ? "," : "", (double)v[i]);
        blipc__os_buf_add(b, tmp, (size_t)k);
    }
    blipc__os_buf_add(b, "]", 1);
}

/* ------------------------------------------------------------ handle */

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *user) {
    blipc__os_http *h = user;
    size_t n = size * nmemb;
    if (h->resp.len + n > OS_MAX_RESPONSE) return 0;
    blipc__os_buf_add(&h->resp, ptr, n);
    return h->resp.oom ? 0 : n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *user) {
    blipc__os_http *h = user;
    size_t n = size * nmemb;
    if (n > 12 && !strncasecmp(ptr, "Retry-After:", 12)) {
        char tmp[32];
        size_t k = n - 12 < sizeof tmp - 1 ? n - 12 : sizeof tmp - 1;
        memcpy(tmp, ptr + 12, k);
        tmp[k] = 0;
        char *end;
        long s = strtol(tmp, &end, 10);
        if (end != tmp && s >= 0 && s < 3600) h->retry_after_ms = s * 1000;
    }
    return n;
}

blipc_status blipc__os_http_open(const blipc__os_http_params *p, const blipc_logger *log, blipc__os_http **out,
                                 blipc_err *e) {
    *out = NULL;
    if (!p->url || (strncmp(p->url, "http://", 7) && strncmp(p->url, "https://", 8)))
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "opensearch: URL \"%s\" must start with http:// or https://",
                           p->url ? p->url : "(null)");
    blipc__os_http *h = calloc(1, sizeof *h);
    if (!h) return blipc__errf(e, BLIPC_ERR_NOMEM, "opensearch %s: out of memory", p->url);
    h->base = dup_or_null(p->url);
    h->user = dup_or_null(p->user);
    h->password = dup_or_null(p->password ? p->password : (p->user ? "" : NULL));
    h->cacert = dup_or_null(p->cacert);
    h->sigv4 = dup_or_null(p->aws_sigv4);
    if (!h->base || (p->user && (!h->user || !h->password)) || (p->cacert && !h->cacert) ||
        (p->aws_sigv4 && !h->sigv4)) {
        blipc__os_http_close(h);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "opensearch %s: out of memory", p->url);
    }
    size_t bl = strlen(h->base);
    while (bl > 0 && h->base[bl - 1] == '/') h->base[--bl] = 0;
    h->insecure = p->insecure;
    h->aoss = h->sigv4 && strlen(h->sigv4) >= 5 && !strcmp(h->sigv4 + strlen(h->sigv4) - 5, ":aoss");
    h->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : 60000;
    h->max_retries = p->max_retries >= 0 ? p->max_retries : 8;
    h->retry_base_ms = p->retry_base_ms > 0 ? p->retry_base_ms : 100;
    h->retry_max_ms = p->retry_max_ms > 0 ? p->retry_max_ms : 10000;
    if (p->seed) {
        h->rng = p->seed;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        h->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)h;
    }
    if (log) h->log = *log;
    h->curl = curl_easy_init();
    if (!h->curl) {
        blipc__os_http_close(h);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "opensearch %s: cannot initialise libcurl", p->url);
    }
    CURL *c = h->curl;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(h->timeout_ms < 10000 ? h->timeout_ms : 10000));
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "libblipc-index");
    if (h->cacert) curl_easy_setopt(c, CURLOPT_CAINFO, h->cacert);
    if (h->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (h->sigv4) {
        /* SigV4: the access key id / secret travel as user / password */
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, h->sigv4);
        if (h->user) curl_easy_setopt(c, CURLOPT_USERNAME, h->user);
        if (h->password) curl_easy_setopt(c, CURLOPT_PASSWORD, h->password);
    } else if (h->user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, h->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, h->password);
    }
    *out = h;
    return BLIPC_OK;
}

void blipc__os_http_close(blipc__os_http *h) {
    if (!h) return;
    if (h->curl) curl_easy_cleanup(h->curl);
    free(h->base);
    free(h->user);
    if (h->password) {
        volatile char *pw = h->password;
        while (*pw) *pw++ = 0;
    }
    free(h->password);
    free(h->cacert);
    free(h->sigv4);
    blipc__os_buf_free(&h->resp);
    blipc__os_buf_free(&h->gz);
    free(h);
}

const char *blipc__os_http_base(const blipc__os_http *h) { return h->base; }

const char *blipc__os_http_body(const blipc__os_http *h, size_t *len) {
    if (len) *len = h->resp.len;
    return h->resp.data ? h->resp.data : "";
}

int blipc__os_max_retries(const blipc__os_http *h) { return h->max_retries; }

void blipc__os_http_stats(const blipc__os_http *h, unsigned long *requests, unsigned long *retries) {
    if (requests) *requests = h->n_requests;
    if (retries) *retries = h->n_retries;
}

/* ------------------------------------------------------------ backoff */

static void sleep_ms(long ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void blipc__os_backoff(blipc__os_http *h, int attempt) {
    long d = h->retry_base_ms;
    for (int i = 0; i < attempt && d < h->retry_max_ms; i++) d *= 2;
    if (d > h->retry_max_ms) d = h->retry_max_ms;
    long half = d / 2;
    long ms = half + (half > 0 ? (long)(splitmix(&h->rng) % (uint64_t)(half + 1)) : 0);
    if (h->retry_after_ms > ms) ms = h->retry_after_ms < h->retry_max_ms ? h->retry_after_ms : h->retry_max_ms;
    h->retry_after_ms = 0;
    h->n_retries++;
    sleep_ms(ms);
}

/* ------------------------------------------------------------ gzip / sha256 */

static int gzip_into(blipc__os_buf *out, const char *data, size_t len) {
    blipc__os_buf_reset(out);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
    size_t bound = deflateBound(&zs, (uLong)len) + 32;
    if (!buf_reserve(out, bound)) {
        deflateEnd(&zs);
        return 0;
    }
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->data;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    out->len = zs.total_out;
    deflateEnd(&zs);
    return rc == Z_STREAM_END;
}

static int sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char md[32];
    unsigned int n = 0;
    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32) return 0;
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 1;
}

/* ------------------------------------------------------------ requests */

static int status_retryable(long s) { return s == 429 || s == 502 || s == 503 || s == 504; }

/* Transport errors worth another attempt (the server may come back). TLS,
 * DNS and configuration errors are not. */
static int curl_retryable(CURLcode rc, int idempotent) {
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return 1; /* nothing was sent */
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return idempotent;
    default:
        return 0;
    }
}

static int curl_is_tls(CURLcode rc) {
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
        return 1;
    default:
        return 0;
    }
}

static blipc_status transport_error(blipc__os_http *h, CURLcode rc, const blipc__os_req *r, int attempts,
                                    blipc_err *e) {
    const char *detail = h->curl_err[0] ? h->curl_err : curl_easy_strerror(rc);
    if (curl_is_tls(rc))
        return blipc__errf(e, BLIPC_ERR_NETWORK,
                           "opensearch %s: TLS handshake failed: %s (check the https:// URL, --cacert FILE, or "
                           "--insecure for a self-signed test cluster)",
                           h->base, detail);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return blipc__errf(e, BLIPC_ERR_NETWORK, "opensearch %s: cannot connect (%s)%s", h->base, detail,
                           attempts > 1 ? " after retries" : "");
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return blipc__errf(e, BLIPC_ERR_NETWORK, "opensearch %s: %s %s timed out after %d ms (%d attempt%s)", h->base,
                           r->method, r->path, h->timeout_ms, attempts, attempts == 1 ? "" : "s");
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "opensearch %s: bad URL: %s", h->base, detail);
    if (rc == CURLE_WRITE_ERROR && h->resp.oom)
        return blipc__errf(e, BLIPC_ERR_NOMEM, "opensearch %s: out of memory reading the answer to %s %s", h->base,
                           r->method, r->path);
    if (rc == CURLE_WRITE_ERROR)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "opensearch %s: the answer to %s %s is over %zu MiB", h->base,
                           r->method, r->path, OS_MAX_RESPONSE >> 20);
    return blipc__errf(e, BLIPC_ERR_NETWORK, "opensearch %s: %s %s failed: %s (%d attempt%s)", h->base, r->method,
                       r->path, detail, attempts, attempts == 1 ? "" : "s");
}

static CURLcode send_once(blipc__os_http *h, const blipc__os_req *r, const char *body, size_t body_len,
                          const char *content_sha, long *status, int *oom) {
    CURL *c = h->curl;
    blipc__os_buf url = {0};
    blipc__os_buf_str(&url, h->base);
    blipc__os_buf_str(&url, r->path);
    struct curl_slist *hdr = NULL, *t;
    char line[128];
    int bad = url.oom;
#define ADDH(s)                          \
    do {                                 \
        t = curl_slist_append(hdr, (s)); \
        if (!t) bad = 1;                 \
        else hdr = t;                    \
    } while (0)
    ADDH("Accept: application/json");
    ADDH("Expect:");
    if (body) {
        snprintf(line, sizeof line, "Content-Type: %s", r->content_type ? r->content_type : "application/json");
        ADDH(line);
        if (r->gzip) ADDH("Content-Encoding: gzip");
    }
    if (content_sha) {
        snprintf(line, sizeof line, "x-amz-content-sha256: %s", content_sha);
        ADDH(line);
    }
#undef ADDH
    if (bad) {
        curl_slist_free_all(hdr);
        blipc__os_buf_free(&url);
        *oom = 1;
        return CURLE_OUT_OF_MEMORY;
    }
    blipc__os_buf_reset(&h->resp);
    h->curl_err[0] = 0;
    h->retry_after_ms = 0;
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
        if (body) {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        } else if (!strcmp(r->method, "POST") || !strcmp(r->method, "PUT")) {
            curl_easy_setopt(c, CURLOPT_POST, 1L); /* empty body: Content-Length: 0 */
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        } else {
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        }
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
    h->n_requests++;
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    blipc__os_buf_free(&url);
    *oom = h->resp.oom;
    return rc;
}

blipc_status blipc__os_request(blipc__os_http *h, const blipc__os_req *r, long *status, blipc_err *e) {
    const char *body = r->body;
    size_t body_len = r->body ? r->body_len : 0;
    if (r->body && r->gzip) {
        if (!gzip_into(&h->gz, r->body, r->body_len))
            return blipc__errf(e, BLIPC_ERR_NOMEM, "opensearch %s: cannot gzip a %zu-byte request body", h->base,
                               r->body_len);
        body = h->gz.data;
        body_len = h->gz.len;
    }
    char sha[65], *shap = NULL;
    if (h->aoss) {
        /* Serverless needs the signed payload hash of the exact bytes sent */
        if (!sha256_hex(body ? body : "", body_len, sha))
            return blipc__errf(e, BLIPC_ERR_INTERNAL, "opensearch %s: sha256 of the request body failed", h->base);
        shap = sha;
    }
    for (int attempt = 0;; attempt++) {
        int oom = 0;
        CURLcode rc = send_once(h, r, body, body_len, shap, status, &oom);
        if (oom && rc != CURLE_OK)
            return blipc__errf(e, BLIPC_ERR_NOMEM, "opensearch %s: out of memory for %s %s", h->base, r->method,
                               r->path);
        int can_retry = attempt < h->max_retries;
        if (rc != CURLE_OK) {
            if (can_retry && curl_retryable(rc, r->idempotent)) {
                blipc__logf(&h->log, BLIPC_LOG_WARN, "opensearch %s: %s %s: %s; retrying (%d/%d)", h->base, r->method,
                            r->path, h->curl_err[0] ? h->curl_err : curl_easy_strerror(rc), attempt + 1,
                            h->max_retries);
                blipc__os_backoff(h, attempt);
                continue;
            }
            return transport_error(h, rc, r, attempt + 1, e);
        }
        if (!r->no_retry_status && status_retryable(*status) && can_retry) {
            blipc__logf(&h->log, BLIPC_LOG_WARN, "opensearch %s: %s %s: HTTP %ld; retrying (%d/%d)", h->base,
                        r->method, r->path, *status, attempt + 1, h->max_retries);
            blipc__os_backoff(h, attempt);
            continue;
        }
        return BLIPC_OK;
    }
}

/* ------------------------------------------------------------ errors */

void blipc__os_cause_text(const cJSON *cause, char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = 0;
    if (cJSON_IsString(cause)) {
        snprintf(buf, cap, "%s", cause->valuestring);
        return;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(cause, "type");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(cause, "reason");
    const cJSON *cb = cJSON_GetObjectItemCaseSensitive(cause, "caused_by");
    size_t n = (size_t)snprintf(buf, cap, "%s: %s", cJSON_IsString(type) ? type->valuestring : "error",
                                cJSON_IsString(reason) ? reason->valuestring : "(no reason given)");
    if (n < cap && cJSON_IsObject(cb)) {
        const cJSON *t2 = cJSON_GetObjectItemCaseSensitive(cb, "type");
        const cJSON *r2 = cJSON_GetObjectItemCaseSensitive(cb, "reason");
        snprintf(buf + n, cap - n, " (caused by %s: %s)", cJSON_IsString(t2) ? t2->valuestring : "error",
                 cJSON_IsString(r2) ? r2->valuestring : "?");
    }
}

void blipc__os_error_text(const char *body, size_t len, long status, char *buf, size_t cap) {
    if (!cap) return;
    cJSON *j = len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *err = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    if (cJSON_IsObject(err)) {
        /* the top-level cause names what went wrong; root_cause[0] is often more specific */
        const cJSON *root = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(err, "root_cause"), 0);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(err, "type");
        if (cJSON_IsObject(root) && cJSON_IsString(type) &&
            !strcmp(type->valuestring, "search_phase_execution_exception"))
            blipc__os_cause_text(root, buf, cap);
        else
            blipc__os_cause_text(err, buf, cap);
    } else if (cJSON_IsString(err)) {
        snprintf(buf, cap, "%s", err->valuestring);
    } else if (len && len < 200 && !j) {
        /* a proxy's plain-text answer: keep it short and on one line */
        size_t k = 0;
        k += (size_t)snprintf(buf, cap, "HTTP %ld: ", status);
        for (size_t i = 0; i < len && k + 1 < cap; i++) buf[k++] = (body[i] == '\n' || body[i] == '\r') ? ' ' : body[i];
        buf[k < cap ? k : cap - 1] = 0;
    } else {
        snprintf(buf, cap, "HTTP %ld", status);
    }
    cJSON_Delete(j);
}

blipc_status blipc__os_http_error(blipc__os_http *h, long status, const char *what, blipc_err *e) {
    char reason[600];
    size_t len;
    const char *body = blipc__os_http_body(h, &len);
    blipc__os_error_text(body, len, status, reason, sizeof reason);
    if (status == 401)
        return blipc__errf(e, BLIPC_ERR_AUTH,
                           "opensearch %s: %s: authentication failed (401): check the user name and password "
                           "(--user, OPENSEARCH_USER / OPENSEARCH_PASSWORD)",
                           h->base, what);
    if (status == 403)
        return blipc__errf(e, BLIPC_ERR_AUTH, "opensearch %s: %s: permission denied (403): %s", h->base, what,
                           reason);
    if (status == 404)
        return blipc__errf(e, BLIPC_ERR_NOT_FOUND, "opensearch %s: %s: not found (404): %s", h->base, what, reason);
    if (status == 413)
        return blipc__errf(e, BLIPC_ERR_LIMIT,
                           "opensearch %s: %s: request body too large (413, over http.max_content_length)", h->base,
                           what);
    return blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: %s: HTTP %ld: %s", h->base, what, status, reason);
}

blipc_status blipc__os_parse_body(blipc__os_http *h, const char *what, cJSON **out, blipc_err *e) {
    size_t len;
    const char *body = blipc__os_http_body(h, &len);
    *out = cJSON_ParseWithLength(body, len);
    if (!*out)
        return blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: %s: the answer is not JSON (%zu bytes)", h->base, what,
                           len);
    return BLIPC_OK;
}
