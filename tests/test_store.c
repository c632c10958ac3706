/* test_store.c — the embedded index store (lib/index/store_sqlite.c), the
 * public front (index.c) and image discovery (walk.c). */
#include "blipc_index.h"
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char errbuf[1024];

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double rnd(void) {   /* xorshift64*, uniform in [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
    return (double)(r >> 11) / (double)(1ull << 52) - 1.0;
}

static void rand_unit(float *v, int dim) {
    double n = 0;
    for (int i = 0; i < dim; i++) {
        v[i] = (float)rnd();
        n += (double)v[i] * v[i];
    }
    n = sqrt(n);
    for (int i = 0; i < dim; i++) v[i] = (float)(v[i] / n);
}

/* A fake but well-formed sha256 id from a number. */
static void make_id(char id[65], unsigned k) {
    snprintf(id, 65, "%08x%056x", k, 0u);
    for (int i = 8; i < 64; i++) id[i] = "0123456789abcdef"[(k * 7u + (unsigned)i * 13u) % 16u];
}

static blipc_index *open_store(const char *path, int dim) {
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.store_path = path;
    p.dim = dim;
    blipc_index *ix = NULL;
    blipc_status st = blipc_index_open(&p, &ix, errbuf, sizeof errbuf);
    CHECK_STATUS(st, BLIPC_OK, errbuf);
    return ix;
}

static double dot_cos(const float *a, const float *b, int dim) {
    double d = 0, na = 0, nb = 0;
    for (int i = 0; i < dim; i++) {
        d += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return d / sqrt(na * nb);
}

/* ---------------------------------------------------------------- tests */

TEST(answer_field_names_are_slugs) {
    char f[80];
    CHECK_STATUS(blipc_index_answer_field("What brand is it?", f, sizeof f), BLIPC_OK, "");
    CHECK(!strcmp(f, "answer_what_brand_is_it"));
    CHECK_STATUS(blipc_index_answer_field("  How MANY dogs??  ", f, sizeof f), BLIPC_OK, "");
    CHECK(!strcmp(f, "answer_how_many_dogs"));
    CHECK_STATUS(blipc_index_answer_field("???", f, sizeof f), BLIPC_OK, "");
    CHECK(!strcmp(f, "answer_q"));
    char small[8];
    CHECK_STATUS(blipc_index_answer_field("What brand is it?", small, sizeof small), BLIPC_ERR_BUFFER_TOO_SMALL, "");
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK_STATUS(blipc_index_answer_field(big, f, sizeof f), BLIPC_OK, "");
    CHECK_EQ_INT(strlen(f), 7 + 64);
}

TEST(default_store_path_follows_xdg) {
    char buf[512];
    char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    setenv("XDG_DATA_HOME", "/data/x", 1);
    CHECK_STATUS(blipc_index_default_store_path(buf, sizeof buf), BLIPC_OK, "");
    CHECK(!strcmp(buf, "/data/x/blipc/index.sqlite"));
    unsetenv("XDG_DATA_HOME");
    setenv("HOME", "/home/u", 1);
    CHECK_STATUS(blipc_index_default_store_path(buf, sizeof buf), BLIPC_OK, "");
    CHECK(!strcmp(buf, "/home/u/.local/share/blipc/index.sqlite"));
    CHECK_STATUS(blipc_index_default_store_path(buf, 5), BLIPC_ERR_BUFFER_TOO_SMALL, "");
    if (old_xdg) setenv("XDG_DATA_HOME", old_xdg, 1);
    free(old_xdg);
}

TEST(put_get_has_count_roundtrip) {
    const char *path = th_tmp_path("rt/sub/index.sqlite");   /* parent dirs are created */
    blipc_index *ix = open_store(path, 0);
    if (!ix) return;
    CHECK_EQ_INT(blipc_index_dim(ix), 0);
    float v[3][8];
    char ids[3][65];
    blipc_index_doc d[3];
    const char *qs[] = {"What brand is it?", "How many dogs?"};
    const char *as[] = {"nike", "two"};
    char paths[3][64];
    for (int i = 0; i < 3; i++) {
        rand_unit(v[i], 8);
        make_id(ids[i], (unsigned)i + 1);
        snprintf(paths[i], sizeof paths[i], "/photos/p%d.jpg", i);
        blipc_index_doc_init(&d[i]);
        d[i].id = ids[i];
        d[i].path = paths[i];
        d[i].caption = i == 0 ? "a dog on the beach" : i == 1 ? "a red car" : "two cats on a sofa";
        d[i].vector = v[i];
        d[i].dim = 8;
        d[i].width = 100 + i;
        d[i].height = 200 + i;
        d[i].mtime = 1700000000 + i;
        d[i].size = 1234 + i;
        d[i].caption_model = "tiny-blip2";
        d[i].embed_model = "tiny-minilm";
    }
    d[0].questions = qs;
    d[0].answers = as;
    d[0].n_answers = 2;
    CHECK_STATUS(blipc_index_put(ix, d, 3), BLIPC_OK, blipc_index_errmsg(ix));
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(blipc_index_put_status(ix, (size_t)i), BLIPC_OK);
        CHECK(!strcmp(blipc_index_put_error(ix, (size_t)i), ""));
    }
    CHECK_EQ_INT(blipc_index_dim(ix), 8);
    uint64_t n = 0;
    CHECK_STATUS(blipc_index_count(ix, &n), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(n, 3);

    const blipc_index_doc *g = NULL;
    CHECK_STATUS(blipc_index_get(ix, ids[0], &g), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(g != NULL);
    if (g) {
        CHECK(!strcmp(g->id, ids[0]));
        CHECK(!strcmp(g->path, "/photos/p0.jpg"));
        CHECK(!strcmp(g->caption, "a dog on the beach"));
        CHECK_EQ_INT(g->width, 100);
        CHECK_EQ_INT(g->height, 200);
        CHECK_EQ_INT(g->mtime, 1700000000);
        CHECK_EQ_INT(g->size, 1234);
        CHECK(g->caption_model && !strcmp(g->caption_model, "tiny-blip2"));
        CHECK(g->embed_model && !strcmp(g->embed_model, "tiny-minilm"));
        CHECK_EQ_INT(g->n_answers, 2);
        if (g->n_answers == 2) {
            CHECK(!strcmp(g->questions[1], "How many dogs?"));
            CHECK(!strcmp(g->answers[0], "nike"));
            CHECK(!strcmp(g->answers[1], "two"));
        }
        CHECK_EQ_INT(g->dim, 8);
        CHECK(g->vector && th_max_abs_diff(g->vector, v[0], 8) == 0.0);
    }
    char missing[65];
    make_id(missing, 999);
    CHECK_STATUS(blipc_index_get(ix, missing, &g), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(g == NULL);

    int found = 0;
    char sp[256];
    CHECK_STATUS(blipc_index_has(ix, ids[1], &found, sp, sizeof sp), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(found == 1 && !strcmp(sp, "/photos/p1.jpg"));
    CHECK_STATUS(blipc_index_has(ix, missing, &found, sp, sizeof sp), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(found == 0);
    blipc_index_close(ix);

    /* everything survives a reopen, dim included */
    ix = open_store(path, 0);
    if (!ix) return;
    CHECK_EQ_INT(blipc_index_dim(ix), 8);
    CHECK_STATUS(blipc_index_count(ix, &n), BLIPC_OK, "");
    CHECK_EQ_INT(n, 3);
    blipc_index_close(ix);
    blipc_index_close(NULL);
}

TEST(put_replaces_and_moves) {
    blipc_index *ix = open_store(th_tmp_path("mv.sqlite"), 4);
    if (!ix) return;
    float v[4] = {1, 0, 0, 0};
    char a[65], b[65];
    make_id(a, 10);
    make_id(b, 11);
    blipc_index_doc d;
    blipc_index_doc_init(&d);
    d.id = a;
    d.path = "/p/x.jpg";
    d.caption = "old caption";
    d.vector = v;
    d.dim = 4;
    CHECK_STATUS(blipc_index_put(ix, &d, 1), BLIPC_OK, blipc_index_errmsg(ix));
    /* same id again: replaced, not duplicated */
    d.caption = "new caption";
    CHECK_STATUS(blipc_index_put(ix, &d, 1), BLIPC_OK, blipc_index_errmsg(ix));
    uint64_t n;
    blipc_index_count(ix, &n);
    CHECK_EQ_INT(n, 1);
    const blipc_index_doc *g;
    blipc_index_get(ix, a, &g);
    CHECK(g && !strcmp(g->caption, "new caption"));
    /* text index follows the replacement */
    blipc_index_query q;
    blipc_index_default_query(&q);
    q.text = "old";
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 0);
    q.text = "new";
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 1);

    /* moved: same id, new path */
    CHECK_STATUS(blipc_index_set_path(ix, a, "/q/y.jpg", 42), BLIPC_OK, blipc_index_errmsg(ix));
    blipc_index_get(ix, a, &g);
    CHECK(g && !strcmp(g->path, "/q/y.jpg") && g->mtime == 42);
    CHECK_STATUS(blipc_index_set_path(ix, b, "/q/z.jpg", 1), BLIPC_ERR_NOT_FOUND, blipc_index_errmsg(ix));

    /* the file at /q/y.jpg changed content: new id, the stale document goes */
    d.id = b;
    d.path = "/q/y.jpg";
    d.caption = "changed";
    CHECK_STATUS(blipc_index_put(ix, &d, 1), BLIPC_OK, blipc_index_errmsg(ix));
    blipc_index_count(ix, &n);
    CHECK_EQ_INT(n, 1);
    int found;
    blipc_index_has(ix, a, &found, NULL, 0);
    CHECK(found == 0);
    blipc_index_has(ix, b, &found, NULL, 0);
    CHECK(found == 1);

    CHECK_STATUS(blipc_index_delete(ix, b), BLIPC_OK, blipc_index_errmsg(ix));
    blipc_index_count(ix, &n);
    CHECK_EQ_INT(n, 0);
    CHECK_STATUS(blipc_index_delete(ix, b), BLIPC_OK, blipc_index_errmsg(ix));
    blipc_index_close(ix);
}

TEST(put_rejects_bad_documents_whole_call) {
    blipc_index *ix = open_store(th_tmp_path("bad.sqlite"), 4);
    if (!ix) return;
    float v[4] = {1, 0, 0, 0}, w[3] = {1, 0, 0};
    char a[65], b[65];
    make_id(a, 20);
    make_id(b, 21);
    blipc_index_doc d[2];
    blipc_index_doc_init(&d[0]);
    blipc_index_doc_init(&d[1]);
    d[0].id = a; d[0].path = "/a.jpg"; d[0].caption = "a"; d[0].vector = v; d[0].dim = 4;
    d[1].id = b; d[1].path = "/b.jpg"; d[1].caption = "b"; d[1].vector = w; d[1].dim = 3;
    CHECK_STATUS(blipc_index_put(ix, d, 2), BLIPC_ERR_INVALID_ARG, "");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "/b.jpg");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "dimension 3");
    CHECK(blipc_index_put_status(ix, 0) != BLIPC_OK);   /* nothing reported OK */
    CHECK(blipc_index_put_status(ix, 1) != BLIPC_OK);
    uint64_t n;
    blipc_index_count(ix, &n);
    CHECK_EQ_INT(n, 0);
    d[1].dim = 4;
    d[1].vector = v;
    d[1].id = "not-a-sha";
    CHECK_STATUS(blipc_index_put(ix, d, 2), BLIPC_ERR_INVALID_ARG, "");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "id is not 64");
    float nanv[4] = {NAN, 0, 0, 0};
    d[1].id = b;
    d[1].vector = nanv;
    CHECK_STATUS(blipc_index_put(ix, d, 2), BLIPC_ERR_INVALID_ARG, "");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "not finite");
    blipc_index_close(ix);

    /* a store holding 4-d vectors refuses to be opened for 8-d ones */
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.store_path = th_tmp_path("bad.sqlite");
    ix = open_store(p.store_path, 0);
    d[1].vector = v;
    CHECK_STATUS(blipc_index_put(ix, d, 2), BLIPC_OK, blipc_index_errmsg(ix));
    blipc_index_close(ix);
    p.dim = 8;
    ix = NULL;
    CHECK_STATUS(blipc_index_open(&p, &ix, errbuf, sizeof errbuf), BLIPC_ERR_STORE, errbuf);
    CHECK_CONTAINS(errbuf, "4-dimensional");
    CHECK(ix == NULL);
}

