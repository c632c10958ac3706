/* store_sqlite.c — the embedded store backend: one SQLite file (WAL), documents
 * in a table, FTS5 over caption + answers (BM25), vectors as float32 BLOBs
 * searched exactly (cosine) with cblas_sgemv over blocks of an in-memory copy
 * that is reloaded when the store's generation counter changes.
 * The file format is described in docs/index.md. */
#include "backend.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define APP_NAME "blipc-index"
#define SCAN_BLOCK 4096          /* rows per sgemv block */
#define MAX_QUERY_TERMS 256      /* BM25 query: at most this many terms (OR) */

static const char *const SCHEMA_SQL =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE docs("
    " rowid INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"          /* content sha256, lowercase hex */
    " path TEXT NOT NULL,"
    " caption TEXT NOT NULL,"            /* image_description */
    " width INTEGER NOT NULL DEFAULT 0,"
    " height INTEGER NOT NULL DEFAULT 0,"
    " mtime INTEGER NOT NULL DEFAULT 0,"
    " size INTEGER NOT NULL DEFAULT 0,"
    " caption_model TEXT,"
    " embed_model TEXT,"
    " vector BLOB,"                      /* image_description_vector: dim float32, little-endian */
    " indexed_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX docs_path ON docs(path);"
    "CREATE TABLE answers("
    " doc INTEGER NOT NULL,"             /* docs.rowid */
    " field TEXT NOT NULL,"              /* answer_<question slug> */
    " question TEXT NOT NULL,"
    " answer TEXT NOT NULL,"
    " ord INTEGER NOT NULL,"
    " PRIMARY KEY(doc, field));"
    "CREATE INDEX answers_field ON answers(field, answer);"
    "CREATE VIRTUAL TABLE docs_fts USING fts5(caption, answers, tokenize = 'unicode61');";

typedef struct vcache {
    int64_t generation;          /* -1 = not loaded */
    size_t n, cap;
    int dim;
    float *vec;                  /* n * dim, contiguous */
    float *inv_norm;             /* n */
    int64_t *rowid;              /* n, ascending */
    unsigned char (*idbin)[32];  /* n binary sha256 (tie-break by id) */
} vcache;

typedef struct store {
    sqlite3 *db;
    char *path;
    int read_only;
    int dim;                     /* dim stored in meta (0 = none yet) */
    vcache vc;
} store;

/* ------------------------------------------------------------ helpers */

static blipc_status sqerr(store *s, blipc__index_ctx *ctx, const char *what) {
    return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: %s: %s", s->path, what,
                       s->db ? sqlite3_errmsg(s->db) : "no database");
}

static int exec(store *s, const char *sql) {
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

static int hexval(int c) {
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

static void hex_to_bin(const char *hex, unsigned char out[32]) {
    for (int i = 0; i < 32; i++) out[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
}

static blipc_status mkdir_parents(const char *file, blipc_err *e) {
    char buf[4096];
    size_t n = strlen(file);
    if (n >= sizeof buf) return blipc__errf(e, BLIPC_ERR_LIMIT, "index store %s: path too long", file);
    memcpy(buf, file, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return BLIPC_OK;
    *slash = 0;
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return blipc__errf(e, BLIPC_ERR_IO, "index store %s: cannot create directory %s: %s", file, buf,
                                   strerror(errno));
            *p = c;
            if (c == 0) break;
        }
    }
    return BLIPC_OK;
}

static blipc_status meta_get(store *s, blipc__index_ctx *ctx, const char *key, char *buf, size_t cap, int *found) {
    sqlite3_stmt *st;
    *found = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) != SQLITE_OK)
        return sqerr(s, ctx, "reading meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(buf, cap, "%s", v ? (const char *)v : "");
        *found = 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqerr(s, ctx, "reading meta");
    return BLIPC_OK;
}

static blipc_status meta_set(store *s, blipc__index_ctx *ctx, const char *key, const char *value) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", -1, &st, NULL) !=
        SQLITE_OK)
        return sqerr(s, ctx, "writing meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return sqerr(s, ctx, "writing meta");
    return BLIPC_OK;
}

