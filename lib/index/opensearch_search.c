/* opensearch_search.c — k-NN / text / hybrid / neural search against the
 * OpenSearch index (filters, the hybrid search pipeline, hits). */
#include "opensearch_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A filter on one of our fields as a term query (NULL + error on an unknown field). */
static cJSON *filter_clause(const blipc_index_filter *f, blipc_err *e) {
    static const char *kw[] = {"id", "path", "caption_model", "embed_model", NULL};
    static const char *num[] = {"width", "height", "mtime", "size", NULL};
    char field[128];
    int numeric = 0;
    if (!strcmp(f->field, "image_description") ||
        (!strncmp(f->field, "answer_", 7) && strlen(f->field) < 100 && blipc__os_url_safe(f->field))) {
        snprintf(field, sizeof field, "%s.keyword", f->field);
    } else {
        int ok = 0;
        for (int i = 0; kw[i] && !ok; i++) ok = !strcmp(f->field, kw[i]);
        for (int i = 0; num[i] && !ok; i++) ok = numeric = !strcmp(f->field, num[i]);
        if (!ok) {
            blipc__errf(e, BLIPC_ERR_INVALID_ARG,
                        "search: unknown filter field \"%s\" (id, path, caption_model, embed_model, width, height, "
                        "mtime, size, image_description or answer_*)",
                        f->field);
            return NULL;
        }
        snprintf(field, sizeof field, "%s", f->field);
    }
    cJSON *t = cJSON_CreateObject();
    cJSON *term = t ? cJSON_AddObjectToObject(t, "term") : NULL;
    if (!term) {
        cJSON_Delete(t);
        blipc__errf(e, BLIPC_ERR_NOMEM, "search: out of memory");
        return NULL;
    }
    if (numeric) {
        char *end;
        long long v = strtoll(f->value, &end, 10);
        if (end == f->value || *end) {
            cJSON_Delete(t);
            blipc__errf(e, BLIPC_ERR_INVALID_ARG, "search: filter %s=%s: the value must be an integer", f->field,
                        f->value);
            return NULL;
        }
        cJSON_AddNumberToObject(term, field, (double)v);
    } else {
        cJSON_AddStringToObject(term, field, f->value);
    }
    return t;
}

static cJSON *filters_array(const blipc_index_query *q, blipc_err *e) {
    cJSON *arr = cJSON_CreateArray();
    if (!arr) {
        blipc__errf(e, BLIPC_ERR_NOMEM, "search: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < q->n_filters; i++) {
        cJSON *c = filter_clause(&q->filters[i], e);
        if (!c) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, c);
    }
    return arr;
}

/* {"match": {"image_description": {"query": text}}}, inside a bool with the filters. */
static cJSON *text_query(const blipc_index_query *q, const cJSON *filters) {
    cJSON *m = cJSON_CreateObject();
    cJSON *mm = m ? cJSON_AddObjectToObject(m, "match") : NULL;
    cJSON *f = mm ? cJSON_AddObjectToObject(mm, "image_description") : NULL;
    if (!f) {
        cJSON_Delete(m);
        return NULL;
    }
    cJSON_AddStringToObject(f, "query", q->text);
    if (!cJSON_GetArraySize(filters)) return m;
    cJSON *b = cJSON_CreateObject();
    cJSON *bb = b ? cJSON_AddObjectToObject(b, "bool") : NULL;
    cJSON *must = bb ? cJSON_AddArrayToObject(bb, "must") : NULL;
    cJSON *fl = cJSON_Duplicate(filters, 1);
    if (!must || !fl) {
        cJSON_Delete(b);
        cJSON_Delete(m);
        cJSON_Delete(fl);
        return NULL;
    }
    cJSON_AddItemToArray(must, m);
    cJSON_AddItemToObject(bb, "filter", fl);
    return b;
}

/* k-NN on the vector field (or neural with the model when no vector is given),
 * filters applied inside (lucene's efficient filtering). */
static cJSON *vector_query(const blipc__os *s, const blipc_index_query *q, const cJSON *filters) {
    cJSON *o = cJSON_CreateObject();
    cJSON *kind = o ? cJSON_AddObjectToObject(o, q->vector ? "knn" : "neural") : NULL;
    cJSON *f = kind ? cJSON_AddObjectToObject(kind, BLIPC__OS_VEC_FIELD) : NULL;
    if (!f) {
        cJSON_Delete(o);
        return NULL;
    }
    if (q->vector) {
        cJSON *v = cJSON_AddArrayToObject(f, "vector");
        for (int i = 0; v && i < q->dim; i++) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%.9g", (double)q->vector[i]);
            cJSON_AddItemToArray(v, cJSON_CreateRaw(tmp));
        }
    } else {
        cJSON_AddStringToObject(f, "query_text", q->text);
        cJSON_AddStringToObject(f, "model_id", s->model_id);
    }
    cJSON_AddNumberToObject(f, "k", q->k);
    if (cJSON_GetArraySize(filters)) {
        cJSON *b = cJSON_AddObjectToObject(f, "filter");
        cJSON *bb = b ? cJSON_AddObjectToObject(b, "bool") : NULL;
        cJSON *fl = cJSON_Duplicate(filters, 1);
        if (bb && fl) cJSON_AddItemToObject(bb, "filter", fl);
        else cJSON_Delete(fl);
    }
    return o;
}

