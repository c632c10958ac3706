/* store_internal.h — internal to the embedded store backend (lib/index/store*.c):
 * its state and the helpers its files share.
 *   store_sqlite.c  schema, open (create / check / migrate), close, shared helpers
 *   store_docs.c    put / flush / set_path / delete, get / has / count
 *   store_knn.c     the in-memory vector copy and the exact cosine k-NN scan
 *   store_search.c  filters, BM25 (FTS5), hybrid, search
 * The file format is described in docs/index.md. */
#ifndef BLIPC_INDEX_STORE_INTERNAL_H
#define BLIPC_INDEX_STORE_INTERNAL_H

#include "backend.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define BLIPC__STORE_SCAN_BLOCK 4096 /* rows per sgemv block */

typedef struct blipc__vcache {
    int64_t generation;          /* -1 = not loaded */
    char stamp[24];              /* meta.vec_stamp the copy holds ("" = unknown: format-1 store) */
    size_t n, cap;
    int dim;
    float *vec;                  /* n * dim, contiguous */
    float *inv_norm;             /* n */
    int64_t *rowid;              /* n, ascending */
    unsigned char (*idbin)[32];  /* n binary sha256 (tie-break by id) */
    void *map;                   /* non-NULL: the arrays above point into this read-only
                                    mapping of the sidecar FILE-vec (else they are malloc'd) */
    size_t map_len;
} blipc__vcache;

typedef struct blipc__store {
    sqlite3 *db;
    char *path;
    int read_only;
    int dim;                     /* dim stored in meta (0 = none yet) */
    int format;                  /* meta.format_version (1: no vec_stamp, no sidecar) */
    int vec_dirty;               /* this handle committed vector changes the sidecar lacks */
    blipc__index_ctx *ctx;       /* the handle's context (for close: logging) */
    blipc__vcache vc;
} blipc__store;

/* store_sqlite.c: helpers */
/* BLIPC_ERR_STORE "index store <path>: <what>: <sqlite message>" */
blipc_status blipc__store_sqerr(blipc__store *s, blipc__index_ctx *ctx, const char *what);
int blipc__store_exec(blipc__store *s, const char *sql);
/* 64 lowercase hex digits -> 32 bytes */
void blipc__store_hex_to_bin(const char *hex, unsigned char out[32]);
blipc_status blipc__store_meta_get(blipc__store *s, blipc__index_ctx *ctx, const char *key, char *buf, size_t cap,
                                   int *found);
blipc_status blipc__store_meta_set(blipc__store *s, blipc__index_ctx *ctx, const char *key, const char *value);
/* BEGIN IMMEDIATE (refused when read-only; a clear message when locked) */
blipc_status blipc__store_begin_write(blipc__store *s, blipc__index_ctx *ctx);
void blipc__store_rollback(blipc__store *s);
void blipc__store_vcache_free(blipc__vcache *v);

/* store_docs.c: backend ops (see backend.h) */
blipc_status blipc__store_put(void *state, blipc__index_ctx *ctx, const blipc_index_doc *docs, size_t n);
blipc_status blipc__store_flush(void *state, blipc__index_ctx *ctx);
blipc_status blipc__store_set_path(void *state, blipc__index_ctx *ctx, const char *id, const char *path,
                                   int64_t mtime);
blipc_status blipc__store_del(void *state, blipc__index_ctx *ctx, const char *id);
blipc_status blipc__store_get(void *state, blipc__index_ctx *ctx, const char *id, int *found);
blipc_status blipc__store_has(void *state, blipc__index_ctx *ctx, const char *id, int *found, char *path_out,
                              size_t path_cap);
blipc_status blipc__store_count(void *state, blipc__index_ctx *ctx, uint64_t *n);

/* store_knn.c */
/* Make s->vc hold every vector of the current snapshot: kept when meta.vec_stamp
 * (format 1: meta.generation) is unchanged, else mapped from the sidecar FILE-vec
 * when it matches meta.vec_stamp, else loaded from SQLite. Must run inside a
 * read transaction. */
blipc_status blipc__store_vcache_refresh(blipc__store *s, blipc__index_ctx *ctx);
/* Writable handles (format >= 2): make FILE-vec match the last commit (rebuilt
 * from SQLite when stale or missing; temp file + fsync + rename). Runs its own
 * read transaction. Failures are returned (the store itself is unaffected). */
blipc_status blipc__store_sidecar_sync(blipc__store *s, blipc__index_ctx *ctx);
typedef struct blipc__store_cand {
    double score;
    size_t row;                  /* vcache row */
} blipc__store_cand;
/* Exact k-NN: scores (1 + cos) / 2 of every allowed row, top k best first.
 * allowed == NULL: every row. Writes up to k candidates into heap (k entries),
 * returns the count; block_scores holds BLIPC__STORE_SCAN_BLOCK floats. */
size_t blipc__store_knn_scan(const blipc__vcache *v, const float *q, int dim, const unsigned char *allowed, size_t k,
                             blipc__store_cand *heap, float *block_scores);

/* store_search.c: backend op (see backend.h) */
blipc_status blipc__store_search(void *state, blipc__index_ctx *ctx, const blipc_index_query *q);

#endif
