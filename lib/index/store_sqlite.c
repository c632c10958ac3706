/* store_sqlite.c — the embedded store backend: one SQLite file (WAL), documents
 * in a table, FTS5 over caption + answers (BM25), vectors as float32 BLOBs
 * searched exactly (cosine) with cblas_sgemv over blocks of an in-memory copy
 * that is reloaded when the store's generation counter changes.
 * This file: the schema, open (create / check / migrate), close and the helpers
 * the store's files share (store_internal.h lists the others).
 * The file format is described in docs/index.md. */
#include "store_internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#define APP_NAME "blipc-index"

/* meta.vec_stamp: a random 64-bit value (16 hex digits) replaced by every write
 * transaction that changes vectors; the sidecar FILE-vec is valid only while
 * its header carries the same stamp (format 2). */
static const char *const VEC_STAMP_INIT_SQL =
    "INSERT OR REPLACE INTO meta(key, value) VALUES('vec_stamp', lower(hex(randomblob(8))))";

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

/* ------------------------------------------------------------ helpers */

blipc_status blipc__store_sqerr(blipc__store *s, blipc__index_ctx *ctx, const char *what) {
    return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: %s: %s", s->path, what,
                       s->db ? sqlite3_errmsg(s->db) : "no database");
}

int blipc__store_exec(blipc__store *s, const char *sql) {
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

static int hexval(int c) {
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

void blipc__store_hex_to_bin(const char *hex, unsigned char out[32]) {
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

blipc_status blipc__store_meta_get(blipc__store *s, blipc__index_ctx *ctx, const char *key, char *buf, size_t cap,
                                   int *found) {
    sqlite3_stmt *st;
    *found = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "reading meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(buf, cap, "%s", v ? (const char *)v : "");
        *found = 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return blipc__store_sqerr(s, ctx, "reading meta");
    return BLIPC_OK;
}

blipc_status blipc__store_meta_set(blipc__store *s, blipc__index_ctx *ctx, const char *key, const char *value) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", -1, &st, NULL) !=
        SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "writing meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return blipc__store_sqerr(s, ctx, "writing meta");
    return BLIPC_OK;
}

blipc_status blipc__store_begin_write(blipc__store *s, blipc__index_ctx *ctx) {
    if (s->read_only)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: opened read-only", s->path);
    int rc = blipc__store_exec(s, "BEGIN IMMEDIATE");
    if (rc == SQLITE_BUSY)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                           "index store %s: locked by another writer (busy timeout expired)", s->path);
    if (rc != SQLITE_OK) return blipc__store_sqerr(s, ctx, "BEGIN");
    return BLIPC_OK;
}

void blipc__store_rollback(blipc__store *s) {
    blipc__store_exec(s, "ROLLBACK");
}

void blipc__store_vcache_free(blipc__vcache *v) {
    if (v->map) {
        munmap(v->map, v->map_len);
    } else {
        free(v->vec);
        free(v->inv_norm);
        free(v->rowid);
        free(v->idbin);
    }
    memset(v, 0, sizeof *v);
    v->generation = -1;
}

static void store_close(void *state) {
    blipc__store *s = state;
    if (!s) return;
    /* Vectors changed through this handle and no flush since: bring the
     * sidecar up to date (best effort, as the next search would otherwise
     * load every vector from SQLite). */
    if (s->db && s->vec_dirty && !s->read_only && s->ctx) {
        blipc_err saved = s->ctx->err;
        if (blipc__store_sidecar_sync(s, s->ctx) != BLIPC_OK)
            blipc__logf(&s->ctx->log, BLIPC_LOG_WARN, "%s", s->ctx->err.msg);
        s->ctx->err = saved;
    }
    if (s->db) sqlite3_close_v2(s->db);
    blipc__store_vcache_free(&s->vc);
    free(s->path);
    free(s);
}

/* ------------------------------------------------------------ open */

/* Format 1 -> 2: add meta.vec_stamp (the sidecar FILE-vec is keyed by it).
 * Format-1 builds refuse a format-2 store, so from here on every writer keeps
 * the stamp current. Read-only handles leave a format-1 store as it is (no
 * sidecar: vectors are loaded from SQLite). */
static blipc_status migrate(blipc__store *s, blipc__index_ctx *ctx, long *ver) {
    BLIPC_TRY(blipc__store_begin_write(s, ctx));
    /* another process may have migrated it meanwhile: read again under the lock */
    char buf[32];
    int found = 0;
    blipc_status bs = blipc__store_meta_get(s, ctx, "format_version", buf, sizeof buf, &found);
    long cur = found ? strtol(buf, NULL, 10) : 0;
    if (!bs && cur == 1) {
        if (blipc__store_exec(s, VEC_STAMP_INIT_SQL) != SQLITE_OK)
            bs = blipc__store_sqerr(s, ctx, "migrating to format 2 (meta.vec_stamp)");
        if (!bs) bs = blipc__store_meta_set(s, ctx, "format_version", "2");
        if (!bs) cur = 2;
    }
    if (!bs && blipc__store_exec(s, "COMMIT") != SQLITE_OK) bs = blipc__store_sqerr(s, ctx, "COMMIT (migration)");
    if (bs) {
        blipc__store_rollback(s);
        return bs;
    }
    if (cur != *ver)
        blipc__logf(&ctx->log, BLIPC_LOG_INFO, "index store %s: migrated from format %ld to %ld", s->path, *ver, cur);
    *ver = cur;
    return BLIPC_OK;
}

static blipc_status check_or_init(blipc__store *s, blipc__index_ctx *ctx, const blipc_index_params *p) {
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
        return blipc__store_sqerr(s, ctx, "reading the schema");
    }
    if (n_objects == 0) {
        if (s->read_only)
            return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: empty file, not a blipc index store",
                               s->path);
        BLIPC_TRY(blipc__store_begin_write(s, ctx));
        char ver[16];
        snprintf(ver, sizeof ver, "%d", BLIPC_INDEX_STORE_FORMAT);
        char now[32];
        snprintf(now, sizeof now, "%lld", (long long)time(NULL));
        blipc_status bs = BLIPC_OK;
        if (blipc__store_exec(s, SCHEMA_SQL) != SQLITE_OK) bs = blipc__store_sqerr(s, ctx, "creating the schema");
        if (!bs) bs = blipc__store_meta_set(s, ctx, "application", APP_NAME);
        if (!bs) bs = blipc__store_meta_set(s, ctx, "format_version", ver);
        if (!bs) bs = blipc__store_meta_set(s, ctx, "generation", "0");
        if (!bs && blipc__store_exec(s, VEC_STAMP_INIT_SQL) != SQLITE_OK)
            bs = blipc__store_sqerr(s, ctx, "writing meta");
        if (!bs) bs = blipc__store_meta_set(s, ctx, "created", now);
        if (!bs && blipc__store_exec(s, "COMMIT") != SQLITE_OK)
            bs = blipc__store_sqerr(s, ctx, "COMMIT (creating the schema)");
        if (bs) {
            blipc__store_rollback(s);
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
    if (has_meta) BLIPC_TRY(blipc__store_meta_get(s, ctx, "application", buf, sizeof buf, &found));
    if (!has_meta || !found || strcmp(buf, APP_NAME) != 0)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                           "index store %s: not a blipc index store (an SQLite database without blipc's meta table)",
                           s->path);
    BLIPC_TRY(blipc__store_meta_get(s, ctx, "format_version", buf, sizeof buf, &found));
    long ver = found ? strtol(buf, NULL, 10) : 0;
    if (ver <= 0)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "index store %s: meta.format_version '%s' is invalid",
                           s->path, found ? buf : "(missing)");
    if (ver > BLIPC_INDEX_STORE_FORMAT)
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                           "index store %s: format version %ld is newer than this build reads (%d): upgrade blipc "
                           "or use another --store file",
                           s->path, ver, BLIPC_INDEX_STORE_FORMAT);
    if (ver < BLIPC_INDEX_STORE_FORMAT && !s->read_only) BLIPC_TRY(migrate(s, ctx, &ver));
    s->format = (int)ver;
    BLIPC_TRY(blipc__store_meta_get(s, ctx, "dim", buf, sizeof buf, &found));
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
    blipc__store *s = calloc(1, sizeof *s);
    if (!s) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "index store: out of memory");
    s->vc.generation = -1;
    s->read_only = p->read_only;
    s->ctx = ctx;
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
        if (strcmp(mode, "wal") != 0) st = blipc__store_sqerr(s, ctx, "switching to WAL mode");
        else if (blipc__store_exec(s, "PRAGMA synchronous = FULL") != SQLITE_OK)
            st = blipc__store_sqerr(s, ctx, "PRAGMA synchronous");
    }
    if (st) {
        store_close(s);
        return st;
    }
    *ops = &store_ops;
    *state = s;
    return BLIPC_OK;
}

static const blipc__index_backend_ops store_ops = {
    .name = "store",
    .close = store_close,
    .put = blipc__store_put,
    .flush = blipc__store_flush,
    .get = blipc__store_get,
    .has = blipc__store_has,
    .set_path = blipc__store_set_path,
    .del = blipc__store_del,
    .count = blipc__store_count,
    .search = blipc__store_search,
};
