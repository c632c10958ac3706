/* bench_index.c — `blipc-bench index`: libblipc-index at realistic sizes.
 *
 *  1. Embedded store ingest: N random 384-d unit vectors with short captions
 *     put in batches through blipc_index_put (batch 8 = blipc-index's default:
 *     one transaction per batch), for N = 10k, 100k, 1M; documents/s and the
 *     store file size.
 *  2. Exact k-NN search (k = 10) on a fresh read-only handle: the first query
 *     (maps the store's vector sidecar, docs/index.md) separately, then
 *     mean / p50 / p99 over Q queries, compared with the memory-bandwidth bound
 *     of reading N x 384 float32 once (N * 1536 bytes / the streaming-read
 *     bandwidth measured in the same run by bench_common) and with one bare
 *     cblas_sgemv over an N x 384 block of the same size. Hybrid (BM25 + vector)
 *     and BM25-only latency at 100k (or the size nearest to it).
 *  3. The OpenSearch client's _bulk throughput against the local Python test
 *     server (tests/servers/opensearch_server.py, 127.0.0.1, bounded lifetime):
 *     documents/s and MB/s with and without gzip. The server is Python, so this
 *     is an upper bound on client overhead, not a cluster number.
 *
 * Usage: blipc-bench index [--sizes N,N,...] [--queries Q] [--batch B] [--threads N]
 *                          [--dir DIR] [--keep] [--os-docs N] [--no-opensearch]
 *                          [--server PATH] [--quick]
 */
#include "bench_common.h"

#include "blipc_index.h"
#include "../tests/servers.h" /* the Python test servers as child processes */

#include <cblas.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int bench_index_main(int argc, char **argv);

#define DIM 384
#define K 10
#define MAX_SIZES 8

