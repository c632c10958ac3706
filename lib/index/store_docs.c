/* store_docs.c — the embedded store's document operations: put (documents,
 * answers, FTS rows, a stale path's old document), flush, set_path, delete,
 * get, has, count. See store_internal.h. */
#include "store_internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every write transaction: generation + 1; when it changes vectors also a new
 * random meta.vec_stamp (the key of the sidecar FILE-vec, see store_knn.c). */
static blipc_status bump_generation(blipc__store *s, blipc__index_ctx *ctx, int vectors_changed) {
    if (blipc__store_exec(s, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'") !=
        SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "updating generation");
    if (vectors_changed &&
        blipc__store_exec(s, "UPDATE meta SET value = lower(hex(randomblob(8))) WHERE key = 'vec_stamp'") !=
            SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "updating vec_stamp");
    return BLIPC_OK;
}

static blipc_status delete_rowid(blipc__store *s, blipc__index_ctx *ctx, int64_t rowid) {
    static const char *const sql[] = {"DELETE FROM docs WHERE rowid = ?1", "DELETE FROM docs_fts WHERE rowid = ?1",
                                      "DELETE FROM answers WHERE doc = ?1"};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL) != SQLITE_OK)
            return blipc__store_sqerr(s, ctx, "deleting");
        sqlite3_bind_int64(st, 1, rowid);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return blipc__store_sqerr(s, ctx, "deleting");
    }
    return BLIPC_OK;
}

/* Remove documents stored under `path` with an id other than `keep_id`. */
static blipc_status delete_stale_path(blipc__store *s, blipc__index_ctx *ctx, const char *path, const char *keep_id) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT rowid FROM docs WHERE path = ?1 AND id <> ?2", -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "looking up a path");
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, keep_id, -1, SQLITE_STATIC);
    int64_t rows[16];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 16) rows[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return blipc__store_sqerr(s, ctx, "looking up a path");
    for (int i = 0; i < n; i++) BLIPC_TRY(delete_rowid(s, ctx, rows[i]));
    return BLIPC_OK;
}

static blipc_status lookup_rowid(blipc__store *s, blipc__index_ctx *ctx, const char *id, int64_t *rowid) {
    sqlite3_stmt *st;
    *rowid = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT rowid FROM docs WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "looking up an id");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *rowid = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return blipc__store_sqerr(s, ctx, "looking up an id");
    return BLIPC_OK;
}

static blipc_status put_one(blipc__store *s, blipc__index_ctx *ctx, const blipc_index_doc *d, int64_t now) {
    BLIPC_TRY(delete_stale_path(s, ctx, d->path, d->id));
    int64_t rowid;
    BLIPC_TRY(lookup_rowid(s, ctx, d->id, &rowid));
    if (rowid) BLIPC_TRY(delete_rowid(s, ctx, rowid));   /* replace: same rowid kept below */

    sqlite3_stmt *st;
    const char *ins = "INSERT INTO docs(rowid, id, path, caption, width, height, mtime, size, caption_model, "
                      "embed_model, vector, indexed_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    if (sqlite3_prepare_v2(s->db, ins, -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "inserting a document");
    if (rowid) sqlite3_bind_int64(st, 1, rowid);
    else sqlite3_bind_null(st, 1);
    sqlite3_bind_text(st, 2, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->caption, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, d->width);
    sqlite3_bind_int(st, 6, d->height);
    sqlite3_bind_int64(st, 7, d->mtime);
    sqlite3_bind_int64(st, 8, d->size);
    if (d->caption_model) sqlite3_bind_text(st, 9, d->caption_model, -1, SQLITE_STATIC);
    if (d->embed_model) sqlite3_bind_text(st, 10, d->embed_model, -1, SQLITE_STATIC);
    if (d->vector) sqlite3_bind_blob(st, 11, d->vector, d->dim * (int)sizeof(float), SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, now);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return blipc__store_sqerr(s, ctx, "inserting a document");
    rowid = sqlite3_last_insert_rowid(s->db);

    /* answers (one row per question) + the FTS text */
    size_t alen = 0;
    for (size_t i = 0; i < d->n_answers; i++) alen += strlen(d->answers[i] ? d->answers[i] : "") + 1;
    char *all = malloc(alen + 1);
    if (!all) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    all[0] = 0;
    size_t off = 0;
    blipc_status bs = BLIPC_OK;
    if (d->n_answers) {
        if (sqlite3_prepare_v2(s->db,
                               "INSERT OR REPLACE INTO answers(doc, field, question, answer, ord) "
                               "VALUES(?1, ?2, ?3, ?4, ?5)",
                               -1, &st, NULL) != SQLITE_OK) {
            free(all);
            return blipc__store_sqerr(s, ctx, "inserting answers");
        }
        for (size_t i = 0; i < d->n_answers && !bs; i++) {
            const char *q = d->questions[i] ? d->questions[i] : "";
            const char *a = d->answers[i] ? d->answers[i] : "";
            char field[80];
            blipc_index_answer_field(q, field, sizeof field);
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, rowid);
            sqlite3_bind_text(st, 2, field, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 3, q, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, a, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, (int64_t)i);
            if (sqlite3_step(st) != SQLITE_DONE) bs = blipc__store_sqerr(s, ctx, "inserting answers");
            size_t l = strlen(a);
            memcpy(all + off, a, l);
            off += l;
            all[off++] = '\n';
            all[off] = 0;
        }
        sqlite3_finalize(st);
    }
    if (!bs) {
        if (sqlite3_prepare_v2(s->db, "INSERT INTO docs_fts(rowid, caption, answers) VALUES(?1, ?2, ?3)", -1, &st,
                               NULL) != SQLITE_OK)
            bs = blipc__store_sqerr(s, ctx, "indexing text");
        else {
            sqlite3_bind_int64(st, 1, rowid);
            sqlite3_bind_text(st, 2, d->caption, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, all, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) bs = blipc__store_sqerr(s, ctx, "indexing text");
            sqlite3_finalize(st);
        }
    }
    free(all);
    return bs;
}

