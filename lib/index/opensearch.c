/* opensearch.c — the OpenSearch backend of libblipc-index: index creation and
 * mapping checks, ingest/search pipelines, k-NN / text / hybrid / neural
 * search, document lookups and the ML Commons model registration.
 * HTTP transport: opensearch_http.c; _bulk writes: opensearch_bulk.c.
 * Setup and cluster notes: docs/opensearch.md. */
#include "opensearch_internal.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VEC_FIELD "image_description_vector"

/* ------------------------------------------------------------ helpers */

void blipc__os_path(const blipc__os *s, blipc__os_buf *b, const char *suffix) {
    blipc__os_buf_reset(b);
    blipc__os_buf_str(b, "/");
    blipc__os_buf_str(b, s->index);
    blipc__os_buf_str(b, suffix);
}

/* OpenSearch index names: lowercase, no \ / * ? " < > | space , # :, not
 * starting with _ - +, not . or .., at most 255 bytes. */
static int valid_index_name(const char *n) {
    size_t len = strlen(n);
    if (!len || len > 255 || n[0] == '_' || n[0] == '-' || n[0] == '+' || !strcmp(n, ".") || !strcmp(n, ".."))
        return 0;
    for (const char *p = n; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x21 || c >= 0x7f || (c >= 'A' && c <= 'Z') || strchr("\\/*?\"<>|,#:%", c)) return 0;
    }
    return 1;
}

/* Does a pipeline / model name need no URL escaping? */
static int url_safe(const char *n) {
    if (!n || !*n) return 0;
    for (const char *p = n; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return 0;
    }
    return 1;
}

/* Send a JSON request (cJSON body may be NULL) and return the status. */
static blipc_status json_request(blipc__os *s, blipc__index_ctx *ctx, const char *method, const char *path,
                                 const cJSON *body, long *status) {
    char *txt = NULL;
    if (body) {
        txt = cJSON_PrintUnformatted(body);
        if (!txt) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory building a request");
    }
    blipc__os_req rq = {.method = method, .path = path, .body = txt, .body_len = txt ? strlen(txt) : 0,
                        .idempotent = 1};
    blipc_status st = blipc__os_request(s->http, &rq, status, &ctx->err);
    free(txt);
    return st;
}

static const char *error_type(blipc__os *s) {
    static const char *known[] = {"resource_already_exists_exception", "index_not_found_exception", NULL};
    size_t len;
    const char *b = blipc__os_http_body(s->http, &len);
    for (int i = 0; known[i]; i++)
        if (strstr(b, known[i])) return known[i];
    return "";
}

/* ------------------------------------------------------------ mapping */

static cJSON *text_with_keyword(void) {
    cJSON *t = cJSON_CreateObject();
    if (!t) return NULL;
    cJSON_AddStringToObject(t, "type", "text");
    cJSON *f = cJSON_AddObjectToObject(t, "fields");
    cJSON *k = f ? cJSON_AddObjectToObject(f, "keyword") : NULL;
    if (k) {
        cJSON_AddStringToObject(k, "type", "keyword");
        cJSON_AddNumberToObject(k, "ignore_above", 256);
    }
    return t;
}

static cJSON *typed(const char *type) {
    cJSON *t = cJSON_CreateObject();
    if (t) cJSON_AddStringToObject(t, "type", type);
    return t;
}

/* The properties of the tutorial's mapping plus our metadata fields. */
static cJSON *our_properties(const blipc__os *s, int dim) {
    cJSON *p = cJSON_CreateObject();
    if (!p) return NULL;
    cJSON_AddItemToObject(p, "id", typed("keyword"));
    cJSON_AddItemToObject(p, "path", typed("keyword"));
    cJSON_AddItemToObject(p, "image_description", text_with_keyword());
    cJSON *v = typed("knn_vector");
    if (v) {
        cJSON_AddNumberToObject(v, "dimension", dim);
        cJSON *m = cJSON_AddObjectToObject(v, "method");
        if (m) {
            cJSON_AddStringToObject(m, "name", "hnsw");
            cJSON_AddStringToObject(m, "engine", "lucene");
            cJSON_AddStringToObject(m, "space_type", s->space_type); /* inside method: every version */
        }
    }
    cJSON_AddItemToObject(p, VEC_FIELD, v);
    cJSON *a = cJSON_CreateObject();
    cJSON *ap = a ? cJSON_AddObjectToObject(a, "properties") : NULL;
    if (ap) {
        cJSON_AddItemToObject(ap, "question", typed("keyword"));
        cJSON_AddItemToObject(ap, "answer", typed("text"));
    }
    cJSON_AddItemToObject(p, "answers", a);
    cJSON_AddItemToObject(p, "width", typed("integer"));
    cJSON_AddItemToObject(p, "height", typed("integer"));
    cJSON_AddItemToObject(p, "mtime", typed("long"));
    cJSON_AddItemToObject(p, "size", typed("long"));
    cJSON_AddItemToObject(p, "caption_model", typed("keyword"));
    cJSON_AddItemToObject(p, "embed_model", typed("keyword"));
    return p;
}

