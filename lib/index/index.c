/* index.c — the public front of libblipc-index: parameter defaults, argument
 * checks, per-document put results, search hits, and dispatch to a backend
 * (backend.h). */
#include "backend.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The OpenSearch backend lives in opensearch*.c; referenced weakly so the
 * library builds (and answers BLIPC_ERR_UNSUPPORTED) without it. */
#pragma weak blipc__opensearch_open
#pragma weak blipc__opensearch_register_model

typedef struct got_doc {
    blipc_index_doc d;
    char *id, *path, *caption, *caption_model, *embed_model;
    char **questions, **answers;
    float *vector;
} got_doc;

struct blipc_index {
    blipc__index_ctx ctx;
    blipc_index_backend_kind kind;
    const blipc__index_backend_ops *ops;
    void *state;
    got_doc got;
};

/* ------------------------------------------------------------- utilities */

char *blipc__strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *r = malloc(n);
    if (r) memcpy(r, s, n);
    return r;
}

int blipc__is_sha256_hex(const char *s) {
    if (!s) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[64] == 0;
}

void blipc_index_default_params(blipc_index_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->backend = BLIPC_INDEX_STORE;
    p->busy_timeout_ms = 10000;
    p->index_name = "blipc-images";
    p->space_type = "cosinesimil";
    p->search_pipeline = "blipc-hybrid";
    p->bulk_max_docs = 500;
    p->bulk_max_bytes = (size_t)5 << 20;
    p->gzip = 1;
    p->max_retries = 8;
    p->retry_base_ms = 100;
    p->retry_max_ms = 10000;
    p->timeout_ms = 60000;
}

void blipc_index_doc_init(blipc_index_doc *d) {
    if (d) memset(d, 0, sizeof *d);
}

void blipc_index_default_query(blipc_index_query *q) {
    if (!q) return;
    memset(q, 0, sizeof *q);
    q->k = 10;
    q->text_weight = 0.3f;
    q->vector_weight = 0.7f;
}

blipc_status blipc_index_default_store_path(char *buf, size_t cap) {
    if (!buf || cap == 0) return BLIPC_ERR_INVALID_ARG;
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, cap, "%s/blipc/index.sqlite", xdg);
    else if (home && home[0])
        n = snprintf(buf, cap, "%s/.local/share/blipc/index.sqlite", home);
    else {
        buf[0] = 0;
        return BLIPC_ERR_IO;
    }
    if (n < 0 || (size_t)n >= cap) return BLIPC_ERR_BUFFER_TOO_SMALL;
    return BLIPC_OK;
}

blipc_status blipc_index_answer_field(const char *question, char *buf, size_t cap) {
    if (!question || !buf) return BLIPC_ERR_INVALID_ARG;
    char tmp[80];
    size_t n = 0;
    memcpy(tmp, "answer_", 7);
    n = 7;
    int pending_sep = 0;
    for (const unsigned char *s = (const unsigned char *)question; *s && n < 7 + 64; s++) {
        int c = *s;
        if (c < 128 && isalnum(c)) {
            if (pending_sep && n > 7) {
                if (n + 1 >= 7 + 64) break;
                tmp[n++] = '_';
            }
            pending_sep = 0;
            tmp[n++] = (char)tolower(c);
        } else {
            pending_sep = 1;
        }
    }
    if (n == 7) {
        memcpy(tmp + n, "q", 1);   /* a question without letters/digits */
        n++;
    }
    tmp[n] = 0;
    if (n + 1 > cap) return BLIPC_ERR_BUFFER_TOO_SMALL;
    memcpy(buf, tmp, n + 1);
    return BLIPC_OK;
}

/* ------------------------------------------------------- results, hits */

static void free_results(blipc__index_ctx *c) {
    for (size_t i = 0; i < c->n_results; i++) free(c->res_msg[i]);
    c->n_results = 0;
}

