/* test_hub.c — libblipc-hub against a local Hub look-alike (tests/servers/hub_server.py) serving
 * the fixture models: cache layout, resolution without requests, offline mode, resumable and
 * verified downloads, fault injection (dropped connections, 500s, corrupt bytes, 401/403/404),
 * disk full, locks between processes, filesystems without symlinks. */
#include "harness.h"
#include "hub_internal.h"
#include "servers.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static th_server srv;
static char endpoint[64];
static char manifest[4096];

/* ------------------------------------------------------------------ server */

static int srv_start(void) {
    char script[4096], fixtures[4096];
    snprintf(script, sizeof script, "%s", th_testdata("../servers/hub_server.py"));
    snprintf(fixtures, sizeof fixtures, "%s", th_fixture(""));
    const char *args[] = {"--fixtures", fixtures, "--lifetime", "900", NULL};
    if (th_server_start(&srv, script, args) != 0) return -1;
    snprintf(endpoint, sizeof endpoint, "%s", srv.url);
    return 0;
}

static void srv_stop(void) { th_server_stop(&srv); }

static size_t sink(char *p, size_t s, size_t n, void *u) {
    char **buf = u;
    size_t old = *buf ? strlen(*buf) : 0;
    char *nb = realloc(*buf, old + s * n + 1);
    if (!nb) return 0;
    memcpy(nb + old, p, s * n);
    nb[old + s * n] = 0;
    *buf = nb;
    return s * n;
}

/* POST /_control (json) or GET path; returns the body (malloc'd) */
static char *srv_call(const char *path, const char *post) {
    CURL *c = curl_easy_init();
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s%s", endpoint, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    return body;
}

static void srv_control(const char *json) { free(srv_call("/_control", json)); }
static void srv_reset(void) { srv_control("{\"reset\": true}"); }

/* Requests in the log whose method matches (NULL = any) and path contains sub (NULL = any);
 * range_prefix (NULL = don't care, "" = no Range header) filters on the Range header. */
static int srv_count(const char *method, const char *sub, const char *range_prefix) {
    char *b = srv_call("/_requests", NULL);
    cJSON *j = cJSON_Parse(b ? b : "[]");
    free(b);
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const cJSON *m = cJSON_GetObjectItem(it, "method"), *p = cJSON_GetObjectItem(it, "path"),
                    *r = cJSON_GetObjectItem(it, "range");
        if (method && strcmp(m->valuestring, method)) continue;
        if (sub && !strstr(p->valuestring, sub)) continue;
        if (range_prefix && !*range_prefix && cJSON_IsString(r)) continue;
        if (range_prefix && *range_prefix && (!cJSON_IsString(r) || strncmp(r->valuestring, range_prefix, strlen(range_prefix))))
            continue;
        n++;
    }
    cJSON_Delete(j);
    return n;
}

/* requests whose path contains sub and that carried an Authorization header */
static int srv_count_auth(const char *sub) {
    char *b = srv_call("/_requests", NULL);
    cJSON *j = cJSON_Parse(b ? b : "[]");
    free(b);
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const cJSON *p = cJSON_GetObjectItem(it, "path"), *a = cJSON_GetObjectItem(it, "auth");
        if (strstr(p->valuestring, sub) && cJSON_IsString(a)) n++;
    }
    cJSON_Delete(j);
    return n;
}

/* ------------------------------------------------------------------ helpers */

static blipc_hub_params test_params(const char *cache) {
    blipc_hub_params p;
    blipc_hub_default_params(&p);
    p.endpoint = endpoint;
    p.cache_dir = cache;
    p.manifest_path = manifest;
    p.use_env = 0;
    p.token = "";
    p.retry_delay_ms = 5;
    p.max_retries = 3;
    return p;
}

static blipc_hub *open_hub(const blipc_hub_params *p) {
    blipc_hub *h = NULL;
    char err[512];
    blipc_status st = blipc_hub_open(p, &h, err, sizeof err);
    CHECK_STATUS(st, BLIPC_OK, err);
    return h;
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = th_read_file(a, &na), *y = th_read_file(b, &nb);
    int eq = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return eq;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int count_suffix(const char *dir, const char *suffix) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*%s' 2>/dev/null | wc -l", dir, suffix);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1) n = -1;
        pclose(f);
    }
    return n;
}

