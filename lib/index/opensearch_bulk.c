/* opensearch_bulk.c — _bulk writes of the OpenSearch backend.
 *
 * Documents go out as NDJSON `index` actions with the content sha256 as _id,
 * so a resent action overwrites the same document: whatever the faults, each
 * image ends up indexed exactly once. Batches are cut by document count and
 * body bytes, gzipped, and sent over the handle's keep-alive connection.
 * Retries:
 *  - whole request on 429/502/503/504 and connection errors (opensearch_http.c);
 *  - 413 (body over http.max_content_length): the batch is split in halves;
 *  - per item: 429 / rejected_execution_exception / es_rejected_execution_exception
 *    and 5xx items are resent in the next round after a backoff, at most
 *    max_retries rounds;
 *  - anything else (mapper_parsing_exception, ...) fails that document with
 *    OpenSearch's reason.
 * A document is reported OK only when its item says 200/201. */
#include "opensearch_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ NDJSON */

static void write_doc(const blipc__os *s, blipc__os_buf *b, const blipc_index_doc *d) {
    blipc__os_buf_str(b, "{\"index\":{\"_id\":");
    blipc__os_buf_json_str(b, d->id);
    blipc__os_buf_str(b, "}}\n{\"id\":");
    blipc__os_buf_json_str(b, d->id);
    blipc__os_buf_str(b, ",\"path\":");
    blipc__os_buf_json_str(b, d->path);
    blipc__os_buf_str(b, ",\"image_description\":");
    blipc__os_buf_json_str(b, d->caption);
    if (d->vector && !s->ingest_pipeline) {
        blipc__os_buf_str(b, ",\"image_description_vector\":");
        blipc__os_buf_json_floats(b, d->vector, d->dim);
    }
    if (d->n_answers) {
        blipc__os_buf_str(b, ",\"answers\":[");
        for (size_t i = 0; i < d->n_answers; i++) {
            blipc__os_buf_str(b, i ? ",{\"question\":" : "{\"question\":");
            blipc__os_buf_json_str(b, d->questions[i]);
            blipc__os_buf_str(b, ",\"answer\":");
            blipc__os_buf_json_str(b, d->answers[i]);
            blipc__os_buf_str(b, "}");
        }
        blipc__os_buf_str(b, "]");
        /* each answer also as its own field; a repeated field name would make
         * the whole document invalid JSON for OpenSearch, so the first wins */
        for (size_t i = 0; i < d->n_answers; i++) {
            char f[96], g[96];
            if (blipc_index_answer_field(d->questions[i], f, sizeof f) != BLIPC_OK) continue;
            int dup = 0;
            for (size_t j = 0; j < i && !dup; j++)
                dup = blipc_index_answer_field(d->questions[j], g, sizeof g) == BLIPC_OK && !strcmp(f, g);
            if (dup) continue;
            blipc__os_buf_str(b, ",");
            blipc__os_buf_json_str(b, f);
            blipc__os_buf_str(b, ":");
            blipc__os_buf_json_str(b, d->answers[i]);
        }
    }
    if (d->width > 0) blipc__os_buf_printf(b, ",\"width\":%d", d->width);
    if (d->height > 0) blipc__os_buf_printf(b, ",\"height\":%d", d->height);
    blipc__os_buf_printf(b, ",\"mtime\":%lld,\"size\":%lld", (long long)d->mtime, (long long)d->size);
    if (d->caption_model) {
        blipc__os_buf_str(b, ",\"caption_model\":");
        blipc__os_buf_json_str(b, d->caption_model);
    }
    if (d->embed_model) {
        blipc__os_buf_str(b, ",\"embed_model\":");
        blipc__os_buf_json_str(b, d->embed_model);
    }
    blipc__os_buf_str(b, "}\n");
}

/* ------------------------------------------------------------ one request */

typedef struct bulk_run {
    blipc__os *s;
    blipc__index_ctx *ctx;
    const blipc_index_doc *docs;
    size_t *retry;              /* docs to resend next round */
    size_t n_retry;
    char last_retry_reason[512];
} bulk_run;

static int item_retryable(long status, const char *etype) {
    if (status == 429 || status == 502 || status == 503 || status == 504) return 1;
    return etype && (strstr(etype, "rejected_execution_exception") != NULL ||
                     !strcmp(etype, "circuit_breaking_exception"));
}