static blipc_status reset_results(blipc__index_ctx *c, size_t n) {
    free_results(c);
    if (n > c->cap_results) {
        blipc_status *st = realloc(c->res_status, n * sizeof *st);
        if (!st) return blipc__errf(&c->err, BLIPC_ERR_NOMEM, "index: out of memory for %zu put results", n);
        c->res_status = st;
        char **m = realloc(c->res_msg, n * sizeof *m);
        if (!m) return blipc__errf(&c->err, BLIPC_ERR_NOMEM, "index: out of memory for %zu put results", n);
        c->res_msg = m;
        c->cap_results = n;
    }
    for (size_t i = 0; i < n; i++) {
        c->res_status[i] = BLIPC_ERR_INTERNAL;
        c->res_msg[i] = NULL;
    }
    c->n_results = n;
    return BLIPC_OK;
}

void blipc__index_set_result(blipc__index_ctx *c, size_t i, blipc_status st, const char *msg) {
    if (!c || i >= c->n_results) return;
    c->res_status[i] = st;
    free(c->res_msg[i]);
    c->res_msg[i] = (msg && msg[0]) ? blipc__strdup(msg) : NULL;
}

static void clear_hits(blipc__index_ctx *c) {
    for (size_t i = 0; i < c->n_hits; i++) {
        free(c->hits[i].id);
        free(c->hits[i].path);
        free(c->hits[i].caption);
    }
    c->n_hits = 0;
}

blipc_status blipc__index_add_hit(blipc__index_ctx *c, double score, double text_score, double vector_score,
                                  const char *id, const char *path, const char *caption) {
    if (c->n_hits == c->cap_hits) {
        size_t nc = c->cap_hits ? c->cap_hits * 2 : 16;
        struct blipc__index_hit *h = realloc(c->hits, nc * sizeof *h);
        if (!h) return blipc__errf(&c->err, BLIPC_ERR_NOMEM, "index: out of memory for search hits");
        c->hits = h;
        c->cap_hits = nc;
    }
    struct blipc__index_hit *h = &c->hits[c->n_hits];
    h->score = score;
    h->text_score = text_score;
    h->vector_score = vector_score;
    h->id = blipc__strdup(id ? id : "");
    h->path = blipc__strdup(path ? path : "");
    h->caption = blipc__strdup(caption ? caption : "");
    if (!h->id || !h->path || !h->caption) {
        free(h->id);
        free(h->path);
        free(h->caption);
        return blipc__errf(&c->err, BLIPC_ERR_NOMEM, "index: out of memory for search hits");
    }
    c->n_hits++;
    return BLIPC_OK;
}

void blipc__hybrid_combine(size_t n, const double *t, const double *v, double wt, double wv, double *out) {
    double tmin = INFINITY, tmax = -INFINITY, vmin = INFINITY, vmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(t[i])) {
            if (t[i] < tmin) tmin = t[i];
            if (t[i] > tmax) tmax = t[i];
        }
        if (!isnan(v[i])) {
            if (v[i] < vmin) vmin = v[i];
            if (v[i] > vmax) vmax = v[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        double tn = 0, vn = 0;
        if (!isnan(t[i])) tn = tmax > tmin ? (t[i] - tmin) / (tmax - tmin) : 1.0;
        if (!isnan(v[i])) vn = vmax > vmin ? (v[i] - vmin) / (vmax - vmin) : 1.0;
        out[i] = wt * tn + wv * vn;
    }
}

/* ------------------------------------------------------------- get doc */

static void got_free(got_doc *g) {
    free(g->id);
    free(g->path);
    free(g->caption);
    free(g->caption_model);
    free(g->embed_model);
    for (size_t i = 0; i < g->d.n_answers; i++) {
        if (g->questions) free(g->questions[i]);
        if (g->answers) free(g->answers[i]);
    }
    free(g->questions);
    free(g->answers);
    free(g->vector);
    memset(g, 0, sizeof *g);
}