static blipc_status bump_generation(store *s, blipc__index_ctx *ctx) {
    if (exec(s, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'") != SQLITE_OK)
        return sqerr(s, ctx, "updating generation");
    return BLIPC_OK;
}

static blipc_status begin_write(store *s, blipc__index_ctx *ctx) {
    if (s->read_only)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: opened read-only", s->path);
    int rc = exec(s, "BEGIN IMMEDIATE");
    if (rc == SQLITE_BUSY)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                           "index store %s: locked by another writer (busy timeout expired)", s->path);
    if (rc != SQLITE_OK) return sqerr(s, ctx, "BEGIN");
    return BLIPC_OK;
}

static void rollback(store *s) {
    exec(s, "ROLLBACK");
}

static void vcache_free(vcache *v) {
    free(v->vec);
    free(v->inv_norm);
    free(v->rowid);
    free(v->idbin);
    memset(v, 0, sizeof *v);
    v->generation = -1;
}

static void store_close(void *state) {
    store *s = state;
    if (!s) return;
    if (s->db) sqlite3_close_v2(s->db);
    vcache_free(&s->vc);
    free(s->path);
    free(s);
}

/* ------------------------------------------------------------ open */

static blipc_status check_or_init(store *s, blipc__index_ctx *ctx, const blipc_index_params *p) {
    /* Any query fails with SQLITE_NOTADB on a file that is not a database. */
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    int n_objects = 0;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) n_objects = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_ROW) {
        int ec = sqlite3_errcode(s->db);
        if (ec == SQLITE_NOTADB || ec == SQLITE_CORRUPT)
            return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                               "index store %s: not a blipc index store (not an SQLite database)", s->path);
        return sqerr(s, ctx, "reading the schema");
    }
    if (n_objects == 0) {
        if (s->read_only)
            return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: empty file, not a blipc index store",
                               s->path);
        BLIPC_TRY(begin_write(s, ctx));
        char ver[16];
        snprintf(ver, sizeof ver, "%d", BLIPC_INDEX_STORE_FORMAT);
        char now[32];
        snprintf(now, sizeof now, "%lld", (long long)time(NULL));
        blipc_status bs = BLIPC_OK;
        if (exec(s, SCHEMA_SQL) != SQLITE_OK) bs = sqerr(s, ctx, "creating the schema");
        if (!bs) bs = meta_set(s, ctx, "application", APP_NAME);
        if (!bs) bs = meta_set(s, ctx, "format_version", ver);
        if (!bs) bs = meta_set(s, ctx, "generation", "0");
        if (!bs) bs = meta_set(s, ctx, "created", now);
        if (!bs && exec(s, "COMMIT") != SQLITE_OK) bs = sqerr(s, ctx, "COMMIT (creating the schema)");
        if (bs) {
            rollback(s);
            return bs;
        }
        blipc__logf(&ctx->log, BLIPC_LOG_INFO, "index store %s: created (format %d)", s->path,
                    BLIPC_INDEX_STORE_FORMAT);
    }
    /* It must be ours. */
    rc = sqlite3_prepare_v2(s->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'", -1, &st,
                            NULL);
    int has_meta = 0;
    if (rc == SQLITE_OK) {
        has_meta = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    char buf[64];
    int found = 0;
    if (has_meta) BLIPC_TRY(meta_get(s, ctx, "application", buf, sizeof buf, &found));
    if (!has_meta || !found || strcmp(buf, APP_NAME) != 0)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                           "index store %s: not a blipc index store (an SQLite database without blipc's meta table)",
                           s->path);
    BLIPC_TRY(meta_get(s, ctx, "format_version", buf, sizeof buf, &found));
    long ver = found ? strtol(buf, NULL, 10) : 0;
    if (ver <= 0)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: meta.format_version '%s' is invalid",
                           s->path, found ? buf : "(missing)");
    if (ver > BLIPC_INDEX_STORE_FORMAT)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                           "index store %s: format version %ld is newer than this build reads (%d): upgrade blipc "
                           "or use another --store file",
                           s->path, ver, BLIPC_INDEX_STORE_FORMAT);
    BLIPC_TRY(meta_get(s, ctx, "dim", buf, sizeof buf, &found));
    s->dim = found ? (int)strtol(buf, NULL, 10) : 0;
    if (p->dim > 0 && s->dim > 0 && p->dim != s->dim)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                           "index store %s: holds %d-dimensional vectors, asked for %d (another embedding model?)",
                           s->path, s->dim, p->dim);
    ctx->dim = s->dim > 0 ? s->dim : p->dim;
    return BLIPC_OK;
}

