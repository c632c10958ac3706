/* test_opensearch.c — the OpenSearch backend of libblipc-index against the
 * local OpenSearch-compatible test server (tests/servers/opensearch_server.py),
 * with injected faults; or, with `--live`, the fault-free scenarios against a
 * real cluster at $OPENSEARCH_URL (skipped, exit 77, when it is not set).
 * See docs/opensearch.md. */
#include "backend.h"
#include "blipc_index.h"
#include "harness.h"
#include "servers.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef OS_SERVER_SCRIPT
#define OS_SERVER_SCRIPT "tests/servers/opensearch_server.py"
#endif

/* The backend is referenced weakly by index.c: take its address so the static
 * test link pulls it in. */
static blipc_status (*volatile force_link)(const blipc_index_params *, blipc__index_ctx *,
                                           const blipc__index_backend_ops **, void **) = blipc__opensearch_open;

static int live;                /* against $OPENSEARCH_URL */
static char live_index[64];

/* ------------------------------------------------------------ test server */

/* the OpenSearch look-alike (--lifetime: it exits on its own should the test die) */
static int server_start(th_server *s, const char *const *extra) {
    const char *args[16] = {"--lifetime", "600"};
    int k = 2;
    for (int i = 0; extra && extra[i] && k < 15; i++) args[k++] = extra[i];
    args[k] = NULL;
    return th_server_start(s, OS_SERVER_SCRIPT, args);
}

/* A plain HTTP call to the server (control endpoints, checks). Returns the
 * parsed JSON answer (NULL if none) and the status. */
static cJSON *http(const char *base, const char *method, const char *path, const char *body, long *status) {
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    char url[1024];
    snprintf(url, sizeof url, "%s%s", base, path);
    th_buf m = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    const char *u = getenv("OPENSEARCH_USER"), *pw = getenv("OPENSEARCH_PASSWORD");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, th_buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (live && u) {
        curl_easy_setopt(c, CURLOPT_USERNAME, u);
        curl_easy_setopt(c, CURLOPT_PASSWORD, pw ? pw : "");
    }
    if (live && getenv("OPENSEARCH_INSECURE")) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long st = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    if (status) *status = st;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    cJSON *j = m.p ? cJSON_Parse(m.p) : NULL;
    free(m.p);
    return j;
}

static void fault(th_server *s, const char *json) {
    long st = 0;
    cJSON_Delete(http(s->url, "POST", "/_fault", json, &st));
    CHECK_EQ_INT(st, 200);
}

/* GET /_dump?index=NAME: {"docs": {...}, "versions": {...}, ...} */
static cJSON *dump(th_server *s, const char *index) {
    char path[256];
    snprintf(path, sizeof path, "/_dump?index=%s", index);
    return http(s->url, "GET", path, NULL, NULL);
}

static cJSON *requests_log(th_server *s) { return http(s->url, "GET", "/_requests", NULL, NULL); }

/* ------------------------------------------------------------ documents */

typedef struct docset {
    size_t n;
    int dim;
    char (*id)[65];
    char (*path)[64];
    char (*caption)[64];
    float *vec;
    blipc_index_doc *d;
} docset;

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void make_id(uint64_t seed, char out[65]) {
    for (int i = 0; i < 4; i++) snprintf(out + 16 * i, 17, "%016llx", (unsigned long long)mix(seed * 4 + (uint64_t)i));
}

static void docset_make(docset *ds, size_t n, int dim, uint64_t seed) {
    ds->n = n;
    ds->dim = dim;
    ds->id = calloc(n, sizeof *ds->id);
    ds->path = calloc(n, sizeof *ds->path);
    ds->caption = calloc(n, sizeof *ds->caption);
    ds->vec = calloc(n * (size_t)dim, sizeof *ds->vec);
    ds->d = calloc(n, sizeof *ds->d);
    for (size_t i = 0; i < n; i++) {
        make_id(seed * 100000 + i, ds->id[i]);
        snprintf(ds->path[i], sizeof ds->path[i], "/photos/img_%05zu.jpg", i);
        snprintf(ds->caption[i], sizeof ds->caption[i], "photo number %zu of a test", i);
        double norm = 0;
        for (int j = 0; j < dim; j++) {
            float v = (float)((double)(mix(seed + i * 131 + (size_t)j) % 2001) / 1000.0 - 1.0);
            ds->vec[i * (size_t)dim + (size_t)j] = v;
            norm += (double)v * v;
        }
        if (norm == 0) ds->vec[i * (size_t)dim] = 1;
        blipc_index_doc_init(&ds->d[i]);
        ds->d[i].id = ds->id[i];
        ds->d[i].path = ds->path[i];
        ds->d[i].caption = ds->caption[i];
        ds->d[i].vector = ds->vec + i * (size_t)dim;
        ds->d[i].dim = dim;
        ds->d[i].width = 640;
        ds->d[i].height = 480;
        ds->d[i].mtime = 1700000000 + (int64_t)i;
        ds->d[i].size = 1000 + (int64_t)i;
        ds->d[i].caption_model = "Salesforce/blip2-opt-2.7b";
        ds->d[i].embed_model = "sentence-transformers/all-MiniLM-L12-v2";
    }
}