blipc_status blipc__index_set_got(blipc__index_ctx *c, const blipc_index_doc *d) {
    got_doc *g = c->got;
    got_free(g);
    g->d = *d;
    g->id = blipc__strdup(d->id);
    g->path = blipc__strdup(d->path);
    g->caption = blipc__strdup(d->caption);
    g->caption_model = blipc__strdup(d->caption_model);
    g->embed_model = blipc__strdup(d->embed_model);
    int bad = (d->id && !g->id) || (d->path && !g->path) || (d->caption && !g->caption) ||
              (d->caption_model && !g->caption_model) || (d->embed_model && !g->embed_model);
    if (d->n_answers) {
        g->questions = calloc(d->n_answers, sizeof(char *));
        g->answers = calloc(d->n_answers, sizeof(char *));
        if (!g->questions || !g->answers) bad = 1;
        for (size_t i = 0; !bad && i < d->n_answers; i++) {
            g->questions[i] = blipc__strdup(d->questions[i] ? d->questions[i] : "");
            g->answers[i] = blipc__strdup(d->answers[i] ? d->answers[i] : "");
            if (!g->questions[i] || !g->answers[i]) bad = 1;
        }
    }
    if (d->vector && d->dim > 0) {
        g->vector = malloc((size_t)d->dim * sizeof(float));
        if (!g->vector) bad = 1;
        else memcpy(g->vector, d->vector, (size_t)d->dim * sizeof(float));
    }
    if (bad) {
        got_free(g);
        return blipc__errf(&c->err, BLIPC_ERR_NOMEM, "index: out of memory copying document %s",
                           d->id ? d->id : "?");
    }
    g->d.id = g->id;
    g->d.path = g->path;
    g->d.caption = g->caption;
    g->d.caption_model = g->caption_model;
    g->d.embed_model = g->embed_model;
    g->d.questions = (const char *const *)g->questions;
    g->d.answers = (const char *const *)g->answers;
    g->d.vector = g->vector;
    return BLIPC_OK;
}

/* ------------------------------------------------------------ open/close */

blipc_status blipc_index_open(const blipc_index_params *pin, blipc_index **out, char *errbuf,
                              size_t errbuf_size) {
    if (errbuf && errbuf_size) errbuf[0] = 0;
    if (!out) {
        if (errbuf) snprintf(errbuf, errbuf_size, "blipc_index_open: out is NULL");
        return BLIPC_ERR_INVALID_ARG;
    }
    *out = NULL;
    blipc_index_params p;
    if (pin) p = *pin;
    else blipc_index_default_params(&p);
    /* fill unset fields with defaults */
    blipc_index_params def;
    blipc_index_default_params(&def);
    if (!p.index_name || !p.index_name[0]) p.index_name = def.index_name;
    if (!p.space_type || !p.space_type[0]) p.space_type = def.space_type;
    if (!p.search_pipeline || !p.search_pipeline[0]) p.search_pipeline = def.search_pipeline;
    if (p.busy_timeout_ms <= 0) p.busy_timeout_ms = def.busy_timeout_ms;
    if (p.bulk_max_docs <= 0) p.bulk_max_docs = def.bulk_max_docs;
    if (p.bulk_max_bytes == 0) p.bulk_max_bytes = def.bulk_max_bytes;
    if (p.max_retries < 0) p.max_retries = def.max_retries;
    if (p.retry_base_ms <= 0) p.retry_base_ms = def.retry_base_ms;
    if (p.retry_max_ms <= 0) p.retry_max_ms = def.retry_max_ms;
    if (p.timeout_ms <= 0) p.timeout_ms = def.timeout_ms;
    if (p.dim < 0) {
        if (errbuf) snprintf(errbuf, errbuf_size, "blipc_index_open: dim %d is negative", p.dim);
        return BLIPC_ERR_INVALID_ARG;
    }

    blipc_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        if (errbuf) snprintf(errbuf, errbuf_size, "blipc_index_open: out of memory");
        return BLIPC_ERR_NOMEM;
    }
    ix->kind = p.backend;
    ix->ctx.log.fn = p.log_fn;
    ix->ctx.log.user = p.log_user;
    ix->ctx.dim = p.dim;
    ix->ctx.got = &ix->got;

    blipc_status st;
    char pathbuf[4096];
    if (p.backend == BLIPC_INDEX_STORE) {
        if (!p.store_path || !p.store_path[0]) {
            blipc_status ps = blipc_index_default_store_path(pathbuf, sizeof pathbuf);
            if (ps != BLIPC_OK) {
                st = blipc__errf(&ix->ctx.err, BLIPC_ERR_IO,
                                 "index store: no --store path given and neither XDG_DATA_HOME nor HOME is set");
                goto fail;
            }
            p.store_path = pathbuf;
        }
        st = blipc__store_open(&p, &ix->ctx, &ix->ops, &ix->state);
    } else if (p.backend == BLIPC_INDEX_OPENSEARCH) {
        if (!p.url || !p.url[0]) {
            st = blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "opensearch: no URL given");
            goto fail;
        }
        if (!blipc__opensearch_open) {
            st = blipc__errf(&ix->ctx.err, BLIPC_ERR_UNSUPPORTED,
                             "opensearch %s: this build of libblipc-index has no OpenSearch backend", p.url);
            goto fail;
        }
        st = blipc__opensearch_open(&p, &ix->ctx, &ix->ops, &ix->state);
    } else {
        st = blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "blipc_index_open: unknown backend %d",
                         (int)p.backend);
    }
    if (st != BLIPC_OK) goto fail;
    *out = ix;
    return BLIPC_OK;
