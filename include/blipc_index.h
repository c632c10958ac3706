/*
 * blipc_index.h — libblipc-index public API (C11, FFI-friendly).
 *
 * Stores one document per image (content sha256 id, path, caption, answers to
 * extra questions, caption embedding, size, mtime, model ids) and searches them
 * by meaning. Two backends behind one handle:
 *  - BLIPC_INDEX_STORE (default): one local SQLite file (FTS5 + float32 vectors,
 *    exact cosine k-NN with BLAS). Format: docs/index.md.
 *  - BLIPC_INDEX_OPENSEARCH: an OpenSearch index (knn_vector + text, _bulk
 *    ingest, k-NN / hybrid queries). Setup: docs/opensearch.md.
 * This library does not depend on libblipc (the inference core): it only uses
 * the status/log types of blipc.h. The tools glue both.
 *
 * Quick example (error handling shortened):
 *
 *     char err[512];
 *     blipc_index_params p;
 *     blipc_index_default_params(&p);             // embedded store at the default path
 *     blipc_index *ix;
 *     if (blipc_index_open(&p, &ix, err, sizeof err) != BLIPC_OK) { fprintf(stderr, "%s\n", err); return 1; }
 *     blipc_index_doc d;
 *     blipc_index_doc_init(&d);
 *     d.id = sha_hex; d.path = "/photos/beach.jpg"; d.caption = "a dog on a beach";
 *     d.vector = vec; d.dim = 384;
 *     blipc_index_put(ix, &d, 1);
 *     if (blipc_index_put_status(ix, 0) != BLIPC_OK) puts(blipc_index_put_error(ix, 0));
 *     blipc_index_query q;
 *     blipc_index_default_query(&q);
 *     q.text = "dog"; q.vector = qvec; q.dim = 384;
 *     blipc_index_search(ix, &q);
 *     for (size_t i = 0; i < blipc_index_hit_count(ix); i++)
 *         printf("%zu %.4f %s\n", i + 1, blipc_index_hit_score(ix, i), blipc_index_hit_path(ix, i));
 *     blipc_index_close(ix);
 *
 * Conventions are those of blipc.h: status codes, constructor errors in a caller
 * buffer, later errors in blipc_index_errmsg (valid until the next call on the
 * handle), *_close(NULL) is a no-op, the library never prints/exits/aborts, and
 * a handle is used by one thread at a time (separate handles on the same store
 * file may be used from separate threads or processes concurrently).
 */
#ifndef BLIPC_INDEX_H
#define BLIPC_INDEX_H

#include "blipc.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(BLIPC_INDEX_BUILD)
#define BLIPC_INDEX_API __declspec(dllexport)
#elif defined(__GNUC__) && defined(BLIPC_INDEX_BUILD)
#define BLIPC_INDEX_API __attribute__((visibility("default")))
#else
#define BLIPC_INDEX_API
#endif

/* Store file format version written by this build (meta.format_version). */
#define BLIPC_INDEX_STORE_FORMAT 2

/* ------------------------------------------------------------------ params */

typedef enum blipc_index_backend_kind {
    BLIPC_INDEX_STORE = 0,      /* embedded SQLite file */
    BLIPC_INDEX_OPENSEARCH = 1  /* OpenSearch cluster */
} blipc_index_backend_kind;

