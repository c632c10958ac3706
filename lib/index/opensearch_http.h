/* opensearch_http.h — the HTTP layer of the OpenSearch backend: one libcurl
 * easy handle per index handle (keep-alive), gzip request bodies, basic auth or
 * SigV4, TLS options, and retries with exponential backoff + jitter on
 * 429/502/503/504 and connection errors. Also a small growable string buffer
 * and JSON-error helpers shared by opensearch*.c. */
#ifndef BLIPC_INDEX_OPENSEARCH_HTTP_H
#define BLIPC_INDEX_OPENSEARCH_HTTP_H

#include "err.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer, always NUL-terminated. `oom` is sticky: once an
 * append failed, every later append is a no-op and the caller reports NOMEM. */
typedef struct blipc__os_buf {
    char *data;
    size_t len, cap;
    int oom;
} blipc__os_buf;

void blipc__os_buf_free(blipc__os_buf *b);
void blipc__os_buf_reset(blipc__os_buf *b);
void blipc__os_buf_add(blipc__os_buf *b, const void *p, size_t n);
void blipc__os_buf_str(blipc__os_buf *b, const char *s);
void blipc__os_buf_printf(blipc__os_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quotes included). */
void blipc__os_buf_json_str(blipc__os_buf *b, const char *s);
/* Append n floats as a JSON array, each with 9 significant digits (exact round trip). */
void blipc__os_buf_json_floats(blipc__os_buf *b, const float *v, int n);

typedef struct blipc__os_http_params {
    const char *url;            /* base URL, e.g. http://127.0.0.1:9200 (path prefix allowed) */
    const char *user, *password;
    const char *cacert;
    int insecure;
    const char *aws_sigv4;      /* "aws:amz:REGION:SERVICE" or NULL */
    int timeout_ms;
    int max_retries, retry_base_ms, retry_max_ms;
    uint64_t seed;
} blipc__os_http_params;

typedef struct blipc__os_http blipc__os_http;

blipc_status blipc__os_http_open(const blipc__os_http_params *p, const blipc_logger *log, blipc__os_http **out,
                                 blipc_err *e);
void blipc__os_http_close(blipc__os_http *h);
const char *blipc__os_http_base(const blipc__os_http *h);

typedef struct blipc__os_req {
    const char *method;         /* "GET", "PUT", "POST", "DELETE", "HEAD" */
    const char *path;           /* starts with '/', query string included, already URL-encoded */
    const char *body;           /* NULL = none */
    size_t body_len;
    const char *content_type;   /* default "application/json" when there is a body */
    int gzip;                   /* gzip the body (Content-Encoding: gzip) */
    int idempotent;             /* may be resent after a connection error mid-request */
    int no_retry_status;        /* do not retry on 429/502/503/504 (the caller handles them) */
} blipc__os_req;

/* Send a request, retrying as described above. On BLIPC_OK a response arrived:
 * *status is its HTTP status (possibly a retryable one after the last attempt)
 * and blipc__os_http_body() its body. Transport failures after the retries
 * (connection refused, TLS, timeout, dropped connection) return BLIPC_ERR_NETWORK
 * with a plain message naming the URL. */
blipc_status blipc__os_request(blipc__os_http *h, const blipc__os_req *r, long *status, blipc_err *e);
const char *blipc__os_http_body(const blipc__os_http *h, size_t *len);

/* Backoff before retry number `attempt` (0-based): min(max, base * 2^attempt),
 * then "equal jitter" (half fixed, half random), at least the server's
 * Retry-After when it sent one. Sleeps; exposed for the bulk item retries. */
void blipc__os_backoff(blipc__os_http *h, int attempt);
int blipc__os_max_retries(const blipc__os_http *h);
/* Number of requests sent / retried so far (tests, bench). */
void blipc__os_http_stats(const blipc__os_http *h, unsigned long *requests, unsigned long *retries);

/* Describe an error answer as "type: reason" (with caused_by), from an
 * OpenSearch error body (ErrorResponseBase) or "HTTP N" when the body is not
 * JSON. Writes into buf. */
void blipc__os_error_text(const char *body, size_t len, long status, char *buf, size_t cap);
/* Same for a cJSON ErrorCause object. */
void blipc__os_cause_text(const cJSON *cause, char *buf, size_t cap);
/* Turn a non-2xx response into a blipc error: 401/403 -> BLIPC_ERR_AUTH,
 * 404 -> BLIPC_ERR_NOT_FOUND, 413 -> BLIPC_ERR_LIMIT, else BLIPC_ERR_STORE.
 * `what` names the operation ("creating index photos"). */
blipc_status blipc__os_http_error(blipc__os_http *h, long status, const char *what, blipc_err *e);

/* Parse the response body as JSON (NULL + BLIPC_ERR_STORE on malformed JSON). */
blipc_status blipc__os_parse_body(blipc__os_http *h, const char *what, cJSON **out, blipc_err *e);

#endif
