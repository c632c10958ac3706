/* blipc__store_search.c — the embedded store's search: filters (SQL conditions or a
 * row mask), BM25 over FTS5, vector hits from store_knn.c, min-max hybrid
 * combination, hits best first. */
#include "store_internal.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUERY_TERMS 256      /* BM25 query: at most this many terms (OR) */

/* Append " AND <filter conditions>" on table alias d to sql; binds collected. */
typedef struct sqlbuf {
    char *s;
    size_t n, cap;
    int oom;
} sqlbuf;

static void sb_add(sqlbuf *b, const char *t) {
    size_t l = strlen(t);
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 256) + l;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, t, l + 1);
    b->n += l;
}

static const char *const INT_FIELDS[] = {"width", "height", "mtime", "size", NULL};
static const char *const TEXT_FIELDS[] = {"id", "path", "caption_model", "embed_model", NULL};

static blipc_status add_filters(blipc__store *s, blipc__index_ctx *ctx, const blipc_index_query *q, sqlbuf *b,
                                int first_param) {
    for (size_t i = 0; i < q->n_filters; i++) {
        const char *f = q->filters[i].field;
        char cond[160];
        int pidx = first_param + (int)(2 * i);
        int known = 0;
        for (int j = 0; INT_FIELDS[j]; j++)
            if (!strcmp(f, INT_FIELDS[j])) {
                char *end;
                errno = 0;
                (void)strtoll(q->filters[i].value, &end, 10);
                if (!q->filters[i].value[0] || *end || errno)
                    return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                                       "filter %s=%s: %s is an integer field", f, q->filters[i].value, f);
                if (snprintf(cond, sizeof cond, " AND d.%s = CAST(?%d AS INTEGER)", f, pidx) >= (int)sizeof cond)
                    return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "filter field name too long");
                known = 1;
            }
        for (int j = 0; !known && TEXT_FIELDS[j]; j++)
            if (!strcmp(f, TEXT_FIELDS[j])) {
                if (snprintf(cond, sizeof cond, " AND d.%s = ?%d", f, pidx) >= (int)sizeof cond)
                    return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "filter field name too long");
                known = 1;
            }
        if (!known && (!strcmp(f, "image_description") || !strcmp(f, "caption"))) {
            snprintf(cond, sizeof cond, " AND d.caption = ?%d", pidx);
            known = 1;
        }
        if (!known && !strncmp(f, "answer_", 7)) {
            snprintf(cond, sizeof cond,
                     " AND EXISTS (SELECT 1 FROM answers a WHERE a.doc = d.rowid AND a.field = ?%d AND a.answer = ?%d)",
                     pidx + 1, pidx);
            known = 1;
        }
        if (!known)
            return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                               "index store %s: cannot filter on unknown field '%s' (fields: id, path, "
                               "image_description, width, height, mtime, size, caption_model, embed_model, answer_*)",
                               s->path, f);
        sb_add(b, cond);
    }
    if (b->oom) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    return BLIPC_OK;
}

static void bind_filters(sqlite3_stmt *st, const blipc_index_query *q, int first_param) {
    for (size_t i = 0; i < q->n_filters; i++) {
        sqlite3_bind_text(st, first_param + (int)(2 * i), q->filters[i].value, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, first_param + (int)(2 * i) + 1, q->filters[i].field, -1, SQLITE_STATIC);
    }
}

/* FTS5 query equivalent to OpenSearch's `match` (OR of the terms): every run of
 * ASCII letters/digits or non-ASCII bytes becomes a quoted term. */
