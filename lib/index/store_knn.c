/* store_knn.c — the embedded store's vector search: every vector in one
 * in-memory block (reloaded when the generation changes), scanned exactly
 * (cosine) with cblas_sgemv over blocks, top k kept in a heap. */
#include "store_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

blipc_status blipc__store_vcache_refresh(blipc__store *s, blipc__index_ctx *ctx) {
    char buf[32];
    int found;
    BLIPC_TRY(blipc__store_meta_get(s, ctx, "generation", buf, sizeof buf, &found));
    int64_t gen = found ? strtoll(buf, NULL, 10) : 0;
    BLIPC_TRY(blipc__store_meta_get(s, ctx, "dim", buf, sizeof buf, &found));
    int dim = found ? (int)strtol(buf, NULL, 10) : 0;
    s->dim = dim;
    ctx->dim = dim;
    blipc__vcache *v = &s->vc;
    if (v->generation == gen && v->dim == dim) return BLIPC_OK;
    blipc__store_vcache_free(v);
    v->dim = dim;
    if (dim <= 0) {
        v->generation = gen;
        return BLIPC_OK;
    }
    sqlite3_stmt *st;
    /* Capacity: every document (an upper bound on those with a vector). Plain
     * count(*) is answered from the smallest index; "WHERE vector IS NOT NULL"
     * would read the whole table an extra time (~30% of the load). */
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM docs", -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "loading vectors");
    size_t cap = 0;
    if (sqlite3_step(st) == SQLITE_ROW) cap = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (cap == 0) {
        v->generation = gen;
        return BLIPC_OK;
    }
    v->vec = malloc(cap * (size_t)dim * sizeof(float));
    v->inv_norm = malloc(cap * sizeof(float));
    v->rowid = malloc(cap * sizeof(int64_t));
    v->idbin = malloc(cap * sizeof *v->idbin);
    if (!v->vec || !v->inv_norm || !v->rowid || !v->idbin) {
        blipc__store_vcache_free(v);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store %s: out of memory loading %zu vectors of %d floats",
                           s->path, cap, dim);
    }
    v->cap = cap;
    if (sqlite3_prepare_v2(s->db, "SELECT rowid, id, vector FROM docs WHERE vector IS NOT NULL ORDER BY rowid", -1,
                           &st, NULL) != SQLITE_OK) {
        blipc__store_vcache_free(v);
        return blipc__store_sqerr(s, ctx, "loading vectors");
    }
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < cap) {
        const void *blob = sqlite3_column_blob(st, 2);
        int bytes = sqlite3_column_bytes(st, 2);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        if (bytes != dim * (int)sizeof(float) || !blob || !blipc__is_sha256_hex(id)) {
            sqlite3_finalize(st);
            blipc__store_vcache_free(v);
            return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                               "index store %s: document %s has a vector of %d bytes, expected %d (corrupt store?)",
                               s->path, id ? id : "?", bytes, dim * (int)sizeof(float));
        }
        float *row = v->vec + n * (size_t)dim;
        memcpy(row, blob, (size_t)bytes);
        float nrm = cblas_snrm2(dim, row, 1);
        v->inv_norm[n] = nrm > 0 ? 1.0f / nrm : 0.0f;
        v->rowid[n] = sqlite3_column_int64(st, 0);
        blipc__store_hex_to_bin(id, v->idbin[n]);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        blipc__store_vcache_free(v);
        return blipc__store_sqerr(s, ctx, "loading vectors");
    }
    v->n = n;
    v->generation = gen;
    return BLIPC_OK;
}

/* "a is worse than b": lower score, or equal score and larger id. */
static int worse(const blipc__vcache *v, const blipc__store_cand *a, const blipc__store_cand *b) {
    if (a->score != b->score) return a->score < b->score;
    return memcmp(v->idbin[a->row], v->idbin[b->row], 32) > 0;
}

/* min-heap on "worse" (root = worst kept) */
static void heap_sift_down(const blipc__vcache *v, blipc__store_cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(v, &h[l], &h[m])) m = l;
        if (r < n && worse(v, &h[r], &h[m])) m = r;
        if (m == i) return;
        blipc__store_cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_sift_up(const blipc__vcache *v, blipc__store_cand *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(v, &h[i], &h[p])) return;
        blipc__store_cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Exact k-NN: scores (1 + cos) / 2 of every allowed row, top k best first.
 * allowed == NULL: every row. Writes up to k candidates into out, returns count. */
size_t blipc__store_knn_scan(const blipc__vcache *v, const float *q, int dim, const unsigned char *allowed, size_t k,
                             blipc__store_cand *heap, float *block_scores) {
    size_t nh = 0;
    float qn = cblas_snrm2(dim, q, 1);
    float qinv = qn > 0 ? 1.0f / qn : 0.0f;
    for (size_t b = 0; b < v->n; b += BLIPC__STORE_SCAN_BLOCK) {
        size_t rows = v->n - b < BLIPC__STORE_SCAN_BLOCK ? v->n - b : BLIPC__STORE_SCAN_BLOCK;
        /* block_scores[0..rows) = V[b..b+rows) . q */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, dim, 1.0f, v->vec + b * (size_t)dim, dim, q, 1, 0.0f,
                    block_scores, 1);
        for (size_t r = 0; r < rows; r++) {
            size_t row = b + r;
            if (allowed && !allowed[row]) continue;
            double cosv = (double)block_scores[r] * v->inv_norm[row] * qinv;
            if (cosv > 1) cosv = 1;
            if (cosv < -1) cosv = -1;
            blipc__store_cand c = {(1.0 + cosv) / 2.0, row};
            if (nh < k) {
                heap[nh] = c;
                heap_sift_up(v, heap, nh);
                nh++;
            } else if (worse(v, &heap[0], &c)) {
                heap[0] = c;
                heap_sift_down(v, heap, nh, 0);
            }
        }
    }
    /* pop worst-first into the tail: result best first */
    size_t n = nh;
    while (nh > 0) {
        blipc__store_cand t = heap[0];
        heap[0] = heap[nh - 1];
        heap[nh - 1] = t;
        nh--;
        heap_sift_down(v, heap, nh, 0);
    }
    /* now heap[0..n) is sorted best first (worst ended at the front, we moved it to the back) */
    return n;
}