static void docset_free(docset *ds) {
    free(ds->id);
    free(ds->path);
    free(ds->caption);
    free(ds->vec);
    free(ds->d);
    memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------------ handles */

static th_server srv;      /* the main test server (no auth) */
static const char *base_url(void) { return live ? getenv("OPENSEARCH_URL") : srv.url; }

static void params_for(blipc_index_params *p, const char *url, const char *index, int dim) {
    blipc_index_default_params(p);
    p->backend = BLIPC_INDEX_OPENSEARCH;
    p->url = url;
    p->index_name = index;
    p->dim = dim;
    p->retry_base_ms = 2;       /* short backoff for tests */
    p->retry_max_ms = 40;
    p->max_retries = 8;
    p->timeout_ms = 10000;
    p->retry_seed = 42;
    if (live) {
        p->insecure = getenv("OPENSEARCH_INSECURE") != NULL;
        p->cacert = getenv("OPENSEARCH_CACERT");
    }
}

/* A fresh index name (live: unique per run; local: the server is reset). */
static const char *fresh_index(const char *name) {
    static char buf[8][96];
    static int k;
    char *b = buf[k++ & 7];
    if (live) {
        snprintf(b, sizeof buf[0], "%s-%s", live_index, name);
        long st;
        char path[128];
        snprintf(path, sizeof path, "/%s", b);
        cJSON_Delete(http(base_url(), "DELETE", path, NULL, &st));
    } else {
        snprintf(b, sizeof buf[0], "%s", name);
        fault(&srv, "{\"reset\": true}");
    }
    return b;
}

static size_t count_docs(blipc_index *ix) {
    uint64_t n = 0;
    CHECK_STATUS(blipc_index_flush(ix), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_STATUS(blipc_index_count(ix, &n), BLIPC_OK, blipc_index_errmsg(ix));
    return (size_t)n;
}

/* Every document of ds is stored exactly once, with its own path (dump: also no extra docs). */
static void check_exactly_once(blipc_index *ix, const char *index, const docset *ds) {
    CHECK_EQ_INT(count_docs(ix), ds->n);
    if (live) {
        for (size_t i = 0; i < ds->n; i += 7) {
            const blipc_index_doc *g = NULL;
            CHECK_STATUS(blipc_index_get(ix, ds->id[i], &g), BLIPC_OK, blipc_index_errmsg(ix));
            CHECK(g && !strcmp(g->path, ds->path[i]));
        }
        return;
    }
    cJSON *d = dump(&srv, index);
    cJSON *docs = cJSON_GetObjectItem(d, "docs");
    CHECK_EQ_INT(cJSON_GetArraySize(docs), ds->n);
    for (size_t i = 0; i < ds->n; i++) {
        cJSON *doc = cJSON_GetObjectItem(docs, ds->id[i]);
        CHECKF(doc != NULL, "document %zu (%s) missing", i, ds->id[i]);
        cJSON *p = cJSON_GetObjectItem(doc, "path");
        CHECK(cJSON_IsString(p) && !strcmp(p->valuestring, ds->path[i]));
        cJSON *v = cJSON_GetObjectItem(doc, "image_description_vector");
        CHECK_EQ_INT(cJSON_GetArraySize(v), ds->dim);
        if (cJSON_GetArraySize(v) == ds->dim)
            CHECK(fabs(cJSON_GetArrayItem(v, 1)->valuedouble - ds->vec[i * (size_t)ds->dim + 1]) < 1e-7);
    }
    cJSON_Delete(d);
}

/* ------------------------------------------------------------ tests */

TEST(creates_index_with_tutorial_mapping) {
    const char *name = fresh_index("photos-mapping");
    blipc_index_params p;
    params_for(&p, base_url(), name, 8);
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    CHECK_EQ_INT(blipc_index_dim(ix), 8);
    char path[160];
    snprintf(path, sizeof path, "/%s/_mapping", name);
    long st = 0;
    cJSON *m = http(base_url(), "GET", path, NULL, &st);
    CHECK_EQ_INT(st, 200);
    cJSON *props = cJSON_GetObjectItem(cJSON_GetObjectItem(m ? m->child : NULL, "mappings"), "properties");
    cJSON *v = cJSON_GetObjectItem(props, "image_description_vector");
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(v, "type")) ?: "", "knn_vector"));
    CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(v, "dimension")), 8);
    cJSON *meth = cJSON_GetObjectItem(v, "method");
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(meth, "name")) ?: "", "hnsw"));
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(meth, "engine")) ?: "", "lucene"));
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(meth, "space_type")) ?: "", "cosinesimil"));
    cJSON *cap = cJSON_GetObjectItem(props, "image_description");
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cap, "type")) ?: "", "text"));
    cJSON *kw = cJSON_GetObjectItem(cJSON_GetObjectItem(cap, "fields"), "keyword");
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(kw, "type")) ?: "", "keyword"));
    CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(kw, "ignore_above")), 256);
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(props, "path"), "type")) ?: "",
                  "keyword"));
    cJSON_Delete(m);
    snprintf(path, sizeof path, "/%s/_settings", name);
    m = http(base_url(), "GET", path, NULL, &st);
    cJSON *knn = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(m ? m->child : NULL, "settings"), "index"),
                                     "knn");
    CHECK(knn && !strcmp(cJSON_GetStringValue(knn) ?: "", "true"));
    cJSON_Delete(m);
    blipc_index_close(ix);
    /* opening again: the index exists and is compatible; dim learnt from it */
    p.dim = 0;
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    CHECK_EQ_INT(blipc_index_dim(ix), 8);
    blipc_index_close(ix);
}

