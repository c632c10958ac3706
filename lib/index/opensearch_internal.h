/* opensearch_internal.h — state shared by opensearch.c (index setup, search,
 * lookups, ML Commons) and opensearch_bulk.c (_bulk writes). */
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

#endif