static char *fts_query(const char *text) {
    size_t len = strlen(text);
    char *out = malloc(len * 3 + 16);
    if (!out) return NULL;
    size_t o = 0;
    int terms = 0;
    const unsigned char *p = (const unsigned char *)text;
    while (*p && terms < MAX_QUERY_TERMS) {
        while (*p && *p < 128 && !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            p++;
        if (!*p) break;
        if (terms) {
            memcpy(out + o, " OR ", 4);
            o += 4;
        }
        out[o++] = '"';
        while (*p && (*p >= 128 || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            out[o++] = (char)*p++;
        out[o++] = '"';
        terms++;
    }
    out[o] = 0;
    return out;
}

typedef struct tcand {
    int64_t rowid;
    double score;
} tcand;

/* BM25 sub-query: up to k (rowid, score) best first; score = -bm25() (higher is better). */
static blipc_status bm25_query(blipc__store *s, blipc__index_ctx *ctx, const blipc_index_query *q, size_t k,
                               tcand **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    char *fq = fts_query(q->text);
    if (!fq) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    if (!fq[0]) {
        free(fq);
        return BLIPC_OK;
    }
    sqlbuf b = {0};
    sb_add(&b, "SELECT d.rowid, -bm25(docs_fts) AS sc FROM docs_fts JOIN docs d ON d.rowid = docs_fts.rowid "
               "WHERE docs_fts MATCH ?1");
    blipc_status bs = add_filters(s, ctx, q, &b, 3);
    sb_add(&b, " ORDER BY sc DESC, d.id ASC LIMIT ?2");
    if (!bs && b.oom) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    tcand *c = NULL;
    size_t n = 0;
    if (!bs) c = malloc(k * sizeof *c);
    if (!bs && !c) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    sqlite3_stmt *st = NULL;
    if (!bs && sqlite3_prepare_v2(s->db, b.s, -1, &st, NULL) != SQLITE_OK)
        bs = blipc__store_sqerr(s, ctx, "text search");
    if (!bs) {
        sqlite3_bind_text(st, 1, fq, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)k);
        bind_filters(st, q, 3);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < k) {
            c[n].rowid = sqlite3_column_int64(st, 0);
            c[n].score = sqlite3_column_double(st, 1);
            n++;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) bs = blipc__store_sqerr(s, ctx, "text search");
    }
    sqlite3_finalize(st);
    free(b.s);
    free(fq);
    if (bs) {
        free(c);
        return bs;
    }
    *out = c;
    *n_out = n;
    return BLIPC_OK;
}

/* Mask over vcache rows of documents passing the filters (NULL when none). */
static blipc_status filter_mask(blipc__store *s, blipc__index_ctx *ctx, const blipc_index_query *q,
                                unsigned char **mask) {
    *mask = NULL;
    if (q->n_filters == 0 || s->vc.n == 0) return BLIPC_OK;
    sqlbuf b = {0};
    sb_add(&b, "SELECT d.rowid FROM docs d WHERE d.vector IS NOT NULL");
    blipc_status bs = add_filters(s, ctx, q, &b, 1);
    sb_add(&b, " ORDER BY d.rowid");
    if (!bs && b.oom) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    unsigned char *m = NULL;
    if (!bs) m = calloc(s->vc.n, 1);
    if (!bs && !m) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    sqlite3_stmt *st = NULL;
    if (!bs && sqlite3_prepare_v2(s->db, b.s, -1, &st, NULL) != SQLITE_OK) bs = blipc__store_sqerr(s, ctx, "filtering");
    if (!bs) {
        bind_filters(st, q, 1);
        size_t j = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t r = sqlite3_column_int64(st, 0);
            while (j < s->vc.n && s->vc.rowid[j] < r) j++;   /* both ascending */
            if (j < s->vc.n && s->vc.rowid[j] == r) m[j] = 1;
        }
        if (rc != SQLITE_DONE) bs = blipc__store_sqerr(s, ctx, "filtering");
    }
    sqlite3_finalize(st);
    free(b.s);
    if (bs) {
        free(m);
        return bs;
    }
    *mask = m;
    return BLIPC_OK;
}

typedef struct hcand {
    int64_t rowid;
    double t, v, score;
    unsigned char idbin[32];
    int has_id;
} hcand;

static int cmp_by_rowid(const void *a, const void *b, void *ctx) {
    const struct hcand *hh = ctx;
    int64_t x = hh[*(const size_t *)a].rowid, y = hh[*(const size_t *)b].rowid;
    return x < y ? -1 : x > y;
}

static int hcand_cmp(const void *a, const void *b) {
    const hcand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return memcmp(x->idbin, y->idbin, 32);
}