TEST(existing_index_with_incompatible_mapping_is_refused) {
    const char *name = fresh_index("photos-other-dim");
    char path[160];
    snprintf(path, sizeof path, "/%s", name);
    long st = 0;
    cJSON_Delete(http(base_url(), "PUT", path,
                      "{\"settings\":{\"index\":{\"knn\":true}},\"mappings\":{\"properties\":{"
                      "\"image_description_vector\":{\"type\":\"knn_vector\",\"dimension\":16,"
                      "\"method\":{\"name\":\"hnsw\",\"engine\":\"lucene\",\"space_type\":\"cosinesimil\"}}}}}",
                      &st));
    CHECK_EQ_INT(st, 200);
    blipc_index_params p;
    params_for(&p, base_url(), name, 8);
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_STORE, err);
    CHECK(ix == NULL);
    CHECK_CONTAINS(err, name);
    CHECK_CONTAINS(err, "dimension 16");
    CHECK_CONTAINS(err, "8");

    /* a field of another type */
    const char *name2 = live ? fresh_index("photos-other-type") : "photos-other-type";
    snprintf(path, sizeof path, "/%s", name2);
    cJSON_Delete(http(base_url(), "PUT", path,
                      "{\"mappings\":{\"properties\":{\"image_description\":{\"type\":\"integer\"}}}}", &st));
    CHECK_EQ_INT(st, 200);
    p.index_name = name2;
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_STORE, err);
    CHECK_CONTAINS(err, "image_description");
    CHECK_CONTAINS(err, "integer");
}

TEST(bulk_with_faults_indexes_every_document_exactly_once) {
    if (live) return;
    const char *name = fresh_index("photos-faults");
    docset ds;
    docset_make(&ds, 120, 8, 1);
    blipc_index_params p;
    params_for(&p, base_url(), name, 8);
    p.bulk_max_docs = 16;
    p.timeout_ms = 1500;
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    char f[2048];
    snprintf(f, sizeof f,
             "{\"item_429\": {\"ids\": [\"%s\", \"%s\", \"%s\", \"%s\"], \"times\": 2, \"es\": true},"
             " \"fail_requests\": {\"status\": 503, \"count\": 2, \"path\": \"_bulk\"}}",
             ds.id[0], ds.id[17], ds.id[50], ds.id[119]);
    fault(&srv, f);
    CHECK_STATUS(blipc_index_put(ix, ds.d, 40), BLIPC_OK, blipc_index_errmsg(ix));
    /* a dropped connection after the server applied the batch, one before, a 502 and a
     * response slower than the client's timeout (applied, answer lost) */
    fault(&srv, "{\"drop\": {\"count\": 1, \"when\": \"after\", \"path\": \"_bulk\"}}");
    CHECK_STATUS(blipc_index_put(ix, ds.d + 40, 30), BLIPC_OK, blipc_index_errmsg(ix));
    fault(&srv, "{\"drop\": {\"count\": 1, \"when\": \"before\", \"path\": \"_bulk\"},"
                " \"fail_requests\": {\"status\": 502, \"count\": 1, \"path\": \"_bulk\"}}");
    CHECK_STATUS(blipc_index_put(ix, ds.d + 70, 30), BLIPC_OK, blipc_index_errmsg(ix));
    /* (item 429s with OpenSearch's own spelling, rejected_execution_exception, this time) */
    snprintf(f, sizeof f,
             "{\"slow\": {\"seconds\": 2.5, \"count\": 1, \"path\": \"_bulk\", \"when\": \"after\"},"
             " \"item_429\": {\"ids\": [\"%s\"], \"times\": 3}, \"drop\": {\"count\": 0}}",
             ds.id[119]);
    fault(&srv, f);
    CHECK_STATUS(blipc_index_put(ix, ds.d + 100, 20), BLIPC_OK, blipc_index_errmsg(ix));
    /* every put reported OK only after the server acknowledged it */
    CHECK_STATUS(blipc_index_put(ix, ds.d, 0), BLIPC_OK, "");
    check_exactly_once(ix, name, &ds);
    /* batches applied but unanswered (dropped after, too slow) were sent again:
     * written twice, still one document each */
    cJSON *d = dump(&srv, name);
    int rewritten = 0;
    cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItem(d, "writes")) rewritten += w->valueint > 1;
    CHECK(rewritten >= 2);
    cJSON_Delete(d);
    /* the request log: gzip + NDJSON + pipeline=_none, keep-alive */
    cJSON *log = requests_log(&srv);
    int n_bulk = 0, gz = 0, nd = 0, none = 0, n503 = 0, n502 = 0, dropped = 0, item429 = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(log, "requests")) {
        const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(r, "path"));
        if (!path || !strstr(path, "/_bulk")) continue;
        n_bulk++;
        cJSON *rs = cJSON_GetObjectItem(r, "status"), *it;
        n503 += cJSON_IsNumber(rs) && rs->valueint == 503;
        n502 += cJSON_IsNumber(rs) && rs->valueint == 502;
        dropped += cJSON_IsString(rs) && !strcmp(rs->valuestring, "dropped");
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "item_status")) item429 += it->valueint == 429;
        gz += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "content_encoding")) ?: "", "gzip");
        nd += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "content_type")) ?: "", "application/x-ndjson");
        none += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "query"), "pipeline")) ?: "",
                        "_none");
    }
    CHECK(n_bulk >= 5);
    /* the faults did happen */
    CHECK_EQ_INT(n503, 2);
    CHECK_EQ_INT(n502, 1);
    CHECK_EQ_INT(dropped, 2);
    CHECK_EQ_INT(item429, 3 * 2 + 3); /* ids 0, 17, 50 twice; 119 three times */
    CHECK_EQ_INT(gz, n_bulk);
    CHECK_EQ_INT(nd, n_bulk);
    CHECK_EQ_INT(none, n_bulk);
    cJSON_Delete(log);
    blipc_index_close(ix);
    docset_free(&ds);
}

TEST(keep_alive_reuses_one_connection) {
    if (live) return;
    const char *name = fresh_index("photos-keepalive");
    docset ds;
    docset_make(&ds, 50, 4, 2);
    blipc_index_params p;
    params_for(&p, base_url(), name, 4);
    p.bulk_max_docs = 5;
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    CHECK_STATUS(blipc_index_put(ix, ds.d, ds.n), BLIPC_OK, blipc_index_errmsg(ix));
    cJSON *log = requests_log(&srv);
    int n = 0, first = -1, same = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(log, "requests")) {
        int conn = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "conn"));
        if (first < 0) first = conn;
        n++;
        same += conn == first;
    }
    CHECK(n >= 10);
    CHECK_EQ_INT(same, n);
    cJSON_Delete(log);
    blipc_index_close(ix);
    docset_free(&ds);
}

