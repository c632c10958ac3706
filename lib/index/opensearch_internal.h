/* opensearch_internal.h — state and helpers shared by the OpenSearch backend's
 * files: opensearch.c (open/close, lookups, shared helpers), opensearch_mapping.c
 * (index setup), opensearch_search.c, opensearch_ml.c (ML Commons) and
 * opensearch_bulk.c (_bulk writes). */
#ifndef BLIPC_INDEX_OPENSEARCH_INTERNAL_H
#define BLIPC_INDEX_OPENSEARCH_INTERNAL_H

#include "backend.h"
#include "opensearch_http.h"

typedef struct blipc__os {
    blipc__os_http *http;
    char *index;                /* index name (validated: safe in a URL path) */
    char *space_type;
    char *ingest_pipeline;      /* server-side embedding (NULL = client-side vectors) */
    char *model_id;
    char *search_pipeline;
    int read_only, gzip, bulk_max_docs;
    size_t bulk_max_bytes;
    int index_ready;            /* index exists and its mapping was checked */
    int index_was_new;          /* we created it in this handle (no stale paths to look for) */
    double hyb_wt;              /* text weight of the search pipeline we last PUT (-1 = none) */
    blipc__os_buf body;         /* request body scratch */
    /* stats for tests / bench */
    unsigned long bulk_requests, bulk_item_retries, bulk_splits;
} blipc__os;

/* Create the index (or check the existing one's mapping) for vectors of `dim`
 * (0 = unknown: only an existing index can be checked; sets ctx->dim from it). */
blipc_status blipc__os_ensure_index(blipc__os *s, blipc__index_ctx *ctx, int dim, int create);

/* put: see backend.h. */
blipc_status blipc__os_put(void *state, blipc__index_ctx *ctx, const blipc_index_doc *docs, size_t n);

/* URL path of the index ("/" + name) plus suffix into the body-independent buffer. */
void blipc__os_path(const blipc__os *s, blipc__os_buf *b, const char *suffix);

/* The k-NN vector field of our mapping. */
#define BLIPC__OS_VEC_FIELD "image_description_vector"

/* search: see backend.h (opensearch_search.c). */
blipc_status blipc__os_search(void *state, blipc__index_ctx *ctx, const blipc_index_query *q);

/* Does a pipeline / model name need no URL escaping? */
int blipc__os_url_safe(const char *n);
/* Send a JSON request (cJSON body may be NULL) and return the status. */
blipc_status blipc__os_json_request(blipc__os *s, blipc__index_ctx *ctx, const char *method, const char *path,
                                    const cJSON *body, long *status);
/* The known error type named in the last response body ("" if none). */
const char *blipc__os_error_type(blipc__os *s);
/* o[k] if it is a string, else NULL. */
const char *blipc__os_jstr(const cJSON *o, const char *k);
/* HTTP parameters from the index parameters (credentials: the params, else
 * OPENSEARCH_USER / OPENSEARCH_PASSWORD). */
void blipc__os_http_params_from(const blipc_index_params *p, blipc__os_http_params *hp);

/* ML Commons tasks (opensearch_ml.c). Start one (POST path with body, may be
 * NULL) and copy its task id; poll it until it ends, copying the model id when
 * model_id is not NULL. `what` names the step in messages. */
blipc_status blipc__os_ml_start_task(blipc__os_http *h, const char *path, const char *body, const char *what,
                                     char *task_id, size_t cap, blipc_err *e);
blipc_status blipc__os_ml_poll_task(blipc__os_http *h, const blipc_logger *lg, const char *task_id, const char *what,
                                    int timeout_ms, int base_ms, char *model_id, size_t cap, blipc_err *e);

#endif