fail:
    if (errbuf) snprintf(errbuf, errbuf_size, "%s", ix->ctx.err.msg);
    ix->ops = NULL;
    blipc_index_close(ix);
    return st;
}

void blipc_index_close(blipc_index *ix) {
    if (!ix) return;
    if (ix->ops && ix->ops->close) ix->ops->close(ix->state);
    free_results(&ix->ctx);
    free(ix->ctx.res_status);
    free(ix->ctx.res_msg);
    clear_hits(&ix->ctx);
    free(ix->ctx.hits);
    got_free(&ix->got);
    free(ix);
}

const char *blipc_index_errmsg(const blipc_index *ix) {
    return ix ? ix->ctx.err.msg : "blipc_index: NULL handle";
}

blipc_index_backend_kind blipc_index_kind(const blipc_index *ix) {
    return ix ? ix->kind : BLIPC_INDEX_STORE;
}

int blipc_index_dim(const blipc_index *ix) {
    return ix ? ix->ctx.dim : 0;
}

/* ------------------------------------------------------------------ put */

static blipc_status fail_all(blipc_index *ix, size_t n, blipc_status st) {
    for (size_t i = 0; i < n && i < ix->ctx.n_results; i++) blipc__index_set_result(&ix->ctx, i, st, ix->ctx.err.msg);
    return st;
}