TEST(whole_request_429_is_retried) {
    if (live) return;
    const char *name = fresh_index("photos-429");
    docset ds;
    docset_make(&ds, 7, 4, 11);
    blipc_index_params p;
    params_for(&p, base_url(), name, 4);
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    fault(&srv, "{\"fail_requests\": {\"status\": 429, \"count\": 3, \"path\": \"_bulk\", \"es\": true}}");
    CHECK_STATUS(blipc_index_put(ix, ds.d, ds.n), BLIPC_OK, blipc_index_errmsg(ix));
    for (size_t i = 0; i < ds.n; i++) CHECK_STATUS(blipc_index_put_status(ix, i), BLIPC_OK, blipc_index_put_error(ix, i));
    cJSON *log = requests_log(&srv);
    int n429 = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(log, "requests")) n429 += cJSON_GetNumberValue(cJSON_GetObjectItem(r, "status")) == 429;
    CHECK_EQ_INT(n429, 3);
    cJSON_Delete(log);
    check_exactly_once(ix, name, &ds);
    blipc_index_close(ix);
    docset_free(&ds);
}

TEST(no_false_success_when_retries_run_out) {
    if (live) return;
    const char *name = fresh_index("photos-giveup");
    docset ds;
    docset_make(&ds, 10, 4, 3);
    blipc_index_params p;
    params_for(&p, base_url(), name, 4);
    p.max_retries = 2;
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    char f[512];
    snprintf(f, sizeof f, "{\"item_429\": {\"ids\": [\"%s\", \"%s\"], \"times\": 100}}", ds.id[2], ds.id[7]);
    fault(&srv, f);
    CHECK_STATUS(blipc_index_put(ix, ds.d, ds.n), BLIPC_OK, blipc_index_errmsg(ix));
    for (size_t i = 0; i < ds.n; i++) {
        if (i == 2 || i == 7) {
            CHECK(blipc_index_put_status(ix, i) != BLIPC_OK);
            CHECK_CONTAINS(blipc_index_put_error(ix, i), "rejected_execution_exception");
            CHECK_CONTAINS(blipc_index_put_error(ix, i), "3 attempts");
        } else {
            CHECK_STATUS(blipc_index_put_status(ix, i), BLIPC_OK, blipc_index_put_error(ix, i));
        }
    }
    cJSON *d = dump(&srv, name);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(d, "docs")), 8);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "docs"), ds.id[2]) == NULL);
    cJSON_Delete(d);
    /* the cluster answers 503 to every request: the call fails, nothing is OK */
    fault(&srv, "{\"item_429\": {\"ids\": []}, \"fail_requests\": {\"status\": 503, \"count\": 1000}}");
    docset ds2;
    docset_make(&ds2, 5, 4, 4);
    blipc_status st = blipc_index_put(ix, ds2.d, ds2.n);
    CHECK(st != BLIPC_OK);
    CHECK_CONTAINS(blipc_index_errmsg(ix), "503");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "cluster_block_exception");
    for (size_t i = 0; i < ds2.n; i++) CHECK(blipc_index_put_status(ix, i) != BLIPC_OK);
    fault(&srv, "{\"fail_requests\": {\"count\": 0}}");
    d = dump(&srv, name);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(d, "docs")), 8);
    cJSON_Delete(d);
    blipc_index_close(ix);
    docset_free(&ds);
    docset_free(&ds2);
}

TEST(mapper_parsing_exception_is_reported_per_document) {
    const char *name = fresh_index("photos-badvec");
    docset ds;
    docset_make(&ds, 6, 4, 5);
    for (int j = 0; j < 4; j++) ds.vec[3 * 4 + j] = 0.0f; /* zero vector: invalid for cosinesimil */
    blipc_index_params p;
    params_for(&p, base_url(), name, 4);
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    CHECK_STATUS(blipc_index_put(ix, ds.d, ds.n), BLIPC_OK, blipc_index_errmsg(ix));
    for (size_t i = 0; i < ds.n; i++) {
        if (i == 3) {
            CHECK_STATUS(blipc_index_put_status(ix, i), BLIPC_ERR_STORE, blipc_index_put_error(ix, i));
            CHECK_CONTAINS(blipc_index_put_error(ix, i), "mapper_parsing_exception");
            CHECK_CONTAINS(blipc_index_put_error(ix, i), "image_description_vector");
            CHECK_CONTAINS(blipc_index_put_error(ix, i), "400");
        } else {
            CHECK_STATUS(blipc_index_put_status(ix, i), BLIPC_OK, blipc_index_put_error(ix, i));
        }
    }
    CHECK_EQ_INT(count_docs(ix), 5);
    blipc_index_close(ix);
    docset_free(&ds);
}

TEST(too_large_batches_are_split_on_413) {
    if (live) return;
    const char *name = fresh_index("photos-413");
    docset ds;
    docset_make(&ds, 40, 16, 6);
    blipc_index_params p;
    params_for(&p, base_url(), name, 16);
    p.gzip = 0;
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    static char big[20000];
    memset(big, 'x', sizeof big - 1);
    ds.d[5].caption = big; /* this one alone is over the limit */
    fault(&srv, "{\"max_content_length\": 6000}");
    CHECK_STATUS(blipc_index_put(ix, ds.d, ds.n), BLIPC_OK, blipc_index_errmsg(ix));
    for (size_t i = 0; i < ds.n; i++) {
        if (i == 5) {
            CHECK_STATUS(blipc_index_put_status(ix, i), BLIPC_ERR_LIMIT, blipc_index_put_error(ix, i));
            CHECK_CONTAINS(blipc_index_put_error(ix, i), "413");
        } else {
            CHECK_STATUS(blipc_index_put_status(ix, i), BLIPC_OK, blipc_index_put_error(ix, i));
        }
    }
    CHECK_EQ_INT(count_docs(ix), 39);
    blipc_index_close(ix);
    docset_free(&ds);
}