static const char *path2(const char *a, const char *b) {
    static char bufs[8][4096];
    static int k;
    char *r = bufs[k++ & 7], tmp[4096];
    snprintf(tmp, sizeof tmp, "%.2000s/%.2000s", a, b);
    memcpy(r, tmp, sizeof tmp);
    return r;
}

/* snapshot file -> its blob is verified against the etag (its blob name) */
static int blob_matches_name(const char *ptr) {
    char target[4096];
    ssize_t n = readlink(ptr, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    const char *etag = strrchr(target, '/') + 1;
    char hex[129];
    if (blipc__hub_hash_file(ptr, strlen(etag) == 40, hex, NULL) != BLIPC_OK) return 0;
    return !strcmp(hex, etag);
}

/* ------------------------------------------------------------------ tests */

TEST(spec_parsing) {
    blipc__hub_spec s;
    blipc_err e = {0};
    CHECK_STATUS(blipc__hub_parse_spec("Salesforce/blip2-opt-2.7b", &s, &e), BLIPC_OK, e.msg);
    CHECK(!strcmp(s.repo, "Salesforce/blip2-opt-2.7b") && !strcmp(s.rev, "main"));
    CHECK_STATUS(blipc__hub_parse_spec("sentence-transformers/all-MiniLM-L12-v2@refs/pr/3", &s, &e), BLIPC_OK, e.msg);
    CHECK(!strcmp(s.rev, "refs/pr/3"));
    CHECK_STATUS(blipc__hub_parse_spec("gpt2", &s, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(blipc__hub_parse_spec("a/b/c", &s, &e), BLIPC_ERR_INVALID_ARG, e.msg);
    CHECK_STATUS(blipc__hub_parse_spec("a--b/c", &s, &e), BLIPC_ERR_INVALID_ARG, e.msg);
    CHECK_STATUS(blipc__hub_parse_spec("org/na me", &s, &e), BLIPC_ERR_INVALID_ARG, e.msg);
    CHECK_STATUS(blipc__hub_parse_spec("org/name@../x", &s, &e), BLIPC_ERR_INVALID_ARG, e.msg);
    CHECK_STATUS(blipc__hub_parse_spec("org/name@", &s, &e), BLIPC_ERR_INVALID_ARG, e.msg);
    CHECK(blipc__hub_is_commit("5b4c07952fa99f9eec06e8d0bf64611f2f0b3192"));
    CHECK(!blipc__hub_is_commit("main"));
    CHECK(blipc__hub_safe_filename("1_Pooling/config.json"));
    CHECK(!blipc__hub_safe_filename("../x"));
    CHECK(!blipc__hub_safe_filename("a/../../x"));
    CHECK(!blipc__hub_safe_filename("/etc/passwd"));
}

TEST(default_params_and_env) {
    blipc_hub_params p;
    blipc_hub_default_params(&p);
    CHECK(p.allow_pull == 1 && p.use_env == 1 && p.symlinks == 1 && p.max_retries == 5);
    setenv("HF_HOME", "/nonexistent/hfhome", 1);
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HUB_OFFLINE", "1", 1);
    setenv("HF_ENDPOINT", "http://127.0.0.1:1/", 1);
    blipc_hub *h = open_hub(&p);
    if (h) {
        CHECK(!strcmp(blipc_hub_cache_dir(h), "/nonexistent/hfhome/hub"));
        CHECK(blipc_hub_is_offline(h));
        CHECK(!strcmp(h->endpoint, "http://127.0.0.1:1"));
    }
    blipc_hub_free(h);
    setenv("HF_HUB_CACHE", "/nonexistent/cache2", 1);
    setenv("HF_HUB_OFFLINE", "0", 1);
    h = open_hub(&p);
    if (h) {
        CHECK(!strcmp(blipc_hub_cache_dir(h), "/nonexistent/cache2"));
        CHECK(!blipc_hub_is_offline(h));
    }
    blipc_hub_free(h);
    unsetenv("HF_HOME");
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("HF_ENDPOINT");
    blipc_hub_free(NULL);
    char err[256];
    p.endpoint = "ftp://x";
    CHECK_STATUS(blipc_hub_open(&p, &h, err, sizeof err), BLIPC_ERR_INVALID_ARG, err);
}

/* The built-in kinds (used without a manifest) must agree with weights/manifest.json. */
TEST(manifest_matches_builtin_kinds) {
    blipc_hub_params p = test_params(th_tmp_path("unused"));
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    CHECK(h->manifest != NULL);
    cJSON *saved = h->manifest;
    const char *types[] = {"{\"model_type\":\"blip-2\"}", "{\"model_type\":\"bert\"}"};
    for (int t = 0; t < 2; t++) {
        cJSON *cfg = cJSON_Parse(types[t]);
        blipc__hub_kind a, b;
        blipc_err e = {0};
        h->manifest = saved;
        CHECK_STATUS(blipc__hub_detect_kind(h, cfg, "config.json", &a, &e), BLIPC_OK, e.msg);
        h->manifest = NULL;
        CHECK_STATUS(blipc__hub_detect_kind(h, cfg, "config.json", &b, &e), BLIPC_OK, e.msg);
        CHECK_EQ_INT(a.required.n, b.required.n);
        CHECK_EQ_INT(a.optional.n, b.optional.n);
        for (size_t i = 0; i < a.required.n; i++) CHECK(blipc__strlist_has(&b.required, a.required.v[i]));
        for (size_t i = 0; i < a.optional.n; i++) CHECK(blipc__strlist_has(&b.optional, a.optional.v[i]));
        blipc__hub_kind_free(&a);
        blipc__hub_kind_free(&b);
        cJSON_Delete(cfg);
    }
    h->manifest = saved;
    blipc_hub_free(h);
}

TEST(local_dirs_checked) {
    blipc_hub_params p = test_params(th_tmp_path("local"));
    p.offline = 1;
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    char dir[4096], kind[32];
    const char *blip = th_fixture("blip2-tiny");
    CHECK_STATUS(blipc_hub_resolve(h, blip, dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK(!strcmp(dir, blip));
    CHECK_STATUS(blipc_hub_check_dir(h, th_fixture("minilm-tiny"), NULL, kind, sizeof kind), BLIPC_OK,
                 blipc_hub_errmsg(h));
    CHECK(!strcmp(kind, "sentence-transformers"));
    /* the fixture's tiny sizes are not what the real repo's manifest entry expects */
    CHECK_STATUS(blipc_hub_check_dir(h, th_fixture("minilm-tiny"), "sentence-transformers/all-MiniLM-L12-v2", NULL, 0),
                 BLIPC_ERR_MODEL, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "hidden_size");
    /* a copy without vocab.json */
    const char *d = th_tmp_path("partial-model");
    mkdir(d, 0777);
    const char *names[] = {"config.json", "preprocessor_config.json", "merges.txt", "tokenizer_config.json",
                           "model.safetensors"};
    for (int i = 0; i < 5; i++) CHECK(symlink(path2(blip, names[i]), path2(d, names[i])) == 0);
    CHECK_STATUS(blipc_hub_resolve(h, d, dir, sizeof dir), BLIPC_ERR_IO, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "vocab.json");
    CHECK_STATUS(blipc_hub_resolve(h, "/no/such/dir", dir, sizeof dir), BLIPC_ERR_IO, blipc_hub_errmsg(h));
    CHECK_STATUS(blipc_hub_resolve(h, blip, dir, 5), BLIPC_ERR_BUFFER_TOO_SMALL, blipc_hub_errmsg(h));
    blipc_hub_free(h);
}

TEST(pull_sharded_model_into_hf_layout) {
    const char *cache = th_tmp_path("sharded");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    srv_reset();
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/blip2-tiny-sharded", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    const char *repo = path2(cache, "models--blipc-test--blip2-tiny-sharded");
    char *ref = th_read_file(path2(repo, "refs/main"), NULL);
    CHECK(ref && blipc__hub_is_commit(ref)); /* bare hash, as huggingface_hub writes it */
    if (ref) CHECK(strstr(dir, ref) != NULL);
    free(ref);
    CHECK(files_equal(path2(dir, "config.json"), th_fixture("blip2-tiny/config.json")));
    CHECK(files_equal(path2(dir, "vocab.json"), th_fixture("blip2-tiny/vocab.json")));
    char target[512];
    ssize_t n = readlink(path2(dir, "config.json"), target, sizeof target - 1);
    CHECK(n > 0 && !strncmp(target, "../../blobs/", 12));
    CHECK(blob_matches_name(path2(dir, "model-00001-of-00002.safetensors")));
    CHECK(blob_matches_name(path2(dir, "model-00002-of-00002.safetensors")));
    CHECK(blob_matches_name(path2(dir, "merges.txt")));
    CHECK(!exists(path2(dir, "model.safetensors")));
    CHECK_EQ_INT(count_suffix(cache, ".incomplete"), 0);
    CHECK(exists(path2(cache, ".locks/models--blipc-test--blip2-tiny-sharded")));
    /* only the engine's files were fetched: no README.md, no .gitattributes */
    CHECK_EQ_INT(srv_count("GET", "README.md", NULL), 0);
    CHECK_EQ_INT(srv_count("GET", "/cdn/", NULL), 2);
    /* a second pull downloads nothing */
    srv_reset();
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/blip2-tiny-sharded", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count("GET", "/resolve/", NULL) + srv_count("GET", "/cdn/", NULL), 0);
    /* resolve uses the complete snapshot without any request */
    srv_reset();
    char dir2[4096];
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/blip2-tiny-sharded", dir2, sizeof dir2), BLIPC_OK,
                 blipc_hub_errmsg(h));
    CHECK(!strcmp(dir, dir2));
    CHECK_EQ_INT(srv_count(NULL, NULL, NULL), 0);
    blipc_hub_free(h);
}

/* A cache written by hand in the huggingface_hub layout is used as is, without any request. */
TEST(hand_written_cache_used_without_requests) {
    const char *cache = th_tmp_path("handmade");
    const char *commit = "0123456789abcdef0123456789abcdef01234567";
    char repo[1024], snap[1200], cmd[16384];
    snprintf(repo, sizeof repo, "%.900s/models--sentence-transformers--all-MiniLM-L12-v2", cache);
    snprintf(snap, sizeof snap, "%.1024s/snapshots/%.40s", repo, commit);
    /* blobs named by sha256, relative symlinks, refs/main with a trailing newline */
    snprintf(cmd, sizeof cmd,
             "set -e; mkdir -p '%s/blobs' '%s/1_Pooling' '%s/refs'; cd '%s'; "
             "for f in config.json modules.json sentence_bert_config.json 1_Pooling/config.json vocab.txt "
             "tokenizer_config.json model.safetensors; do s=$(sha256sum '%s'/$f | cut -c1-64); "
             "cp '%s'/$f '%s/blobs/'$s; d=$(dirname $f); "
             "if [ $d = . ]; then ln -s ../../blobs/$s $f; else ln -s ../../../blobs/$s $f; fi; done; "
             "echo %s > '%s/refs/main'",
             repo, snap, repo, snap, th_fixture("minilm-tiny"), th_fixture("minilm-tiny"), repo, commit, repo);
    CHECK(system(cmd) == 0);
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    srv_reset();
    char dir[4096];
    /* the fixture's sizes differ from the real repo's: the manifest check must say so, early */
    CHECK_STATUS(blipc_hub_resolve(h, "sentence-transformers/all-MiniLM-L12-v2", dir, sizeof dir), BLIPC_ERR_MODEL,
                 blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "all-MiniLM-L12-v2");
    blipc_hub_free(h);
    /* without a manifest entry for it (rename the repo folder) it resolves */
    snprintf(cmd, sizeof cmd, "mv '%s' '%s/models--blipc-test--handmade'", repo, cache);
    CHECK(system(cmd) == 0);
    h = open_hub(&p);
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/handmade", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK(strstr(dir, commit) != NULL);
    char at[128];
    snprintf(at, sizeof at, "blipc-test/handmade@%s", commit);
    CHECK_STATUS(blipc_hub_resolve(h, at, dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count(NULL, NULL, NULL), 0);
    blipc_hub_free(h);
}

TEST(offline_never_touches_network) {
    const char *cache = th_tmp_path("offline");
    blipc_hub_params p = test_params(cache);
    p.use_env = 1;
    setenv("HF_HUB_OFFLINE", "1", 1);
    blipc_hub *h = open_hub(&p);
    unsetenv("HF_HUB_OFFLINE");
    if (!h) return;
    CHECK(blipc_hub_is_offline(h));
    srv_reset();
    char dir[4096];
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_NOT_FOUND,
                 blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "offline");
    CHECK_CONTAINS(blipc_hub_errmsg(h), "blipc-pull blipc-test/minilm-tiny");
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_NETWORK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count(NULL, NULL, NULL), 0);
    CHECK(!exists(path2(cache, "models--blipc-test--minilm-tiny")));
    blipc_hub_free(h);
    /* allow_pull = 0 online: same, no request */
    p = test_params(cache);
    p.allow_pull = 0;
    h = open_hub(&p);
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_NOT_FOUND,
                 blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count(NULL, NULL, NULL), 0);
    blipc_hub_free(h);
}

TEST(dropped_download_resumes_and_verifies) {
    const char *cache = th_tmp_path("drop");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    srv_reset();
    srv_control("{\"drop\": {\"after\": 1000000, \"count\": 2, \"path\": \"/cdn/\"}}");
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count("GET", "/cdn/", "bytes=1000000-"), 1);
    CHECK_EQ_INT(srv_count("GET", "/cdn/", "bytes=2000000-"), 1);
    CHECK(blob_matches_name(path2(dir, "model.safetensors")));
    CHECK(files_equal(path2(dir, "model.safetensors"), th_fixture("minilm-tiny/model.safetensors")));
    CHECK_EQ_INT(count_suffix(cache, ".incomplete"), 0);
    blipc_hub_free(h);
}

TEST(server_ignoring_range_restarts_cleanly) {
    const char *cache = th_tmp_path("norange");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    srv_reset();
    srv_control("{\"no_range\": true, \"drop\": {\"after\": 1500000, \"count\": 1, \"path\": \"/cdn/\"}}");
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK(files_equal(path2(dir, "model.safetensors"), th_fixture("minilm-tiny/model.safetensors")));
    blipc_hub_free(h);
    srv_control("{\"no_range\": false}");
}

typedef struct abort_ctx {
    uint64_t limit;
    int events[6];
} abort_ctx;

static int abort_after(void *user, const blipc_hub_progress *pr) {
    abort_ctx *a = user;
    a->events[pr->event]++;
    if (pr->event == BLIPC_HUB_EVENT_PLAN) CHECK(pr->n_files > 0 && pr->bytes_total > 0);
    return !(pr->filename && !strcmp(pr->filename, "model.safetensors") && pr->file_done >= a->limit);
}

TEST(interrupted_pull_is_never_mistaken_for_complete) {
    const char *cache = th_tmp_path("interrupt");
    blipc_hub_params p = test_params(cache);
    abort_ctx a = {.limit = 2000000};
    p.progress = abort_after;
    p.progress_user = &a;
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    srv_reset();
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_ABORTED, blipc_hub_errmsg(h));
    CHECK(a.events[BLIPC_HUB_EVENT_PLAN] == 1 && a.events[BLIPC_HUB_EVENT_FILE_PROGRESS] > 0);
    CHECK_EQ_INT(count_suffix(cache, ".incomplete"), 1);
    blipc_hub_free(h);
    /* offline, the partial snapshot is refused and the missing file named */
    p = test_params(cache);
    p.offline = 1;
    h = open_hub(&p);
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_NOT_FOUND,
                 blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "model.safetensors");
    blipc_hub_free(h);
    /* online, resolve resumes the partial file */
    p = test_params(cache);
    h = open_hub(&p);
    srv_reset();
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count("GET", "/cdn/", "bytes="), 1);
    CHECK_EQ_INT(srv_count("GET", "/cdn/", ""), 0);
    CHECK(files_equal(path2(dir, "model.safetensors"), th_fixture("minilm-tiny/model.safetensors")));
    CHECK_EQ_INT(count_suffix(cache, ".incomplete"), 0);
    blipc_hub_free(h);
}