static cJSON *index_body(const blipc__os *s, int dim) {
    cJSON *b = cJSON_CreateObject();
    cJSON *settings = b ? cJSON_AddObjectToObject(b, "settings") : NULL;
    cJSON *ix = settings ? cJSON_AddObjectToObject(settings, "index") : NULL;
    cJSON *mappings = b ? cJSON_AddObjectToObject(b, "mappings") : NULL;
    if (!ix || !mappings) {
        cJSON_Delete(b);
        return NULL;
    }
    cJSON_AddTrueToObject(ix, "knn");
    if (s->ingest_pipeline) cJSON_AddStringToObject(ix, "default_pipeline", s->ingest_pipeline);
    /* answers to extra questions ("answer_what_brand_is_it") as text + keyword */
    cJSON *dt = cJSON_AddArrayToObject(mappings, "dynamic_templates");
    cJSON *t = cJSON_CreateObject();
    cJSON *tt = t ? cJSON_AddObjectToObject(t, "answers_as_text") : NULL;
    if (tt) {
        cJSON_AddStringToObject(tt, "match", "answer_*");
        cJSON_AddStringToObject(tt, "match_mapping_type", "string");
        cJSON_AddItemToObject(tt, "mapping", text_with_keyword());
    }
    if (dt && t) cJSON_AddItemToArray(dt, t);
    else cJSON_Delete(t);
    cJSON *props = our_properties(s, dim);
    if (!props) {
        cJSON_Delete(b);
        return NULL;
    }
    cJSON_AddItemToObject(mappings, "properties", props);
    return b;
}

static const char *prop_type(const cJSON *p) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (cJSON_IsString(t)) return t->valuestring;
    return cJSON_GetObjectItemCaseSensitive(p, "properties") ? "object" : "?";
}

static const char *knn_space(const cJSON *p) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "method");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "space_type");
    if (!cJSON_IsString(st)) st = cJSON_GetObjectItemCaseSensitive(p, "space_type");
    return cJSON_IsString(st) ? st->valuestring : "l2";
}

/* Compare an existing index's mapping with ours; add fields it lacks. */
static blipc_status check_mapping(blipc__os *s, blipc__index_ctx *ctx, int dim) {
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "/_mapping");
    long status = 0;
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : json_request(s, ctx, "GET", path.data, NULL, &status);
    if (st == BLIPC_OK && status != 200) {
        char what[300];
        snprintf(what, sizeof what, "reading the mapping of index %s", s->index);
        st = blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    cJSON *j = NULL;
    if (st == BLIPC_OK) st = blipc__os_parse_body(s->http, "GET _mapping", &j, &ctx->err);
    if (st != BLIPC_OK) {
        blipc__os_buf_free(&path);
        return st;
    }
    /* {"<concrete index>": {"mappings": {"properties": {...}}}} (an alias answers with its index) */
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j->child, "mappings"), "properties");
    const char *base = blipc__os_http_base(s->http);
    const cJSON *vec = cJSON_GetObjectItemCaseSensitive(props, VEC_FIELD);
    if (vec) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(vec, "dimension");
        if (strcmp(prop_type(vec), "knn_vector")) {
            st = blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                             "opensearch %s: index %s exists with an incompatible mapping: field " VEC_FIELD
                             " is of type %s, not knn_vector (use another --index, or delete the index)",
                             base, s->index, prop_type(vec));
        } else if (!cJSON_IsNumber(d)) {
            st = blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                             "opensearch %s: index %s: field " VEC_FIELD " has no dimension", base, s->index);
        } else if (dim > 0 && (int)d->valuedouble != dim) {
            st = blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                             "opensearch %s: index %s exists with an incompatible mapping: field " VEC_FIELD
                             " has dimension %d, the embedder's vectors have %d (use another --index, or delete "
                             "the index)",
                             base, s->index, (int)d->valuedouble, dim);
        } else {
            if (dim <= 0) dim = (int)d->valuedouble;
            if (strcmp(knn_space(vec), s->space_type))
                blipc__logf(&ctx->log, BLIPC_LOG_WARN,
                            "opensearch index %s: its vectors use space_type %s (asked for %s): scores follow the "
                            "index",
                            s->index, knn_space(vec), s->space_type);
        }
    }
    cJSON *ours = st == BLIPC_OK ? our_properties(s, dim > 0 ? dim : 1) : NULL;
    cJSON *missing = ours ? cJSON_CreateObject() : NULL;
    if (st == BLIPC_OK && (!ours || !missing))
        st = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory checking a mapping");
    for (cJSON *f = ours ? ours->child : NULL; f && st == BLIPC_OK;) {
        cJSON *next = f->next;
        const cJSON *have = cJSON_GetObjectItemCaseSensitive(props, f->string);
        if (have) {
            const char *want = prop_type(f), *got = prop_type(have);
            int compatible = !strcmp(want, got) || (!strcmp(want, "integer") && !strcmp(got, "long")) ||
                             (!strcmp(want, "keyword") && !strcmp(got, "text") && strcmp(f->string, "path"));
            if (!compatible)
                st = blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                                 "opensearch %s: index %s exists with an incompatible mapping: field %s is of type "
                                 "%s, expected %s (use another --index, or delete the index)",
                                 base, s->index, f->string, got, want);
        } else if (strcmp(f->string, VEC_FIELD) || dim > 0) {
            cJSON_AddItemToObject(missing, f->string, cJSON_DetachItemViaPointer(ours, f));
        }
        f = next;
    }
    if (st == BLIPC_OK && missing->child) {
        if (s->read_only) {
            if (!cJSON_GetObjectItemCaseSensitive(props, VEC_FIELD))
                blipc__logf(&ctx->log, BLIPC_LOG_WARN, "opensearch index %s has no " VEC_FIELD " field yet",
                            s->index);
        } else {
            cJSON *body = cJSON_CreateObject();
            if (!body) {
                st = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
            } else {
                cJSON_AddItemToObject(body, "properties", missing);
                missing = NULL;
                blipc__logf(&ctx->log, BLIPC_LOG_INFO, "opensearch index %s: adding missing fields to its mapping",
                            s->index);
                st = json_request(s, ctx, "PUT", path.data, body, &status);
                if (st == BLIPC_OK && status != 200) {
                    char what[300];
                    snprintf(what, sizeof what, "adding fields to the mapping of index %s", s->index);
                    st = blipc__os_http_error(s->http, status, what, &ctx->err);
                }
                cJSON_Delete(body);
            }
        }
    }
    cJSON_Delete(missing);
    cJSON_Delete(ours);
    cJSON_Delete(j);
    blipc__os_buf_free(&path);
    if (st == BLIPC_OK && dim > 0) ctx->dim = dim;
    return st;
}