/* The store's k-NN must equal a brute-force cosine ranking computed here. */
TEST(knn_is_exact_vs_brute_force) {
    enum { N = 5000, DIM = 48, K = 25 };   /* N > the 4096-row scan block */
    blipc_index *ix = open_store(th_tmp_path("knn.sqlite"), DIM);
    if (!ix) return;
    float *vecs = malloc(sizeof(float) * N * DIM);
    char (*ids)[65] = malloc(65 * N);
    char (*paths)[32] = malloc(32 * N);
    blipc_index_doc *d = calloc(N, sizeof *d);
    for (int i = 0; i < N; i++) {
        rand_unit(vecs + (size_t)i * DIM, DIM);
        /* some vectors not normalised: the store must compute true cosine */
        if (i % 7 == 0)
            for (int j = 0; j < DIM; j++) vecs[(size_t)i * DIM + j] *= 3.5f;
        make_id(ids[i], (unsigned)i + 100);
        snprintf(paths[i], 32, "/img/%05d.png", i);
        d[i].id = ids[i];
        d[i].path = paths[i];
        d[i].caption = "x";
        d[i].vector = vecs + (size_t)i * DIM;
        d[i].dim = DIM;
        d[i].width = i % 3;   /* for the filter below */
    }
    for (int b = 0; b < N; b += 1000) {   /* batches: one transaction each */
        CHECK_STATUS(blipc_index_put(ix, d + b, 1000), BLIPC_OK, blipc_index_errmsg(ix));
    }
    double *cs = malloc(sizeof(double) * N);
    for (int t = 0; t < 5; t++) {
        float q[DIM];
        rand_unit(q, DIM);
        for (int i = 0; i < N; i++) cs[i] = dot_cos(vecs + (size_t)i * DIM, q, DIM);
        for (int filtered = 0; filtered < 2; filtered++) {
            blipc_index_query qq;
            blipc_index_default_query(&qq);
            qq.vector = q;
            qq.dim = DIM;
            qq.k = K;
            blipc_index_filter f = {"width", "1"};
            if (filtered) {
                qq.filters = &f;
                qq.n_filters = 1;
            }
            CHECK_STATUS(blipc_index_search(ix, &qq), BLIPC_OK, blipc_index_errmsg(ix));
            CHECK_EQ_INT(blipc_index_hit_count(ix), K);
            /* brute force: best K by cosine */
            int used[N];
            memset(used, 0, sizeof used);
            for (int r = 0; r < K && r < (int)blipc_index_hit_count(ix); r++) {
                int best = -1;
                for (int i = 0; i < N; i++) {
                    if (used[i] || (filtered && i % 3 != 1)) continue;
                    if (best < 0 || cs[i] > cs[best]) best = i;
                }
                used[best] = 1;
                CHECKF(!strcmp(blipc_index_hit_id(ix, (size_t)r), ids[best]), "query %d filtered %d rank %d: %s vs %s",
                       t, filtered, r + 1, blipc_index_hit_id(ix, (size_t)r), ids[best]);
                double want = (1 + cs[best]) / 2;
                CHECKF(fabs(blipc_index_hit_score(ix, (size_t)r) - want) < 1e-5, "score %f want %f",
                       blipc_index_hit_score(ix, (size_t)r), want);
                CHECK(!strcmp(blipc_index_hit_path(ix, (size_t)r), paths[best]));
                CHECK(isnan(blipc_index_hit_text_score(ix, (size_t)r)));
            }
        }
    }
    /* k larger than the store: everything, sorted */
    float q[DIM];
    rand_unit(q, DIM);
    blipc_index_query qq;
    blipc_index_default_query(&qq);
    qq.vector = q;
    qq.dim = DIM;
    qq.k = 10000;
    CHECK_STATUS(blipc_index_search(ix, &qq), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), N);
    for (size_t r = 1; r < blipc_index_hit_count(ix); r++)
        CHECK(blipc_index_hit_score(ix, r - 1) >= blipc_index_hit_score(ix, r));
    /* the cache follows new writes */
    float nv[DIM];
    memcpy(nv, q, sizeof nv);
    char nid[65];
    make_id(nid, 77777);
    blipc_index_doc nd;
    blipc_index_doc_init(&nd);
    nd.id = nid;
    nd.path = "/img/new.png";
    nd.caption = "new";
    nd.vector = nv;
    nd.dim = DIM;
    CHECK_STATUS(blipc_index_put(ix, &nd, 1), BLIPC_OK, blipc_index_errmsg(ix));
    qq.k = 1;
    CHECK_STATUS(blipc_index_search(ix, &qq), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(blipc_index_hit_count(ix) == 1 && !strcmp(blipc_index_hit_id(ix, 0), nid));
    CHECK(fabs(blipc_index_hit_score(ix, 0) - 1.0) < 1e-6);
    free(cs);
    free(vecs);
    free(ids);
    free(paths);
    free(d);
    blipc_index_close(ix);
}