/* ------------------------------------------------------------ documents */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s) { return ((double)(splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

/* a random unit vector (Gaussian components, normalised: uniform on the sphere) */
static void unit_vector(float *v, int dim, uint64_t *s) {
    double nrm = 0;
    for (int i = 0; i < dim; i += 2) {
        double r = sqrt(-2.0 * log(unif(s))), t = 6.283185307179586 * unif(s);
        v[i] = (float)(r * cos(t));
        if (i + 1 < dim) v[i + 1] = (float)(r * sin(t));
    }
    for (int i = 0; i < dim; i++) nrm += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(nrm));
    for (int i = 0; i < dim; i++) v[i] *= inv;
}

static const char *const COLORS[] = {"red", "blue", "green", "yellow", "black", "white", "brown", "gray",
                                     "orange", "pink", "purple", "golden", "silver", "dark", "bright", "small"};
static const char *const THINGS[] = {"dog", "cat", "car", "bicycle", "horse", "bird", "boat", "house",
                                     "tree", "man", "woman", "child", "train", "bus", "flower", "cake",
                                     "table", "chair", "laptop", "phone", "kite", "umbrella", "clock", "bench"};
static const char *const VERBS[] = {"standing", "sitting", "lying", "parked", "walking", "running", "resting", "waiting"};
static const char *const PLACES[] = {"beach", "street", "grass", "field", "kitchen", "park", "road", "snow",
                                     "table", "water", "mountain", "city", "forest", "garden", "bridge", "station"};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct docbuf {
    size_t n;
    float *vec;                  /* n * DIM */
    char (*id)[65];
    char (*path)[48];
    char (*caption)[96];
    blipc_index_doc *docs;
} docbuf;

static int docbuf_init(docbuf *b, size_t n) {
    memset(b, 0, sizeof *b);
    b->n = n;
    b->vec = malloc(n * DIM * sizeof(float));
    b->id = malloc(n * sizeof *b->id);
    b->path = malloc(n * sizeof *b->path);
    b->caption = malloc(n * sizeof *b->caption);
    b->docs = calloc(n, sizeof *b->docs);
    return b->vec && b->id && b->path && b->caption && b->docs ? 0 : -1;
}

static void docbuf_free(docbuf *b) {
    free(b->vec);
    free(b->id);
    free(b->path);
    free(b->caption);
    free(b->docs);
    memset(b, 0, sizeof *b);
}

/* Documents first..first+m-1 of a collection (deterministic per index i). */
static void make_docs(docbuf *b, size_t first, size_t m) {
    for (size_t j = 0; j < m; j++) {
        size_t i = first + j;
        uint64_t s = 0x5EED0000ull ^ ((uint64_t)i * 0x2545F4914F6CDD1Dull);
        unit_vector(b->vec + j * DIM, DIM, &s);
        uint64_t h = (uint64_t)i + 1;
        for (int w = 0; w < 4; w++) snprintf(b->id[j] + 16 * w, 17, "%016llx", (unsigned long long)splitmix(&h));
        snprintf(b->path[j], sizeof b->path[j], "/photos/bench/img%08zu.jpg", i);
        snprintf(b->caption[j], sizeof b->caption[j], "a %s %s %s on the %s", COLORS[splitmix(&s) % NELEM(COLORS)],
                 THINGS[splitmix(&s) % NELEM(THINGS)], VERBS[splitmix(&s) % NELEM(VERBS)],
                 PLACES[splitmix(&s) % NELEM(PLACES)]);
        blipc_index_doc *d = &b->docs[j];
        blipc_index_doc_init(d);
        d->id = b->id[j];
        d->path = b->path[j];
        d->caption = b->caption[j];
        d->vector = b->vec + j * DIM;
        d->dim = DIM;
        d->width = 640;
        d->height = 480;
        d->mtime = 1700000000 + (int64_t)i;
        d->size = 100000 + (int64_t)(i % 50000);
        d->caption_model = "Salesforce/blip2-opt-2.7b";
        d->embed_model = "sentence-transformers/all-MiniLM-L12-v2";
    }
}

/* ------------------------------------------------------------ stats */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct lat {
    double mean, p50, p99, min;
} lat;

/* nearest-rank percentiles */
static lat lat_stats(double *t, size_t n) {
    lat l = {0, 0, 0, 0};
    if (!n) return l;
    qsort(t, n, sizeof *t, cmp_double);
    for (size_t i = 0; i < n; i++) l.mean += t[i];
    l.mean /= (double)n;
    size_t r50 = (size_t)ceil(0.50 * (double)n), r99 = (size_t)ceil(0.99 * (double)n);
    l.p50 = t[(r50 ? r50 : 1) - 1];
    l.p99 = t[(r99 ? r99 : 1) - 1];
    l.min = t[0];
    return l;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static void human_count(size_t n, char *buf, size_t cap) {
    if (n >= 1000000 && n % 1000000 == 0) snprintf(buf, cap, "%zuM", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0) snprintf(buf, cap, "%zuk", n / 1000);
    else snprintf(buf, cap, "%zu", n);
}

/* ------------------------------------------------------------ store */

typedef struct store_result {
    size_t n;
    int batch;
    double ingest_s, ingest_cpu_s, docs_per_s, first10_rate, last10_rate;
    long long file_bytes, wal_bytes;
    double first_query_s;        /* fresh handle: load + scan */
    lat knn;                     /* warm queries */
    double read_gbs;             /* streaming-read bandwidth measured just before the searches */
    double bound_s;              /* N * DIM * 4 / read_gbs */
    lat sgemv;                   /* bare cblas_sgemv over an N x DIM block, before each query */
    int have_text;
    lat hybrid, bm25;
} store_result;

static int open_store(const char *path, int read_only, blipc_index **ix) {
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.store_path = path;
    p.read_only = read_only;
    p.dim = read_only ? 0 : DIM;
    char err[512];
    if (blipc_index_open(&p, ix, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "blipc-bench index: %s\n", err);
        return -1;
    }
    return 0;
}

static int remove_store(const char *path) {
    char x[PATH_MAX + 128];
    int rc = 0;
    if (unlink(path) != 0 && errno != ENOENT) rc = -1;
    snprintf(x, sizeof x, "%s-wal", path);
    unlink(x);
    snprintf(x, sizeof x, "%s-shm", path);
    unlink(x);
    snprintf(x, sizeof x, "%s-vec", path);   /* the store's vector sidecar (format 2) */
    unlink(x);
    return rc;
}

static int ingest(const char *path, size_t n, int batch, store_result *r) {
    blipc_index *ix;
    if (remove_store(path) != 0) {
        fprintf(stderr, "blipc-bench index: cannot remove an old %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (open_store(path, 0, &ix)) return -1;
    docbuf b;
    if (docbuf_init(&b, (size_t)batch)) {
        docbuf_free(&b);
        blipc_index_close(ix);
        fprintf(stderr, "blipc-bench index: out of memory\n");
        return -1;
    }
    double total = 0, cpu = 0, first10 = 0, last10 = 0, last_report = bench_now();
    size_t n10 = n / 10 ? n / 10 : 1, done_first = 0, done_last = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i += (size_t)batch) {
        size_t m = n - i < (size_t)batch ? n - i : (size_t)batch;
        make_docs(&b, i, m);
        double t0 = bench_now(), c0 = cpu_now();
        blipc_status st = blipc_index_put(ix, b.docs, m);
        double t = bench_now() - t0;
        cpu += cpu_now() - c0;
        total += t;
        if (i < n10) first10 += t, done_first += m;
        if (i >= n - n10) last10 += t, done_last += m;
        if (st != BLIPC_OK) {
            fprintf(stderr, "blipc-bench index: put: %s\n", blipc_index_errmsg(ix));
            rc = -1;
        }
        for (size_t j = 0; j < m && !rc; j++)
            if (blipc_index_put_status(ix, j) != BLIPC_OK) {
                fprintf(stderr, "blipc-bench index: put %s: %s\n", b.id[j], blipc_index_put_error(ix, j));
                rc = -1;
            }
        if (isatty(2) && bench_now() - last_report > 1.0) {
            last_report = bench_now();
            fprintf(stderr, "\r  ingest %zu/%zu (%.0f docs/s)   ", i + m, n, (double)(i + m) / total);
        }
    }
    if (isatty(2)) fprintf(stderr, "\r%60s\r", "");
    docbuf_free(&b);
    uint64_t count = 0;
    if (!rc && (blipc_index_count(ix, &count) != BLIPC_OK || count != n)) {
        fprintf(stderr, "blipc-bench index: the store holds %llu documents, expected %zu\n",
                (unsigned long long)count, n);
        rc = -1;
    }
    blipc_index_close(ix);
    if (rc) return -1;
    char wal[PATH_MAX + 128];
    snprintf(wal, sizeof wal, "%s-wal", path);
    r->n = n;
    r->batch = batch;
    r->ingest_s = total;
    r->ingest_cpu_s = cpu;
    r->docs_per_s = (double)n / total;
    r->first10_rate = first10 > 0 ? (double)done_first / first10 : 0;
    r->last10_rate = last10 > 0 ? (double)done_last / last10 : 0;
    r->file_bytes = file_size(path);
    r->wal_bytes = file_size(wal);
    return 0;
}

/* The reference the store's scan is compared with: one bare cblas_sgemv over an
 * N x DIM block of the same size (what the store's scan is built on), timed
 * right before each store query so both see the same machine load. */
typedef struct bare_ref {
    size_t n;
    float *a, *y;
    double *t;                   /* per-query times */
} bare_ref;

static int bare_init(bare_ref *b, size_t n, int nq) {
    b->n = n;
    b->a = malloc(n * DIM * sizeof(float));
    b->y = malloc(n * sizeof(float));
    b->t = malloc((size_t)nq * sizeof(double));
    if (!b->a || !b->y || !b->t) return -1;
    uint64_t s = 3;
    bench_fill_uniform(b->a, n * DIM, 0.05f, &s);
    return 0;
}

static void bare_free(bare_ref *b) {
    free(b->a);
    free(b->y);
    free(b->t);
    memset(b, 0, sizeof *b);
}

static int run_queries(blipc_index *ix, int nq, int hybrid, int text_only, uint64_t seed, bare_ref *bare, lat *out,
                       double *first_s) {
    double *t = malloc((size_t)nq * sizeof *t);
    float q[DIM];
    if (!t) return -1;
    uint64_t s = seed;
    int rc = 0;
    for (int i = -1; i < nq && !rc; i++) { /* i = -1: the first query (timed separately) */
        unit_vector(q, DIM, &s);
        char text[96];
        snprintf(text, sizeof text, "%s %s %s", COLORS[splitmix(&s) % NELEM(COLORS)],
                 THINGS[splitmix(&s) % NELEM(THINGS)], PLACES[splitmix(&s) % NELEM(PLACES)]);
        blipc_index_query qq;
        blipc_index_default_query(&qq);
        qq.k = K;
        if (!text_only) {
            qq.vector = q;
            qq.dim = DIM;
        }
        if (hybrid || text_only) qq.text = text;
        qq.hybrid = hybrid;
        if (bare && i >= 0) {
            double t0 = bench_now();
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)bare->n, DIM, 1.0f, bare->a, DIM, q, 1, 0.0f, bare->y, 1);
            bare->t[i] = bench_now() - t0;
        }
        double t0 = bench_now();
        blipc_status st = blipc_index_search(ix, &qq);
        double dt = bench_now() - t0;
        if (st != BLIPC_OK) {
            fprintf(stderr, "blipc-bench index: search: %s\n", blipc_index_errmsg(ix));
            rc = -1;
        } else if (blipc_index_hit_count(ix) != K) {
            fprintf(stderr, "blipc-bench index: search returned %zu hits, expected %d\n", blipc_index_hit_count(ix),
                    K);
            rc = -1;
        }
        if (i < 0) {
            if (first_s) *first_s = dt;
        } else {
            t[i] = dt;
        }
    }
    if (!rc) *out = lat_stats(t, (size_t)nq);
    free(t);
    return rc;
}

static int search_bench(const char *path, int nq, int with_text, const bench_limits *lim, store_result *r) {
    /* the machine is shared: measure the bandwidth again right before the searches */
    r->read_gbs = lim->seconds > 1.0 ? bench_read_gbs((size_t)1 << 30, lim->threads, 3) : lim->read_gbs;
    if (r->read_gbs <= 0) r->read_gbs = lim->read_gbs;
    r->bound_s = (double)r->n * DIM * sizeof(float) / (r->read_gbs * 1e9);
    bare_ref bare;
    if (bare_init(&bare, r->n, nq)) {
        bare_free(&bare);
        fprintf(stderr, "blipc-bench index: out of memory for the %zu x %d reference block\n", r->n, DIM);
        return -1;
    }
    blipc_index *ix;
    if (open_store(path, 1, &ix)) {
        bare_free(&bare);
        return -1;
    }
    int rc = run_queries(ix, nq, 0, 0, 0xC0FFEEull + r->n, &bare, &r->knn, &r->first_query_s);
    if (!rc) r->sgemv = lat_stats(bare.t, (size_t)nq);
    bare_free(&bare);
    if (!rc && with_text) {
        r->have_text = 1;
        rc = run_queries(ix, nq, 1, 0, 0xBEEFull, NULL, &r->hybrid, NULL);
        if (!rc) rc = run_queries(ix, nq, 0, 1, 0xFEEDull, NULL, &r->bm25, NULL);
    }
    blipc_index_close(ix);
    return rc;
}

/* ------------------------------------------------------------ OpenSearch */

static int file_readable(const char *p) { return access(p, R_OK) == 0; }

/* --server, else $BLIPC_OS_SERVER, else tests/servers/... from the working
 * directory, else from the source tree next to the build directory
 * (<src>/<build>/bench/blipc-bench). */
static int find_server(const char *given, char *out, size_t cap) {
    const char *rel = "tests/servers/opensearch_server.py";
    const char *env = getenv("BLIPC_OS_SERVER");
    if (given) return snprintf(out, cap, "%s", given), file_readable(out) ? 0 : -1;
    if (env && *env) return snprintf(out, cap, "%s", env), file_readable(out) ? 0 : -1;
    if (file_readable(rel)) return snprintf(out, cap, "%s", rel), 0;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 3; up++) {
            char *sl = strrchr(exe, '/');
            if (!sl) break;
            *sl = 0;
        }
        snprintf(out, cap, "%s/%s", exe, rel);
        if (file_readable(out)) return 0;
    }
    return -1;
}