/* Server-side embedding: the ingest pipeline and the index's default_pipeline. */
static blipc_status ensure_ingest_pipeline(blipc__os *s, blipc__index_ctx *ctx) {
    cJSON *b = cJSON_CreateObject();
    cJSON *procs = b ? cJSON_AddArrayToObject(b, "processors") : NULL;
    cJSON *p = cJSON_CreateObject();
    cJSON *te = p ? cJSON_AddObjectToObject(p, "text_embedding") : NULL;
    cJSON *fm = te ? cJSON_AddObjectToObject(te, "field_map") : NULL;
    if (!procs || !fm) {
        cJSON_Delete(b);
        cJSON_Delete(p);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
    }
    cJSON_AddStringToObject(b, "description", "libblipc: embeds image_description into " VEC_FIELD);
    cJSON_AddStringToObject(te, "model_id", s->model_id);
    cJSON_AddStringToObject(fm, "image_description", VEC_FIELD);
    cJSON_AddItemToArray(procs, p);
    char path[512];
    snprintf(path, sizeof path, "/_ingest/pipeline/%s", s->ingest_pipeline);
    long status = 0;
    blipc_status st = json_request(s, ctx, "PUT", path, b, &status);
    cJSON_Delete(b);
    if (st == BLIPC_OK && status != 200) {
        char what[300];
        snprintf(what, sizeof what, "creating ingest pipeline %s", s->ingest_pipeline);
        st = blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    return st;
}

static blipc_status set_default_pipeline(blipc__os *s, blipc__index_ctx *ctx) {
    cJSON *b = cJSON_CreateObject();
    cJSON *ix = b ? cJSON_AddObjectToObject(b, "index") : NULL;
    if (!ix) {
        cJSON_Delete(b);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
    }
    cJSON_AddStringToObject(ix, "default_pipeline", s->ingest_pipeline);
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "/_settings");
    long status = 0;
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : json_request(s, ctx, "PUT", path.data, b, &status);
    cJSON_Delete(b);
    blipc__os_buf_free(&path);
    if (st == BLIPC_OK && status != 200) {
        char what[300];
        snprintf(what, sizeof what, "setting index.default_pipeline of index %s", s->index);
        st = blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    return st;
}

/* The dimension of a deployed model (server-side mode without a known dim). */
static int model_dimension(blipc__os *s, blipc__index_ctx *ctx) {
    char path[512];
    snprintf(path, sizeof path, "/_plugins/_ml/models/%s", s->model_id);
    long status = 0;
    blipc_err e;
    blipc__err_clear(&e);
    blipc__os_req rq = {.method = "GET", .path = path, .idempotent = 1};
    if (blipc__os_request(s->http, &rq, &status, &e) != BLIPC_OK || status != 200) return 0;
    cJSON *j = NULL;
    if (blipc__os_parse_body(s->http, "GET model", &j, &e) != BLIPC_OK) return 0;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "model_config"),
                                                      "embedding_dimension");
    int dim = cJSON_IsNumber(d) ? (int)d->valuedouble : 0;
    cJSON_Delete(j);
    (void)ctx;
    return dim;
}