/* PUT the hybrid search pipeline (min_max + arithmetic_mean, weights text/vector). */
static blipc_status ensure_search_pipeline(blipc__os *s, blipc__index_ctx *ctx, double wt) {
    if (s->hyb_wt >= 0 && fabs(s->hyb_wt - wt) < 1e-9) return BLIPC_OK;
    char body[1024];
    /* weights printed so that they sum to exactly 1 */
    char a[32], b[32];
    snprintf(a, sizeof a, "%.6f", wt);
    double wta = atof(a);
    snprintf(b, sizeof b, "%.6f", 1.0 - wta);
    snprintf(body, sizeof body,
             "{\"description\":\"libblipc hybrid search: BM25 + k-NN, min-max normalised, weighted mean\","
             "\"phase_results_processors\":[{\"normalization-processor\":{\"normalization\":{\"technique\":"
             "\"min_max\"},\"combination\":{\"technique\":\"arithmetic_mean\",\"parameters\":{\"weights\":[%s,%s]"
             "}}}}]}",
             a, b);
    char path[512];
    snprintf(path, sizeof path, "/_search/pipeline/%s", s->search_pipeline);
    blipc__os_req rq = {.method = "PUT", .path = path, .body = body, .body_len = strlen(body), .idempotent = 1};
    long status = 0;
    BLIPC_TRY(blipc__os_request(s->http, &rq, &status, &ctx->err));
    if (status != 200) {
        char what[300];
        snprintf(what, sizeof what, "creating search pipeline %s", s->search_pipeline);
        return blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    s->hyb_wt = wt;
    return BLIPC_OK;
}

blipc_status blipc__os_search(void *state, blipc__index_ctx *ctx, const blipc_index_query *q) {
    blipc__os *s = state;
    if (!s->index_ready) BLIPC_TRY(blipc__os_ensure_index(s, ctx, ctx->dim, 0));
    if (!s->index_ready) return BLIPC_OK; /* no index yet: nothing stored, no hits */
    if (!q->vector && !q->text)
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "search: the query has neither text nor a vector");
    int use_vec = q->vector != NULL || (q->text && s->model_id && (q->hybrid || !q->vector));
    if (!q->vector && !s->model_id) use_vec = 0;
    if (q->hybrid && (!q->text || !use_vec))
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "search: hybrid search needs query text and a query vector (or --model-id)");
    cJSON *filters = filters_array(q, &ctx->err);
    if (!filters) return ctx->err.status;
    cJSON *body = cJSON_CreateObject();
    cJSON *query = NULL;
    if (body) {
        cJSON_AddNumberToObject(body, "size", q->k);
        cJSON *src = cJSON_AddObjectToObject(body, "_source");
        cJSON *inc = src ? cJSON_AddArrayToObject(src, "includes") : NULL;
        if (inc) {
            cJSON_AddItemToArray(inc, cJSON_CreateString("path"));
            cJSON_AddItemToArray(inc, cJSON_CreateString("image_description"));
        }
        if (q->hybrid) {
            query = cJSON_CreateObject();
            cJSON *h = query ? cJSON_AddObjectToObject(query, "hybrid") : NULL;
            cJSON *subs = h ? cJSON_AddArrayToObject(h, "queries") : NULL;
            cJSON *tq = text_query(q, filters), *vq = vector_query(s, q, filters);
            if (subs && tq && vq) {
                cJSON_AddItemToArray(subs, tq);
                cJSON_AddItemToArray(subs, vq);
            } else {
                cJSON_Delete(tq);
                cJSON_Delete(vq);
                cJSON_Delete(query);
                query = NULL;
            }
        } else if (use_vec) {
            query = vector_query(s, q, filters);
        } else {
            query = text_query(q, filters);
        }
        if (query) cJSON_AddItemToObject(body, "query", query);
    }
    cJSON_Delete(filters);
    if (!body || !query) {
        cJSON_Delete(body);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "search: out of memory building the query");
    }
    blipc_status st = BLIPC_OK;
    if (q->hybrid) st = ensure_search_pipeline(s, ctx, q->text_weight);
    blipc__os_buf path = {0};
    if (q->hybrid) {
        blipc__os_path(s, &path, "/_search?search_pipeline=");
        blipc__os_buf_str(&path, s->search_pipeline);
    } else {
        blipc__os_path(s, &path, "/_search");
    }
    long status = 0;
    if (st == BLIPC_OK)
        st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_json_request(s, ctx, "POST", path.data, body, &status);
    cJSON_Delete(body);
    blipc__os_buf_free(&path);
    if (st == BLIPC_OK && status != 200) {
        char what[300];
        snprintf(what, sizeof what, "searching index %s", s->index);
        st = blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    cJSON *j = NULL;
    if (st == BLIPC_OK) st = blipc__os_parse_body(s->http, "_search", &j, &ctx->err);
    if (st != BLIPC_OK) return st;
    const cJSON *hits = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "hits"), "hits");
    if (!cJSON_IsArray(hits)) {
        cJSON_Delete(j);
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE, "opensearch %s: _search on index %s: no hits.hits in the answer",
                           blipc__os_http_base(s->http), s->index);
    }
    const cJSON *h;
    int n = 0;
    cJSON_ArrayForEach(h, hits) {
        if (n >= q->k) break;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(h, "_id");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(h, "_score");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(h, "_source");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(src, "path");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(src, "image_description");
        double score = cJSON_IsNumber(sc) ? sc->valuedouble : NAN;
        double ts = NAN, vs = NAN;
        if (!q->hybrid) {
            if (use_vec) vs = score;
            else ts = score;
        }
        st = blipc__index_add_hit(ctx, score, ts, vs, cJSON_IsString(id) ? id->valuestring : "",
                                  cJSON_IsString(p) ? p->valuestring : "", cJSON_IsString(c) ? c->valuestring : "");
        if (st != BLIPC_OK) break;
        n++;
    }
    cJSON_Delete(j);
    return st;
}