blipc_status blipc__store_put(void *state, blipc__index_ctx *ctx, const blipc_index_doc *docs, size_t n) {
    blipc__store *s = state;
    BLIPC_TRY(blipc__store_begin_write(s, ctx));
    int64_t now = (int64_t)time(NULL);
    /* Dimension: the first vector fixes it for the whole store. */
    int dim = s->dim;
    blipc_status bs = BLIPC_OK;
    for (size_t i = 0; i < n && !bs; i++) {
        if (!docs[i].vector) continue;
        if (dim == 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", docs[i].dim);
            bs = blipc__store_meta_set(s, ctx, "dim", v);
            dim = docs[i].dim;
        } else if (docs[i].dim != dim) {
            bs = blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                             "index store %s: document %s (%s) has a %d-dimensional vector, the store holds %d",
                             s->path, docs[i].id, docs[i].path, docs[i].dim, dim);
        }
    }
    /* One savepoint per document: a failing document is rolled back alone. */
    blipc_status *per = calloc(n, sizeof *per);
    char **msgs = calloc(n, sizeof *msgs);
    if (!bs && (!per || !msgs)) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    for (size_t i = 0; i < n && !bs; i++) {
        if (blipc__store_exec(s, "SAVEPOINT doc") != SQLITE_OK) {
            bs = blipc__store_sqerr(s, ctx, "SAVEPOINT");
            break;
        }
        blipc_status ds = put_one(s, ctx, &docs[i], now);
        if (ds == BLIPC_ERR_NOMEM) {
            bs = ds;
            break;
        }
        if (ds) {
            blipc__store_exec(s, "ROLLBACK TO doc");
            per[i] = ds;
            msgs[i] = blipc__strdup(ctx->err.msg);
        }
        if (blipc__store_exec(s, "RELEASE doc") != SQLITE_OK) bs = blipc__store_sqerr(s, ctx, "RELEASE");
    }
    if (!bs) bs = bump_generation(s, ctx, 1);
    if (!bs && blipc__store_exec(s, "COMMIT") != SQLITE_OK) bs = blipc__store_sqerr(s, ctx, "COMMIT");
    if (bs) {
        blipc__store_rollback(s);
    } else {
        s->vec_dirty = 1;
        s->dim = dim;
        ctx->dim = dim;
        for (size_t i = 0; i < n; i++)
            blipc__index_set_result(ctx, i, per[i], per[i] ? (msgs[i] ? msgs[i] : "failed") : NULL);
    }
    if (msgs)
        for (size_t i = 0; i < n; i++) free(msgs[i]);
    free(msgs);
    free(per);
    return bs;
}

blipc_status blipc__store_flush(void *state, blipc__index_ctx *ctx) {
    blipc__store *s = state;
    if (s->read_only) return BLIPC_OK;
    /* the sidecar first (a cheap header check when it is current); a failure
     * there only makes the next search load the vectors from SQLite */
    if (s->format >= 2) {
        blipc_err saved = ctx->err;
        if (blipc__store_sidecar_sync(s, ctx) != BLIPC_OK) blipc__logf(&ctx->log, BLIPC_LOG_WARN, "%s", ctx->err.msg);
        ctx->err = saved;
    }
    if (sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "WAL checkpoint");
    return BLIPC_OK;
}

blipc_status blipc__store_set_path(void *state, blipc__index_ctx *ctx, const char *id, const char *path,
                                   int64_t mtime) {
    blipc__store *s = state;
    BLIPC_TRY(blipc__store_begin_write(s, ctx));
    int64_t rowid = 0;
    blipc_status bs = lookup_rowid(s, ctx, id, &rowid);
    if (!bs && !rowid) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOT_FOUND, "index store %s: no document %s", s->path, id);
    if (!bs) bs = delete_stale_path(s, ctx, path, id);
    if (!bs) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, "UPDATE docs SET path = ?1, mtime = ?2 WHERE rowid = ?3", -1, &st, NULL) !=
            SQLITE_OK)
            bs = blipc__store_sqerr(s, ctx, "updating a path");
        else {
            sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, mtime);
            sqlite3_bind_int64(st, 3, rowid);
            if (sqlite3_step(st) != SQLITE_DONE) bs = blipc__store_sqerr(s, ctx, "updating a path");
            sqlite3_finalize(st);
        }
    }
    if (!bs) bs = bump_generation(s, ctx, 0);
    if (!bs && blipc__store_exec(s, "COMMIT") != SQLITE_OK) bs = blipc__store_sqerr(s, ctx, "COMMIT");
    if (bs) blipc__store_rollback(s);
    return bs;
}