blipc_status blipc__os_ensure_index(blipc__os *s, blipc__index_ctx *ctx, int dim, int create) {
    const char *base = blipc__os_http_base(s->http);
    if (dim <= 0 && s->ingest_pipeline && s->model_id) dim = model_dimension(s, ctx);
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "");
    if (path.oom) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
    long status = 0;
    blipc__os_req head = {.method = "HEAD", .path = path.data, .idempotent = 1};
    blipc_status st = blipc__os_request(s->http, &head, &status, &ctx->err);
    int exists = status == 200;
    if (st == BLIPC_OK && status != 200 && status != 404) {
        char what[300];
        snprintf(what, sizeof what, "checking index %s", s->index);
        st = blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    if (st == BLIPC_OK && s->ingest_pipeline && create && !s->read_only) st = ensure_ingest_pipeline(s, ctx);
    if (st == BLIPC_OK && !exists) {
        if (s->read_only || !create) {
            if (s->read_only)
                st = blipc__errf(&ctx->err, BLIPC_ERR_NOT_FOUND, "opensearch %s: index %s does not exist", base,
                                 s->index);
            blipc__os_buf_free(&path);
            return st; /* created later, at the first put */
        }
        if (dim <= 0) {
            blipc__os_buf_free(&path);
            return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                               "opensearch %s: cannot create index %s: the vector dimension is unknown (documents "
                               "without vectors and no dim given)",
                               base, s->index);
        }
        cJSON *b = index_body(s, dim);
        if (!b) st = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
        else st = json_request(s, ctx, "PUT", path.data, b, &status);
        cJSON_Delete(b);
        if (st == BLIPC_OK && status == 200) {
            blipc__logf(&ctx->log, BLIPC_LOG_INFO, "opensearch %s: created index %s (knn_vector %d, %s)", base,
                        s->index, dim, s->space_type);
            s->index_was_new = 1;
            ctx->dim = dim;
        } else if (st == BLIPC_OK && status == 400 &&
                   !strcmp(error_type(s), "resource_already_exists_exception")) {
            exists = 1; /* created concurrently by someone else: check it like any existing index */
        } else if (st == BLIPC_OK) {
            char what[300];
            snprintf(what, sizeof what, "creating index %s", s->index);
            st = blipc__os_http_error(s->http, status, what, &ctx->err);
        }
    }
    if (st == BLIPC_OK && exists) {
        st = check_mapping(s, ctx, dim);
        if (st == BLIPC_OK && s->ingest_pipeline && !s->read_only) st = set_default_pipeline(s, ctx);
    }
    blipc__os_buf_free(&path);
    if (st == BLIPC_OK) s->index_ready = 1;
    return st;
}

/* ------------------------------------------------------------ search */