/* Hybrid: min-max of each sub-query over its hits, then the weighted mean;
 * recomputed here from the component scores the store returns. */
TEST(hybrid_score_is_minmax_weighted_mean) {
    enum { DIM = 6 };
    blipc_index *ix = open_store(th_tmp_path("hyb.sqlite"), DIM);
    if (!ix) return;
    const char *caps[] = {"a dog running on the beach", "a black dog", "a cat on a sofa", "a red car on the road",
                          "beach umbrellas and a dog and another dog", "mountains at sunset", "a dog"};
    enum { N = 7 };
    float v[N][DIM];
    char ids[N][65], paths[N][32];
    blipc_index_doc d[N];
    for (int i = 0; i < N; i++) {
        rand_unit(v[i], DIM);
        make_id(ids[i], (unsigned)i + 500);
        snprintf(paths[i], 32, "/h/%d.jpg", i);
        blipc_index_doc_init(&d[i]);
        d[i].id = ids[i];
        d[i].path = paths[i];
        d[i].caption = caps[i];
        d[i].vector = v[i];
        d[i].dim = DIM;
    }
    CHECK_STATUS(blipc_index_put(ix, d, N), BLIPC_OK, blipc_index_errmsg(ix));
    float q[DIM];
    rand_unit(q, DIM);
    blipc_index_query qq;
    blipc_index_default_query(&qq);
    qq.text = "dog beach";
    qq.vector = q;
    qq.dim = DIM;
    qq.k = N;
    qq.hybrid = 1;
    qq.text_weight = 0.6f;   /* normalised: 0.6/1.4 -> 0.3/0.7 */
    qq.vector_weight = 1.4f;
    CHECK_STATUS(blipc_index_search(ix, &qq), BLIPC_OK, blipc_index_errmsg(ix));
    size_t n = blipc_index_hit_count(ix);
    CHECK_EQ_INT(n, N);
    double tmin = INFINITY, tmax = -INFINITY, vmin = INFINITY, vmax = -INFINITY;
    int n_text = 0;
    for (size_t i = 0; i < n; i++) {
        double t = blipc_index_hit_text_score(ix, i), vs = blipc_index_hit_vector_score(ix, i);
        if (!isnan(t)) {
            n_text++;
            tmin = fmin(tmin, t);
            tmax = fmax(tmax, t);
        }
        CHECK(!isnan(vs));   /* k = N: every document is a vector hit */
        vmin = fmin(vmin, vs);
        vmax = fmax(vmax, vs);
        /* the vector component is (1 + cos) / 2 */
        int j = atoi(blipc_index_hit_path(ix, i) + 3);
        CHECK(fabs(vs - (1 + dot_cos(v[j], q, DIM)) / 2) < 1e-5);
        /* the text component exists exactly for captions with "dog" or "beach" */
        int has_term = strstr(caps[j], "dog") || strstr(caps[j], "beach");
        CHECKF(has_term == !isnan(t), "%s", caps[j]);
    }
    CHECK_EQ_INT(n_text, 4);
    for (size_t i = 0; i < n; i++) {
        double t = blipc_index_hit_text_score(ix, i), vs = blipc_index_hit_vector_score(ix, i);
        double tn = isnan(t) ? 0 : (t - tmin) / (tmax - tmin);
        double vn = (vs - vmin) / (vmax - vmin);
        double want = 0.3 * tn + 0.7 * vn;
        CHECKF(fabs(blipc_index_hit_score(ix, i) - want) < 1e-6, "hit %zu score %f want %f", i,
               blipc_index_hit_score(ix, i), want);
        if (i) CHECK(blipc_index_hit_score(ix, i - 1) >= blipc_index_hit_score(ix, i));
    }
    /* k = 3: the hybrid hits are the union of each sub-query's top 3, with the
     * same component scores as the text-only and vector-only searches */
    {
        char tid[3][65], vid[3][65];
        double tsc[3], vsc[3];
        blipc_index_query sq;
        blipc_index_default_query(&sq);
        sq.k = 3;
        sq.text = "dog beach";
        CHECK_STATUS(blipc_index_search(ix, &sq), BLIPC_OK, blipc_index_errmsg(ix));
        size_t nt = blipc_index_hit_count(ix);
        for (size_t i = 0; i < nt && i < 3; i++) {
            snprintf(tid[i], 65, "%s", blipc_index_hit_id(ix, i));
            tsc[i] = blipc_index_hit_score(ix, i);
        }
        sq.text = NULL;
        sq.vector = q;
        sq.dim = DIM;
        CHECK_STATUS(blipc_index_search(ix, &sq), BLIPC_OK, blipc_index_errmsg(ix));
        size_t nv = blipc_index_hit_count(ix);
        for (size_t i = 0; i < nv && i < 3; i++) {
            snprintf(vid[i], 65, "%s", blipc_index_hit_id(ix, i));
            vsc[i] = blipc_index_hit_score(ix, i);
        }
        CHECK(nt == 3 && nv == 3);
        int only_text = 0;   /* the data make the union larger than either list */
        for (int a = 0; a < 3; a++) {
            int in = 0;
            for (int b = 0; b < 3; b++) in |= !strcmp(tid[a], vid[b]);
            only_text += !in;
        }
        CHECK(only_text > 0);
        qq.k = 3;
        CHECK_STATUS(blipc_index_search(ix, &qq), BLIPC_OK, blipc_index_errmsg(ix));
        CHECK_EQ_INT(blipc_index_hit_count(ix), 3);
        for (size_t i = 0; i < blipc_index_hit_count(ix); i++) {
            const char *id = blipc_index_hit_id(ix, i);
            double t = blipc_index_hit_text_score(ix, i), vs = blipc_index_hit_vector_score(ix, i);
            int in_t = -1, in_v = -1;
            for (int k2 = 0; k2 < 3; k2++) {
                if (!strcmp(id, tid[k2])) in_t = k2;
                if (!strcmp(id, vid[k2])) in_v = k2;
            }
            CHECK(in_t >= 0 || in_v >= 0);
            CHECK((in_t >= 0) == !isnan(t));
            CHECK((in_v >= 0) == !isnan(vs));
            if (in_t >= 0) CHECK(fabs(t - tsc[in_t]) < 1e-9);
            if (in_v >= 0) CHECK(fabs(vs - vsc[in_v]) < 1e-9);
        }
        qq.k = N;
    }
    /* BM25 alone: the caption with both terms (twice "dog") ranks first */
    blipc_index_query tq;
    blipc_index_default_query(&tq);
    tq.text = "dog beach";
    CHECK_STATUS(blipc_index_search(ix, &tq), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 4);
    if (blipc_index_hit_count(ix) >= 1) {
        const char *top = blipc_index_hit_caption(ix, 0);
        CHECKF(!strcmp(top, caps[4]) || !strcmp(top, caps[0]), "top: %s", top);
        CHECK(isnan(blipc_index_hit_vector_score(ix, 0)));
        CHECK(blipc_index_hit_score(ix, 0) == blipc_index_hit_text_score(ix, 0));
    }
    /* query text with only punctuation: no text hits, no error */
    tq.text = "?!...";
    CHECK_STATUS(blipc_index_search(ix, &tq), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 0);
    /* hybrid needs a vector in the store */
    qq.vector = NULL;
    CHECK_STATUS(blipc_index_search(ix, &qq), BLIPC_ERR_INVALID_ARG, blipc_index_errmsg(ix));
    blipc_index_close(ix);
}