typedef struct blipc_index_params {
    blipc_index_backend_kind backend;  /* default BLIPC_INDEX_STORE */
    int dim;                    /* vector dimension; 0 = learn it from the first document
                                   (store) / required to create an OpenSearch index with
                                   client-side vectors (the index is created at open when
                                   dim > 0, else at the first put) */
    int read_only;              /* 1 = never create or write (search only) */
    blipc_log_fn log_fn;        /* optional */
    void *log_user;

    /* --- embedded store --- */
    const char *store_path;     /* NULL = blipc_index_default_store_path() */
    int busy_timeout_ms;        /* wait this long for a writer lock; default 10000 */

    /* --- OpenSearch --- */
    const char *url;            /* e.g. "https://localhost:9200" (required) */
    const char *index_name;     /* default "blipc-images" */
    const char *user;           /* basic auth (NULL = none) */
    const char *password;
    const char *cacert;         /* CA bundle file for TLS (NULL = system) */
    int insecure;               /* 1 = do not verify the TLS certificate / host */
    const char *aws_sigv4;      /* e.g. "aws:amz:us-east-1:es" (CURLOPT_AWS_SIGV4); NULL = off */
    const char *space_type;     /* knn space type; default "cosinesimil" */
    const char *ingest_pipeline;/* server-side embedding: pipeline name (with model_id); NULL = client-side */
    const char *model_id;       /* ML Commons model id for the ingest pipeline / neural queries */
    const char *search_pipeline;/* hybrid search pipeline name; default "blipc-hybrid" */
    int bulk_max_docs;          /* documents per _bulk request; default 500 */
    size_t bulk_max_bytes;      /* bytes per _bulk body (before gzip); default 5 MiB */
    int gzip;                   /* 1 = gzip request bodies (default 1) */
    int max_retries;            /* retries per item/request on 429/502/503/504/connection errors; default 8 */
    int retry_base_ms;          /* first backoff (doubles, with jitter); default 100 */
    int retry_max_ms;           /* backoff cap; default 10000 */
    int timeout_ms;             /* per request; default 60000 */
    uint64_t retry_seed;        /* seed of the backoff jitter (0 = from the clock); tests set it */
} blipc_index_params;

BLIPC_INDEX_API void blipc_index_default_params(blipc_index_params *p);

/* The default store path: $XDG_DATA_HOME/blipc/index.sqlite, else
 * $HOME/.local/share/blipc/index.sqlite. Writes into buf (NUL-terminated);
 * BLIPC_ERR_BUFFER_TOO_SMALL if it does not fit, BLIPC_ERR_IO if neither
 * variable is set. Does not create anything. */
BLIPC_INDEX_API blipc_status blipc_index_default_store_path(char *buf, size_t cap);

/* ---------------------------------------------------------------- handle */

typedef struct blipc_index blipc_index;

/* Open (and create when absent and !read_only) the store file / OpenSearch index.
 * Store: a file that is not a store, or a store with a newer format version,
 * fails with BLIPC_ERR_STORE naming the file. OpenSearch: an existing index with
 * another vector dimension or field types fails with BLIPC_ERR_STORE. */
BLIPC_INDEX_API blipc_status blipc_index_open(const blipc_index_params *p, blipc_index **out,
                                              char *errbuf, size_t errbuf_size);
BLIPC_INDEX_API void blipc_index_close(blipc_index *ix);
BLIPC_INDEX_API const char *blipc_index_errmsg(const blipc_index *ix);
BLIPC_INDEX_API blipc_index_backend_kind blipc_index_kind(const blipc_index *ix);
/* Vector dimension of the stored documents (0 = none stored yet / unknown). */
BLIPC_INDEX_API int blipc_index_dim(const blipc_index *ix);

/* -------------------------------------------------------------- documents */

typedef struct blipc_index_doc {
    const char *id;             /* content sha256, 64 lowercase hex chars (required) */
    const char *path;           /* file path as given/absolute (required) */
    const char *caption;        /* image_description (required; may be "") */
    const char *const *questions; /* n_answers questions ("What brand is it?") */
    const char *const *answers;   /* n_answers answers, answers[i] to questions[i] */
    size_t n_answers;
    const float *vector;        /* image_description_vector, dim floats; NULL = none
                                   (OpenSearch server-side embedding) */
    int dim;
    int width, height;          /* pixels (0 = unknown) */
    int64_t mtime;              /* file modification time, seconds since the epoch */
    int64_t size;               /* file size in bytes */
    const char *caption_model;  /* model ids used (may be NULL) */
    const char *embed_model;
} blipc_index_doc;

/* Zero the struct. */
BLIPC_INDEX_API void blipc_index_doc_init(blipc_index_doc *d);

/* Field name under which the answer to `question` is stored (and filtered on):
 * "answer_" + lowercase ASCII letters/digits of the question with runs of other
 * bytes as one "_", trimmed, at most 64 chars ("What brand is it?" ->
 * "answer_what_brand_is_it"). BLIPC_ERR_BUFFER_TOO_SMALL if cap is too small
 * (80 always suffices). */
BLIPC_INDEX_API blipc_status blipc_index_answer_field(const char *question, char *buf, size_t cap);