static const blipc__index_backend_ops store_ops;

blipc_status blipc__store_open(const blipc_index_params *p, blipc__index_ctx *ctx,
                               const blipc__index_backend_ops **ops, void **state) {
    store *s = calloc(1, sizeof *s);
    if (!s) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    s->vc.generation = -1;
    s->read_only = p->read_only;
    s->path = blipc__strdup(p->store_path);
    if (!s->path) {
        store_close(s);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    }
    struct stat sb;
    int exists = stat(s->path, &sb) == 0;
    if (exists && !S_ISREG(sb.st_mode)) {
        blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: not a regular file", s->path);
        store_close(s);
        return BLIPC_ERR_STORE;
    }
    if (!exists) {
        if (p->read_only) {
            blipc__errf(&ctx->err, BLIPC_ERR_IO, "index store %s: does not exist (index something first)", s->path);
            store_close(s);
            return BLIPC_ERR_IO;
        }
        blipc_status ms = mkdir_parents(s->path, &ctx->err);
        if (ms) {
            store_close(s);
            return ms;
        }
    }
    int flags = p->read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_NOMUTEX;   /* one handle, one thread at a time */
    int rc = sqlite3_open_v2(s->path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        blipc__errf(&ctx->err, rc == SQLITE_CANTOPEN ? BLIPC_ERR_IO : BLIPC_ERR_STORE, "index store %s: cannot open: %s",
                    s->path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        store_close(s);
        return ctx->err.status;
    }
    sqlite3_extended_result_codes(s->db, 0);
    sqlite3_busy_timeout(s->db, p->busy_timeout_ms);
    blipc_status st = check_or_init(s, ctx, p);
    if (!st && !s->read_only) {
        /* WAL: readers never block the writer and see the last commit. */
        sqlite3_stmt *js;
        char mode[16] = "";
        if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &js, NULL) == SQLITE_OK) {
            if (sqlite3_step(js) == SQLITE_ROW) snprintf(mode, sizeof mode, "%s", sqlite3_column_text(js, 0));
            sqlite3_finalize(js);
        }
        if (strcmp(mode, "wal") != 0) st = sqerr(s, ctx, "switching to WAL mode");
        else if (exec(s, "PRAGMA synchronous = FULL") != SQLITE_OK) st = sqerr(s, ctx, "PRAGMA synchronous");
    }
    if (st) {
        store_close(s);
        return st;
    }
    *ops = &store_ops;
    *state = s;
    return BLIPC_OK;
}

/* ------------------------------------------------------------ writes */

static blipc_status delete_rowid(store *s, blipc__index_ctx *ctx, int64_t rowid) {
    static const char *const sql[] = {"DELETE FROM docs WHERE rowid = ?1", "DELETE FROM docs_fts WHERE rowid = ?1",
                                      "DELETE FROM answers WHERE doc = ?1"};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL) != SQLITE_OK) return sqerr(s, ctx, "deleting");
        sqlite3_bind_int64(st, 1, rowid);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return sqerr(s, ctx, "deleting");
    }
    return BLIPC_OK;
}