/* Build the body for idx[0..m) into s->body (all m documents). */
static blipc_status build_body(bulk_run *r, const size_t *idx, size_t m) {
    blipc__os_buf_reset(&r->s->body);
    for (size_t i = 0; i < m; i++) write_doc(r->s, &r->s->body, &r->docs[idx[i]]);
    if (r->s->body.oom)
        return blipc__errf(&r->ctx->err, BLIPC_ERR_NOMEM, "opensearch index %s: out of memory building a _bulk body",
                           r->s->index);
    return BLIPC_OK;
}

static blipc_status send_range(bulk_run *r, const size_t *idx, size_t m);

static blipc_status handle_items(bulk_run *r, const size_t *idx, size_t m) {
    blipc__os *s = r->s;
    blipc__index_ctx *ctx = r->ctx;
    cJSON *j = NULL;
    BLIPC_TRY(blipc__os_parse_body(s->http, "_bulk", &j, &ctx->err));
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    if (!cJSON_IsArray(items) || (size_t)cJSON_GetArraySize(items) != m) {
        cJSON_Delete(j);
        return blipc__errf(&ctx->err, BLIPC_ERR_STORE,
                           "opensearch %s: _bulk on index %s: the answer has %d items for %zu actions",
                           blipc__os_http_base(s->http), s->index, cJSON_IsArray(items) ? cJSON_GetArraySize(items) : -1,
                           m);
    }
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items) {
        size_t k = idx[i++];
        const blipc_index_doc *d = &r->docs[k];
        const cJSON *res = it->child;
        const cJSON *st = res ? cJSON_GetObjectItemCaseSensitive(res, "status") : NULL;
        const cJSON *id = res ? cJSON_GetObjectItemCaseSensitive(res, "_id") : NULL;
        const cJSON *err = res ? cJSON_GetObjectItemCaseSensitive(res, "error") : NULL;
        if (!cJSON_IsNumber(st) || !res->string || strcmp(res->string, "index") ||
            (cJSON_IsString(id) && strcmp(id->valuestring, d->id))) {
            blipc__index_set_result(ctx, k, BLIPC_ERR_STORE,
                                    "opensearch: malformed _bulk answer item (no status, or another _id)");
            continue;
        }
        long status = (long)st->valuedouble;
        if ((status == 200 || status == 201) && !err) {
            blipc__index_set_result(ctx, k, BLIPC_OK, NULL);
            continue;
        }
        char reason[512];
        if (err)
            blipc__os_cause_text(err, reason, sizeof reason);
        else
            snprintf(reason, sizeof reason, "status %ld", status);
        const cJSON *etype = cJSON_GetObjectItemCaseSensitive(err, "type");
        if (item_retryable(status, cJSON_IsString(etype) ? etype->valuestring : NULL)) {
            r->retry[r->n_retry++] = k;
            snprintf(r->last_retry_reason, sizeof r->last_retry_reason, "%ld %.480s", status, reason);
            continue;
        }
        char msg[700];
        snprintf(msg, sizeof msg, "%s (status %ld)", reason, status);
        blipc__index_set_result(ctx, k, status == 401 || status == 403 ? BLIPC_ERR_AUTH : BLIPC_ERR_STORE, msg);
        blipc__logf(&ctx->log, BLIPC_LOG_WARN, "opensearch index %s: %s: %s", s->index, d->path, msg);
    }
    cJSON_Delete(j);
    return BLIPC_OK;
}