blipc_status blipc_index_put(blipc_index *ix, const blipc_index_doc *docs, size_t n) {
    if (!ix) return BLIPC_ERR_INVALID_ARG;
    blipc__err_clear(&ix->ctx.err);
    BLIPC_TRY(reset_results(&ix->ctx, n));
    if (n == 0) return BLIPC_OK;
    if (!docs) {
        blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "blipc_index_put: docs is NULL");
        return fail_all(ix, n, BLIPC_ERR_INVALID_ARG);
    }
    int dim = ix->ctx.dim;
    for (size_t i = 0; i < n; i++) {
        const blipc_index_doc *d = &docs[i];
        const char *what = d->path ? d->path : "(no path)";
        if (!blipc__is_sha256_hex(d->id)) {
            blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG,
                        "blipc_index_put: document %zu (%s): id is not 64 lowercase hex chars", i, what);
            return fail_all(ix, n, BLIPC_ERR_INVALID_ARG);
        }
        if (!d->path || !d->path[0] || !d->caption) {
            blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "blipc_index_put: document %zu (%s): %s is missing",
                        i, d->id, !d->path || !d->path[0] ? "path" : "caption");
            return fail_all(ix, n, BLIPC_ERR_INVALID_ARG);
        }
        if (d->n_answers && (!d->questions || !d->answers)) {
            blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG,
                        "blipc_index_put: document %zu (%s): n_answers %zu but no questions/answers", i, what,
                        d->n_answers);
            return fail_all(ix, n, BLIPC_ERR_INVALID_ARG);
        }
        if (d->vector) {
            if (d->dim <= 0 || (dim > 0 && d->dim != dim)) {
                blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG,
                            "blipc_index_put: document %zu (%s): vector dimension %d, the index has %d", i, what,
                            d->dim, dim);
                return fail_all(ix, n, BLIPC_ERR_INVALID_ARG);
            }
            for (int j = 0; j < d->dim; j++)
                if (!isfinite(d->vector[j])) {
                    blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG,
                                "blipc_index_put: document %zu (%s): vector[%d] is not finite", i, what, j);
                    return fail_all(ix, n, BLIPC_ERR_INVALID_ARG);
                }
            if (dim == 0) dim = d->dim;  /* all of this call must agree */
        }
    }
    blipc_status st = ix->ops->put(ix->state, &ix->ctx, docs, n);
    if (st != BLIPC_OK) {
        /* whole-call failure: nothing not explicitly acknowledged is OK */
        for (size_t i = 0; i < n; i++)
            if (ix->ctx.res_status[i] == BLIPC_ERR_INTERNAL) blipc__index_set_result(&ix->ctx, i, st, ix->ctx.err.msg);
    }
    return st;
}

blipc_status blipc_index_put_status(const blipc_index *ix, size_t i) {
    if (!ix || i >= ix->ctx.n_results) return BLIPC_ERR_INVALID_ARG;
    return ix->ctx.res_status[i];
}

const char *blipc_index_put_error(const blipc_index *ix, size_t i) {
    if (!ix || i >= ix->ctx.n_results) return "no such put result";
    if (ix->ctx.res_msg[i]) return ix->ctx.res_msg[i];
    if (ix->ctx.res_status[i] == BLIPC_ERR_INTERNAL) return "not processed";
    return "";
}

blipc_status blipc_index_flush(blipc_index *ix) {
    if (!ix) return BLIPC_ERR_INVALID_ARG;
    blipc__err_clear(&ix->ctx.err);
    if (!ix->ops->flush) return BLIPC_OK;
    return ix->ops->flush(ix->state, &ix->ctx);
}

/* ----------------------------------------------------------- lookups */

blipc_status blipc_index_get(blipc_index *ix, const char *id, const blipc_index_doc **doc) {
    if (!ix || !doc) return BLIPC_ERR_INVALID_ARG;
    *doc = NULL;
    blipc__err_clear(&ix->ctx.err);
    if (!id) return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "blipc_index_get: id is NULL");
    int found = 0;
    BLIPC_TRY(ix->ops->get(ix->state, &ix->ctx, id, &found));
    if (found) *doc = &ix->got.d;
    return BLIPC_OK;
}

blipc_status blipc_index_has(blipc_index *ix, const char *id, int *found, char *path_out, size_t path_cap) {
    if (!ix || !found) return BLIPC_ERR_INVALID_ARG;
    *found = 0;
    if (path_out && path_cap) path_out[0] = 0;
    blipc__err_clear(&ix->ctx.err);
    if (!id) return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "blipc_index_has: id is NULL");
    if (ix->ops->has) return ix->ops->has(ix->state, &ix->ctx, id, found, path_out, path_cap);
    BLIPC_TRY(ix->ops->get(ix->state, &ix->ctx, id, found));
    if (*found && path_out && path_cap) snprintf(path_out, path_cap, "%s", ix->got.d.path ? ix->got.d.path : "");
    return BLIPC_OK;
}