/* Remove documents stored under `path` with an id other than `keep_id`. */
static blipc_status delete_stale_path(store *s, blipc__index_ctx *ctx, const char *path, const char *keep_id) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT rowid FROM docs WHERE path = ?1 AND id <> ?2", -1, &st, NULL) != SQLITE_OK)
        return sqerr(s, ctx, "looking up a path");
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, keep_id, -1, SQLITE_STATIC);
    int64_t rows[16];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 16) rows[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqerr(s, ctx, "looking up a path");
    for (int i = 0; i < n; i++) BLIPC_TRY(delete_rowid(s, ctx, rows[i]));
    return BLIPC_OK;
}

static blipc_status lookup_rowid(store *s, blipc__index_ctx *ctx, const char *id, int64_t *rowid) {
    sqlite3_stmt *st;
    *rowid = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT rowid FROM docs WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return sqerr(s, ctx, "looking up an id");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *rowid = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqerr(s, ctx, "looking up an id");
    return BLIPC_OK;
}

static blipc_status put_one(store *s, blipc__index_ctx *ctx, const blipc_index_doc *d, int64_t now) {
    BLIPC_TRY(delete_stale_path(s, ctx, d->path, d->id));
    int64_t rowid;
    BLIPC_TRY(lookup_rowid(s, ctx, d->id, &rowid));
    if (rowid) BLIPC_TRY(delete_rowid(s, ctx, rowid));   /* replace: same rowid kept below */

    sqlite3_stmt *st;
    const char *ins = "INSERT INTO docs(rowid, id, path, caption, width, height, mtime, size, caption_model, "
                      "embed_model, vector, indexed_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    if (sqlite3_prepare_v2(s->db, ins, -1, &st, NULL) != SQLITE_OK) return sqerr(s, ctx, "inserting a document");
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
    if (rc != SQLITE_DONE) return sqerr(s, ctx, "inserting a document");
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
            return sqerr(s, ctx, "inserting answers");
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
            if (sqlite3_step(st) != SQLITE_DONE) bs = sqerr(s, ctx, "inserting answers");
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
            bs = sqerr(s, ctx, "indexing text");
        else {
            sqlite3_bind_int64(st, 1, rowid);
            sqlite3_bind_text(st, 2, d->caption, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, all, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) bs = sqerr(s, ctx, "indexing text");
            sqlite3_finalize(st);
        }
    }
    free(all);
    return bs;
}

static blipc_status store_put(void *state, blipc__index_ctx *ctx, const blipc_index_doc *docs, size_t n) {
    store *s = state;
    BLIPC_TRY(begin_write(s, ctx));
    int64_t now = (int64_t)time(NULL);
    /* Dimension: the first vector fixes it for the whole store. */
    int dim = s->dim;
    blipc_status bs = BLIPC_OK;
    for (size_t i = 0; i < n && !bs; i++) {
        if (!docs[i].vector) continue;
        if (dim == 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", docs[i].dim);
            bs = meta_set(s, ctx, "dim", v);
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
        if (exec(s, "SAVEPOINT doc") != SQLITE_OK) {
            bs = sqerr(s, ctx, "SAVEPOINT");
            break;
        }
        blipc_status ds = put_one(s, ctx, &docs[i], now);
        if (ds == BLIPC_ERR_NOMEM) {
            bs = ds;
            break;
        }
        if (ds) {
            exec(s, "ROLLBACK TO doc");
            per[i] = ds;
            msgs[i] = blipc__strdup(ctx->err.msg);
        }
        if (exec(s, "RELEASE doc") != SQLITE_OK) bs = sqerr(s, ctx, "RELEASE");
    }
    if (!bs) bs = bump_generation(s, ctx);
    if (!bs && exec(s, "COMMIT") != SQLITE_OK) bs = sqerr(s, ctx, "COMMIT");
    if (bs) {
        rollback(s);
    } else {
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

static blipc_status store_flush(void *state, blipc__index_ctx *ctx) {
    store *s = state;
    if (s->read_only) return BLIPC_OK;
    if (sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) != SQLITE_OK)
        return sqerr(s, ctx, "WAL checkpoint");
    return BLIPC_OK;
}

static blipc_status store_set_path(void *state, blipc__index_ctx *ctx, const char *id, const char *path,
                                   int64_t mtime) {
    store *s = state;
    BLIPC_TRY(begin_write(s, ctx));
    int64_t rowid = 0;
    blipc_status bs = lookup_rowid(s, ctx, id, &rowid);
    if (!bs && !rowid) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOT_FOUND, "index store %s: no document %s", s->path, id);
    if (!bs) bs = delete_stale_path(s, ctx, path, id);
    if (!bs) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, "UPDATE docs SET path = ?1, mtime = ?2 WHERE rowid = ?3", -1, &st, NULL) !=
            SQLITE_OK)
            bs = sqerr(s, ctx, "updating a path");
        else {
            sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, mtime);
            sqlite3_bind_int64(st, 3, rowid);
            if (sqlite3_step(st) != SQLITE_DONE) bs = sqerr(s, ctx, "updating a path");
            sqlite3_finalize(st);
        }
    }
    if (!bs) bs = bump_generation(s, ctx);
    if (!bs && exec(s, "COMMIT") != SQLITE_OK) bs = sqerr(s, ctx, "COMMIT");
    if (bs) rollback(s);
    return bs;
}