/* A call to the test server's control endpoints; returns the body (malloc'd) or NULL. */
static char *os_control(const th_server *s, const char *method, const char *path, const char *body) {
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    char url[256];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    th_buf m = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, th_buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    long code = 0;
    if (curl_easy_perform(c) != CURLE_OK || (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), code != 200)) {
        free(m.p);
        m.p = NULL;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return m.p;
}

/* Sum of the request-body bytes (as sent, i.e. gzipped when gzip is on) of the
 * _bulk requests in the server's request log, and their count. */
static void bulk_bytes(const char *log, long long *bytes, long *requests) {
    *bytes = 0;
    *requests = 0;
    /* each entry: {"method": ..., "path": "/IDX/_bulk", ..., "length": N, ...} */
    for (const char *p = log; (p = strstr(p, "\"path\": \"")) != NULL;) {
        p += 9;
        const char *e = strchr(p, '"');
        if (!e) break;
        int is_bulk = e - p >= 6 && !strncmp(e - 6, "/_bulk", 6);
        const char *next = strstr(e, "\"path\": \"");
        const char *len = strstr(e, "\"length\": ");
        if (is_bulk && len && (!next || len < next)) {
            *bytes += atoll(len + 10);
            (*requests)++;
        }
        p = e;
    }
}