/* Send idx[0..m) (body already built when prebuilt != 0). */
static blipc_status send_built(bulk_run *r, const size_t *idx, size_t m) {
    blipc__os *s = r->s;
    blipc__index_ctx *ctx = r->ctx;
    blipc__os_buf path = {0};
    /* client-side vectors: `_none` keeps an index default_pipeline from re-embedding */
    blipc__os_path(s, &path, s->ingest_pipeline ? "/_bulk" : "/_bulk?pipeline=_none");
    if (path.oom) return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch: out of memory");
    blipc__os_req rq = {.method = "POST", .path = path.data, .body = s->body.data, .body_len = s->body.len,
                        .content_type = "application/x-ndjson", .gzip = s->gzip, .idempotent = 1};
    long status = 0;
    s->bulk_requests++;
    blipc_status st = blipc__os_request(s->http, &rq, &status, &ctx->err);
    blipc__os_buf_free(&path);
    if (st != BLIPC_OK) return st;
    if (status == 200) return handle_items(r, idx, m);
    if (status == 413) {
        if (m == 1) {
            char msg[300];
            snprintf(msg, sizeof msg,
                     "opensearch: the document alone (%zu bytes) is over the cluster's http.max_content_length "
                     "(413)", s->body.len);
            blipc__index_set_result(ctx, idx[0], BLIPC_ERR_LIMIT, msg);
            return BLIPC_OK;
        }
        s->bulk_splits++;
        blipc__logf(&ctx->log, BLIPC_LOG_INFO, "opensearch index %s: _bulk of %zu documents too large (413): splitting",
                    s->index, m);
        size_t h = m / 2;
        BLIPC_TRY(send_range(r, idx, h));
        return send_range(r, idx + h, m - h);
    }
    char what[300];
    snprintf(what, sizeof what, "_bulk of %zu documents into index %s", m, s->index);
    return blipc__os_http_error(s->http, status, what, &ctx->err);
}

static blipc_status send_range(bulk_run *r, const size_t *idx, size_t m) {
    BLIPC_TRY(build_body(r, idx, m));
    return send_built(r, idx, m);
}

/* ------------------------------------------------------------ stale paths */

/* After documents were indexed: remove documents that were stored under the
 * same path with another id (the file's content changed). Best effort: a
 * failure is logged, the new documents stay indexed. */
static void remove_stale(blipc__os *s, blipc__index_ctx *ctx, const blipc_index_doc *docs, const size_t *ok, size_t m) {
    if (!m) return;
    cJSON *q = cJSON_CreateObject();
    cJSON *terms = NULL, *arr = NULL;
    if (q) {
        cJSON_AddNumberToObject(q, "size", (double)(m * 4 < 10000 ? m * 4 : 10000));
        cJSON *src = cJSON_AddArrayToObject(q, "_source");
        if (src) cJSON_AddItemToArray(src, cJSON_CreateString("path"));
        cJSON *query = cJSON_AddObjectToObject(q, "query");
        terms = query ? cJSON_AddObjectToObject(query, "terms") : NULL;
        arr = terms ? cJSON_AddArrayToObject(terms, "path") : NULL;
        for (size_t i = 0; arr && i < m; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(docs[ok[i]].path));
    }
    char *body = arr ? cJSON_PrintUnformatted(q) : NULL;
    cJSON_Delete(q);
    if (!body) return;
    blipc__os_buf path = {0};
    blipc__os_path(s, &path, "/_search");
    blipc__os_req rq = {.method = "POST", .path = path.data, .body = body, .body_len = strlen(body), .idempotent = 1};
    long status = 0;
    blipc_err e;
    blipc__err_clear(&e);
    blipc_status st = path.oom ? BLIPC_ERR_NOMEM : blipc__os_request(s->http, &rq, &status, &e);
    free(body);
    blipc__os_buf_free(&path);
    if (st != BLIPC_OK || status != 200) return;
    cJSON *j = NULL;
    if (blipc__os_parse_body(s->http, "_search", &j, &e) != BLIPC_OK) return;
    const cJSON *hits = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "hits"), "hits");
    blipc__os_buf del = {0};
    size_t n_del = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, hits) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(h, "_id");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(h, "_source"), "path");
        if (!cJSON_IsString(id) || !cJSON_IsString(p)) continue;
        int stale = 0, keep = 0;
        for (size_t i = 0; i < m; i++) {
            if (!strcmp(docs[ok[i]].id, id->valuestring)) keep = 1;
            else if (!strcmp(docs[ok[i]].path, p->valuestring)) stale = 1;
        }
        if (stale && !keep) {
            blipc__os_buf_str(&del, "{\"delete\":{\"_id\":");
            blipc__os_buf_json_str(&del, id->valuestring);
            blipc__os_buf_str(&del, "}}\n");
            n_del++;
            blipc__logf(&ctx->log, BLIPC_LOG_INFO, "opensearch index %s: %s changed: removing old document %.12s",
                        s->index, p->valuestring, id->valuestring);
        }
    }
    cJSON_Delete(j);
    if (n_del && !del.oom) {
        blipc__os_buf_free(&path);
        blipc__os_path(s, &path, "/_bulk");
        blipc__os_req dr = {.method = "POST", .path = path.data, .body = del.data, .body_len = del.len,
                            .content_type = "application/x-ndjson", .idempotent = 1};
        if (!path.oom && blipc__os_request(s->http, &dr, &status, &e) == BLIPC_OK && status == 200) {
            /* per-item 200/404 are both fine */
        } else {
            blipc__logf(&ctx->log, BLIPC_LOG_WARN, "opensearch index %s: could not remove %zu stale document(s): %s",
                        s->index, n_del, e.msg[0] ? e.msg : "unexpected answer");
        }
        blipc__os_buf_free(&path);
    }
    blipc__os_buf_free(&del);
}