static blipc_status store_del(void *state, blipc__index_ctx *ctx, const char *id) {
    store *s = state;
    BLIPC_TRY(begin_write(s, ctx));
    int64_t rowid = 0;
    blipc_status bs = lookup_rowid(s, ctx, id, &rowid);
    if (!bs && rowid) bs = delete_rowid(s, ctx, rowid);
    if (!bs) bs = bump_generation(s, ctx);
    if (!bs && exec(s, "COMMIT") != SQLITE_OK) bs = sqerr(s, ctx, "COMMIT");
    if (bs) rollback(s);
    return bs;
}

/* ------------------------------------------------------------ reads */

static blipc_status store_get(void *state, blipc__index_ctx *ctx, const char *id, int *found) {
    store *s = state;
    *found = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT rowid, id, path, caption, width, height, mtime, size, caption_model, embed_model, "
                           "vector FROM docs WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return sqerr(s, ctx, "reading a document");
    exec(s, "BEGIN");
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
            bs = sqerr(s, ctx, "reading answers");
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
        bs = sqerr(s, ctx, "reading a document");
    }
    sqlite3_finalize(st);
    exec(s, "COMMIT");
    return bs;
}

static blipc_status store_has(void *state, blipc__index_ctx *ctx, const char *id, int *found, char *path_out,
                              size_t path_cap) {
    store *s = state;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT path FROM docs WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return sqerr(s, ctx, "looking up an id");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *found = 1;
        if (path_out && path_cap) snprintf(path_out, path_cap, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqerr(s, ctx, "looking up an id");
    return BLIPC_OK;
}

static blipc_status store_count(void *state, blipc__index_ctx *ctx, uint64_t *n) {
    store *s = state;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM docs", -1, &st, NULL) != SQLITE_OK)
        return sqerr(s, ctx, "counting");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return sqerr(s, ctx, "counting");
    return BLIPC_OK;
}

/* ------------------------------------------------------------ search */

/* Load (or reload when the generation changed) every vector into one
 * contiguous block. Must run inside a read transaction. */
static blipc_status vcache_refresh(store *s, blipc__index_ctx *ctx) {
    char buf[32];
    int found;
    BLIPC_TRY(meta_get(s, ctx, "generation", buf, sizeof buf, &found));
    int64_t gen = found ? strtoll(buf, NULL, 10) : 0;
    BLIPC_TRY(meta_get(s, ctx, "dim", buf, sizeof buf, &found));
    int dim = found ? (int)strtol(buf, NULL, 10) : 0;
    s->dim = dim;
    ctx->dim = dim;
    vcache *v = &s->vc;
    if (v->generation == gen && v->dim == dim) return BLIPC_OK;
    vcache_free(v);
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
        return sqerr(s, ctx, "loading vectors");
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
        vcache_free(v);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store %s: out of memory loading %zu vectors of %d floats",
                           s->path, cap, dim);
    }
    v->cap = cap;
    if (sqlite3_prepare_v2(s->db, "SELECT rowid, id, vector FROM docs WHERE vector IS NOT NULL ORDER BY rowid", -1,
                           &st, NULL) != SQLITE_OK) {
        vcache_free(v);
        return sqerr(s, ctx, "loading vectors");
    }
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < cap) {
        const void *blob = sqlite3_column_blob(st, 2);
        int bytes = sqlite3_column_bytes(st, 2);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        if (bytes != dim * (int)sizeof(float) || !blob || !blipc__is_sha256_hex(id)) {
            sqlite3_finalize(st);
            vcache_free(v);
            return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                               "index store %s: document %s has a vector of %d bytes, expected %d (corrupt store?)",
                               s->path, id ? id : "?", bytes, dim * (int)sizeof(float));
        }
        float *row = v->vec + n * (size_t)dim;
        memcpy(row, blob, (size_t)bytes);
        float nrm = cblas_snrm2(dim, row, 1);
        v->inv_norm[n] = nrm > 0 ? 1.0f / nrm : 0.0f;
        v->rowid[n] = sqlite3_column_int64(st, 0);
        hex_to_bin(id, v->idbin[n]);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        vcache_free(v);
        return sqerr(s, ctx, "loading vectors");
    }
    v->n = n;
    v->generation = gen;
    return BLIPC_OK;
}