static blipc_status unsupported(blipc_index *ix, const char *what) {
    return blipc__errf(&ix->ctx.err, BLIPC_ERR_UNSUPPORTED, "%s: not supported by the %s backend", what,
                       ix->ops->name);
}

blipc_status blipc_index_set_path(blipc_index *ix, const char *id, const char *path, int64_t mtime) {
    if (!ix) return BLIPC_ERR_INVALID_ARG;
    blipc__err_clear(&ix->ctx.err);
    if (!id || !path || !path[0])
        return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "blipc_index_set_path: id or path missing");
    if (ix->ops->set_path) return ix->ops->set_path(ix->state, &ix->ctx, id, path, mtime);
    /* fallback: fetch and re-put */
    int found = 0;
    BLIPC_TRY(ix->ops->get(ix->state, &ix->ctx, id, &found));
    if (!found) return blipc__errf(&ix->ctx.err, BLIPC_ERR_NOT_FOUND, "set_path: no document %s", id);
    blipc_index_doc d = ix->got.d;
    d.path = path;
    d.mtime = mtime;
    BLIPC_TRY(reset_results(&ix->ctx, 1));
    BLIPC_TRY(ix->ops->put(ix->state, &ix->ctx, &d, 1));
    if (ix->ctx.res_status[0] != BLIPC_OK)
        return blipc__errf(&ix->ctx.err, ix->ctx.res_status[0], "set_path %s: %s", id,
                           ix->ctx.res_msg[0] ? ix->ctx.res_msg[0] : "failed");
    return BLIPC_OK;
}

blipc_status blipc_index_delete(blipc_index *ix, const char *id) {
    if (!ix) return BLIPC_ERR_INVALID_ARG;
    blipc__err_clear(&ix->ctx.err);
    if (!id) return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "blipc_index_delete: id is NULL");
    if (!ix->ops->del) return unsupported(ix, "delete");
    return ix->ops->del(ix->state, &ix->ctx, id);
}

blipc_status blipc_index_count(blipc_index *ix, uint64_t *n) {
    if (!ix || !n) return BLIPC_ERR_INVALID_ARG;
    *n = 0;
    blipc__err_clear(&ix->ctx.err);
    if (!ix->ops->count) return unsupported(ix, "count");
    return ix->ops->count(ix->state, &ix->ctx, n);
}

/* --------------------------------------------------------------- search */

blipc_status blipc_index_search(blipc_index *ix, const blipc_index_query *qin) {
    if (!ix) return BLIPC_ERR_INVALID_ARG;
    blipc__err_clear(&ix->ctx.err);
    clear_hits(&ix->ctx);
    if (!qin) return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "blipc_index_search: query is NULL");
    blipc_index_query q = *qin;
    if (q.k == 0) q.k = 10;
    if (q.k < 0 || q.k > 10000)
        return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "search: k = %d is out of range 1..10000", q.k);
    int has_text = q.text && q.text[0];
    if (!has_text && !q.vector)
        return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "search: the query has neither text nor a vector");
    if (q.vector) {
        if (q.dim <= 0 || (ix->ctx.dim > 0 && q.dim != ix->ctx.dim))
            return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG,
                               "search: query vector dimension %d, the index has %d", q.dim, ix->ctx.dim);
        for (int j = 0; j < q.dim; j++)
            if (!isfinite(q.vector[j]))
                return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "search: query vector[%d] is not finite", j);
    }
    if (q.hybrid) {
        if (!(q.text_weight >= 0) || !(q.vector_weight >= 0) || q.text_weight + q.vector_weight <= 0)
            return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG,
                               "search: hybrid weights %g/%g must be >= 0 and not both 0", q.text_weight,
                               q.vector_weight);
        if (!has_text)
            return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "search: --hybrid needs query text");
        float s = q.text_weight + q.vector_weight;
        q.text_weight /= s;
        q.vector_weight /= s;
    }
    for (size_t i = 0; i < q.n_filters; i++)
        if (!q.filters || !q.filters[i].field || !q.filters[i].field[0] || !q.filters[i].value)
            return blipc__errf(&ix->ctx.err, BLIPC_ERR_INVALID_ARG, "search: filter %zu has no field or value", i);
    blipc_status st = ix->ops->search(ix->state, &ix->ctx, &q);
    if (st != BLIPC_OK) {
        clear_hits(&ix->ctx);
        return st;
    }
    while (ix->ctx.n_hits > (size_t)q.k) {  /* backend contract says cut; be safe */
        struct blipc__index_hit *h = &ix->ctx.hits[--ix->ctx.n_hits];
        free(h->id);
        free(h->path);
        free(h->caption);
    }
    return BLIPC_OK;
}