/* A filter on one of our fields as a term query (NULL + error on an unknown field). */
static cJSON *filter_clause(const blipc_index_filter *f, blipc_err *e) {
    static const char *kw[] = {"id", "path", "caption_model", "embed_model", NULL};
    static const char *num[] = {"width", "height", "mtime", "size", NULL};
    char field[128];
    int numeric = 0;
    if (!strcmp(f->field, "image_description") ||
        (!strncmp(f->field, "answer_", 7) && strlen(f->field) < 100 && url_safe(f->field))) {
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
    cJSON *f = kind ? cJSON_AddObjectToObject(kind, VEC_FIELD) : NULL;
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

static blipc_status os_search(void *state, blipc__index_ctx *ctx, const blipc_index_query *q) {
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
    if (st == BLIPC_OK) st = path.oom ? BLIPC_ERR_NOMEM : json_request(s, ctx, "POST", path.data, body, &status);
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

/* ------------------------------------------------------------ lookups */

/* GET /{index}/_doc/{id}: *found = 0 on 404 (document or index absent). */
static blipc_status get_doc(blipc__os *s, blipc__index_ctx *ctx, const char *id, const char *query, int *found,
                            cJSON **src) {
    *found = 0;
    *src = NULL;
    if (!blipc__is_sha256_hex(id))
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "opensearch: document id \"%.80s\" is not a sha256 hex",
                           id);
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "/_doc/");
    blipc__os_buf_str(&path, id);
    if (query) blipc__os_buf_str(&path, query);
    long status = 0;
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : json_request(s, ctx, "GET", path.data, NULL, &status);
    blipc__os_buf_free(&path);
    if (st != BLIPC_OK) return st;
    if (status == 404) return BLIPC_OK;
    if (status != 200) {
        char what[300];
        snprintf(what, sizeof what, "getting document %.12s from index %s", id, s->index);
        return blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    cJSON *j = NULL;
    BLIPC_TRY(blipc__os_parse_body(s->http, "GET _doc", &j, &ctx->err));
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "found");
    if (cJSON_IsTrue(f)) {
        *src = cJSON_DetachItemFromObjectCaseSensitive(j, "_source");
        *found = *src != NULL;
    }
    cJSON_Delete(j);
    return BLIPC_OK;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static blipc_status os_get(void *state, blipc__index_ctx *ctx, const char *id, int *found) {
    blipc__os *s = state;
    cJSON *src = NULL;
    BLIPC_TRY(get_doc(s, ctx, id, NULL, found, &src));
    if (!*found) return BLIPC_OK;
    blipc_index_doc d;
    blipc_index_doc_init(&d);
    d.id = id;
    d.path = jstr(src, "path") ? jstr(src, "path") : "";
    d.caption = jstr(src, "image_description") ? jstr(src, "image_description") : "";
    d.width = (int)jnum(src, "width");
    d.height = (int)jnum(src, "height");
    d.mtime = (int64_t)jnum(src, "mtime");
    d.size = (int64_t)jnum(src, "size");
    d.caption_model = jstr(src, "caption_model");
    d.embed_model = jstr(src, "embed_model");
    const cJSON *vec = cJSON_GetObjectItemCaseSensitive(src, VEC_FIELD);
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(src, "answers");
    int nv = cJSON_IsArray(vec) ? cJSON_GetArraySize(vec) : 0;
    int na = cJSON_IsArray(ans) ? cJSON_GetArraySize(ans) : 0;
    float *v = nv ? malloc((size_t)nv * sizeof *v) : NULL;
    const char **qs = na ? calloc((size_t)na, sizeof *qs) : NULL;
    const char **as = na ? calloc((size_t)na, sizeof *as) : NULL;
    blipc_status st = BLIPC_OK;
    if ((nv && !v) || (na && (!qs || !as))) {
        st = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory reading document %.12s", id);
    } else {
        int i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, vec) v[i++] = cJSON_IsNumber(x) ? (float)x->valuedouble : NAN;
        i = 0;
        cJSON_ArrayForEach(x, ans) {
            qs[i] = jstr(x, "question") ? jstr(x, "question") : "";
            as[i] = jstr(x, "answer") ? jstr(x, "answer") : "";
            i++;
        }
        d.vector = v;
        d.dim = nv;
        d.questions = qs;
        d.answers = as;
        d.n_answers = (size_t)na;
        st = blipc__index_set_got(ctx, &d);
    }
    free(v);
    free(qs);
    free(as);
    cJSON_Delete(src);
    return st;
}

static blipc_status os_has(void *state, blipc__index_ctx *ctx, const char *id, int *found, char *path_out,
                           size_t path_cap) {
    blipc__os *s = state;
    cJSON *src = NULL;
    BLIPC_TRY(get_doc(s, ctx, id, "?_source_includes=path", found, &src));
    if (*found && path_out && path_cap) snprintf(path_out, path_cap, "%s", jstr(src, "path") ? jstr(src, "path") : "");
    cJSON_Delete(src);
    return BLIPC_OK;
}

static blipc_status os_set_path(void *state, blipc__index_ctx *ctx, const char *id, const char *newpath,
                                int64_t mtime) {
    blipc__os *s = state;
    if (s->read_only)
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "opensearch index %s: opened read-only", s->index);
    if (!blipc__is_sha256_hex(id))
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "opensearch: document id is not a sha256 hex");
    cJSON *b = cJSON_CreateObject();
    cJSON *doc = b ? cJSON_AddObjectToObject(b, "doc") : NULL;
    if (!doc) {
        cJSON_Delete(b);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
    }
    cJSON_AddStringToObject(doc, "path", newpath);
    cJSON_AddNumberToObject(doc, "mtime", (double)mtime);
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "/_update/");
    blipc__os_buf_str(&path, id);
    long status = 0;
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : json_request(s, ctx, "POST", path.data, b, &status);
    cJSON_Delete(b);
    blipc__os_buf_free(&path);
    if (st == BLIPC_OK && status == 404)
        return blipc__errf(&ctx->err, BLIPC_ERR_NOT_FOUND, "opensearch index %s: no document %.12s to move to %s",
                           s->index, id, newpath);
    if (st == BLIPC_OK && status != 200) {
        char what[300];
        snprintf(what, sizeof what, "updating the path of document %.12s in index %s", id, s->index);
        st = blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    return st;
}

static blipc_status os_del(void *state, blipc__index_ctx *ctx, const char *id) {
    blipc__os *s = state;
    if (s->read_only)
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "opensearch index %s: opened read-only", s->index);
    if (!blipc__is_sha256_hex(id))
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "opensearch: document id is not a sha256 hex");
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "/_doc/");
    blipc__os_buf_str(&path, id);
    long status = 0;
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : json_request(s, ctx, "DELETE", path.data, NULL, &status);
    blipc__os_buf_free(&path);
    if (st == BLIPC_OK && status != 200 && status != 404) {
        char what[300];
        snprintf(what, sizeof what, "deleting document %.12s from index %s", id, s->index);
        st = blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    return st;
}