TEST(wrong_credentials_are_reported_plainly) {
    if (live && !getenv("OPENSEARCH_USER")) return;
    th_server as = {0};
    const char *url = base_url();
    if (!live) {
        const char *args[] = {"--auth", "admin:s3cret", "--readonly", "reader:pw", NULL};
        if (server_start(&as, args) != 0) {
            CHECK(!"auth server did not start");
            return;
        }
        url = as.url;
    }
    blipc_index_params p;
    params_for(&p, url, live ? fresh_index("photos-auth") : "photos-auth", 4);
    p.user = live ? getenv("OPENSEARCH_USER") : "admin";
    p.password = "wrong-password";
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_AUTH, err);
    CHECK_CONTAINS(err, "authentication failed (401)");
    if (!live) {
        /* no credentials at all (and none in the environment) */
        p.user = NULL;
        p.password = NULL;
        CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_AUTH, err);
        CHECK_CONTAINS(err, "authentication failed (401)");
        /* authenticated but not allowed to create the index */
        p.user = "reader";
        p.password = "pw";
        CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_AUTH, err);
        CHECK_CONTAINS(err, "permission denied (403)");
        CHECK_CONTAINS(err, "security_exception");
        /* credentials from the environment */
        setenv("OPENSEARCH_USER", "admin", 1);
        setenv("OPENSEARCH_PASSWORD", "s3cret", 1);
        p.user = NULL;
        p.password = NULL;
        CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
        unsetenv("OPENSEARCH_USER");
        unsetenv("OPENSEARCH_PASSWORD");
        blipc_index_close(ix);
        th_server_stop(&as);
    }
}

TEST(unreachable_server_is_a_network_error) {
    /* a port nobody listens on: bind, note, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    blipc_index_params p;
    params_for(&p, url, "photos", 4);
    p.max_retries = 2;
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_NETWORK, err);
    CHECK_CONTAINS(err, url);
    CHECK_CONTAINS(err, "cannot connect");
    CHECK(ix == NULL);
    char mid[128];
    CHECK_STATUS(blipc_index_register_model(&p, NULL, NULL, NULL, mid, sizeof mid, err, sizeof err),
                 BLIPC_ERR_NETWORK, err);
}

TEST(tls_failure_is_reported_plainly) {
    if (live) return;
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", srv.port); /* TLS to a plain HTTP port */
    blipc_index_params p;
    params_for(&p, url, "photos", 4);
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_NETWORK, err);
    CHECK_CONTAINS(err, "TLS");
    CHECK_CONTAINS(err, url);
    /* a CA file that does not exist */
    p.cacert = "/nonexistent/ca.pem";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_NETWORK, err);
    CHECK_CONTAINS(err, "TLS");
}

TEST(sigv4_signs_the_exact_gzipped_bytes_for_serverless) {
    if (live) return;
    const char *name = fresh_index("photos-sigv4");
    docset ds;
    docset_make(&ds, 5, 4, 10);
    blipc_index_params p;
    params_for(&p, base_url(), name, 4);
    p.aws_sigv4 = "aws:amz:us-east-1:aoss";
    p.user = "AKIDEXAMPLE"; /* access key id / secret access key */
    p.password = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    CHECK_STATUS(blipc_index_put(ix, ds.d, ds.n), BLIPC_OK, blipc_index_errmsg(ix));
    cJSON *log = requests_log(&srv);
    int n = 0, signed_ok = 0, bulk_ok = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(log, "requests")) {
        n++;
        signed_ok += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "authorization_scheme")) ?: "",
                             "AWS4-HMAC-SHA256") &&
                     cJSON_GetObjectItem(cJSON_GetObjectItem(r, "amz"), "x-amz-date") != NULL &&
                     cJSON_IsTrue(cJSON_GetObjectItem(r, "amz_sha256_ok"));
        bulk_ok += strstr(cJSON_GetStringValue(cJSON_GetObjectItem(r, "path")) ?: "", "/_bulk") &&
                   !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "content_encoding")) ?: "", "gzip") &&
                   cJSON_IsTrue(cJSON_GetObjectItem(r, "amz_sha256_ok"));
    }
    CHECK(n >= 3);
    CHECK_EQ_INT(signed_ok, n);
    CHECK_EQ_INT(bulk_ok, 1);
    cJSON_Delete(log);
    blipc_index_close(ix);
    docset_free(&ds);
}

/* (1 + cos) / 2 */
static double cos_score(const float *a, const float *b, int n) {
    double d = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        d += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return (1 + d / sqrt(na * nb)) / 2;
}