typedef struct os_result {
    int gzip, per_put;
    size_t n;
    double seconds, cpu_s;
    long long wire_bytes, ndjson_bytes;
    long bulk_requests;
} os_result;

static int os_pass(const th_server *srv, int gzip, size_t n, int per_put, const char *index, os_result *r) {
    char *ans = os_control(srv, "POST", "/_fault", "{\"reset\": true}");
    if (!ans) {
        fprintf(stderr, "blipc-bench index: the test server did not answer /_fault\n");
        return -1;
    }
    free(ans);
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.backend = BLIPC_INDEX_OPENSEARCH;
    p.url = srv->url;
    p.index_name = index;
    p.dim = DIM;
    p.gzip = gzip;
    p.timeout_ms = 120000;
    p.retry_seed = 1;
    blipc_index *ix;
    char err[512];
    if (blipc_index_open(&p, &ix, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "blipc-bench index: %s\n", err);
        return -1;
    }
    docbuf b;
    if (docbuf_init(&b, (size_t)per_put)) {
        docbuf_free(&b);
        blipc_index_close(ix);
        return -1;
    }
    double total = 0, cpu = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i += (size_t)per_put) {
        size_t m = n - i < (size_t)per_put ? n - i : (size_t)per_put;
        make_docs(&b, i, m);
        double t0 = bench_now(), c0 = cpu_now();
        blipc_status st = blipc_index_put(ix, b.docs, m);
        cpu += cpu_now() - c0;
        total += bench_now() - t0;
        if (st != BLIPC_OK) {
            fprintf(stderr, "blipc-bench index: opensearch put: %s\n", blipc_index_errmsg(ix));
            rc = -1;
        }
        for (size_t j = 0; j < m && !rc; j++)
            if (blipc_index_put_status(ix, j) != BLIPC_OK) {
                fprintf(stderr, "blipc-bench index: opensearch put %s: %s\n", b.id[j], blipc_index_put_error(ix, j));
                rc = -1;
            }
    }
    docbuf_free(&b);
    uint64_t count = 0;
    if (!rc && (blipc_index_flush(ix) != BLIPC_OK || blipc_index_count(ix, &count) != BLIPC_OK || count != n)) {
        fprintf(stderr, "blipc-bench index: the OpenSearch index holds %llu documents, expected %zu (%s)\n",
                (unsigned long long)count, n, blipc_index_errmsg(ix));
        rc = -1;
    }
    blipc_index_close(ix);
    if (rc) return -1;
    char *log = os_control(srv, "GET", "/_requests", NULL);
    if (!log) {
        fprintf(stderr, "blipc-bench index: could not read the test server's request log\n");
        return -1;
    }
    memset(r, 0, sizeof *r);
    bulk_bytes(log, &r->wire_bytes, &r->bulk_requests);
    free(log);
    r->gzip = gzip;
    r->per_put = per_put;
    r->n = n;
    r->seconds = total;
    r->cpu_s = cpu;
    return 0;
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f) {
    fprintf(f,
            "usage: blipc-bench index [--sizes N,N,...] [--queries Q] [--batch B] [--batch-compare B] [--threads N]\n"
            "                         [--dir DIR]\n"
            "                         [--keep] [--os-docs N] [--no-opensearch] [--server PATH] [--quick]\n"
            "  --sizes      store sizes (default 10000,100000,1000000)\n"
            "  --queries    timed queries per size after the first (default 100)\n"
            "  --batch      documents per blipc_index_put on the store (default 8, as blipc-index)\n"
            "  --batch-compare B  also ingest the first size with B documents per put (default 256; 0 = off)\n"
            "  --dir        where the store files go (default $TMPDIR or /tmp; removed unless --keep)\n"
            "  --os-docs    documents per OpenSearch pass (default 20000)\n"
            "  --server     tests/servers/opensearch_server.py (default: found from the cwd or the build dir)\n"
            "  --quick      small sizes (2000,10000), 20 queries, 1000 OpenSearch docs: a smoke run\n");
}