typedef struct cand {
    double score;
    size_t row;                  /* vcache row */
} cand;

/* "a is worse than b": lower score, or equal score and larger id. */
static int worse(const vcache *v, const cand *a, const cand *b) {
    if (a->score != b->score) return a->score < b->score;
    return memcmp(v->idbin[a->row], v->idbin[b->row], 32) > 0;
}

/* min-heap on "worse" (root = worst kept) */
static void heap_sift_down(const vcache *v, cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(v, &h[l], &h[m])) m = l;
        if (r < n && worse(v, &h[r], &h[m])) m = r;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_sift_up(const vcache *v, cand *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(v, &h[i], &h[p])) return;
        cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Exact k-NN: scores (1 + cos) / 2 of every allowed row, top k best first.
 * allowed == NULL: every row. Writes up to k candidates into out, returns count. */
static size_t knn_scan(const vcache *v, const float *q, int dim, const unsigned char *allowed, size_t k, cand *heap,
                       float *block_scores) {
    size_t nh = 0;
    float qn = cblas_snrm2(dim, q, 1);
    float qinv = qn > 0 ? 1.0f / qn : 0.0f;
    for (size_t b = 0; b < v->n; b += SCAN_BLOCK) {
        size_t rows = v->n - b < SCAN_BLOCK ? v->n - b : SCAN_BLOCK;
        /* block_scores[0..rows) = V[b..b+rows) . q */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, dim, 1.0f, v->vec + b * (size_t)dim, dim, q, 1, 0.0f,
                    block_scores, 1);
        for (size_t r = 0; r < rows; r++) {
            size_t row = b + r;
            if (allowed && !allowed[row]) continue;
            double cosv = (double)block_scores[r] * v->inv_norm[row] * qinv;
            if (cosv > 1) cosv = 1;
            if (cosv < -1) cosv = -1;
            cand c = {(1.0 + cosv) / 2.0, row};
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
        cand t = heap[0];
        heap[0] = heap[nh - 1];
        heap[nh - 1] = t;
        nh--;
        heap_sift_down(v, heap, nh, 0);
    }
    /* now heap[0..n) is sorted best first (worst ended at the front, we moved it to the back) */
    return n;
}

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