size_t blipc_index_hit_count(const blipc_index *ix) {
    return ix ? ix->ctx.n_hits : 0;
}

static const struct blipc__index_hit *hit(const blipc_index *ix, size_t i) {
    return (ix && i < ix->ctx.n_hits) ? &ix->ctx.hits[i] : NULL;
}

double blipc_index_hit_score(const blipc_index *ix, size_t i) {
    const struct blipc__index_hit *h = hit(ix, i);
    return h ? h->score : NAN;
}
const char *blipc_index_hit_id(const blipc_index *ix, size_t i) {
    const struct blipc__index_hit *h = hit(ix, i);
    return h ? h->id : NULL;
}
const char *blipc_index_hit_path(const blipc_index *ix, size_t i) {
    const struct blipc__index_hit *h = hit(ix, i);
    return h ? h->path : NULL;
}
const char *blipc_index_hit_caption(const blipc_index *ix, size_t i) {
    const struct blipc__index_hit *h = hit(ix, i);
    return h ? h->caption : NULL;
}
double blipc_index_hit_text_score(const blipc_index *ix, size_t i) {
    const struct blipc__index_hit *h = hit(ix, i);
    return h ? h->text_score : NAN;
}
double blipc_index_hit_vector_score(const blipc_index *ix, size_t i) {
    const struct blipc__index_hit *h = hit(ix, i);
    return h ? h->vector_score : NAN;
}

/* ------------------------------------------------------ OpenSearch extras */

blipc_status blipc_index_register_model(const blipc_index_params *p, const char *model_name, const char *version,
                                        const char *format, char *model_id_out, size_t model_id_cap, char *errbuf,
                                        size_t errbuf_size) {
    blipc_err e;
    blipc__err_clear(&e);
    blipc_status st;
    if (!p || !p->url || !p->url[0])
        st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "register model: no OpenSearch URL given");
    else if (!model_id_out || model_id_cap == 0)
        st = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "register model: no buffer for the model id");
    else if (!blipc__opensearch_register_model)
        st = blipc__errf(&e, BLIPC_ERR_UNSUPPORTED,
                         "register model at %s: this build of libblipc-index has no OpenSearch backend", p->url);
    else {
        blipc_index_params q = *p;
        blipc_index_params def;
        blipc_index_default_params(&def);
        if (q.timeout_ms <= 0) q.timeout_ms = def.timeout_ms;
        if (q.max_retries < 0) q.max_retries = def.max_retries;
        if (q.retry_base_ms <= 0) q.retry_base_ms = def.retry_base_ms;
        if (q.retry_max_ms <= 0) q.retry_max_ms = def.retry_max_ms;
        st = blipc__opensearch_register_model(&q, model_name, version, format, model_id_out, model_id_cap, &e);
    }
    if (errbuf && errbuf_size) snprintf(errbuf, errbuf_size, "%s", e.msg);
    return st;
}