/* Insert or replace n documents (by id). Returns when every document has been
 * durably committed (store: one transaction per call; OpenSearch: acknowledged
 * by _bulk, after retries) or has failed permanently. A document previously
 * stored under the same path with another id (the file changed) is removed.
 * Returns BLIPC_OK when the call ran (check each document's status), or an error
 * concerning the whole call (bad arguments, store unwritable, server unreachable
 * after retries: then every document's status is that error). */
BLIPC_INDEX_API blipc_status blipc_index_put(blipc_index *ix, const blipc_index_doc *docs, size_t n);
/* Per-document results of the last put, i < n. The error text names the reason
 * (e.g. "mapper_parsing_exception: ..."); "" when OK. Valid until the next put. */
BLIPC_INDEX_API blipc_status blipc_index_put_status(const blipc_index *ix, size_t i);
BLIPC_INDEX_API const char *blipc_index_put_error(const blipc_index *ix, size_t i);

/* Make everything put so far visible to searches (OpenSearch: _refresh; store:
 * WAL checkpoint, writes are visible at commit anyway; also rewrites the store's
 * vector sidecar when stale, see docs/index.md). */
BLIPC_INDEX_API blipc_status blipc_index_flush(blipc_index *ix);

/* Fetch a document by id. *doc = NULL (and BLIPC_OK) when absent. The document
 * and everything it points to is owned by the handle and valid until the next
 * call on it. */
BLIPC_INDEX_API blipc_status blipc_index_get(blipc_index *ix, const char *id, const blipc_index_doc **doc);

/* Cheap existence check for skip-unchanged: *found = 1 when a document with this
 * id exists; its stored path is copied into path_out (may be NULL; truncated to
 * cap). */
BLIPC_INDEX_API blipc_status blipc_index_has(blipc_index *ix, const char *id, int *found, char *path_out,
                                             size_t path_cap);

/* Update only the path (and mtime) of an existing document (a moved file):
 * BLIPC_ERR_NOT_FOUND when absent. */
BLIPC_INDEX_API blipc_status blipc_index_set_path(blipc_index *ix, const char *id, const char *path,
                                                  int64_t mtime);

/* Remove a document (BLIPC_OK if it was absent). */
BLIPC_INDEX_API blipc_status blipc_index_delete(blipc_index *ix, const char *id);

/* Number of stored documents. */
BLIPC_INDEX_API blipc_status blipc_index_count(blipc_index *ix, uint64_t *n);

/* ----------------------------------------------------------------- search */

/* field = value on a stored field: id, path, caption_model, embed_model, width,
 * height (integers compared exactly), image_description (exact text) or an
 * answer field (blipc_index_answer_field). Several filters are ANDed. */
typedef struct blipc_index_filter {
    const char *field;
    const char *value;
} blipc_index_filter;

typedef struct blipc_index_query {
    const char *text;           /* query text: BM25 sub-query (hybrid), server-side embedding (neural) */
    const float *vector;        /* query embedding, dim floats (L2-normalised); NULL = OpenSearch
                                   neural query with model_id, or text-only (BM25) search */
    int dim;
    int k;                      /* number of hits; default 10; at most 10000 */
    int hybrid;                 /* 1 = combine BM25 and vector scores */
    float text_weight;          /* hybrid weights (normalised to sum 1); default 0.3 */
    float vector_weight;        /* default 0.7 */
    const blipc_index_filter *filters;
    size_t n_filters;
} blipc_index_query;

BLIPC_INDEX_API void blipc_index_default_query(blipc_index_query *q);

/* Run a search; results replace the previous ones.
 * Scores (the same on both backends):
 *  - vector only: (1 + cos) / 2 (OpenSearch cosinesimil _score), best first;
 *  - text only: BM25;
 *  - hybrid: each sub-query's scores min-max normalised over its own hits
 *    (a single hit or all equal -> 1; a document absent from a sub-query's hits
 *    counts 0 there), then weighted arithmetic mean
 *    text_weight * t + vector_weight * v (weights normalised to sum 1).
 * Ties are broken by id ascending. */
BLIPC_INDEX_API blipc_status blipc_index_search(blipc_index *ix, const blipc_index_query *q);

/* Hits of the last search, i < count, best first (rank = i + 1). Strings are
 * valid until the next search or close. */