TEST(filters_on_stored_fields) {
    enum { DIM = 4 };
    blipc_index *ix = open_store(th_tmp_path("flt.sqlite"), DIM);
    if (!ix) return;
    const char *qs[] = {"What brand is it?"};
    const char *brands[] = {"nike", "adidas", "nike"};
    float v[3][DIM];
    char ids[3][65], paths[3][32];
    blipc_index_doc d[3];
    for (int i = 0; i < 3; i++) {
        rand_unit(v[i], DIM);
        make_id(ids[i], (unsigned)i + 900);
        snprintf(paths[i], 32, "/f/%d.jpg", i);
        blipc_index_doc_init(&d[i]);
        d[i].id = ids[i];
        d[i].path = paths[i];
        d[i].caption = "a shoe";
        d[i].vector = v[i];
        d[i].dim = DIM;
        d[i].width = i == 2 ? 640 : 320;
        d[i].questions = qs;
        d[i].answers = &brands[i];
        d[i].n_answers = 1;
    }
    CHECK_STATUS(blipc_index_put(ix, d, 3), BLIPC_OK, blipc_index_errmsg(ix));
    blipc_index_query q;
    blipc_index_default_query(&q);
    q.vector = v[0];
    q.dim = DIM;
    blipc_index_filter f[2] = {{"answer_what_brand_is_it", "nike"}, {"width", "640"}};
    q.filters = f;
    q.n_filters = 1;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 2);
    for (size_t i = 0; i < blipc_index_hit_count(ix); i++) CHECK(strcmp(blipc_index_hit_path(ix, i), "/f/1.jpg"));
    q.n_filters = 2;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(blipc_index_hit_count(ix) == 1 && !strcmp(blipc_index_hit_path(ix, 0), "/f/2.jpg"));
    /* text search with a filter; answers are searchable text too */
    blipc_index_query t;
    blipc_index_default_query(&t);
    t.text = "adidas";
    CHECK_STATUS(blipc_index_search(ix, &t), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(blipc_index_hit_count(ix) == 1 && !strcmp(blipc_index_hit_path(ix, 0), "/f/1.jpg"));
    t.text = "shoe";
    blipc_index_filter pf = {"path", "/f/0.jpg"};
    t.filters = &pf;
    t.n_filters = 1;
    CHECK_STATUS(blipc_index_search(ix, &t), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK(blipc_index_hit_count(ix) == 1 && !strcmp(blipc_index_hit_path(ix, 0), "/f/0.jpg"));
    /* bad filters */
    blipc_index_filter bad = {"colour", "red"};
    q.filters = &bad;
    q.n_filters = 1;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_ERR_INVALID_ARG, "");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "colour");
    blipc_index_filter badint = {"width", "wide"};
    q.filters = &badint;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_ERR_INVALID_ARG, "");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "width");
    blipc_index_close(ix);
}

TEST(search_rejects_bad_queries) {
    blipc_index *ix = open_store(th_tmp_path("q.sqlite"), 4);
    if (!ix) return;
    blipc_index_query q;
    blipc_index_default_query(&q);
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_ERR_INVALID_ARG, "");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "neither text nor a vector");
    q.text = "";
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_ERR_INVALID_ARG, "");
    float v[3] = {1, 0, 0};
    q.vector = v;
    q.dim = 3;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_ERR_INVALID_ARG, "");
    CHECK_CONTAINS(blipc_index_errmsg(ix), "dimension 3");
    float w[4] = {1, 0, 0, 0};
    q.vector = w;
    q.dim = 4;
    q.k = 10001;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_ERR_INVALID_ARG, "");
    q.k = 5;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));   /* empty store: no hits */
    CHECK_EQ_INT(blipc_index_hit_count(ix), 0);
    /* a 10,000-character text query runs */
    char *big = malloc(10001);
    for (int i = 0; i < 10000; i++) big[i] = "dog cat "[i % 8];
    big[10000] = 0;
    q.text = big;
    q.hybrid = 1;
    CHECK_STATUS(blipc_index_search(ix, &q), BLIPC_OK, blipc_index_errmsg(ix));
    free(big);
    blipc_index_close(ix);
}

TEST(not_a_store_is_a_clear_error) {
    const char *junk = th_tmp_path("junk.sqlite");
    char data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)(i * 31 + 7);
    th_write_file(junk, data, sizeof data);
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.store_path = junk;
    blipc_index *ix = NULL;
    CHECK_STATUS(blipc_index_open(&p, &ix, errbuf, sizeof errbuf), BLIPC_ERR_STORE, errbuf);
    CHECK_CONTAINS(errbuf, junk);
    CHECK_CONTAINS(errbuf, "not a blipc index store");
    CHECK(ix == NULL);
    /* the junk file is left untouched */
    size_t sz = 0;
    char *back = th_read_file(junk, &sz);
    CHECK(back && sz == sizeof data && !memcmp(back, data, sz));
    free(back);

    /* an SQLite database of something else */
    const char *other = th_tmp_path("other.sqlite");
    sqlite3 *db;
    sqlite3_open(other, &db);
    sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", NULL, NULL, NULL);
    sqlite3_close(db);
    p.store_path = other;
    CHECK_STATUS(blipc_index_open(&p, &ix, errbuf, sizeof errbuf), BLIPC_ERR_STORE, errbuf);
    CHECK_CONTAINS(errbuf, other);
    CHECK_CONTAINS(errbuf, "not a blipc index store");

    /* a directory */
    p.store_path = th_tmpdir();
    CHECK_STATUS(blipc_index_open(&p, &ix, errbuf, sizeof errbuf), BLIPC_ERR_STORE, errbuf);
    /* read-only open of a missing store */
    p.store_path = th_tmp_path("missing.sqlite");
    p.read_only = 1;
    CHECK_STATUS(blipc_index_open(&p, &ix, errbuf, sizeof errbuf), BLIPC_ERR_IO, errbuf);
    CHECK_CONTAINS(errbuf, "missing.sqlite");
    struct stat sb;
    CHECK(stat(p.store_path, &sb) != 0);   /* not created */
}