static blipc_status emit_hits(blipc__store *s, blipc__index_ctx *ctx, hcand *h, size_t n, size_t k) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, path, caption FROM docs WHERE rowid = ?1", -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "reading hits");
    /* ids are needed for tie-breaking: fetch them first */
    for (size_t i = 0; i < n; i++) {
        if (h[i].has_id) continue;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, h[i].rowid);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *id = (const char *)sqlite3_column_text(st, 0);
            if (blipc__is_sha256_hex(id)) blipc__store_hex_to_bin(id, h[i].idbin);
            h[i].has_id = 1;
        }
    }
    qsort(h, n, sizeof *h, hcand_cmp);
    blipc_status bs = BLIPC_OK;
    for (size_t i = 0; i < n && i < k && !bs; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, h[i].rowid);
        if (sqlite3_step(st) != SQLITE_ROW) {
            bs = blipc__store_sqerr(s, ctx, "reading hits");
            break;
        }
        bs = blipc__index_add_hit(ctx, h[i].score, h[i].t, h[i].v, (const char *)sqlite3_column_text(st, 0),
                                  (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    return bs;
}

static blipc_status search_locked(blipc__store *s, blipc__index_ctx *ctx, const blipc_index_query *q) {
    size_t k = (size_t)q->k;
    int use_vec = q->vector != NULL;
    int use_text = q->text && q->text[0] && (q->hybrid || !use_vec);
    if (q->hybrid && !use_vec)
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "index store %s: hybrid search needs a query vector (the store does not embed text)",
                           s->path);
    BLIPC_TRY(blipc__store_vcache_refresh(s, ctx));
    if (use_vec && s->dim > 0 && q->dim != s->dim)
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "index store %s: query vector has dimension %d, the store holds %d", s->path, q->dim,
                           s->dim);

    blipc__store_cand *vc = NULL;
    size_t nv = 0;
    tcand *tc = NULL;
    size_t nt = 0;
    blipc_status bs = BLIPC_OK;
    if (use_vec && s->vc.n > 0) {
        unsigned char *mask = NULL;
        bs = filter_mask(s, ctx, q, &mask);
        float *scores = NULL;
        if (!bs) {
            vc = malloc((k < s->vc.n ? k : s->vc.n) * sizeof *vc);
            scores = malloc(BLIPC__STORE_SCAN_BLOCK * sizeof *scores);
            if (!vc || !scores) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
        }
        if (!bs) nv = blipc__store_knn_scan(&s->vc, q->vector, q->dim, mask, k < s->vc.n ? k : s->vc.n, vc, scores);
        free(scores);
        free(mask);
    } else if (use_vec && q->n_filters) {
        /* still validate the filter fields */
        sqlbuf b = {0};
        bs = add_filters(s, ctx, q, &b, 1);
        free(b.s);
    }
    if (!bs && use_text) bs = bm25_query(s, ctx, q, k, &tc, &nt);

    hcand *h = NULL;
    size_t nh = 0;
    if (!bs) {
        h = calloc(nv + nt + 1, sizeof *h);
        if (!h) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    }
    if (!bs) {
        for (size_t i = 0; i < nv; i++) {
            h[nh].rowid = s->vc.rowid[vc[i].row];
            h[nh].v = vc[i].score;
            h[nh].t = NAN;
            memcpy(h[nh].idbin, s->vc.idbin[vc[i].row], 32);
            h[nh].has_id = 1;
            nh++;
        }
        /* union by rowid: binary search in the vector hits sorted by rowid */
        size_t *by_row = nv ? malloc(nv * sizeof *by_row) : NULL;
        if (nv && !by_row) {
            free(h);
            free(vc);
            free(tc);
            return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
        }
        for (size_t i = 0; i < nv; i++) by_row[i] = i;
        if (nv) qsort_r(by_row, nv, sizeof *by_row, cmp_by_rowid, h);
        for (size_t i = 0; i < nt; i++) {
            size_t lo = 0, hi = nv, j = nv;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (h[by_row[mid]].rowid < tc[i].rowid) lo = mid + 1;
                else hi = mid;
            }
            if (lo < nv && h[by_row[lo]].rowid == tc[i].rowid) j = by_row[lo];
            if (j < nv) {
                h[j].t = tc[i].score;
            } else {
                h[nh].rowid = tc[i].rowid;
                h[nh].t = tc[i].score;
                h[nh].v = NAN;
                nh++;
            }
        }
        free(by_row);
        if (q->hybrid) {
            double *t = malloc((nh + 1) * sizeof *t), *v = malloc((nh + 1) * sizeof *v),
                   *o = malloc((nh + 1) * sizeof *o);
            if (!t || !v || !o) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
            else {
                for (size_t i = 0; i < nh; i++) {
                    t[i] = h[i].t;
                    v[i] = h[i].v;
                }
                blipc__hybrid_combine(nh, t, v, q->text_weight, q->vector_weight, o);
                for (size_t i = 0; i < nh; i++) h[i].score = o[i];
            }
            free(t);
            free(v);
            free(o);
        } else {
            for (size_t i = 0; i < nh; i++) h[i].score = use_vec ? h[i].v : h[i].t;
        }
    }
    if (!bs) bs = emit_hits(s, ctx, h, nh, k);
    free(h);
    free(vc);
    free(tc);
    return bs;
}

blipc_status blipc__store_search(void *state, blipc__index_ctx *ctx, const blipc_index_query *q) {
    blipc__store *s = state;
    /* One read transaction: the vectors, BM25 and hit rows come from the same snapshot. */
    if (blipc__store_exec(s, "BEGIN") != SQLITE_OK) return blipc__store_sqerr(s, ctx, "BEGIN (search)");
    blipc_status bs = search_locked(s, ctx, q);
    blipc__store_exec(s, "COMMIT");
    return bs;
}