BLIPC_INDEX_API size_t blipc_index_hit_count(const blipc_index *ix);
BLIPC_INDEX_API double blipc_index_hit_score(const blipc_index *ix, size_t i);
BLIPC_INDEX_API const char *blipc_index_hit_id(const blipc_index *ix, size_t i);
BLIPC_INDEX_API const char *blipc_index_hit_path(const blipc_index *ix, size_t i);
BLIPC_INDEX_API const char *blipc_index_hit_caption(const blipc_index *ix, size_t i);
/* Raw component scores (hybrid; NAN when the document was not among that
 * sub-query's hits or the backend does not report them): BM25 and (1 + cos) / 2. */
BLIPC_INDEX_API double blipc_index_hit_text_score(const blipc_index *ix, size_t i);
BLIPC_INDEX_API double blipc_index_hit_vector_score(const blipc_index *ix, size_t i);

/* ------------------------------------------------------ OpenSearch extras */

/* Register a model in ML Commons (POST _plugins/_ml/models/_register), poll the
 * task until COMPLETED/FAILED, deploy it (_deploy) and poll again; copies the
 * model id into model_id_out. model_name NULL = "huggingface/sentence-transformers/all-MiniLM-L12-v2",
 * version NULL = "1.0.1", format NULL = "TORCH_SCRIPT". Uses url/user/password/
 * cacert/insecure/aws_sigv4/timeout_ms of p (no index needed). Progress and
 * state changes go to p->log_fn. BLIPC_ERR_UNSUPPORTED when built without the
 * OpenSearch backend. */
BLIPC_INDEX_API blipc_status blipc_index_register_model(const blipc_index_params *p, const char *model_name,
                                                        const char *version, const char *format,
                                                        char *model_id_out, size_t model_id_cap,
                                                        char *errbuf, size_t errbuf_size);

/* ------------------------------------------------------------- utilities */

/* sha256 of a file's content as 64 lowercase hex chars + NUL (hex must hold 65). */
BLIPC_INDEX_API blipc_status blipc_index_file_sha256(const char *path, char hex[65], char *errbuf,
                                                     size_t errbuf_size);

/* Image discovery: expand files and directories (recursively, entries sorted by
 * name, hidden entries skipped, symlinks to files followed, symlinks to
 * directories not followed) into a list of regular files, each with a verdict
 * from its first bytes: an image (magic bytes of JPEG, PNG, GIF, BMP, WebP,
 * TIFF), or why not (not an image, unreadable, missing). Every file is listed
 * so callers can report what they skip. Paths are absolute; duplicates are
 * listed once. */
typedef struct blipc_index_scan blipc_index_scan;

typedef enum blipc_scan_kind {
    BLIPC_SCAN_IMAGE = 0,       /* looks like an image */
    BLIPC_SCAN_NOT_IMAGE = 1,   /* readable, but not an image format we know */
    BLIPC_SCAN_UNREADABLE = 2,  /* cannot open/read/stat */
    BLIPC_SCAN_MISSING = 3      /* a given path does not exist */
} blipc_scan_kind;

BLIPC_INDEX_API blipc_status blipc_index_scan_paths(const char *const *paths, size_t n, blipc_index_scan **out,
                                                    char *errbuf, size_t errbuf_size);
BLIPC_INDEX_API void blipc_index_scan_free(blipc_index_scan *s);
BLIPC_INDEX_API size_t blipc_index_scan_count(const blipc_index_scan *s);
/* Absolute, normalised path of entry i. */
BLIPC_INDEX_API const char *blipc_index_scan_path(const blipc_index_scan *s, size_t i);
BLIPC_INDEX_API blipc_scan_kind blipc_index_scan_kind(const blipc_index_scan *s, size_t i);
/* Human-readable reason for a non-image entry ("" for images). */
BLIPC_INDEX_API const char *blipc_index_scan_reason(const blipc_index_scan *s, size_t i);
/* Image format detected ("jpeg", "png", "gif", "bmp", "webp", "tiff") or "". */
BLIPC_INDEX_API const char *blipc_index_scan_format(const blipc_index_scan *s, size_t i);
BLIPC_INDEX_API int64_t blipc_index_scan_mtime(const blipc_index_scan *s, size_t i);
BLIPC_INDEX_API int64_t blipc_index_scan_size(const blipc_index_scan *s, size_t i);

#ifdef __cplusplus
}
#endif
#endif /* BLIPC_INDEX_H */