TEST(newer_format_version_is_refused) {
    const char *path = th_tmp_path("newer.sqlite");
    blipc_index *ix = open_store(path, 4);
    if (!ix) return;
    blipc_index_close(ix);
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'format_version'", NULL, NULL, NULL) ==
          SQLITE_OK);
    sqlite3_close(db);
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.store_path = path;
    ix = NULL;
    CHECK_STATUS(blipc_index_open(&p, &ix, errbuf, sizeof errbuf), BLIPC_ERR_STORE, errbuf);
    CHECK_CONTAINS(errbuf, path);
    CHECK_CONTAINS(errbuf, "format version 99");
    p.read_only = 1;
    CHECK_STATUS(blipc_index_open(&p, &ix, errbuf, sizeof errbuf), BLIPC_ERR_STORE, errbuf);
}

/* ------------------------------------------------- vector sidecar, format 2 */

/* Top-k of the store vs brute-force cosine over vecs[0..n) (ids[i] for row i). */
static void check_knn(blipc_index *ix, const float *vecs, char (*ids)[65], int n, int dim, const float *q, int k,
                      const char *what) {
    blipc_index_query qq;
    blipc_index_default_query(&qq);
    qq.vector = q;
    qq.dim = dim;
    qq.k = (size_t)k;
    blipc_status st = blipc_index_search(ix, &qq);
    CHECKF(st == BLIPC_OK, "%s: search: %s", what, blipc_index_errmsg(ix));
    if (st) return;
    CHECKF((int)blipc_index_hit_count(ix) == (k < n ? k : n), "%s: %zu hits", what, blipc_index_hit_count(ix));
    char *used = calloc((size_t)n, 1);
    for (int r = 0; r < (int)blipc_index_hit_count(ix); r++) {
        int best = -1;
        double bc = 0;
        for (int i = 0; i < n; i++) {
            if (used[i]) continue;
            double c = dot_cos(vecs + (size_t)i * dim, q, dim);
            if (best < 0 || c > bc) best = i, bc = c;
        }
        used[best] = 1;
        CHECKF(!strcmp(blipc_index_hit_id(ix, (size_t)r), ids[best]), "%s: rank %d: %s, want %s", what, r + 1,
               blipc_index_hit_id(ix, (size_t)r), ids[best]);
        CHECKF(fabs(blipc_index_hit_score(ix, (size_t)r) - (1 + bc) / 2) < 1e-5, "%s: rank %d score %f want %f", what,
               r + 1, blipc_index_hit_score(ix, (size_t)r), (1 + bc) / 2);
    }
    free(used);
}

static blipc_index *open_ro(const char *path) {
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.store_path = path;
    p.read_only = 1;
    blipc_index *ix = NULL;
    blipc_status st = blipc_index_open(&p, &ix, errbuf, sizeof errbuf);
    CHECK_STATUS(st, BLIPC_OK, errbuf);
    return ix;
}

/* meta value through a separate SQLite connection ("" when absent) */
static void meta_value(const char *path, const char *key, char *out, size_t cap) {
    sqlite3 *db;
    sqlite3_stmt *st;
    out[0] = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return;
    }
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* n docs with vectors vecs[first..first+n) (ids/paths from their number) in one put */
static void put_vecs(blipc_index *ix, const float *vecs, char (*ids)[65], int first, int n, int dim) {
    blipc_index_doc *d = calloc((size_t)n, sizeof *d);
    char (*paths)[32] = malloc(32 * (size_t)n);
    for (int i = 0; i < n; i++) {
        int k = first + i;
        make_id(ids[k], (unsigned)k + 500);
        snprintf(paths[i], 32, "/s/%05d.jpg", k);
        blipc_index_doc_init(&d[i]);
        d[i].id = ids[k];
        d[i].path = paths[i];
        d[i].caption = k % 2 ? "a cat on a sofa" : "a dog in the park";
        d[i].vector = vecs + (size_t)k * dim;
        d[i].dim = dim;
    }
    CHECK_STATUS(blipc_index_put(ix, d, (size_t)n), BLIPC_OK, blipc_index_errmsg(ix));
    free(paths);
    free(d);
}

/* The sidecar FILE-vec: written by writers (close / flush), mapped by readers
 * only while its stamp matches meta.vec_stamp and its size is right; a stale,
 * damaged or foreign one is ignored (vectors loaded from SQLite) and never
 * written by a read-only handle. */
