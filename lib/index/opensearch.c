/* opensearch.c — the OpenSearch backend of libblipc-index: open/close, the
 * helpers its files share, and document lookups (get/has/set_path/delete/
 * count/flush). Index creation, mapping checks and the ingest pipeline:
 * opensearch_mapping.c; k-NN / text / hybrid / neural search:
 * opensearch_search.c; ML Commons model registration (its tasks:
 * opensearch_ml.c).
 * HTTP transport: opensearch_http.c; _bulk writes: opensearch_bulk.c.
 * Setup and cluster notes: docs/opensearch.md. */
#include "opensearch_internal.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
int blipc__os_url_safe(const char *n) {
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
blipc_status blipc__os_json_request(blipc__os *s, blipc__index_ctx *ctx, const char *method, const char *path,
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

const char *blipc__os_error_type(blipc__os *s) {
    static const char *known[] = {"resource_already_exists_exception", "index_not_found_exception", NULL};
    size_t len;
    const char *b = blipc__os_http_body(s->http, &len);
    for (int i = 0; known[i]; i++)
        if (strstr(b, known[i])) return known[i];
    return "";
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
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_json_request(s, ctx, "GET", path.data, NULL, &status);
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

const char *blipc__os_jstr(const cJSON *o, const char *k) {
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
    d.path = blipc__os_jstr(src, "path") ? blipc__os_jstr(src, "path") : "";
    d.caption = blipc__os_jstr(src, "image_description") ? blipc__os_jstr(src, "image_description") : "";
    d.width = (int)jnum(src, "width");
    d.height = (int)jnum(src, "height");
    d.mtime = (int64_t)jnum(src, "mtime");
    d.size = (int64_t)jnum(src, "size");
    d.caption_model = blipc__os_jstr(src, "caption_model");
    d.embed_model = blipc__os_jstr(src, "embed_model");
    const cJSON *vec = cJSON_GetObjectItemCaseSensitive(src, BLIPC__OS_VEC_FIELD);
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
            qs[i] = blipc__os_jstr(x, "question") ? blipc__os_jstr(x, "question") : "";
            as[i] = blipc__os_jstr(x, "answer") ? blipc__os_jstr(x, "answer") : "";
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
    if (*found && path_out && path_cap)
        snprintf(path_out, path_cap, "%s", blipc__os_jstr(src, "path") ? blipc__os_jstr(src, "path") : "");
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
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_json_request(s, ctx, "POST", path.data, b, &status);
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
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_json_request(s, ctx, "DELETE", path.data, NULL, &status);
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
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_json_request(s, ctx, "GET", path.data, NULL, &status);
    blipc__os_buf_free(&path);
    if (st != BLIPC_OK) return st;
    if (status == 404 && !strcmp(blipc__os_error_type(s), "index_not_found_exception")) return BLIPC_OK;
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
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_json_request(s, ctx, "POST", path.data, NULL, &status);
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
    .search = blipc__os_search,
};

/* Credentials: the params, else OPENSEARCH_USER / OPENSEARCH_PASSWORD. */
void blipc__os_http_params_from(const blipc_index_params *p, blipc__os_http_params *hp) {
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
    if ((p->ingest_pipeline && !blipc__os_url_safe(p->ingest_pipeline)) || !blipc__os_url_safe(sp) ||
        (p->model_id && !blipc__os_url_safe(p->model_id)))
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
    blipc__os_http_params_from(p, &hp);
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

/* ML Commons: register + deploy a model (tasks: opensearch_ml.c). Kept here,
 * beside blipc__opensearch_open: index.c references both weakly, and a static
 * link pulls in only this file for them. */
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
    blipc__os_http_params_from(p, &hp);
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
    blipc_status st = blipc__os_ml_start_task(h, "/_plugins/_ml/models/_register", body, what, task, sizeof task, e);
    free(body);
    if (st == BLIPC_OK) st = blipc__os_ml_poll_task(h, &lg, task, what, poll_ms, p->retry_base_ms, mid, sizeof mid, e);
    if (st == BLIPC_OK && !blipc__os_url_safe(mid))
        st = blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: registering: odd model id \"%s\"", p->url, mid);
    if (st == BLIPC_OK) {
        snprintf(what, sizeof what, "deploying model %s", mid);
        blipc__logf(&lg, BLIPC_LOG_INFO, "opensearch %s: %s", p->url, what);
        snprintf(path, sizeof path, "/_plugins/_ml/models/%s/_deploy", mid);
        st = blipc__os_ml_start_task(h, path, NULL, what, task, sizeof task, e);
        if (st == BLIPC_OK) st = blipc__os_ml_poll_task(h, &lg, task, what, poll_ms, p->retry_base_ms, NULL, 0, e);
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
