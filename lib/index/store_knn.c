/* store_knn.c — the embedded store's vector search: every vector in one
 * contiguous block, scanned exactly (cosine) with cblas_sgemv over blocks, top
 * k kept in a heap. The block is a read-only mapping of the sidecar FILE-vec
 * when that file matches meta.vec_stamp (no copy: the first query of a process
 * costs about one warm scan), else a copy loaded from SQLite (the source of
 * truth). Writable handles rewrite the sidecar on flush / close when stale. */
#include "store_internal.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ sidecar FILE-vec
 * [0, 4096)          header (sidecar_header, rest zero)
 * [4096, ...)        vec       n x dim float32, row-major (rowid order)
 *                    inv_norm  n float32 (1/|v|, 0 for a zero vector)
 *                    (zero padding to a multiple of 8)
 *                    rowid     n int64, ascending
 *                    idbin     n x 32 bytes (binary sha256 ids)
 * Host byte order (the endian field tells; another order is simply stale).
 * Written to FILE-vec.XXXXXX, fsync'ed, then renamed over FILE-vec: a reader
 * sees the old file or the complete new one. */
#define SIDECAR_MAGIC "BLIPCVEC"
#define SIDECAR_LAYOUT 1u
#define SIDECAR_ENDIAN 0x01020304u
#define SIDECAR_HEADER 4096u

typedef struct sidecar_header {
    char magic[8];
    uint32_t layout, endian, dim, header_bytes;
    uint64_t n;
    char stamp[24];              /* meta.vec_stamp of the snapshot it was built from, NUL-padded */
    int64_t generation;          /* meta.generation then (informational) */
    uint64_t file_bytes;
} sidecar_header;
_Static_assert(sizeof(sidecar_header) == 72, "sidecar header layout");

typedef struct sidecar_layout {
    uint64_t vec, norm, rowid, id, total;
} sidecar_layout;

static int layout_of(uint64_t n, int dim, sidecar_layout *l) {
    if (dim <= 0 || dim > 65536 || n > ((uint64_t)1 << 36)) return -1;
    l->vec = SIDECAR_HEADER;
    l->norm = l->vec + n * (uint64_t)dim * 4;
    l->rowid = (l->norm + n * 4 + 7) & ~(uint64_t)7;
    l->id = l->rowid + n * 8;
    l->total = l->id + n * 32;
    if (l->total > (uint64_t)SIZE_MAX) return -1;
    return 0;
}

static int sidecar_path(const blipc__store *s, char *buf, size_t cap) {
    int k = snprintf(buf, cap, "%s-vec", s->path);
    return k > 0 && (size_t)k < cap ? 0 : -1;
}

/* Is fd a sidecar for (dim, stamp)? Fills *l. Returns NULL when valid, else why not. */
static const char *sidecar_check(int fd, int dim, const char *stamp, sidecar_layout *l, uint64_t *n) {
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) return "not a regular file";
    sidecar_header h;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) return "shorter than its header";
    if (memcmp(h.magic, SIDECAR_MAGIC, 8) != 0) return "bad magic";
    if (h.layout != SIDECAR_LAYOUT || h.endian != SIDECAR_ENDIAN || h.header_bytes != SIDECAR_HEADER)
        return "another layout or byte order";
    if (h.stamp[sizeof h.stamp - 1] != 0 || strcmp(h.stamp, stamp) != 0) return "stale (vec_stamp differs)";
    if ((int64_t)h.dim != dim) return "another dimension";
    if (layout_of(h.n, dim, l) != 0 || h.file_bytes != l->total || (uint64_t)sb.st_size != l->total)
        return "wrong size (truncated?)";
    *n = h.n;
    return NULL;
}

/* Map FILE-vec into v when it matches (dim, stamp). 1 = mapped, 0 = not usable
 * (missing, stale, damaged, mmap failed: the caller loads from SQLite). */