TEST(knn_text_and_hybrid_search_rank_as_expected) {
    const char *name = fresh_index("photos-search");
    static const float vecs[4][4] = {{1, 0, 0, 0}, {0.9f, 0.3f, 0, 0}, {0, 1, 0, 0}, {0, 0.2f, 1, 0}};
    static const char *caps[4] = {"a red car parked on the street", "a dog running on the beach",
                                  "a red apple", "a cat sleeping on a sofa"};
    docset ds;
    docset_make(&ds, 4, 4, 7);
    for (int i = 0; i < 4; i++) {
        memcpy(ds.vec + 4 * i, vecs[i], sizeof vecs[i]);
        ds.d[i].caption = caps[i];
        ds.d[i].width = i == 2 ? 1024 : 640;
    }
    blipc_index_params p;
    params_for(&p, base_url(), name, 4);
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    CHECK_STATUS(blipc_index_put(ix, ds.d, 4), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_STATUS(blipc_index_flush(ix), BLIPC_OK, blipc_index_errmsg(ix));
    const float qv[4] = {1, 0.05f, 0, 0};
    blipc_index_query q;
    blipc_index_default_query(&q);
    q.vector = qv;
    q.dim = 4;
    q.k = 4;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    /* exact ranking by cosine: A (0.9988) > B > C > D */
    CHECK_EQ_INT(blipc_index_hit_count(ix), 4);
    static const int want[4] = {0, 1, 2, 3};
    for (size_t i = 0; i < blipc_index_hit_count(ix) && i < 4; i++) {
        CHECKF(!strcmp(blipc_index_hit_id(ix, i), ds.id[want[i]]), "rank %zu: %s", i + 1, blipc_index_hit_path(ix, i));
        CHECKF(fabs(blipc_index_hit_score(ix, i) - cos_score(qv, vecs[want[i]], 4)) < 1e-4, "score %g vs %g",
               blipc_index_hit_score(ix, i), cos_score(qv, vecs[want[i]], 4));
        CHECK(fabs(blipc_index_hit_vector_score(ix, i) - blipc_index_hit_score(ix, i)) < 1e-12);
    }
    CHECK(!strcmp(blipc_index_hit_path(ix, 0), ds.path[0]));
    CHECK(!strcmp(blipc_index_hit_caption(ix, 0), caps[0]));
    /* k limits the hits; a filter on width */
    q.k = 2;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 2);
    blipc_index_filter flt = {"width", "1024"};
    q.filters = &flt;
    q.n_filters = 1;
    q.k = 4;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 1);
    if (blipc_index_hit_count(ix)) CHECK(!strcmp(blipc_index_hit_id(ix, 0), ds.id[2]));
    blipc_index_filter bad = {"colour", "red"};
    q.filters = &bad;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_ERR_INVALID_ARG, blipc_index_errmsg(ix));
    CHECK_CONTAINS(blipc_index_errmsg(ix), "colour");
    q.filters = NULL;
    q.n_filters = 0;
    /* text only: BM25 on image_description */
    blipc_index_query t;
    blipc_index_default_query(&t);
    t.text = "cat";
    CHECK_STATUS(blipc_index_search(ix, &t), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 1);
    if (blipc_index_hit_count(ix)) CHECK(!strcmp(blipc_index_hit_id(ix, 0), ds.id[3]));
    /* hybrid: "red" matches A and C (min-max over 2 text hits: one 1, one minimum),
     * the vector favours A and B: A first, then B, then C, then D */
    q.text = "red";
    q.hybrid = 1;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 4);
    for (size_t i = 0; i < blipc_index_hit_count(ix) && i < 4; i++)
        CHECKF(!strcmp(blipc_index_hit_id(ix, i), ds.id[want[i]]), "hybrid rank %zu: %s", i + 1,
               blipc_index_hit_caption(ix, i));
    if (blipc_index_hit_count(ix) == 4) {
        /* A: vector max (1) and text min: 0.7 * 1 + 0.3 * (0 or 0.001) */
        CHECK(fabs(blipc_index_hit_score(ix, 0) - 0.7) < 0.001);
        CHECK(isnan(blipc_index_hit_text_score(ix, 0)));
    }
    /* the hybrid search pipeline is the tutorial's */
    long st = 0;
    cJSON *sp = http(base_url(), "GET", "/_search/pipeline/blipc-hybrid", NULL, &st);
    CHECK_EQ_INT(st, 200);
    cJSON *np = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(sp, "blipc-hybrid"),
                                                                            "phase_results_processors"), 0),
                                    "normalization-processor");
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(np, "normalization"), "technique")) ?: "",
                  "min_max"));
    cJSON *w = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(np, "combination"), "parameters"), "weights");
    CHECK_EQ_INT(cJSON_GetArraySize(w), 2);
    if (cJSON_GetArraySize(w) == 2)
        CHECK(fabs(cJSON_GetArrayItem(w, 0)->valuedouble + cJSON_GetArrayItem(w, 1)->valuedouble - 1) < 1e-9);
    cJSON_Delete(sp);
    blipc_index_close(ix);
    docset_free(&ds);
}