/* ------------------------------------------------------------ put */

blipc_status blipc__os_put(void *state, blipc__index_ctx *ctx, const blipc_index_doc *docs, size_t n) {
    blipc__os *s = state;
    if (s->read_only)
        return blipc__errf(&ctx->err, BLIPC_ERR_INVALID_ARG, "opensearch index %s: opened read-only", s->index);
    if (!s->index_ready) {
        int dim = ctx->dim;
        for (size_t i = 0; i < n && dim <= 0; i++)
            if (docs[i].vector) dim = docs[i].dim;
        BLIPC_TRY(blipc__os_ensure_index(s, ctx, dim, 1));
    }
    size_t *pending = malloc(n * sizeof *pending);
    size_t *retry = malloc(n * sizeof *retry);
    size_t *ok = malloc(n * sizeof *ok);
    if (!pending || !retry || !ok) {
        free(pending);
        free(retry);
        free(ok);
        return blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch index %s: out of memory for %zu documents",
                           s->index, n);
    }
    for (size_t i = 0; i < n; i++) pending[i] = i;
    size_t n_pending = n;
    bulk_run r = {.s = s, .ctx = ctx, .docs = docs, .retry = retry};
    blipc_status st = BLIPC_OK;
    int max_rounds = blipc__os_max_retries(s->http);
    for (int round = 0;; round++) {
        r.n_retry = 0;
        size_t pos = 0;
        while (pos < n_pending && st == BLIPC_OK) {
            /* cut a batch by count and bytes (at least one document) */
            blipc__os_buf_reset(&s->body);
            size_t m = 0;
            while (pos + m < n_pending && m < (size_t)s->bulk_max_docs) {
                size_t before = s->body.len;
                write_doc(s, &s->body, &docs[pending[pos + m]]);
                if (m > 0 && s->body.len > s->bulk_max_bytes) {
                    s->body.len = before;
                    s->body.data[before] = 0;
                    break;
                }
                m++;
            }
            if (s->body.oom) {
                st = blipc__errf(&ctx->err, BLIPC_ERR_NOMEM, "opensearch index %s: out of memory building a _bulk body",
                                 s->index);
                break;
            }
            st = send_built(&r, pending + pos, m);
            pos += m;
        }
        if (st != BLIPC_OK || r.n_retry == 0) break;
        if (round >= max_rounds) {
            char msg[700];
            snprintf(msg, sizeof msg, "opensearch: still rejected after %d attempts: %s", round + 1,
                     r.last_retry_reason);
            for (size_t i = 0; i < r.n_retry; i++) blipc__index_set_result(ctx, r.retry[i], BLIPC_ERR_STORE, msg);
            break;
        }
        s->bulk_item_retries += r.n_retry;
        blipc__logf(&ctx->log, BLIPC_LOG_INFO, "opensearch index %s: %zu document(s) rejected (%s): retrying (%d/%d)",
                    s->index, r.n_retry, r.last_retry_reason, round + 1, max_rounds);
        blipc__os_backoff(s->http, round);
        memcpy(pending, r.retry, r.n_retry * sizeof *pending);
        n_pending = r.n_retry;
    }
    if (st == BLIPC_OK) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (ctx->res_status[i] == BLIPC_OK) ok[m++] = i;
        remove_stale(s, ctx, docs, ok, m);
    }
    free(pending);
    free(retry);
    free(ok);
    return st;
}