TEST(server_errors_are_retried_then_reported) {
    const char *cache = th_tmp_path("500");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    srv_reset();
    srv_control("{\"fail\": {\"status\": 500, \"count\": 2, \"path\": \"/resolve/\"}}");
    srv_control("{\"fail\": {\"status\": 503, \"count\": 1, \"path\": \"/cdn/\"}}");
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    blipc_hub_free(h);
    cache = th_tmp_path("500b");
    p = test_params(cache);
    h = open_hub(&p);
    srv_reset();
    srv_control("{\"fail\": {\"status\": 500, \"count\": 1000, \"path\": \"/cdn/\"}}");
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_NETWORK, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "HTTP 500");
    CHECK_CONTAINS(blipc_hub_errmsg(h), "model.safetensors");
    CHECK_EQ_INT(srv_count("GET", "/cdn/", NULL), 1 + p.max_retries);
    blipc_hub_free(h);
    srv_reset();
}

TEST(corrupt_download_rejected_and_refetched) {
    const char *cache = th_tmp_path("corrupt");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    srv_reset();
    srv_control("{\"corrupt\": {\"count\": 1, \"path\": \"/cdn/\"}}");
    srv_control("{\"corrupt\": {\"count\": 1, \"path\": \"vocab.txt\"}}");
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count("GET", "/cdn/", NULL), 2);
    CHECK_EQ_INT(srv_count("GET", "vocab.txt", NULL), 2); /* git oid checked for regular files */
    CHECK(files_equal(path2(dir, "model.safetensors"), th_fixture("minilm-tiny/model.safetensors")));
    CHECK(files_equal(path2(dir, "vocab.txt"), th_fixture("minilm-tiny/vocab.txt")));
    blipc_hub_free(h);
    /* always corrupt: an error, and nothing in blobs/ or snapshots/ for it */
    cache = th_tmp_path("corrupt2");
    p = test_params(cache);
    h = open_hub(&p);
    srv_reset();
    srv_control("{\"corrupt\": {\"count\": 1000, \"path\": \"/cdn/\"}}");
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_NETWORK, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "checksum mismatch");
    CHECK_EQ_INT(count_suffix(cache, ".incomplete"), 0);
    CHECK_EQ_INT(count_suffix(cache, "model.safetensors"), 0);
    blipc_hub_free(h);
    srv_reset();
}