TEST(lookups_moves_and_deletes) {
    const char *name = fresh_index("photos-lookup");
    docset ds;
    docset_make(&ds, 3, 4, 8);
    const char *qs[2] = {"What brand is it?", "What colour is it?"};
    const char *as[2] = {"acme", "red"};
    ds.d[0].questions = qs;
    ds.d[0].answers = as;
    ds.d[0].n_answers = 2;
    blipc_index_params p;
    params_for(&p, base_url(), name, 0); /* dim learnt at the first put */
    blipc_index *ix = NULL;
    char err[1024] = "";
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    uint64_t n = 99;
    CHECK_STATUS(blipc_index_count(ix, &n), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(n, 0);
    CHECK_STATUS(blipc_index_put(ix, ds.d, 2), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_put_status(ix, 0), BLIPC_OK);
    CHECK_EQ_INT(blipc_index_dim(ix), 4);
    const blipc_index_doc *g = NULL;
    CHECK_STATUS(blipc_index_get(ix, ds.id[0], &g), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(g != NULL);
    if (g) {
        CHECK(!strcmp(g->path, ds.path[0]));
        CHECK(!strcmp(g->caption, ds.caption[0]));
        CHECK_EQ_INT(g->n_answers, 2);
        if (g->n_answers == 2) CHECK(!strcmp(g->answers[1], "red") && !strcmp(g->questions[0], qs[0]));
        CHECK_EQ_INT(g->dim, 4);
        if (g->dim == 4) CHECK(th_max_abs_diff(g->vector, ds.vec, 4) == 0);
        CHECK_EQ_INT(g->width, 640);
        CHECK_EQ_INT(g->mtime, 1700000000);
        CHECK(g->embed_model && !strcmp(g->embed_model, "sentence-transformers/all-MiniLM-L12-v2"));
    }
    /* an answer field can be filtered on */
    CHECK_STATUS(blipc_index_flush(ix), BLIPC_OK, blipc_index_errmsg(ix));
    blipc_index_query q;
    blipc_index_default_query(&q);
    q.vector = ds.vec + 4;
    q.dim = 4;
    blipc_index_filter f = {"answer_what_brand_is_it", "acme"};
    q.filters = &f;
    q.n_filters = 1;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 1);
    int found = 0;
    char path[128];
    CHECK_STATUS(blipc_index_has(ix, ds.id[1], &found, path, sizeof path), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(found && !strcmp(path, ds.path[1]));
    CHECK_STATUS(blipc_index_has(ix, ds.id[2], &found, path, sizeof path), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(!found);
    /* moved file */
    CHECK_STATUS(blipc_index_set_path(ix, ds.id[1], "/photos/moved.jpg", 42), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_STATUS(blipc_index_get(ix, ds.id[1], &g), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(g && !strcmp(g->path, "/photos/moved.jpg") && g->mtime == 42);
    CHECK_STATUS(blipc_index_set_path(ix, ds.id[2], "/x.jpg", 1), BLIPC_ERR_NOT_FOUND, blipc_index_errmsg(ix));
    /* changed file: same path, new content -> the old document goes */
    ds.d[2].path = ds.path[0];
    CHECK_STATUS(blipc_index_put(ix, ds.d + 2, 1), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_STATUS(blipc_index_flush(ix), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_STATUS(blipc_index_has(ix, ds.id[0], &found, NULL, 0), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(!found);
    CHECK_EQ_INT(count_docs(ix), 2);
    CHECK_STATUS(blipc_index_delete(ix, ds.id[2]), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_STATUS(blipc_index_delete(ix, ds.id[2]), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(count_docs(ix), 1);
    blipc_index_close(ix);
    /* read-only on a missing index */
    params_for(&p, base_url(), live ? fresh_index("absent") : "absent-index", 0);
    p.read_only = 1;
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_ERR_NOT_FOUND, err);
    CHECK_CONTAINS(err, "does not exist");
    docset_free(&ds);
}

static void log_to_buf(void *user, blipc_log_level lvl, const char *msg) {
    (void)lvl;
    char *b = user;
    size_t n = strlen(b);
    snprintf(b + n, 4096 - n, "%s\n", msg);
}

TEST(register_model_and_ingest_pipeline_mode) {
    if (live && !getenv("OPENSEARCH_ML")) return; /* downloads a model: opt-in */
    const char *name = fresh_index("photos-ingest");
    blipc_index_params p;
    params_for(&p, base_url(), name, 0);
    if (live) p.timeout_ms = 60000, p.retry_base_ms = 1000;
    char logbuf[4096] = "";
    p.log_fn = log_to_buf;
    p.log_user = logbuf;
    char mid[128] = "", err[1024] = "";
    CHECK_STATUS(blipc_index_register_model(&p, NULL, NULL, NULL, mid, sizeof mid, err, sizeof err), BLIPC_OK, err);
    CHECK(mid[0] != 0);
    CHECK_CONTAINS(logbuf, "COMPLETED");
    if (!live) {
        char path[256];
        snprintf(path, sizeof path, "/_plugins/_ml/models/%s", mid);
        cJSON *m = http(base_url(), "GET", path, NULL, NULL);
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(m, "model_state")) ?: "", "DEPLOYED"));
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(m, "name")) ?: "",
                      "huggingface/sentence-transformers/all-MiniLM-L12-v2"));
        cJSON_Delete(m);
    }
    /* server-side embedding: the pipeline, default_pipeline, text only */
    p.ingest_pipeline = "blipc-embed";
    p.model_id = mid;
    blipc_index *ix = NULL;
    CHECK_STATUS(blipc_index_open(&p, &ix, err, sizeof err), BLIPC_OK, err);
    if (!ix) return;
    CHECK_EQ_INT(blipc_index_dim(ix), 384);
    docset ds;
    docset_make(&ds, 3, 384, 9);
    CHECK_STATUS(blipc_index_put(ix, ds.d, ds.n), BLIPC_OK, blipc_index_errmsg(ix));
    for (size_t i = 0; i < ds.n; i++) CHECK_STATUS(blipc_index_put_status(ix, i), BLIPC_OK, blipc_index_put_error(ix, i));
    CHECK_EQ_INT(count_docs(ix), 3);
    long st = 0;
    cJSON *pl = http(base_url(), "GET", "/_ingest/pipeline/blipc-embed", NULL, &st);
    CHECK_EQ_INT(st, 200);
    cJSON *te = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(pl, "blipc-embed"),
                                                                            "processors"), 0),
                                    "text_embedding");
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(te, "model_id")) ?: "", mid));
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(te, "field_map"),
                                                           "image_description")) ?: "",
                  "image_description_vector"));
    cJSON_Delete(pl);
    if (!live) {
        cJSON *log = requests_log(&srv);
        int n_bulk = 0;
        cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(log, "requests")) {
            if (!strstr(cJSON_GetStringValue(cJSON_GetObjectItem(r, "path")) ?: "", "/_bulk")) continue;
            n_bulk++;
            CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "query"), "pipeline") == NULL);
            cJSON *it;
            cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "bulk")) {
                cJSON *fl = cJSON_GetObjectItem(it, "fields");
                int has_vec = 0, has_text = 0;
                cJSON *x;
                cJSON_ArrayForEach(x, fl) {
                    has_vec |= !strcmp(x->valuestring, "image_description_vector");
                    has_text |= !strcmp(x->valuestring, "image_description");
                }
                CHECK(!has_vec && has_text);
                CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "pipeline")) ?: "", "blipc-embed"));
            }
        }
        CHECK(n_bulk >= 1);
        cJSON_Delete(log);
        cJSON *d = dump(&srv, name);
        cJSON *doc = cJSON_GetObjectItem(cJSON_GetObjectItem(d, "docs"), ds.id[0]);
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "image_description_vector")), 384);
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "settings"),
                                                               "index.default_pipeline")) ?: "",
                      "blipc-embed"));
        cJSON_Delete(d);
        /* neural query (no client vector) */
        blipc_index_query q;
        blipc_index_default_query(&q);
        q.text = ds.caption[1];
        CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
        CHECK(blipc_index_hit_count(ix) >= 1);
        if (blipc_index_hit_count(ix)) CHECK(!strcmp(blipc_index_hit_id(ix, 0), ds.id[1]));
    }
    blipc_index_close(ix);
    docset_free(&ds);
}