static int parse_sizes(const char *s, size_t *out, int *n) {
    *n = 0;
    while (*s && *n < MAX_SIZES) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || v == 0 || v > 100000000ull) return -1;
        if (*end == 'k' || *end == 'K') v *= 1000, end++;
        else if (*end == 'M' || *end == 'm') v *= 1000000, end++;
        out[(*n)++] = (size_t)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    return *n ? 0 : -1;
}

int bench_index_main(int argc, char **argv) {
    size_t sizes[MAX_SIZES] = {10000, 100000, 1000000};
    int n_sizes = 3, nq = 100, batch = 8, batch_cmp = 256, nt = 0, keep = 0, quick = 0, do_os = 1;
    size_t os_docs = 20000;
    const char *dir = NULL, *server_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--sizes") && has) {
            if (parse_sizes(argv[++i], sizes, &n_sizes)) {
                fprintf(stderr, "blipc-bench index: bad --sizes %s\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--queries") && has) {
            nq = atoi(argv[++i]);
        } else if (!strcmp(a, "--batch") && has) {
            batch = atoi(argv[++i]);
        } else if (!strcmp(a, "--batch-compare") && has) {
            batch_cmp = atoi(argv[++i]);
        } else if (!strcmp(a, "--threads") && has) {
            nt = atoi(argv[++i]);
        } else if (!strcmp(a, "--dir") && has) {
            dir = argv[++i];
        } else if (!strcmp(a, "--os-docs") && has) {
            os_docs = (size_t)atol(argv[++i]);
        } else if (!strcmp(a, "--server") && has) {
            server_arg = argv[++i];
        } else if (!strcmp(a, "--keep")) {
            keep = 1;
        } else if (!strcmp(a, "--no-opensearch")) {
            do_os = 0;
        } else if (!strcmp(a, "--quick")) {
            quick = 1;
            sizes[0] = 2000, sizes[1] = 10000, n_sizes = 2;
            nq = 20;
            os_docs = 1000;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "blipc-bench index: unknown or incomplete argument %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (nq < 1 || nq > 100000 || batch < 1 || batch > 100000 || batch_cmp < 0 || batch_cmp > 100000 || os_docs < 1) {
        fprintf(stderr, "blipc-bench index: --queries, --batch and --os-docs must be positive\n");
        return 2;
    }
    if (!dir) dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char workdir[PATH_MAX];
    snprintf(workdir, sizeof workdir, "%s/blipc-bench-index-XXXXXX", dir);
    if (!mkdtemp(workdir)) {
        fprintf(stderr, "blipc-bench index: cannot create a directory under %s: %s\n", dir, strerror(errno));
        return 1;
    }

    bench_print_machine();
    bench_limits lim;
    bench_measure_limits(nt, quick, &lim);
    bench_print_limits(&lim);
    printf("store: SQLite (WAL, synchronous=FULL) files under %s; %d-d random unit vectors, captions like "
           "\"a red dog sitting on the beach\"\n",
           workdir, DIM);
    fflush(stdout);

    store_result res[MAX_SIZES];
    memset(res, 0, sizeof res);
    int rc = 0;
    size_t text_size = sizes[0]; /* hybrid/BM25 at the size nearest 100k */
    for (int i = 1; i < n_sizes; i++)
        if (fabs(log((double)sizes[i] / 1e5)) < fabs(log((double)text_size / 1e5))) text_size = sizes[i];

    printf("\n1. store ingest: blipc_index_put in batches of %d (one transaction each)\n", batch);
    printf("%8s %10s %8s %11s %13s %13s %11s %10s %10s\n", "docs", "seconds", "cpu %", "docs/s", "first 10%/s",
           "last 10%/s", "file MB", "wal MB", "bytes/doc");
    fflush(stdout);
    for (int i = 0; i < n_sizes && !rc; i++) {
        char path[PATH_MAX + 64], label[24];
        snprintf(path, sizeof path, "%s/store-%zu.sqlite", workdir, sizes[i]);
        human_count(sizes[i], label, sizeof label);
        if (ingest(path, sizes[i], batch, &res[i])) {
            rc = 1;
            break;
        }
        store_result *r = &res[i];
        printf("%8s %10.2f %7.0f%% %11.0f %13.0f %13.0f %11.1f %10.1f %10.0f\n", label, r->ingest_s,
               100.0 * r->ingest_cpu_s / r->ingest_s, r->docs_per_s,
               r->first10_rate, r->last10_rate, r->file_bytes / 1e6, r->wal_bytes / 1e6,
               (double)(r->file_bytes + r->wal_bytes) / (double)r->n);
        fflush(stdout);

        if (search_bench(path, nq, sizes[i] == text_size, &lim, r)) {
            rc = 1;
            break;
        }
        if (!keep) remove_store(path);
    }
    if (!rc && batch_cmp > 0 && batch_cmp != batch) {
        char path[PATH_MAX + 64], label[24];
        snprintf(path, sizeof path, "%s/store-%zu-b%d.sqlite", workdir, sizes[0], batch_cmp);
        human_count(sizes[0], label, sizeof label);
        store_result r;
        memset(&r, 0, sizeof r);
        if (ingest(path, sizes[0], batch_cmp, &r)) {
            rc = 1;
        } else {
            printf("%8s %10.2f %7.0f%% %11.0f %13.0f %13.0f %11.1f %10.1f %10.0f   (batches of %d)\n", label,
                   r.ingest_s, 100.0 * r.ingest_cpu_s / r.ingest_s, r.docs_per_s, r.first10_rate, r.last10_rate,
                   r.file_bytes / 1e6, r.wal_bytes / 1e6, (double)(r.file_bytes + r.wal_bytes) / (double)r.n,
                   batch_cmp);
            printf("   cpu %% = this process's CPU time / wall time during the puts (the rest is waiting for fsync: "
                   "synchronous=FULL commits once per put)\n");
        }
        if (!keep) remove_store(path);
    }

    if (!rc) {
        printf("\n2. exact k-NN search (k = %d), fresh read-only handle; %d timed queries after the first\n", K, nq);
        printf("   bound = N x %d x 4 bytes / read GB/s (%d-thread streaming read of 1 GiB, measured again just "
               "before each size's queries);\n   sgemv = one bare cblas_sgemv over an N x %d block of the same size, "
               "timed just before each store query (p50)\n",
               DIM, lim.threads, DIM);
        printf("%8s %12s %10s %10s %10s %9s %10s %10s %9s %9s\n", "docs", "first ms", "mean ms", "p50 ms", "p99 ms",
               "read GB/s", "bound ms", "sgemv ms", "p50/bnd", "p50/sgemv");
        for (int i = 0; i < n_sizes; i++) {
            store_result *r = &res[i];
            char label[24];
            human_count(r->n, label, sizeof label);
            printf("%8s %12.1f %10.3f %10.3f %10.3f %9.1f %10.3f %10.3f %8.2fx %8.2fx\n", label,
                   r->first_query_s * 1e3, r->knn.mean * 1e3, r->knn.p50 * 1e3, r->knn.p99 * 1e3, r->read_gbs,
                   r->bound_s * 1e3, r->sgemv.p50 * 1e3, r->knn.p50 / r->bound_s, r->knn.p50 / r->sgemv.p50);
        }
        printf("   first ms = the first query on the handle: maps the vector sidecar FILE-vec written when the ingest "
               "handle closed (else loads all vectors from SQLite), then scans (OS page cache warm)\n");
        for (int i = 0; i < n_sizes; i++) {
            store_result *r = &res[i];
            if (!r->have_text) continue;
            char label[24];
            human_count(r->n, label, sizeof label);
            printf("\n   at %s docs (k = %d, 3 random caption words per query):\n", label, K);
            printf("   %-22s %10s %10s %10s\n", "", "mean ms", "p50 ms", "p99 ms");
            printf("   %-22s %10.3f %10.3f %10.3f\n", "vector (k-NN)", r->knn.mean * 1e3, r->knn.p50 * 1e3,
                   r->knn.p99 * 1e3);
            printf("   %-22s %10.3f %10.3f %10.3f\n", "BM25 (FTS5)", r->bm25.mean * 1e3, r->bm25.p50 * 1e3,
                   r->bm25.p99 * 1e3);
            printf("   %-22s %10.3f %10.3f %10.3f\n", "hybrid (BM25+vector)", r->hybrid.mean * 1e3,
                   r->hybrid.p50 * 1e3, r->hybrid.p99 * 1e3);
        }
        fflush(stdout);
    }

    if (!rc && do_os) {
        printf("\n3. OpenSearch client _bulk throughput against the local Python test server "
               "(tests/servers/opensearch_server.py on 127.0.0.1)\n");
        char script[PATH_MAX + 64];
        th_server srv = {0};
        static const char *const lifetime[] = {"--lifetime", "1800", NULL}; /* exits on its own should we die */
        if (find_server(server_arg, script, sizeof script)) {
            printf("   skipped: tests/servers/opensearch_server.py not found (run from the source tree or pass "
                   "--server PATH)\n");
        } else if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || th_server_start(&srv, script, lifetime)) {
            fprintf(stderr, "blipc-bench index: could not start %s\n", script);
            th_server_stop(&srv);
            rc = 1;
        } else {
            /* loopback only: never through a proxy */
            static const char *const proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                                  "all_proxy", "ALL_PROXY"};
            for (size_t i = 0; i < NELEM(proxies); i++) unsetenv(proxies[i]);
            struct {
                int gzip, per_put;
                size_t n;
            } passes[] = {{0, 500, os_docs}, {1, 500, os_docs}, {1, 8, os_docs / 10 ? os_docs / 10 : 1}};
            os_result orr[3];
            int n_done = 0;
            for (int i = 0; i < 3 && !rc; i++) {
                char name[32];
                snprintf(name, sizeof name, "bench-%d", i);
                if (os_pass(&srv, passes[i].gzip, passes[i].n, passes[i].per_put, name, &orr[i])) rc = 1;
                else n_done++;
            }
            th_server_stop(&srv);
            /* NDJSON bytes per document from the uncompressed pass */
            double ndjson_per_doc = n_done > 0 ? (double)orr[0].wire_bytes / (double)orr[0].n : 0;
            printf("%8s %5s %8s %10s %10s %13s %12s %10s %14s %14s\n", "docs", "gzip", "per put", "seconds", "docs/s",
                   "NDJSON MB/s", "wire MB/s", "requests", "client cpu s", "client docs/s");
            for (int i = 0; i < n_done; i++) {
                os_result *o = &orr[i];
                double nd = ndjson_per_doc * (double)o->n;
                printf("%8zu %5s %8d %10.2f %10.0f %13.2f %12.2f %10ld %14.3f %14.0f\n", o->n, o->gzip ? "on" : "off",
                       o->per_put, o->seconds, (double)o->n / o->seconds, nd / o->seconds / 1e6,
                       (double)o->wire_bytes / o->seconds / 1e6, o->bulk_requests, o->cpu_s,
                       (double)o->n / o->cpu_s);
            }
            if (n_done > 0)
                printf("   NDJSON %.0f bytes/doc (384 floats as JSON); gzip ratio %.2f; per put = documents per "
                       "blipc_index_put\n   (bulk_max_docs 500; each put also runs one _search for stale paths). "
                       "The server is Python: an upper bound on client overhead, not a cluster number;\n"
                       "   client cpu s = this process's CPU time in blipc_index_put (JSON, gzip, curl, answer "
                       "parsing): client docs/s = what the client alone could sustain on one core.\n",
                       ndjson_per_doc, n_done > 1 ? (double)orr[0].wire_bytes / (double)orr[1].wire_bytes : 0.0);
        }
    }
    if (!keep) rmdir(workdir);
    else printf("\nstores kept under %s\n", workdir);
    return rc;
}