blipc_status blipc__store_del(void *state, blipc__index_ctx *ctx, const char *id) {
    blipc__store *s = state;
    BLIPC_TRY(blipc__store_begin_write(s, ctx));
    int64_t rowid = 0;
    blipc_status bs = lookup_rowid(s, ctx, id, &rowid);
    if (!bs && rowid) bs = delete_rowid(s, ctx, rowid);
    if (!bs) bs = bump_generation(s, ctx, rowid != 0);
    if (!bs && blipc__store_exec(s, "COMMIT") != SQLITE_OK) bs = blipc__store_sqerr(s, ctx, "COMMIT");
    if (bs) blipc__store_rollback(s);
    else if (rowid) s->vec_dirty = 1;
    return bs;
}

blipc_status blipc__store_get(void *state, blipc__index_ctx *ctx, const char *id, int *found) {
    blipc__store *s = state;
    *found = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT rowid, id, path, caption, width, height, mtime, size, caption_model, embed_model, "
                           "vector FROM docs WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "reading a document");
    blipc__store_exec(s, "BEGIN");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    blipc_status bs = BLIPC_OK;
    if (rc == SQLITE_ROW) {
        blipc_index_doc d;
        blipc_index_doc_init(&d);
        int64_t rowid = sqlite3_column_int64(st, 0);
        d.id = (const char *)sqlite3_column_text(st, 1);
        d.path = (const char *)sqlite3_column_text(st, 2);
        d.caption = (const char *)sqlite3_column_text(st, 3);
        d.width = sqlite3_column_int(st, 4);
        d.height = sqlite3_column_int(st, 5);
        d.mtime = sqlite3_column_int64(st, 6);
        d.size = sqlite3_column_int64(st, 7);
        d.caption_model = (const char *)sqlite3_column_text(st, 8);
        d.embed_model = (const char *)sqlite3_column_text(st, 9);
        int bytes = sqlite3_column_bytes(st, 10);
        d.vector = sqlite3_column_blob(st, 10);
        d.dim = bytes / (int)sizeof(float);
        if (!d.vector || bytes % (int)sizeof(float)) {
            d.vector = NULL;
            d.dim = 0;
        }
        /* answers */
        sqlite3_stmt *as;
        size_t na = 0, cap = 0;
        char **qs = NULL, **an = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT question, answer FROM answers WHERE doc = ?1 ORDER BY ord", -1, &as,
                               NULL) != SQLITE_OK)
            bs = blipc__store_sqerr(s, ctx, "reading answers");
        else {
            sqlite3_bind_int64(as, 1, rowid);
            while (!bs && sqlite3_step(as) == SQLITE_ROW) {
                if (na == cap) {
                    size_t nc = cap ? cap * 2 : 4;
                    char **q2 = realloc(qs, nc * sizeof *q2);
                    if (q2) qs = q2;
                    char **a2 = realloc(an, nc * sizeof *a2);
                    if (a2) an = a2;
                    if (!q2 || !a2) {
                        bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
                        break;
                    }
                    cap = nc;
                }
                qs[na] = blipc__strdup((const char *)sqlite3_column_text(as, 0));
                an[na] = blipc__strdup((const char *)sqlite3_column_text(as, 1));
                na++;
                if (!qs[na - 1] || !an[na - 1]) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
            }
            sqlite3_finalize(as);
        }
        if (!bs) {
            d.questions = (const char *const *)qs;
            d.answers = (const char *const *)an;
            d.n_answers = na;
            bs = blipc__index_set_got(ctx, &d);
            if (!bs) *found = 1;
        }
        for (size_t i = 0; i < na; i++) {
            free(qs[i]);
            free(an[i]);
        }
        free(qs);
        free(an);
    } else if (rc != SQLITE_DONE) {
        bs = blipc__store_sqerr(s, ctx, "reading a document");
    }
    sqlite3_finalize(st);
    blipc__store_exec(s, "COMMIT");
    return bs;
}

blipc_status blipc__store_has(void *state, blipc__index_ctx *ctx, const char *id, int *found, char *path_out,
                              size_t path_cap) {
    blipc__store *s = state;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT path FROM docs WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "looking up an id");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *found = 1;
        if (path_out && path_cap) snprintf(path_out, path_cap, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return blipc__store_sqerr(s, ctx, "looking up an id");
    return BLIPC_OK;
}

blipc_status blipc__store_count(void *state, blipc__index_ctx *ctx, uint64_t *n) {
    blipc__store *s = state;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM docs", -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "counting");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return blipc__store_sqerr(s, ctx, "counting");
    return BLIPC_OK;
}