static int sidecar_map(blipc__store *s, blipc__index_ctx *ctx, int dim, const char *stamp, blipc__vcache *v) {
    char path[4200];
    if (sidecar_path(s, path, sizeof path) != 0) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        blipc__logf(&ctx->log, BLIPC_LOG_DEBUG, "index store %s: no vector sidecar %s (%s): loading from SQLite",
                    s->path, path, strerror(errno));
        return 0;
    }
    sidecar_layout l;
    uint64_t n = 0;
    const char *why = sidecar_check(fd, dim, stamp, &l, &n);
    void *map = MAP_FAILED;
    if (!why) {
        map = mmap(NULL, (size_t)l.total, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (map == MAP_FAILED) why = "mmap failed";
    }
    close(fd);
    if (why) {
        blipc__logf(&ctx->log, BLIPC_LOG_DEBUG, "index store %s: vector sidecar %s not used: %s", s->path, path, why);
        return 0;
    }
    unsigned char *base = map;
    const int64_t *rowid = (const int64_t *)(base + l.rowid);
    for (uint64_t i = 0; i < n; i++)
        if (rowid[i] <= 0 || (i > 0 && rowid[i] <= rowid[i - 1])) {
            munmap(map, (size_t)l.total);
            blipc__logf(&ctx->log, BLIPC_LOG_DEBUG, "index store %s: vector sidecar %s not used: rowids not ascending",
                        s->path, path);
            return 0;
        }
    v->map = map;
    v->map_len = (size_t)l.total;
    v->n = v->cap = (size_t)n;
    v->dim = dim;
    v->vec = (float *)(base + l.vec);
    v->inv_norm = (float *)(base + l.norm);
    v->rowid = (int64_t *)(base + l.rowid);
    v->idbin = (unsigned char(*)[32])(base + l.id);
    snprintf(v->stamp, sizeof v->stamp, "%s", stamp);
    return 1;
}

static int write_all(int fd, const void *buf, uint64_t len) {
    const unsigned char *p = buf;
    while (len > 0) {
        size_t chunk = len > ((uint64_t)1 << 30) ? (size_t)1 << 30 : (size_t)len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (uint64_t)w;
    }
    return 0;
}

/* Write v (matching meta.vec_stamp v->stamp) as FILE-vec: temp file, fsync, rename. */
static blipc_status sidecar_write(blipc__store *s, blipc__index_ctx *ctx, const blipc__vcache *v) {
    char path[4200], tmp[4210];
    sidecar_layout l;
    if (sidecar_path(s, path, sizeof path) != 0 || layout_of(v->n, v->dim, &l) != 0)
        return blipc__errf(&ctx->err, BLIPC_ERR_LIMIT, "index store %s: vector sidecar: path or size out of range",
                           s->path);
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return blipc__errf(&ctx->err, BLIPC_ERR_IO, "index store %s: cannot create the vector sidecar %s: %s",
                           s->path, tmp, strerror(errno));
    struct stat sb;
    if (stat(s->path, &sb) == 0) (void)fchmod(fd, sb.st_mode & 0666);
    unsigned char page[SIDECAR_HEADER];
    memset(page, 0, sizeof page);
    sidecar_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SIDECAR_MAGIC, 8);
    h.layout = SIDECAR_LAYOUT;
    h.endian = SIDECAR_ENDIAN;
    h.dim = (uint32_t)v->dim;
    h.header_bytes = SIDECAR_HEADER;
    h.n = v->n;
    snprintf(h.stamp, sizeof h.stamp, "%s", v->stamp);
    h.generation = v->generation;
    h.file_bytes = l.total;
    memcpy(page, &h, sizeof h);
    static const unsigned char zeros[8] = {0};
    uint64_t n = v->n;
    int bad = write_all(fd, page, sizeof page) || write_all(fd, v->vec, n * (uint64_t)v->dim * 4) ||
              write_all(fd, v->inv_norm, n * 4) || write_all(fd, zeros, l.rowid - (l.norm + n * 4)) ||
              write_all(fd, v->rowid, n * 8) || write_all(fd, v->idbin, n * 32);
    const char *what = bad ? "writing" : NULL;
    if (!what && fsync(fd) != 0) what = "fsync";
    if (close(fd) != 0 && !what) what = "closing";
    if (!what && rename(tmp, path) != 0) what = "renaming";
    if (what) {
        int err = errno;
        unlink(tmp);
        return blipc__errf(&ctx->err, BLIPC_ERR_IO, "index store %s: vector sidecar %s: %s failed: %s", s->path, tmp,
                           what, strerror(err));
    }
    blipc__logf(&ctx->log, BLIPC_LOG_DEBUG, "index store %s: wrote vector sidecar %s (%zu vectors)", s->path, path,
                v->n);
    return BLIPC_OK;
}