TEST(vector_sidecar_is_used_only_while_current) {
    enum { N = 4300, DIM = 16, K = 12 };   /* N > one 4096-row scan block */
    const char *path = th_tmp_path("side.sqlite");
    char side[4200], saved[4200], other_side[4200];
    snprintf(side, sizeof side, "%s-vec", path);
    snprintf(saved, sizeof saved, "%s", th_tmp_path("side-saved.bin"));
    float *vecs = malloc(sizeof(float) * (N + 1) * DIM);
    char (*ids)[65] = malloc(65 * (N + 1));
    for (int i = 0; i <= N; i++) {
        rand_unit(vecs + (size_t)i * DIM, DIM);
        if (i % 5 == 0)
            for (int j = 0; j < DIM; j++) vecs[(size_t)i * DIM + j] *= 2.5f;   /* not unit length */
    }
    float q[DIM];
    rand_unit(q, DIM);

    blipc_index *w = open_store(path, DIM);
    if (!w) return;
    for (int b = 0; b < N; b += 1000) put_vecs(w, vecs, ids, b, N - b < 1000 ? N - b : 1000, DIM);
    CHECK(!file_exists(side));                 /* not before a flush / close */
    blipc_index_close(w);                      /* close after writes: writes it */
    CHECK(file_exists(side));
    char stamp[64];
    meta_value(path, "vec_stamp", stamp, sizeof stamp);
    CHECKF(strlen(stamp) == 16, "vec_stamp '%s'", stamp);
    size_t sz = 0;
    unsigned char *bytes = (unsigned char *)th_read_file(side, &sz);
    CHECK(bytes && sz > 4096 + (size_t)N * DIM * 4);
    if (!bytes) return;
    CHECK(!memcmp(bytes, "BLIPCVEC", 8));
    CHECK(strstr((char *)bytes + 32, stamp) == (char *)bytes + 32);

    /* a reader uses it: exact results */
    blipc_index *r = open_ro(path);
    if (!r) return;
    check_knn(r, vecs, ids, N, DIM, q, K, "sidecar");
    blipc_index_close(r);

    /* proof that the mapping is what is scanned: plant q as row 7's vector in
     * the file (header untouched) -> a fresh reader ranks doc 7 first */
    memcpy(bytes + 4096 + (size_t)7 * DIM * 4, q, sizeof q);
    CHECK(th_write_file(side, bytes, sz) == 0);
    CHECK(th_copy_file(side, saved) == 0);     /* tampered, stamp of this state */
    r = open_ro(path);
    if (!r) return;
    blipc_index_query qq;
    blipc_index_default_query(&qq);
    qq.vector = q;
    qq.dim = DIM;
    qq.k = 1;
    CHECK_STATUS(blipc_index_search(r, &qq), BLIPC_OK, blipc_index_errmsg(r));
    CHECK(blipc_index_hit_count(r) == 1 && !strcmp(blipc_index_hit_id(r, 0), ids[7]));

    /* a writer changes the vectors while r holds the mapping: r follows (new
     * stamp -> the rewritten sidecar), and the old tampered file is gone */
    w = open_store(path, DIM);
    if (!w) return;
    put_vecs(w, vecs, ids, N, 1, DIM);
    CHECK_STATUS(blipc_index_flush(w), BLIPC_OK, blipc_index_errmsg(w));
    char stamp2[64];
    meta_value(path, "vec_stamp", stamp2, sizeof stamp2);
    CHECK(strlen(stamp2) == 16 && strcmp(stamp, stamp2) != 0);
    check_knn(r, vecs, ids, N + 1, DIM, q, K, "reader after a write");
    blipc_index_close(r);

    /* stale: the old file (previous stamp) put back -> ignored */
    CHECK(th_copy_file(saved, side) == 0);
    r = open_ro(path);
    if (!r) return;
    check_knn(r, vecs, ids, N + 1, DIM, q, K, "stale sidecar");
    blipc_index_close(r);
    CHECK(file_exists(side));                  /* a read-only handle leaves it alone */

    /* a writer's flush replaces the stale file even without writes of its own */
    CHECK_STATUS(blipc_index_flush(w), BLIPC_OK, blipc_index_errmsg(w));
    free(bytes);
    bytes = (unsigned char *)th_read_file(side, &sz);
    CHECK(bytes && strstr((char *)bytes + 32, stamp2) == (char *)bytes + 32);

    /* damaged: one byte short -> ignored */
    CHECK(bytes && th_write_file(side, bytes, sz - 1) == 0);
    r = open_ro(path);
    if (!r) return;
    check_knn(r, vecs, ids, N + 1, DIM, q, K, "truncated sidecar");
    blipc_index_close(r);

    /* missing: a read-only handle loads from SQLite and creates nothing */
    unlink(side);
    r = open_ro(path);
    if (!r) return;
    check_knn(r, vecs, ids, N + 1, DIM, q, K, "no sidecar");
    blipc_index_close(r);
    CHECK(!file_exists(side));
    /* not a regular file (a FIFO: opening it must not block) -> ignored */
    CHECK(mkfifo(side, 0600) == 0);
    r = open_ro(path);
    if (!r) return;
    check_knn(r, vecs, ids, N + 1, DIM, q, K, "FIFO sidecar");
    blipc_index_close(r);
    unlink(side);

    /* set_path keeps the vectors (and the stamp); delete changes both */
    CHECK_STATUS(blipc_index_set_path(w, ids[3], "/moved/3.jpg", 1), BLIPC_OK, blipc_index_errmsg(w));
    meta_value(path, "vec_stamp", stamp, sizeof stamp);
    CHECK(!strcmp(stamp, stamp2));
    CHECK_STATUS(blipc_index_delete(w, ids[N]), BLIPC_OK, blipc_index_errmsg(w));
    meta_value(path, "vec_stamp", stamp, sizeof stamp);
    CHECK(strlen(stamp) == 16 && strcmp(stamp, stamp2) != 0);
    blipc_index_close(w);
    CHECK(file_exists(side));
    r = open_ro(path);
    if (!r) return;
    check_knn(r, vecs, ids, N, DIM, q, K, "after delete");
    blipc_index_close(r);

    /* another store's sidecar (same dim) next to this one -> ignored */
    const char *path2 = th_tmp_path("side2.sqlite");
    w = open_store(path2, DIM);
    if (!w) return;
    put_vecs(w, vecs, ids, 0, 50, DIM);
    blipc_index_close(w);
    snprintf(other_side, sizeof other_side, "%s-vec", path2);
    CHECK(th_copy_file(other_side, side) == 0);
    r = open_ro(path);
    if (!r) return;
    for (int i = 0; i < 50; i++) make_id(ids[i], (unsigned)i + 500);
    check_knn(r, vecs, ids, N, DIM, q, K, "foreign sidecar");
    blipc_index_close(r);
    free(bytes);
    free(vecs);
    free(ids);
}