static blipc_status os_count(void *state, blipc__index_ctx *ctx, uint64_t *n) {
    blipc__os *s = state;
    *n = 0;
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "/_count");
    long status = 0;
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : json_request(s, ctx, "GET", path.data, NULL, &status);
    blipc__os_buf_free(&path);
    if (st != BLIPC_OK) return st;
    if (status == 404 && !strcmp(error_type(s), "index_not_found_exception")) return BLIPC_OK;
    if (status != 200) {
        char what[300];
        snprintf(what, sizeof what, "counting documents of index %s", s->index);
        return blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    cJSON *j = NULL;
    BLIPC_TRY(blipc__os_parse_body(s->http, "_count", &j, &ctx->err));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "count");
    if (cJSON_IsNumber(c) && c->valuedouble >= 0) *n = (uint64_t)c->valuedouble;
    else st = blipc__errf(&ctx->err, BLIPC_ERR_STORE, "opensearch: _count answer has no count");
    cJSON_Delete(j);
    return st;
}

static blipc_status os_flush(void *state, blipc__index_ctx *ctx) {
    blipc__os *s = state;
    if (!s->index_ready) return BLIPC_OK;
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "/_refresh");
    long status = 0;
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : json_request(s, ctx, "POST", path.data, NULL, &status);
    blipc__os_buf_free(&path);
    if (st == BLIPC_OK && status != 200) {
        char what[300];
        snprintf(what, sizeof what, "refreshing index %s", s->index);
        st = blipc__os_http_error(s->http, status, what, &ctx->err);
    }
    return st;
}

/* ------------------------------------------------------------ open / close */

static void os_close(void *state) {
    blipc__os *s = state;
    if (!s) return;
    blipc__os_http_close(s->http);
    free(s->index);
    free(s->space_type);
    free(s->ingest_pipeline);
    free(s->model_id);
    free(s->search_pipeline);
    blipc__os_buf_free(&s->body);
    free(s);
}

static const blipc__index_backend_ops os_ops = {
    .name = "opensearch",
    .close = os_close,
    .put = blipc__os_put,
    .flush = os_flush,
    .get = os_get,
    .has = os_has,
    .set_path = os_set_path,
    .del = os_del,
    .count = os_count,
    .search = os_search,
};

/* Credentials: the params, else OPENSEARCH_USER / OPENSEARCH_PASSWORD. */
static void http_params(const blipc_index_params *p, blipc__os_http_params *hp) {
    memset(hp, 0, sizeof *hp);
    hp->url = p->url;
    hp->user = p->user;
    hp->password = p->password;
    if (!hp->user) {
        const char *u = getenv("OPENSEARCH_USER");
        if (u && *u) hp->user = u;
    }
    if (hp->user && !hp->password) hp->password = getenv("OPENSEARCH_PASSWORD");
    hp->cacert = p->cacert;
    hp->insecure = p->insecure;
    hp->aws_sigv4 = p->aws_sigv4;
    hp->timeout_ms = p->timeout_ms;
    hp->max_retries = p->max_retries;
    hp->retry_base_ms = p->retry_base_ms;
    hp->retry_max_ms = p->retry_max_ms;
    hp->seed = p->retry_seed;
}

static const char *known_space(const char *st) {
    static const char *ok[] = {"cosinesimil", "l2", "innerproduct", "l1", "linf", NULL};
    for (int i = 0; ok[i]; i++)
        if (!strcmp(ok[i], st)) return ok[i];
    return NULL;
}

blipc_status blipc__opensearch_open(const blipc_index_params *p, blipc__index_ctx *ctx,
                                    const blipc__index_backend_ops **ops, void **state) {
    *ops = NULL;
    *state = NULL;
    const char *name = p->index_name ? p->index_name : "blipc-images";
    if (!valid_index_name(name))
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "opensearch: index name \"%s\" is not valid (lowercase, no spaces or \\/*?\"<>|,#:, not "
                           "starting with _ - +)",
                           name);
    const char *space = p->space_type ? p->space_type : "cosinesimil";
    if (!known_space(space))
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "opensearch: space_type \"%s\" is not one of cosinesimil, l2, innerproduct, l1, linf",
                           space);
    if (p->ingest_pipeline && (!p->model_id || !p->model_id[0]))
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "opensearch: ingest pipeline %s needs a model id (--model-id, see blipc-index "
                           "--register-model)",
                           p->ingest_pipeline);
    const char *sp = p->search_pipeline ? p->search_pipeline : "blipc-hybrid";
    if ((p->ingest_pipeline && !url_safe(p->ingest_pipeline)) || !url_safe(sp) ||
        (p->model_id && !url_safe(p->model_id)))
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG,
                           "opensearch: pipeline names and model ids may only use letters, digits, - _ and .");
    blipc__os *s = calloc(1, sizeof *s);
    if (!s) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
    s->index = blipc__strdup(name);
    s->space_type = blipc__strdup(space);
    s->search_pipeline = blipc__strdup(sp);
    s->ingest_pipeline = p->ingest_pipeline ? blipc__strdup(p->ingest_pipeline) : NULL;
    s->model_id = p->model_id && p->model_id[0] ? blipc__strdup(p->model_id) : NULL;
    s->read_only = p->read_only;
    s->gzip = p->gzip;
    s->bulk_max_docs = p->bulk_max_docs > 0 ? p->bulk_max_docs : 500;
    s->bulk_max_bytes = p->bulk_max_bytes ? p->bulk_max_bytes : (size_t)5 << 20;
    s->hyb_wt = -1;
    if (!s->index || !s->space_type || !s->search_pipeline || (p->ingest_pipeline && !s->ingest_pipeline) ||
        (p->model_id && p->model_id[0] && !s->model_id)) {
        os_close(s);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
    }
    blipc__os_http_params hp;
    http_params(p, &hp);
    blipc_status st = blipc__os_http_open(&hp, &ctx->log, &s->http, &ctx->err);
    /* create the index now when the dimension is known, else check an existing one */
    if (st == BLIPC_OK) st = blipc__os_ensure_index(s, ctx, p->dim, p->dim > 0 || s->ingest_pipeline != NULL);
    if (st != BLIPC_OK) {
        os_close(s);
        return st;
    }
    *ops = &os_ops;
    *state = s;
    return BLIPC_OK;
}