TEST(corrupted_cached_blob_is_refetched) {
    const char *cache = th_tmp_path("badblob");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    /* truncate the weights blob: resolve notices (safetensors header vs size) */
    const char *w = path2(dir, "model.safetensors");
    CHECK(truncate(w, 3000000) == 0);
    blipc_hub_free(h);
    p.offline = 1;
    h = open_hub(&p);
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_IO, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "truncated");
    blipc_hub_free(h);
    p.offline = 0;
    h = open_hub(&p);
    srv_reset();
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count("GET", "/cdn/", ""), 1);
    CHECK(files_equal(w, th_fixture("minilm-tiny/model.safetensors")));
    /* same size, one byte changed: found by --verify (sha256) */
    int fd = open(w, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "X", 1, 4000000) == 1);
    close(fd);
    blipc_hub_free(h);
    p.verify = 1;
    h = open_hub(&p);
    srv_reset();
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count("GET", "/cdn/", NULL), 1);
    CHECK(files_equal(w, th_fixture("minilm-tiny/model.safetensors")));
    blipc_hub_free(h);
}

TEST(bad_repos_give_clear_errors) {
    const char *cache = th_tmp_path("bad");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/no-such-model", dir, sizeof dir), BLIPC_ERR_NOT_FOUND,
                 blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "repository not found");
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/minilm-tiny@v9", dir, sizeof dir), BLIPC_ERR_NOT_FOUND,
                 blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "revision");
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/gated-minilm", dir, sizeof dir), BLIPC_ERR_AUTH, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "HF_TOKEN");
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/missing-shard", dir, sizeof dir), BLIPC_ERR_NOT_FOUND,
                 blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "model-00002-of-00002.safetensors");
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/t5-model", dir, sizeof dir), BLIPC_ERR_UNSUPPORTED, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "model_type 't5'");
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/bin-only", dir, sizeof dir), BLIPC_ERR_UNSUPPORTED, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "safetensors");
    blipc_hub_free(h);
    p.token = "hf_wrong";
    h = open_hub(&p);
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/gated-minilm", dir, sizeof dir), BLIPC_ERR_AUTH, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "403");
    blipc_hub_free(h);
    p.token = "hf_test_token";
    h = open_hub(&p);
    srv_reset();
    srv_control("{\"cdn_host\": \"localhost\"}");
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/gated-minilm", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    /* the token goes to the Hub, never to the CDN host of the LFS redirect */
    CHECK(srv_count_auth("/resolve/") > 0);
    CHECK_EQ_INT(srv_count("GET", "/cdn/", NULL), 1);
    CHECK_EQ_INT(srv_count_auth("/cdn/"), 0);
    srv_reset();
    blipc_hub_free(h);
    /* nothing listens: a network error naming the endpoint */
    p.endpoint = "http://127.0.0.1:1";
    p.max_retries = 1;
    h = open_hub(&p);
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_ERR_NETWORK, blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "127.0.0.1:1");
    blipc_hub_free(h);
}