/* The format-1 schema and meta exactly as the previous code created them. */
static const char *const FORMAT1_SQL =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE docs(rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,"
    " caption TEXT NOT NULL, width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0,"
    " mtime INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0, caption_model TEXT, embed_model TEXT,"
    " vector BLOB, indexed_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX docs_path ON docs(path);"
    "CREATE TABLE answers(doc INTEGER NOT NULL, field TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,"
    " ord INTEGER NOT NULL, PRIMARY KEY(doc, field));"
    "CREATE INDEX answers_field ON answers(field, answer);"
    "CREATE VIRTUAL TABLE docs_fts USING fts5(caption, answers, tokenize = 'unicode61');"
    "INSERT INTO meta VALUES('application', 'blipc-index'), ('format_version', '1'), ('generation', '3'),"
    " ('created', '1700000000'), ('dim', '8');"
    "PRAGMA journal_mode = WAL;";

/* A store written by the format-1 code opens read-only as it is (vectors from
 * SQLite, nothing written), and a writable open migrates it to format 2
 * (meta.vec_stamp) keeping every document, answer and ranking. */
TEST(format1_store_is_migrated) {
    enum { N = 40, DIM = 8 };
    const char *path = th_tmp_path("fmt1.sqlite");
    char side[4200], buf[64];
    snprintf(side, sizeof side, "%s-vec", path);
    float vecs[(N + 1) * DIM];
    char ids[N + 1][65];
    for (int i = 0; i <= N; i++) rand_unit(vecs + i * DIM, DIM);
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, FORMAT1_SQL, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_stmt *d, *f, *a;
    CHECK(sqlite3_prepare_v2(db, "INSERT INTO docs(id, path, caption, width, vector) VALUES(?1, ?2, ?3, 4, ?4)", -1,
                             &d, NULL) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "INSERT INTO docs_fts(rowid, caption, answers) VALUES(?1, ?2, ?3)", -1, &f, NULL) ==
          SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "INSERT INTO answers VALUES(?1, 'answer_what_is_it', 'What is it?', ?2, 0)", -1, &a,
                             NULL) == SQLITE_OK);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (int i = 0; i < N; i++) {
        char p[32], cap[32];
        make_id(ids[i], (unsigned)i + 900);
        snprintf(p, sizeof p, "/old/%d.png", i);
        snprintf(cap, sizeof cap, i == 5 ? "a zebra" : "a horse %d", i);
        sqlite3_reset(d);
        sqlite3_bind_text(d, 1, ids[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(d, 2, p, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(d, 3, cap, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(d, 4, vecs + i * DIM, DIM * 4, SQLITE_STATIC);
        CHECK(sqlite3_step(d) == SQLITE_DONE);
        sqlite3_int64 rowid = sqlite3_last_insert_rowid(db);
        sqlite3_reset(f);
        sqlite3_bind_int64(f, 1, rowid);
        sqlite3_bind_text(f, 2, cap, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(f, 3, "an animal\n", -1, SQLITE_STATIC);
        CHECK(sqlite3_step(f) == SQLITE_DONE);
        sqlite3_reset(a);
        sqlite3_bind_int64(a, 1, rowid);
        sqlite3_bind_text(a, 2, "an animal", -1, SQLITE_STATIC);
        CHECK(sqlite3_step(a) == SQLITE_DONE);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(d);
    sqlite3_finalize(f);
    sqlite3_finalize(a);
    sqlite3_close(db);
    float q[DIM];
    rand_unit(q, DIM);

    /* read-only: searched as it is, still format 1, no sidecar */
    blipc_index *r = open_ro(path);
    if (!r) return;
    CHECK_EQ_INT(blipc_index_dim(r), DIM);
    check_knn(r, vecs, ids, N, DIM, q, 10, "format 1, read-only");
    blipc_index_close(r);
    meta_value(path, "format_version", buf, sizeof buf);
    CHECK(!strcmp(buf, "1"));
    CHECK(!file_exists(side));

    /* writable: migrated */
    blipc_index *w = open_store(path, DIM);
    if (!w) return;
    meta_value(path, "format_version", buf, sizeof buf);
    CHECKF(!strcmp(buf, "2"), "format_version '%s'", buf);
    meta_value(path, "vec_stamp", buf, sizeof buf);
    CHECKF(strlen(buf) == 16, "vec_stamp '%s'", buf);
    check_knn(w, vecs, ids, N, DIM, q, 10, "migrated");
    const blipc_index_doc *g = NULL;
    CHECK_STATUS(blipc_index_get(w, ids[5], &g), BLIPC_OK, blipc_index_errmsg(w));
    CHECK(g && g->n_answers == 1 && !strcmp(g->answers[0], "an animal") && !strcmp(g->caption, "a zebra") &&
          g->width == 4 && g->dim == DIM);
    blipc_index_query tq;
    blipc_index_default_query(&tq);
    tq.text = "zebra";
    CHECK_STATUS(blipc_index_search(w, &tq), BLIPC_OK, blipc_index_errmsg(w));
    CHECK(blipc_index_hit_count(w) == 1 && !strcmp(blipc_index_hit_id(w, 0), ids[5]));
    /* and keeps working: a new document, then the sidecar at close */
    memcpy(vecs + N * DIM, q, sizeof q);
    make_id(ids[N], 4242);
    blipc_index_doc nd;
    blipc_index_doc_init(&nd);
    nd.id = ids[N];
    nd.path = "/new/q.png";
    nd.caption = "new";
    nd.vector = q;
    nd.dim = DIM;
    CHECK_STATUS(blipc_index_put(w, &nd, 1), BLIPC_OK, blipc_index_errmsg(w));
    blipc_index_close(w);
    CHECK(file_exists(side));
    r = open_ro(path);
    if (!r) return;
    check_knn(r, vecs, ids, N + 1, DIM, q, 10, "migrated + 1 (sidecar)");
    CHECK(!strcmp(blipc_index_hit_id(r, 0), ids[N]));
    blipc_index_close(r);
    /* a second writable open does not migrate again */
    meta_value(path, "vec_stamp", buf, sizeof buf);
    w = open_store(path, DIM);
    char buf2[64];
    meta_value(path, "vec_stamp", buf2, sizeof buf2);
    CHECK(!strcmp(buf, buf2));
    blipc_index_close(w);
}

/* A reader on its own handle, while a writer commits batches: it always sees
 * whole batches, never an error. */
typedef struct writer_arg {
    const char *path;
    int batches, batch;
    int failures;
} writer_arg;

static void *writer_thread(void *arg) {
    writer_arg *w = arg;
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.store_path = w->path;
    blipc_index *ix;
    if (blipc_index_open(&p, &ix, NULL, 0) != BLIPC_OK) {
        w->failures++;
        return NULL;
    }
    float v[16][8];
    char ids[16][65], paths[16][32];
    blipc_index_doc d[16];
    for (int b = 0; b < w->batches; b++) {
        for (int i = 0; i < w->batch; i++) {
            int k = b * w->batch + i;
            for (int j = 0; j < 8; j++) v[i][j] = (float)((k * 7 + j * 3) % 11) - 5.0f;
            v[i][0] += 0.5f;
            make_id(ids[i], (unsigned)k + 10000);
            snprintf(paths[i], 32, "/w/%d.jpg", k);
            blipc_index_doc_init(&d[i]);
            d[i].id = ids[i];
            d[i].path = paths[i];
            d[i].caption = "a dog";
            d[i].vector = v[i];
            d[i].dim = 8;
        }
        if (blipc_index_put(ix, d, (size_t)w->batch) != BLIPC_OK) w->failures++;
    }
    blipc_index_close(ix);
    return NULL;
}

TEST(wal_reader_while_writing) {
    const char *path = th_tmp_path("wal.sqlite");
    blipc_index *r = open_store(path, 8);   /* creates the store */
    if (!r) return;
    writer_arg w = {path, 60, 10, 0};
    pthread_t th;
    pthread_create(&th, NULL, writer_thread, &w);
    uint64_t last = 0;
    int reads = 0, errors = 0, torn = 0;
    float q[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    for (;;) {
        uint64_t n = 0;
        if (blipc_index_count(r, &n) != BLIPC_OK) errors++;
        if (n % 10) torn++;
        if (n < last) torn++;
        last = n;
        blipc_index_query qq;
        blipc_index_default_query(&qq);
        qq.vector = q;
        qq.dim = 8;
        qq.text = "dog";
        qq.hybrid = reads & 1;
        qq.k = 1000;
        if (blipc_index_search(r, &qq) != BLIPC_OK) {
            errors++;
            fprintf(stderr, "  reader: %s\n", blipc_index_errmsg(r));
        } else if (blipc_index_hit_count(r) % 10) {
            torn++;
        }
        reads++;
        if (n == 600) break;
        if (reads > 100000) break;
    }
    pthread_join(th, NULL);
    CHECK_EQ_INT(w.failures, 0);
    CHECK_EQ_INT(errors, 0);
    CHECK_EQ_INT(torn, 0);
    CHECK_EQ_INT(last, 600);
    CHECK(reads > 1);
    blipc_index_close(r);
}

/* A writer process killed at a random point while putting batches: after
 * reopening, every batch it saw committed is there, and no partial batch. */
TEST(crash_mid_batch_loses_nothing_committed) {
    const char *path = th_tmp_path("crash.sqlite");
    blipc_index *ix0 = open_store(path, 8);
    if (!ix0) return;
    blipc_index_close(ix0);
    int fds[2];
    CHECK(pipe(fds) == 0);
    enum { B = 25 };
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        blipc_index_params p;
        blipc_index_default_params(&p);
        p.store_path = path;
        blipc_index *ix;
        if (blipc_index_open(&p, &ix, NULL, 0) != BLIPC_OK) _exit(3);
        float v[B][8];
        char ids[B][65], paths[B][32];
        blipc_index_doc d[B];
        for (int b = 0; b < 100000; b++) {
            for (int i = 0; i < B; i++) {
                int k = b * B + i;
                for (int j = 0; j < 8; j++) v[i][j] = (float)(k % 13 + j);
                make_id(ids[i], (unsigned)k + 50000);
                snprintf(paths[i], 32, "/c/%d.jpg", k);
                blipc_index_doc_init(&d[i]);
                d[i].id = ids[i];
                d[i].path = paths[i];
                d[i].caption = "crash test";
                d[i].vector = v[i];
                d[i].dim = 8;
            }
            if (blipc_index_put(ix, d, B) != BLIPC_OK) _exit(4);
            int bb = b;
            if (write(fds[1], &bb, sizeof bb) != sizeof bb) _exit(5);
        }
        _exit(0);
    }
    close(fds[1]);
    int acked = -1, x;
    for (int i = 0; i < 6; i++) {
        if (read(fds[0], &x, sizeof x) != sizeof x) break;
        acked = x;
    }
    usleep(3000 + (useconds_t)((unsigned)getpid() % 7) * 1000);   /* land mid-transaction, somewhere */
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    /* drain acknowledgements the child sent before dying */
    while (read(fds[0], &x, sizeof x) == sizeof x) acked = x;
    close(fds[0]);
    CHECK(acked >= 5);

    blipc_index *ix = open_store(path, 8);
    if (!ix) return;
    uint64_t n = 0;
    CHECK_STATUS(blipc_index_count(ix, &n), BLIPC_OK, blipc_index_errmsg(ix));
    CHECKF(n % B == 0, "%llu documents: a partial batch survived", (unsigned long long)n);
    CHECKF(n >= (uint64_t)(acked + 1) * B, "%llu documents, %d batches acknowledged", (unsigned long long)n, acked + 1);
    for (int k = 0; k < (acked + 1) * B; k += 7) {
        char id[65];
        make_id(id, (unsigned)k + 50000);
        int found = 0;
        blipc_index_has(ix, id, &found, NULL, 0);
        CHECKF(found, "acknowledged document %d missing", k);
    }
    /* and the store still works */
    float q[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    blipc_index_query qq;
    blipc_index_default_query(&qq);
    qq.vector = q;
    qq.dim = 8;
    CHECK_STATUS(blipc_index_search(ix, &qq), BLIPC_OK, blipc_index_errmsg(ix));
    CHECK_EQ_INT(blipc_index_hit_count(ix), 10);
    blipc_index_close(ix);
}

TEST(opensearch_without_url_is_an_error) {
    blipc_index_params p;
    blipc_index_default_params(&p);
    p.backend = BLIPC_INDEX_OPENSEARCH;
    blipc_index *ix = NULL;
    CHECK_STATUS(blipc_index_open(&p, &ix, errbuf, sizeof errbuf), BLIPC_ERR_INVALID_ARG, errbuf);
    CHECK_CONTAINS(errbuf, "URL");
}

/* ------------------------------------------------------------- discovery */

TEST(sha256_of_file_matches_the_fips_vector) {
    const char *f = th_tmp_path("abc.txt");
    th_write_file(f, "abc", 3);
    char hex[65];
    CHECK_STATUS(blipc_index_file_sha256(f, hex, errbuf, sizeof errbuf), BLIPC_OK, errbuf);
    /* FIPS 180-2 test vector for "abc" */
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK_STATUS(blipc_index_file_sha256(th_tmp_path("nope"), hex, errbuf, sizeof errbuf), BLIPC_ERR_IO, errbuf);
    CHECK_CONTAINS(errbuf, "nope");
}

TEST(scan_finds_images_and_reports_the_rest) {
    const char *png = th_fixture("images/chelsea.png");
    const char *jpg = th_fixture("images/hopper.jpg");
    const char *gif = th_fixture("more-images/palette.gif");
    const char *bmp = th_fixture("more-images/bmp_24.bmp");
    th_require_file(png);
    th_require_file(jpg);
    th_require_file(gif);
    th_require_file(bmp);
    char dir[1024], sub[1100], hid[1100];
    snprintf(dir, sizeof dir, "%s/scan", th_tmpdir());
    snprintf(sub, sizeof sub, "%s/b-sub", dir);
    snprintf(hid, sizeof hid, "%s/.hidden", dir);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    mkdir(hid, 0755);
    char p[1300];
    snprintf(p, sizeof p, "%s/c.png", dir);
    CHECK(th_copy_file(png, p) == 0);
    snprintf(p, sizeof p, "%s/a.JPG", dir);
    CHECK(th_copy_file(jpg, p) == 0);
    snprintf(p, sizeof p, "%s/noext", sub);   /* an image without extension: found by magic */
    CHECK(th_copy_file(gif, p) == 0);
    snprintf(p, sizeof p, "%s/x.bmp", sub);
    CHECK(th_copy_file(bmp, p) == 0);
    snprintf(p, sizeof p, "%s/in-hidden.png", hid);
    CHECK(th_copy_file(png, p) == 0);
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    th_write_file(p, "hello", 5);
    snprintf(p, sizeof p, "%s/fake.jpg", dir);
    th_write_file(p, "not really a jpeg", 17);
    snprintf(p, sizeof p, "%s/empty.png", dir);
    th_write_file(p, "", 0);
    int can_deny = geteuid() != 0;
    snprintf(p, sizeof p, "%s/locked.png", dir);
    th_copy_file(png, p);
    chmod(p, 0);

    char missing[1100];
    snprintf(missing, sizeof missing, "%s/does-not-exist", th_tmpdir());
    char cpng[1100];
    snprintf(cpng, sizeof cpng, "%s/c.png", dir);
    const char *paths[] = {dir, missing, cpng};   /* c.png twice: listed once */
    blipc_index_scan *s = NULL;
    CHECK_STATUS(blipc_index_scan_paths(paths, 3, &s, errbuf, sizeof errbuf), BLIPC_OK, errbuf);
    if (!s) return;
    size_t n = blipc_index_scan_count(s);
    int images = 0, not_images = 0, unreadable = 0, miss = 0;
    for (size_t i = 0; i < n; i++) {
        const char *path = blipc_index_scan_path(s, i);
        CHECK(path[0] == '/');
        CHECK(!strstr(path, ".hidden"));
        switch (blipc_index_scan_kind(s, i)) {
        case BLIPC_SCAN_IMAGE:
            images++;
            CHECK(blipc_index_scan_size(s, i) > 0 && blipc_index_scan_mtime(s, i) > 0);
            break;
        case BLIPC_SCAN_NOT_IMAGE: not_images++; CHECK(blipc_index_scan_reason(s, i)[0]); break;
        case BLIPC_SCAN_UNREADABLE: unreadable++; CHECK(blipc_index_scan_reason(s, i)[0]); break;
        case BLIPC_SCAN_MISSING: miss++; CHECK(strstr(path, "does-not-exist") != NULL); break;
        }
        if (strstr(path, "noext")) CHECK(!strcmp(blipc_index_scan_format(s, i), "gif"));
        if (strstr(path, "a.JPG")) CHECK(!strcmp(blipc_index_scan_format(s, i), "jpeg"));
        if (strstr(path, "fake.jpg")) CHECK_CONTAINS(blipc_index_scan_reason(s, i), "image extension");
        if (strstr(path, "empty.png")) CHECK_CONTAINS(blipc_index_scan_reason(s, i), "empty");
    }
    CHECK_EQ_INT(n, 9);
    CHECK_EQ_INT(images, can_deny ? 4 : 5);
    CHECK_EQ_INT(not_images, 3);
    CHECK_EQ_INT(unreadable, can_deny ? 1 : 0);
    CHECK_EQ_INT(miss, 1);
    /* sorted within a directory: a.JPG before b-sub/... before c.png */
    CHECK(strstr(blipc_index_scan_path(s, 0), "/a.JPG") != NULL);
    CHECK(strstr(blipc_index_scan_path(s, 1), "/b-sub/noext") != NULL);
    blipc_index_scan_free(s);
    chmod(p, 0644);

    /* an empty folder: an empty list, no error */
    char empty[1100];
    snprintf(empty, sizeof empty, "%s/emptydir", th_tmpdir());
    mkdir(empty, 0755);
    const char *ep[] = {empty};
    CHECK_STATUS(blipc_index_scan_paths(ep, 1, &s, errbuf, sizeof errbuf), BLIPC_OK, errbuf);
    CHECK_EQ_INT(blipc_index_scan_count(s), 0);
    blipc_index_scan_free(s);
    blipc_index_scan_free(NULL);
}

int main(void) {
    RUN(answer_field_names_are_slugs);
    RUN(default_store_path_follows_xdg);
    RUN(put_get_has_count_roundtrip);
    RUN(put_replaces_and_moves);
    RUN(put_rejects_bad_documents_whole_call);
    RUN(knn_is_exact_vs_brute_force);
    RUN(hybrid_score_is_minmax_weighted_mean);
    RUN(filters_on_stored_fields);
    RUN(search_rejects_bad_queries);
    RUN(not_a_store_is_a_clear_error);
    RUN(newer_format_version_is_refused);
    RUN(vector_sidecar_is_used_only_while_current);
    RUN(format1_store_is_migrated);
    RUN(wal_reader_while_writing);
    RUN(crash_mid_batch_loses_nothing_committed);
    RUN(opensearch_without_url_is_an_error);
    RUN(sha256_of_file_matches_the_fips_vector);
    RUN(scan_finds_images_and_reports_the_rest);
    return th_finish();
}
