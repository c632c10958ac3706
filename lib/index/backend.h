/* backend.h — the interface between the common front (index.c) and each
 * backend of libblipc-index (store_sqlite.c, opensearch*.c).
 *
 * index.c owns the public handle: it validates arguments, keeps the error
 * message, the per-document put results and the search hits, and dispatches to
 * the backend through `blipc__index_backend_ops`. A backend:
 *  - is opened by its constructor (blipc__store_open / blipc__opensearch_open),
 *    which receives the params (already filled with defaults by index.c), the
 *    shared `blipc__index_ctx` and returns its private state through `*state`;
 *  - reports every error with blipc__errf(&ctx->err, STATUS, "...") naming the
 *    file/URL/index/field; never prints;
 *  - writes put results with blipc__index_set_result(ctx, i, status, msg) and
 *    search hits with blipc__index_add_hit(ctx, ...) (the hit list is cleared by
 *    index.c before calling ops->search; the backend appends hits best first,
 *    already cut to q->k);
 *  - may leave optional entries NULL (index.c then answers BLIPC_ERR_UNSUPPORTED
 *    or falls back: `has` falls back to `get`).
 *
 * Arguments are validated by index.c before dispatch: docs have non-NULL id
 * (64 hex), path, caption; docs[i].vector is NULL or has dim == ix dim (once
 * known); queries have k in [1, 10000], weights >= 0 and normalised to sum 1,
 * and either text or vector set.
 */
#ifndef BLIPC_INDEX_BACKEND_H
#define BLIPC_INDEX_BACKEND_H

#include "blipc_index.h"
#include "err.h"

#include <stddef.h>

/* Shared state the front keeps for a backend (one per handle). */
typedef struct blipc__index_ctx {
    blipc_err err;              /* last error (blipc_index_errmsg) */
    blipc_logger log;
    int dim;                    /* known vector dimension (0 = unknown); backends update it */
    /* put results (managed by index.c) */
    size_t n_results, cap_results;
    blipc_status *res_status;
    char **res_msg;             /* NULL = "" */
    /* hits (managed by index.c) */
    size_t n_hits, cap_hits;
    struct blipc__index_hit *hits;
    /* get(): a document owned by the front; backends fill it through
     * blipc__index_set_got(). */
    void *got;
} blipc__index_ctx;

struct blipc__index_hit {
    double score, text_score, vector_score;
    char *id, *path, *caption;
};

typedef struct blipc__index_backend_ops {
    const char *name;                                   /* "store", "opensearch" */
    void (*close)(void *state);
    /* put n documents; set each result with blipc__index_set_result (results are
     * pre-set to BLIPC_ERR_INTERNAL "not processed"). Return BLIPC_OK if the call
     * ran (even with per-document failures). */
    blipc_status (*put)(void *state, blipc__index_ctx *ctx, const blipc_index_doc *docs, size_t n);
    blipc_status (*flush)(void *state, blipc__index_ctx *ctx);                           /* optional */
    /* found: fill with blipc__index_set_got and set *found = 1; absent: *found = 0. */
    blipc_status (*get)(void *state, blipc__index_ctx *ctx, const char *id, int *found);
    blipc_status (*has)(void *state, blipc__index_ctx *ctx, const char *id, int *found,
                        char *path_out, size_t path_cap);                               /* optional */
    blipc_status (*set_path)(void *state, blipc__index_ctx *ctx, const char *id, const char *path,
                             int64_t mtime);                                            /* optional */
    blipc_status (*del)(void *state, blipc__index_ctx *ctx, const char *id);             /* optional */
    blipc_status (*count)(void *state, blipc__index_ctx *ctx, uint64_t *n);              /* optional */
    blipc_status (*search)(void *state, blipc__index_ctx *ctx, const blipc_index_query *q);
} blipc__index_backend_ops;

/* Backend constructors. `p` has every default filled in. */
blipc_status blipc__store_open(const blipc_index_params *p, blipc__index_ctx *ctx,
                               const blipc__index_backend_ops **ops, void **state);
/* Implemented in opensearch*.c (the OpenSearch teammate). index.c references it
 * weakly: while it is not linked in, opening an OpenSearch index answers
 * BLIPC_ERR_UNSUPPORTED. */
blipc_status blipc__opensearch_open(const blipc_index_params *p, blipc__index_ctx *ctx,
                                    const blipc__index_backend_ops **ops, void **state);
/* Implemented in opensearch*.c; called by blipc_index_register_model (weak too). */
blipc_status blipc__opensearch_register_model(const blipc_index_params *p, const char *model_name,
                                              const char *version, const char *format,
                                              char *model_id_out, size_t model_id_cap, blipc_err *e);

/* Helpers for backends (index.c). */
void blipc__index_set_result(blipc__index_ctx *ctx, size_t i, blipc_status st, const char *msg);
/* Append a hit (strings copied; NULL -> ""). text_score/vector_score NAN when n/a. */
blipc_status blipc__index_add_hit(blipc__index_ctx *ctx, double score, double text_score,
                                  double vector_score, const char *id, const char *path,
                                  const char *caption);
/* Fill the document returned by blipc_index_get (everything copied). */
blipc_status blipc__index_set_got(blipc__index_ctx *ctx, const blipc_index_doc *d);

/* Hybrid combination shared by both backends (so the store and a test server
 * compute the same thing): given n candidates with raw text scores t[i] and
 * vector scores v[i] (NAN = not among that sub-query's hits), writes the
 * combined score: min-max normalise each sub-query over its non-NAN values
 * (all equal -> 1), absent -> 0, then wt * t' + wv * v'. */
void blipc__hybrid_combine(size_t n, const double *t, const double *v, double wt, double wv, double *out);

/* Small utilities shared by backends. */
char *blipc__strdup(const char *s);     /* NULL on failure or s == NULL */
int blipc__is_sha256_hex(const char *s);

#endif