TEST(snapshot_missing_a_shard) {
    const char *cache = th_tmp_path("shardgone");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/blip2-tiny-sharded", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK(unlink(path2(dir, "model-00002-of-00002.safetensors")) == 0);
    blipc_hub_free(h);
    p.offline = 1;
    h = open_hub(&p);
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/blip2-tiny-sharded", dir, sizeof dir), BLIPC_ERR_NOT_FOUND,
                 blipc_hub_errmsg(h));
    CHECK_CONTAINS(blipc_hub_errmsg(h), "model-00002-of-00002.safetensors");
    blipc_hub_free(h);
    /* online: the blob is still there, so it is linked again without a download */
    p.offline = 0;
    h = open_hub(&p);
    srv_reset();
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/blip2-tiny-sharded", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count("GET", "/cdn/", NULL), 0);
    CHECK(blob_matches_name(path2(dir, "model-00002-of-00002.safetensors")));
    blipc_hub_free(h);
}

TEST(disk_full_keeps_only_a_partial_file) {
    const char *cache = th_tmp_path("diskfull");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1500000, 1500000};
        setrlimit(RLIMIT_FSIZE, &rl);
        blipc_hub_params p = test_params(cache);
        blipc_hub *h = NULL;
        if (blipc_hub_open(&p, &h, NULL, 0)) _exit(100);
        char dir[4096];
        blipc_status st = blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir);
        int ok = st == BLIPC_ERR_IO && strstr(blipc_hub_errmsg(h), "File too large") &&
                 strstr(blipc_hub_errmsg(h), "model.safetensors");
        if (!ok) fprintf(stderr, "  disk full: status %d: %s\n", (int)st, blipc_hub_errmsg(h));
        blipc_hub_free(h);
        _exit(ok ? 0 : 1);
    }
    int ws = 0;
    CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    CHECK_EQ_INT(count_suffix(cache, ".incomplete"), 1);
    CHECK_EQ_INT(count_suffix(cache, "model.safetensors"), 0);
    /* with room again, the pull completes */
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK(files_equal(path2(dir, "model.safetensors"), th_fixture("minilm-tiny/model.safetensors")));
    blipc_hub_free(h);
}