/* ------------------------------------------------------------ ML Commons */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The task's error is a JSON *string*: sometimes plain text, sometimes a JSON
 * object (node id -> message) serialised into it. Flatten both. */
static void task_error_text(const cJSON *err, char *buf, size_t cap) {
    buf[0] = 0;
    if (!cJSON_IsString(err)) {
        snprintf(buf, cap, "no error message given");
        return;
    }
    cJSON *inner = cJSON_Parse(err->valuestring);
    if (cJSON_IsObject(inner) && inner->child) {
        size_t n = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, inner) {
            if (n + 1 >= cap) break;
            n += (size_t)snprintf(buf + n, cap - n, "%snode %s: %s", n ? "; " : "", x->string ? x->string : "?",
                                  cJSON_IsString(x) ? x->valuestring : "?");
        }
    } else {
        snprintf(buf, cap, "%s", err->valuestring);
    }
    cJSON_Delete(inner);
}

/* Poll a task until it ends; returns the model id (copied into out). */
static blipc_status poll_task(blipc__os_http *h, const blipc_logger *lg, const char *task_id, const char *what,
                              int timeout_ms, int base_ms, char *model_id, size_t cap, blipc_err *e) {
    char path[256];
    snprintf(path, sizeof path, "/_plugins/_ml/tasks/%s", task_id);
    double deadline = now_ms() + (double)timeout_ms;
    long wait = base_ms > 0 ? base_ms : 100;
    char last_state[32] = "";
    for (;;) {
        blipc__os_req rq = {.method = "GET", .path = path, .idempotent = 1};
        long status = 0;
        BLIPC_TRY(blipc__os_request(h, &rq, &status, e));
        if (status != 200) {
            char w[300];
            snprintf(w, sizeof w, "%s: polling task %s", what, task_id);
            return blipc__os_http_error(h, status, w, e);
        }
        cJSON *j = NULL;
        BLIPC_TRY(blipc__os_parse_body(h, "ML task", &j, e));
        const char *state = jstr(j, "state");
        if (!state) {
            cJSON_Delete(j);
            return blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: %s: task %s has no state", blipc__os_http_base(h),
                               what, task_id);
        }
        if (strcmp(state, last_state)) {
            blipc__logf(lg, BLIPC_LOG_INFO, "opensearch: %s: task %s is %s", what, task_id, state);
            snprintf(last_state, sizeof last_state, "%s", state);
        }
        if (!strcmp(state, "COMPLETED") || !strcmp(state, "COMPLETED_WITH_ERROR")) {
            const char *mid = jstr(j, "model_id");
            blipc_status st = BLIPC_OK;
            if (!strcmp(state, "COMPLETED_WITH_ERROR")) {
                char msg[600];
                task_error_text(cJSON_GetObjectItemCaseSensitive(j, "error"), msg, sizeof msg);
                blipc__logf(lg, BLIPC_LOG_WARN, "opensearch: %s: completed with errors on some nodes: %s", what, msg);
            }
            if (model_id && cap) {
                if (!mid)
                    st = blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: %s: task %s completed without a model_id",
                                     blipc__os_http_base(h), what, task_id);
                else if (strlen(mid) >= cap)
                    st = blipc__errf(e, BLIPC_ERR_BUFFER_TOO_SMALL, "opensearch: model id %s does not fit", mid);
                else
                    snprintf(model_id, cap, "%s", mid);
            }
            cJSON_Delete(j);
            return st;
        }
        if (!strcmp(state, "FAILED") || !strcmp(state, "CANCELLED") || !strcmp(state, "CANCELLING") ||
            !strcmp(state, "EXPIRED")) {
            char msg[700];
            task_error_text(cJSON_GetObjectItemCaseSensitive(j, "error"), msg, sizeof msg);
            blipc_status st = blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: %s: task %s %s: %s",
                                          blipc__os_http_base(h), what, task_id, state, msg);
            cJSON_Delete(j);
            return st;
        }
        if (strcmp(state, "CREATED") && strcmp(state, "RUNNING"))
            blipc__logf(lg, BLIPC_LOG_WARN, "opensearch: %s: unknown task state %s, still waiting", what, state);
        cJSON_Delete(j); /* `state` points into j */
        if (now_ms() + (double)wait > deadline)
            return blipc__errf(e, BLIPC_ERR_ABORTED,
                               "opensearch %s: %s: task %s still %s after %d s (see GET /_plugins/_ml/tasks/%s)",
                               blipc__os_http_base(h), what, task_id, last_state, timeout_ms / 1000, task_id);
        sleep_ms(wait);
        if (wait < 5000) wait = wait * 3 / 2 + 1;
    }
}

