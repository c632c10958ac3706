/* opensearch_mapping.c — the OpenSearch index: its mapping (created, or an
 * existing one checked and extended), the ingest pipeline and
 * index.default_pipeline for server-side embeddings. See docs/opensearch.md. */
#include "opensearch_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    cJSON_AddItemToObject(p, BLIPC__OS_VEC_FIELD, v);
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
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_json_request(s, ctx, "GET", path.data, NULL, &status);
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
    const cJSON *vec = cJSON_GetObjectItemCaseSensitive(props, BLIPC__OS_VEC_FIELD);
    if (vec) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(vec, "dimension");
        if (strcmp(prop_type(vec), "knn_vector")) {
            st = blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                             "opensearch %s: index %s exists with an incompatible mapping: field " BLIPC__OS_VEC_FIELD
                             " is of type %s, not knn_vector (use another --index, or delete the index)",
                             base, s->index, prop_type(vec));
        } else if (!cJSON_IsNumber(d)) {
            st = blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                             "opensearch %s: index %s: field " BLIPC__OS_VEC_FIELD " has no dimension", base, s->index);
        } else if (dim > 0 && (int)d->valuedouble != dim) {
            st = blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                             "opensearch %s: index %s exists with an incompatible mapping: field " BLIPC__OS_VEC_FIELD
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
        } else if (strcmp(f->string, BLIPC__OS_VEC_FIELD) || dim > 0) {
            cJSON_AddItemToObject(missing, f->string, cJSON_DetachItemViaPointer(ours, f));
        }
        f = next;
    }
    if (st == BLIPC_OK && missing->child) {
        if (s->read_only) {
            if (!cJSON_GetObjectItemCaseSensitive(props, BLIPC__OS_VEC_FIELD))
                blipc__logf(&ctx->log, BLIPC_LOG_WARN, "opensearch index %s has no " BLIPC__OS_VEC_FIELD " field yet",
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
                st = blipc__os_json_request(s, ctx, "PUT", path.data, body, &status);
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
    cJSON_AddStringToObject(b, "description", "libblipc: embeds image_description into " BLIPC__OS_VEC_FIELD);
    cJSON_AddStringToObject(te, "model_id", s->model_id);
    cJSON_AddStringToObject(fm, "image_description", BLIPC__OS_VEC_FIELD);
    cJSON_AddItemToArray(procs, p);
    char path[512];
    snprintf(path, sizeof path, "/_ingest/pipeline/%s", s->ingest_pipeline);
    long status = 0;
    blipc_status st = blipc__os_json_request(s, ctx, "PUT", path, b, &status);
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
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_json_request(s, ctx, "PUT", path.data, b, &status);
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
        else st = blipc__os_json_request(s, ctx, "PUT", path.data, b, &status);
        cJSON_Delete(b);
        if (st == BLIPC_OK && status == 200) {
            blipc__logf(&ctx->log, BLIPC_LOG_INFO, "opensearch %s: created index %s (knn_vector %d, %s)", base,
                        s->index, dim, s->space_type);
            s->index_was_new = 1;
            ctx->dim = dim;
        } else if (st == BLIPC_OK && status == 400 &&
                   !strcmp(blipc__os_error_type(s), "resource_already_exists_exception")) {
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