TEST(no_symlinks_filesystem) {
    const char *cache = th_tmp_path("nosymlinks");
    blipc_hub_params p = test_params(cache);
    p.symlinks = 0;
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    struct stat st;
    CHECK(lstat(path2(dir, "model.safetensors"), &st) == 0 && S_ISREG(st.st_mode));
    CHECK(lstat(path2(dir, "1_Pooling/config.json"), &st) == 0 && S_ISREG(st.st_mode));
    CHECK(files_equal(path2(dir, "model.safetensors"), th_fixture("minilm-tiny/model.safetensors")));
    srv_reset();
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/minilm-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK_EQ_INT(srv_count("GET", NULL, NULL) - srv_count("GET", "/api/", NULL), 0);
    blipc_hub_free(h);
}

TEST(mirror_without_api_is_probed) {
    const char *cache = th_tmp_path("noapi");
    blipc_hub_params p = test_params(cache);
    blipc_hub *h = open_hub(&p);
    if (!h) return;
    srv_reset();
    srv_control("{\"no_api\": true}");
    char dir[4096];
    CHECK_STATUS(blipc_hub_pull(h, "blipc-test/blip2-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK(blob_matches_name(path2(dir, "model.safetensors")));
    /* the absent optional generation_config.json is remembered like huggingface_hub does */
    CHECK_EQ_INT(count_suffix(path2(cache, "models--blipc-test--blip2-tiny/.no_exist"), "generation_config.json"), 1);
    blipc_hub_free(h);
    srv_reset();
}

TEST(two_processes_download_a_blob_once) {
    const char *cache = th_tmp_path("twoproc");
    srv_reset();
    fflush(NULL);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            blipc_hub_params p = test_params(cache);
            blipc_hub *h = NULL;
            if (blipc_hub_open(&p, &h, NULL, 0)) _exit(100);
            char dir[4096];
            blipc_status st = blipc_hub_pull(h, "blipc-test/blip2-tiny", dir, sizeof dir);
            if (st) fprintf(stderr, "  child %d: %s\n", k, blipc_hub_errmsg(h));
            blipc_hub_free(h);
            _exit(st ? 1 : 0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int ws = 0;
        CHECK(kids[k] > 0 && waitpid(kids[k], &ws, 0) == kids[k]);
        CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    }
    CHECK_EQ_INT(srv_count("GET", "/cdn/", NULL), 1);
    blipc_hub_params p = test_params(cache);
    p.offline = 1;
    blipc_hub *h = open_hub(&p);
    char dir[4096];
    CHECK_STATUS(blipc_hub_resolve(h, "blipc-test/blip2-tiny", dir, sizeof dir), BLIPC_OK, blipc_hub_errmsg(h));
    CHECK(blob_matches_name(path2(dir, "model.safetensors")));
    blipc_hub_free(h);
}

static const char *pull_exe;

/* run a shell command line, capture stdout (malloc'd) and the exit code */
static char *run(const char *cmd, int *code) {
    FILE *f = popen(cmd, "r");
    char *out = NULL;
    *code = -1;
    if (!f) return NULL;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        buf[n] = 0;
        char **o = &out;
        sink(buf, 1, n, o);
    }
    int ws = pclose(f);
    *code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return out;
}

TEST(blipc_pull_tool) {
    if (!pull_exe) return;
    const char *cache = th_tmp_path("tool");
    char cmd[8192], *out;
    int code;
    snprintf(cmd, sizeof cmd,
             "HF_HUB_CACHE='%s' HF_ENDPOINT='%s' HF_TOKEN= HF_HUB_OFFLINE= BLIPC_MANIFEST='%s' '%s' -q "
             "blipc-test/minilm-tiny 2>/dev/null", cache, endpoint, manifest, pull_exe);
    out = run(cmd, &code);
    CHECK_EQ_INT(code, 0);
    CHECK(out && strstr(out, "/models--blipc-test--minilm-tiny/snapshots/"));
    if (out) {
        out[strcspn(out, "\n")] = 0;
        CHECK(files_equal(path2(out, "vocab.txt"), th_fixture("minilm-tiny/vocab.txt")));
    }
    free(out);
    /* offline check of what is there, and of what is not (exit 1, message on stderr) */
    snprintf(cmd, sizeof cmd,
             "HF_HUB_CACHE='%s' HF_HUB_OFFLINE=1 BLIPC_MANIFEST='%s' '%s' --check blipc-test/minilm-tiny "
             "blipc-test/blip2-tiny 2>&1", cache, manifest, pull_exe);
    out = run(cmd, &code);
    CHECK_EQ_INT(code, 1);
    CHECK(out && strstr(out, "models--blipc-test--minilm-tiny/snapshots/"));
    CHECK_CONTAINS(out, "blip2-tiny is not in the Hugging Face cache");
    free(out);
    snprintf(cmd, sizeof cmd,
             "HF_HUB_CACHE='%s' HF_ENDPOINT='%s' HF_TOKEN= BLIPC_MANIFEST='%s' '%s' blipc-test/gated-minilm 2>&1",
             cache, endpoint, manifest, pull_exe);
    out = run(cmd, &code);
    CHECK_EQ_INT(code, 1);
    CHECK_CONTAINS(out, "HF_TOKEN");
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' --bogus 2>/dev/null", pull_exe);
    free(run(cmd, &code));
    CHECK_EQ_INT(code, 2);
}

int main(int argc, char **argv) {
    pull_exe = argc > 1 ? argv[1] : NULL;
    th_require_file(th_fixture("minilm-tiny/vocab.txt"));
    th_require_file(th_fixture("blip2-tiny/vocab.json"));
    snprintf(manifest, sizeof manifest, "%s", th_testdata("../../weights/manifest.json"));
    th_require_file(manifest);
    /* the test server is on loopback: never through a proxy of the environment */
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (srv_start() != 0) th_skip_all("cannot start tests/servers/hub_server.py (BLIPC_PYTHON)");
    RUN(spec_parsing);
    RUN(default_params_and_env);
    RUN(manifest_matches_builtin_kinds);
    RUN(local_dirs_checked);
    RUN(pull_sharded_model_into_hf_layout);
    RUN(hand_written_cache_used_without_requests);
    RUN(offline_never_touches_network);
    RUN(dropped_download_resumes_and_verifies);
    RUN(server_ignoring_range_restarts_cleanly);
    RUN(interrupted_pull_is_never_mistaken_for_complete);
    RUN(server_errors_are_retried_then_reported);
    RUN(corrupt_download_rejected_and_refetched);
    RUN(corrupted_cached_blob_is_refetched);
    RUN(bad_repos_give_clear_errors);
    RUN(snapshot_missing_a_shard);
    RUN(disk_full_keeps_only_a_partial_file);
    RUN(no_symlinks_filesystem);
    RUN(mirror_without_api_is_probed);
    RUN(two_processes_download_a_blob_once);
    RUN(blipc_pull_tool);
    srv_stop();
    curl_global_cleanup();
    return th_finish();
}