static blipc_status start_task(blipc__os_http *h, const char *path, const char *body, const char *what,
                               char *task_id, size_t cap, blipc_err *e) {
    /* not idempotent: a resend could register the model twice */
    blipc__os_req rq = {.method = "POST", .path = path, .body = body, .body_len = body ? strlen(body) : 0};
    long status = 0;
    BLIPC_TRY(blipc__os_request(h, &rq, &status, e));
    if (status != 200) return blipc__os_http_error(h, status, what, e);
    cJSON *j = NULL;
    BLIPC_TRY(blipc__os_parse_body(h, what, &j, e));
    const char *tid = jstr(j, "task_id");
    blipc_status st = BLIPC_OK;
    if (!tid || !url_safe(tid) || strlen(tid) >= cap)
        st = blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: %s: the answer has no usable task_id",
                         blipc__os_http_base(h), what);
    else
        snprintf(task_id, cap, "%s", tid);
    cJSON_Delete(j);
    return st;
}

blipc_status blipc__opensearch_register_model(const blipc_index_params *p, const char *model_name,
                                              const char *version, const char *format, char *model_id_out,
                                              size_t model_id_cap, blipc_err *e) {
    if (!model_id_out || !model_id_cap)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "register model: no buffer for the model id");
    model_id_out[0] = 0;
    if (!model_name) model_name = "huggingface/sentence-transformers/all-MiniLM-L12-v2";
    if (!version) version = "1.0.1";
    if (!format) format = "TORCH_SCRIPT";
    blipc__os_http_params hp;
    http_params(p, &hp);
    blipc_logger lg = {p->log_fn, p->log_user};
    blipc__os_http *h = NULL;
    BLIPC_TRY(blipc__os_http_open(&hp, &lg, &h, e));
    cJSON *b = cJSON_CreateObject();
    char *body = NULL;
    if (b) {
        cJSON_AddStringToObject(b, "name", model_name);
        cJSON_AddStringToObject(b, "version", version);
        cJSON_AddStringToObject(b, "model_format", format);
        body = cJSON_PrintUnformatted(b);
        cJSON_Delete(b);
    }
    if (!body) {
        blipc__os_http_close(h);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "register model: out of memory");
    }
    /* model download + deploy can take minutes: poll up to 10 request timeouts */
    int poll_ms = p->timeout_ms > 0 ? (p->timeout_ms > 214748364 ? 2147483647 : p->timeout_ms * 10) : 600000;
    char task[128], what[400], mid[256], path[400];
    snprintf(what, sizeof what, "registering model %s %s (%s)", model_name, version, format);
    blipc__logf(&lg, BLIPC_LOG_INFO, "opensearch %s: %s", p->url, what);
    blipc_status st = start_task(h, "/_plugins/_ml/models/_register", body, what, task, sizeof task, e);
    free(body);
    if (st == BLIPC_OK) st = poll_task(h, &lg, task, what, poll_ms, p->retry_base_ms, mid, sizeof mid, e);
    if (st == BLIPC_OK && !url_safe(mid))
        st = blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: registering: odd model id \"%s\"", p->url, mid);
    if (st == BLIPC_OK) {
        snprintf(what, sizeof what, "deploying model %s", mid);
        blipc__logf(&lg, BLIPC_LOG_INFO, "opensearch %s: %s", p->url, what);
        snprintf(path, sizeof path, "/_plugins/_ml/models/%s/_deploy", mid);
        st = start_task(h, path, NULL, what, task, sizeof task, e);
        if (st == BLIPC_OK) st = poll_task(h, &lg, task, what, poll_ms, p->retry_base_ms, NULL, 0, e);
    }
    if (st == BLIPC_OK) {
        if (strlen(mid) >= model_id_cap)
            st = blipc__errf(e, BLIPC_ERR_BUFFER_TOO_SMALL, "register model: model id %s needs %zu bytes", mid,
                             strlen(mid) + 1);
        else
            snprintf(model_id_out, model_id_cap, "%s", mid);
    }
    blipc__os_http_close(h);
    return st;
}