/* ------------------------------------------------------------ the vector copy */

/* Every vector of the snapshot from SQLite into malloc'd arrays (v is empty, v->dim = dim > 0). */
static blipc_status load_sqlite(blipc__store *s, blipc__index_ctx *ctx, int dim, blipc__vcache *v) {
    sqlite3_stmt *st;
    /* Capacity: every document (an upper bound on those with a vector). Plain
     * count(*) is answered from the smallest index; "WHERE vector IS NOT NULL"
     * would read the whole table an extra time (~30% of the load). */
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM docs", -1, &st, NULL) != SQLITE_OK)
        return blipc__store_sqerr(s, ctx, "loading vectors");
    size_t cap = 0;
    if (sqlite3_step(st) == SQLITE_ROW) cap = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (cap == 0) return BLIPC_OK;
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
    return BLIPC_OK;
}


blipc_status blipc__store_vcache_refresh(blipc__store *s, blipc__index_ctx *ctx) {
    char buf[32], stamp[24] = "";
    int found;
    BLIPC_TRY(blipc__store_meta_get(s, ctx, "generation", buf, sizeof buf, &found));
    int64_t gen = found ? strtoll(buf, NULL, 10) : 0;
    BLIPC_TRY(blipc__store_meta_get(s, ctx, "dim", buf, sizeof buf, &found));
    int dim = found ? (int)strtol(buf, NULL, 10) : 0;
    if (s->format >= 2) BLIPC_TRY(blipc__store_meta_get(s, ctx, "vec_stamp", stamp, sizeof stamp, &found));
    s->dim = dim;
    ctx->dim = dim;
    blipc__vcache *v = &s->vc;
    /* Same vectors: the stamp changes with every vector change (format 2); a
     * format-1 store only has the generation (any write). */
    if (v->generation >= 0 && v->dim == dim && (stamp[0] ? strcmp(v->stamp, stamp) == 0 : v->generation == gen)) {
        v->generation = gen;
        return BLIPC_OK;
    }
    blipc__store_vcache_free(v);
    v->dim = dim;
    if (dim > 0 && !(stamp[0] && sidecar_map(s, ctx, dim, stamp, v))) {
        blipc_status bs = load_sqlite(s, ctx, dim, v);
        if (bs) return bs;
    }
    v->generation = gen;
    snprintf(v->stamp, sizeof v->stamp, "%s", stamp);
    return BLIPC_OK;
}

blipc_status blipc__store_sidecar_sync(blipc__store *s, blipc__index_ctx *ctx) {
    if (s->read_only || s->format < 2) return BLIPC_OK;
    if (blipc__store_exec(s, "BEGIN") != SQLITE_OK) return blipc__store_sqerr(s, ctx, "BEGIN (vector sidecar)");
    blipc__vcache *v = &s->vc;
    blipc_status bs = blipc__store_vcache_refresh(s, ctx);
    if (!bs && v->dim > 0 && v->stamp[0]) {
        char path[4200];
        int fd = sidecar_path(s, path, sizeof path) == 0 ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
        sidecar_layout l;
        uint64_t n;
        int current = fd >= 0 && !sidecar_check(fd, v->dim, v->stamp, &l, &n);
        if (fd >= 0) close(fd);
        if (!current) bs = sidecar_write(s, ctx, v);
        if (!bs && !v->map) {
            /* serve later searches from the page cache instead of a private copy */
            blipc__vcache nv;
            memset(&nv, 0, sizeof nv);
            if (sidecar_map(s, ctx, v->dim, v->stamp, &nv)) {
                nv.generation = v->generation;
                blipc__store_vcache_free(v);
                *v = nv;
            }
        }
    }
    blipc__store_exec(s, "COMMIT");
    if (!bs) s->vec_dirty = 0;
    return bs;
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
