/* opensearch_ml.c — ML Commons tasks (model register / deploy, for
 * server-side embeddings through an ingest pipeline): start one, poll it until
 * it ends. blipc__opensearch_register_model (opensearch.c) drives them. */
#include "opensearch_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
blipc_status blipc__os_ml_poll_task(blipc__os_http *h, const blipc_logger *lg, const char *task_id, const char *what,
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
        const char *state = blipc__os_jstr(j, "state");
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
            const char *mid = blipc__os_jstr(j, "model_id");
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

blipc_status blipc__os_ml_start_task(blipc__os_http *h, const char *path, const char *body, const char *what,
                                     char *task_id, size_t cap, blipc_err *e) {
    /* not idempotent: a resend could register the model twice */
    blipc__os_req rq = {.method = "POST", .path = path, .body = body, .body_len = body ? strlen(body) : 0};
    long status = 0;
    BLIPC_TRY(blipc__os_request(h, &rq, &status, e));
    if (status != 200) return blipc__os_http_error(h, status, what, e);
    cJSON *j = NULL;
    BLIPC_TRY(blipc__os_parse_body(h, what, &j, e));
    const char *tid = blipc__os_jstr(j, "task_id");
    blipc_status st = BLIPC_OK;
    if (!tid || !blipc__os_url_safe(tid) || strlen(tid) >= cap)
        st = blipc__errf(e, BLIPC_ERR_STORE, "opensearch %s: %s: the answer has no usable task_id",
                         blipc__os_http_base(h), what);
    else
        snprintf(task_id, cap, "%s", tid);
    cJSON_Delete(j);
    return st;
}