TEST(register_model_failures_are_explained) {
    if (live) return;
    fresh_index("unused");
    blipc_index_params p;
    params_for(&p, base_url(), "unused", 0);
    char mid[128] = "", err[1024] = "";
    fault(&srv, "{\"ml_fail\": \"register\"}");
    CHECK_STATUS(blipc_index_register_model(&p, NULL, NULL, NULL, mid, sizeof mid, err, sizeof err),
                 BLIPC_ERR_STORE, err);
    CHECK_CONTAINS(err, "FAILED");
    CHECK_CONTAINS(err, "Connection timed out while downloading model");
    CHECK_CONTAINS(err, "registering model huggingface/sentence-transformers/all-MiniLM-L12-v2");
    CHECK(mid[0] == 0);
    fault(&srv, "{\"ml_fail\": \"deploy\"}");
    CHECK_STATUS(blipc_index_register_model(&p, NULL, NULL, NULL, mid, sizeof mid, err, sizeof err),
                 BLIPC_ERR_STORE, err);
    CHECK_CONTAINS(err, "deploying model");
    CHECK_CONTAINS(err, "node node-1-id: Exception occurred when deploying model"); /* error: a JSON string */
    fault(&srv, "{\"ml_fail\": null, \"ml_no_ml_node\": true}");
    CHECK_STATUS(blipc_index_register_model(&p, NULL, NULL, NULL, mid, sizeof mid, err, sizeof err),
                 BLIPC_ERR_STORE, err);
    CHECK_CONTAINS(err, "plugins.ml_commons.only_run_on_ml_node");
    /* an unknown pretrained model */
    fault(&srv, "{\"ml_no_ml_node\": false}");
    CHECK_STATUS(blipc_index_register_model(&p, "huggingface/sentence-transformers/no-such-model", NULL, NULL, mid,
                                            sizeof mid, err, sizeof err),
                 BLIPC_ERR_STORE, err);
    CHECK_CONTAINS(err, "no-such-model");
    /* a task that never finishes: bounded polling */
    fault(&srv, "{\"ml_polls\": 1000000}");
    p.timeout_ms = 100; /* polls for 10 x timeout_ms */
    CHECK_STATUS(blipc_index_register_model(&p, NULL, NULL, NULL, mid, sizeof mid, err, sizeof err),
                 BLIPC_ERR_ABORTED, err);
    CHECK_CONTAINS(err, "still RUNNING");
}

int main(int argc, char **argv) {
    (void)force_link;
    live = argc > 1 && !strcmp(argv[1], "--live");
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    unsetenv("all_proxy");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (live) {
        const char *u = getenv("OPENSEARCH_URL");
        if (!u || !*u)
            th_skip_all("OPENSEARCH_URL is not set: the live OpenSearch test needs a cluster (docs/opensearch.md)");
        snprintf(live_index, sizeof live_index, "blipc-test-%d", (int)getpid());
    } else {
        unsetenv("OPENSEARCH_USER");
        unsetenv("OPENSEARCH_PASSWORD");
        if (access(OS_SERVER_SCRIPT, R_OK) != 0) th_skip_all("tests/servers/opensearch_server.py not found");
        if (server_start(&srv, NULL) != 0) {
            fprintf(stderr, "could not start %s\n", OS_SERVER_SCRIPT);
            return 1;
        }
    }
    RUN(creates_index_with_tutorial_mapping);
    RUN(existing_index_with_incompatible_mapping_is_refused);
    RUN(bulk_with_faults_indexes_every_document_exactly_once);
    RUN(keep_alive_reuses_one_connection);
    RUN(whole_request_429_is_retried);
    RUN(no_false_success_when_retries_run_out);
    RUN(mapper_parsing_exception_is_reported_per_document);
    RUN(too_large_batches_are_split_on_413);
    RUN(wrong_credentials_are_reported_plainly);
    RUN(unreachable_server_is_a_network_error);
    RUN(tls_failure_is_reported_plainly);
    RUN(sigv4_signs_the_exact_gzipped_bytes_for_serverless);
    RUN(knn_text_and_hybrid_search_rank_as_expected);
    RUN(lookups_moves_and_deletes);
    RUN(register_model_and_ingest_pipeline_mode);
    RUN(register_model_failures_are_explained);
    if (live) {
        /* remove what this run created */
        char path[128];
        snprintf(path, sizeof path, "/%s-*", live_index);
        cJSON_Delete(http(base_url(), "DELETE", path, NULL, NULL));
    } else {
        th_server_stop(&srv);
    }
    curl_global_cleanup();
    return th_finish();
}