static blipc_status add_filters(store *s, blipc__index_ctx *ctx, const blipc_index_query *q, sqlbuf *b,
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
                snprintf(cond, sizeof cond, " AND d.%s = CAST(?%d AS INTEGER)", f, pidx);
                known = 1;
            }
        for (int j = 0; !known && TEXT_FIELDS[j]; j++)
            if (!strcmp(f, TEXT_FIELDS[j])) {
                snprintf(cond, sizeof cond, " AND d.%s = ?%d", f, pidx);
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
static blipc_status bm25_query(store *s, blipc__index_ctx *ctx, const blipc_index_query *q, size_t k, tcand **out,
                               size_t *n_out) {
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
    if (!bs && sqlite3_prepare_v2(s->db, b.s, -1, &st, NULL) != SQLITE_OK) bs = sqerr(s, ctx, "text search");
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
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) bs = sqerr(s, ctx, "text search");
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
static blipc_status filter_mask(store *s, blipc__index_ctx *ctx, const blipc_index_query *q, unsigned char **mask) {
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
    if (!bs && sqlite3_prepare_v2(s->db, b.s, -1, &st, NULL) != SQLITE_OK) bs = sqerr(s, ctx, "filtering");
    if (!bs) {
        bind_filters(st, q, 1);
        size_t j = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t r = sqlite3_column_int64(st, 0);
            while (j < s->vc.n && s->vc.rowid[j] < r) j++;   /* both ascending */
            if (j < s->vc.n && s->vc.rowid[j] == r) m[j] = 1;
        }
        if (rc != SQLITE_DONE) bs = sqerr(s, ctx, "filtering");
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

static blipc_status emit_hits(store *s, blipc__index_ctx *ctx, hcand *h, size_t n, size_t k) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, path, caption FROM docs WHERE rowid = ?1", -1, &st, NULL) != SQLITE_OK)
        return sqerr(s, ctx, "reading hits");
    /* ids are needed for tie-breaking: fetch them first */
    for (size_t i = 0; i < n; i++) {
        if (h[i].has_id) continue;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, h[i].rowid);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *id = (const char *)sqlite3_column_text(st, 0);
            if (blipc__is_sha256_hex(id)) hex_to_bin(id, h[i].idbin);
            h[i].has_id = 1;
        }
    }
    qsort(h, n, sizeof *h, hcand_cmp);
    blipc_status bs = BLIPC_OK;
    for (size_t i = 0; i < n && i < k && !bs; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, h[i].rowid);
        if (sqlite3_step(st) != SQLITE_ROW) {
            bs = sqerr(s, ctx, "reading hits");
            break;
        }
        bs = blipc__index_add_hit(ctx, h[i].score, h[i].t, h[i].v, (const char *)sqlite3_column_text(st, 0),
                                  (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    return bs;
}

static blipc_status search_locked(store *s, blipc__index_ctx *ctx, const blipc_index_query *q) {
    size_t k = (size_t)q->k;
    int use_vec = q->vector != NULL;
    int use_text = q->text && q->text[0] && (q->hybrid || !use_vec);
    if (q->hybrid && !use_vec)
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "index store %s: hybrid search needs a query vector (the store does not embed text)",
                           s->path);
    BLIPC_TRY(vcache_refresh(s, ctx));
    if (use_vec && s->dim > 0 && q->dim != s->dim)
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "index store %s: query vector has dimension %d, the store holds %d", s->path, q->dim,
                           s->dim);

    cand *vc = NULL;
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
            scores = malloc(SCAN_BLOCK * sizeof *scores);
            if (!vc || !scores) bs = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
        }
        if (!bs) nv = knn_scan(&s->vc, q->vector, q->dim, mask, k < s->vc.n ? k : s->vc.n, vc, scores);
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

static blipc_status store_search(void *state, blipc__index_ctx *ctx, const blipc_index_query *q) {
    store *s = state;
    /* One read transaction: the vectors, BM25 and hit rows come from the same snapshot. */
    if (exec(s, "BEGIN") != SQLITE_OK) return sqerr(s, ctx, "BEGIN (search)");
    blipc_status bs = search_locked(s, ctx, q);
    exec(s, "COMMIT");
    return bs;
}

static const blipc__index_backend_ops store_ops = {
    .name = "store",
    .close = store_close,
    .put = store_put,
    .flush = store_flush,
    .get = store_get,
    .has = store_has,
    .set_path = store_set_path,
    .del = store_del,
    .count = store_count,
    .search = store_search,
};
