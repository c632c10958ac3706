/* test_embed_cli.c — the built blipc-embed tool (BLIPC_BUILD_DIR/tools/blipc-embed)
 * on the minilm-tiny fixture: texts as arguments and on stdin, plain and --json
 * output, against blipc_embedder_embed in this process; exit codes for usage
 * errors (2) and a missing model directory (1, message naming it). */
#include "harness.h"

#include "blipc.h"

#include <cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define THREADS "2" /* the same thread count for the tool and the library */

static char exe[4096];

static const char *model_dir(void) { return th_fixture("minilm-tiny"); }

/* Run exe with args (NULL-terminated, without argv[0]), stdin from stdin_path
 * (or /dev/null); stdout and stderr collected (malloc'd). Returns the exit
 * status, or -1 when the process could not be run or did not exit normally. */
static int run_tool(const char *const *args, const char *stdin_path, char **out, char **err) {
    const char *argv[64];
    int n = 0;
    argv[n++] = exe;
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    const char *outp = th_tmp_path("stdout.txt"), *errp = th_tmp_path("stderr.txt");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, stdin_path ? stdin_path : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    *out = *err = NULL;
    if (rc != 0) {
        fprintf(stderr, "  cannot run %s: %s\n", exe, strerror(rc));
        return -1;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return -1;
    size_t sz;
    *out = th_read_file(outp, &sz);
    *err = th_read_file(errp, &sz);
    if (!*out) *out = strdup("");
    if (!*err) *err = strdup("");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* the library's vectors for texts[n], threads as the tool gets them */
static float *library_embed(const char *const *texts, size_t n, int *dim) {
    blipc_embedder_params p;
    blipc_embedder_default_params(&p);
    p.n_threads = atoi(THREADS);
    char err[1024] = "";
    blipc_embedder *m = NULL;
    CHECK_STATUS(blipc_embedder_open(model_dir(), &p, &m, err, sizeof err), BLIPC_OK, err);
    if (!m) return NULL;
    *dim = blipc_embedder_dim(m);
    float *v = malloc(n * (size_t)*dim * sizeof(float));
    if (v && blipc_embedder_embed(m, texts, n, v) != BLIPC_OK) {
        fprintf(stderr, "  library embed: %s\n", blipc_embedder_errmsg(m));
        CHECK(0);
        free(v);
        v = NULL;
    }
    blipc_embedder_free(m);
    return v;
}

/* Split out into lines (in place); returns the count (a last line without a
 * newline counts too; check_lines requires every line to end in '\n'). */
static int split_lines(char *out, char **lines, int max) {
    int n = 0;
    char *p = out;
    while (*p && n < max) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    return n;
}

static void check_unit(const float *v, int dim, const char *what, int i) {
    double nn = 0;
    for (int d = 0; d < dim; d++) nn += (double)v[d] * v[d];
    CHECKF(fabs(nn - 1) < 1e-5, "%s: text %d: |v|^2 = %.8f", what, i, nn);
}

/* --json lines: {"text": texts[i], "embedding": [dim floats]} equal to want */
static void check_json_output(char *out, const char *const *texts, int n, const float *want, int dim,
                              const char *what) {
    size_t len = strlen(out);
    CHECKF(len > 0 && out[len - 1] == '\n', "%s: output does not end with a newline", what);
    char *lines[256];
    int nl = split_lines(out, lines, 256);
    CHECKF(nl == n, "%s: %d output lines for %d texts", what, nl, n);
    for (int i = 0; i < nl && i < n; i++) {
        cJSON *o = cJSON_Parse(lines[i]);
        CHECKF(o != NULL, "%s: line %d is not JSON: %.80s", what, i, lines[i]);
        if (!o) continue;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "embedding");
        CHECKF(cJSON_IsString(t) && strcmp(t->valuestring, texts[i]) == 0, "%s: line %d: \"text\" is not text %d", what,
               i, i);
        CHECKF(cJSON_IsArray(e) && cJSON_GetArraySize(e) == dim, "%s: line %d: \"embedding\" has %d values, want %d",
               what, i, cJSON_IsArray(e) ? cJSON_GetArraySize(e) : -1, dim);
        if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == dim) {
            float *v = malloc((size_t)dim * sizeof(float));
            int d = 0, bad = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, e) {
                if (!cJSON_IsNumber(x)) bad = 1;
                v[d++] = (float)x->valuedouble; /* printed with %.9g: round-trips the float */
            }
            CHECKF(!bad, "%s: line %d: non-number in \"embedding\"", what, i);
            double diff = th_max_abs_diff(v, want + (size_t)i * dim, (size_t)dim);
            CHECKF(diff == 0, "%s: text %d differs from blipc_embedder_embed by %.3g", what, i, diff);
            check_unit(v, dim, what, i);
            free(v);
        }
        cJSON_Delete(o);
    }
}

/* plain lines: dim space-separated floats */
static void check_plain_output(char *out, int n, const float *want, int dim, const char *what) {
    char *lines[256];
    int nl = split_lines(out, lines, 256);
    CHECKF(nl == n, "%s: %d output lines for %d texts", what, nl, n);
    float *v = malloc((size_t)dim * sizeof(float));
    for (int i = 0; i < nl && i < n; i++) {
        char *p = lines[i], *end;
        int d = 0;
        for (;;) {
            float f = strtof(p, &end);
            if (end == p) break;
            if (d < dim) v[d] = f;
            d++;
            p = end;
        }
        while (*p == ' ') p++;
        CHECKF(d == dim && *p == 0, "%s: line %d: %d values (want %d), trailing \"%.20s\"", what, i, d, dim, p);
        if (d != dim) continue;
        double diff = th_max_abs_diff(v, want + (size_t)i * dim, (size_t)dim);
        CHECKF(diff == 0, "%s: text %d differs from blipc_embedder_embed by %.3g", what, i, diff);
        check_unit(v, dim, what, i);
    }
    free(v);
}

static const char *const texts[] = {
    "a dog running on the beach",
    "",
    "Caf\xc3\xa9 au lait, s'il vous pla\xc3\xaet!",
    "the quick brown fox jumps over the lazy dog while a cat sleeps on the warm windowsill",
    "\"quoted\" \\ backslash\ttab",
};
enum { NT = sizeof texts / sizeof texts[0] };

TEST(texts_as_arguments_json_and_plain) {
    int dim = 0;
    float *want = library_embed(texts, NT, &dim);
    if (!want) return;
    const char *args[16] = {"--model", model_dir(), "--threads", THREADS, "--json"};
    int na = 5;
    for (int i = 0; i < NT; i++) args[na++] = texts[i];
    args[na] = NULL;
    char *out, *err;
    int rc = run_tool(args, NULL, &out, &err);
    CHECKF(rc == 0, "exit %d, stderr: %s", rc, err ? err : "");
    if (out) check_json_output(out, texts, NT, want, dim, "args --json");
    free(out), free(err);
    /* without --json; "--" lets a text start with "--" */
    const char *args2[16] = {"--model", model_dir(), "--threads", THREADS, "--"};
    na = 5;
    for (int i = 0; i < NT; i++) args2[na++] = texts[i];
    args2[na] = NULL;
    rc = run_tool(args2, NULL, &out, &err);
    CHECKF(rc == 0, "exit %d, stderr: %s", rc, err ? err : "");
    if (out) check_plain_output(out, NT, want, dim, "args plain");
    free(out), free(err);
    free(want);
}

TEST(texts_on_stdin) {
    int dim = 0;
    float *want = library_embed(texts, NT, &dim);
    if (!want) return;
    /* one text per line; the last line has no newline, one ends in CRLF */
    char body[4096] = "";
    for (int i = 0; i < NT; i++) {
        strcat(body, texts[i]);
        if (i == 2) strcat(body, "\r\n");
        else if (i < NT - 1) strcat(body, "\n");
    }
    const char *in = th_tmp_path("stdin.txt");
    CHECK(th_write_file(in, body, strlen(body)) == 0);
    const char *args[] = {"--model", model_dir(), "--threads", THREADS, "--json", NULL};
    char *out, *err;
    int rc = run_tool(args, in, &out, &err);
    CHECKF(rc == 0, "exit %d, stderr: %s", rc, err ? err : "");
    if (out) check_json_output(out, texts, NT, want, dim, "stdin --json");
    free(out), free(err);
    const char *args2[] = {"--model", model_dir(), "--threads", THREADS, NULL};
    rc = run_tool(args2, in, &out, &err);
    CHECKF(rc == 0, "exit %d, stderr: %s", rc, err ? err : "");
    if (out) check_plain_output(out, NT, want, dim, "stdin plain");
    free(out), free(err);
    /* empty stdin: no output, success */
    const char *empty = th_tmp_path("empty.txt");
    CHECK(th_write_file(empty, "", 0) == 0);
    rc = run_tool(args, empty, &out, &err);
    CHECKF(rc == 0 && out && out[0] == 0, "empty stdin: exit %d, output \"%.40s\"", rc, out ? out : "");
    free(out), free(err);
    free(want);
}

TEST(usage_errors_exit_2) {
    const char *m = model_dir();
    const char *const cases[][6] = {
        {"--model", m, "--bogus", "text", NULL},       /* unknown option */
        {"--model", m, "--threads", "0", "text", NULL}, /* out of range */
        {"--model", m, "--threads", "two", "text", NULL},
        {"--model", m, "--threads", NULL},              /* value missing */
        {"--json", "--model", NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *out, *err;
        int rc = run_tool(cases[c], NULL, &out, &err);
        CHECKF(rc == 2, "case %zu: exit %d, want 2 (stderr: %s)", c, rc, err ? err : "");
        CHECKF(out && out[0] == 0, "case %zu: a usage error printed to stdout: %.60s", c, out ? out : "");
        CHECKF(err && err[0] != 0, "case %zu: a usage error without a message", c);
        free(out), free(err);
    }
}

TEST(missing_model_dir_exits_1) {
    const char *missing = th_tmp_path("no-such-model-dir");
    const char *args[] = {"--model", missing, "hello", NULL};
    char *out, *err;
    int rc = run_tool(args, NULL, &out, &err);
    CHECKF(rc == 1, "missing dir: exit %d, want 1", rc);
    CHECKF(err && strstr(err, missing), "missing dir: stderr does not name %s: %s", missing, err ? err : "");
    CHECKF(out && out[0] == 0, "missing dir: printed to stdout: %.60s", out ? out : "");
    free(out), free(err);
    /* a directory that is not a model */
    const char *notmodel = th_tmpdir();
    const char *args2[] = {"--model", notmodel, "hello", NULL};
    rc = run_tool(args2, NULL, &out, &err);
    CHECKF(rc == 1, "not a model dir: exit %d, want 1", rc);
    CHECKF(err && strstr(err, notmodel), "not a model dir: stderr does not name %s: %s", notmodel, err ? err : "");
    free(out), free(err);
}

int main(void) {
    th_require_file(th_fixture("minilm-tiny/model.safetensors"));
    th_require_file(th_fixture("minilm-tiny/vocab.txt")); /* third-party vocabulary: skips (77) when absent */
    const char *bd = getenv("BLIPC_BUILD_DIR");
    snprintf(exe, sizeof exe, "%s/tools/blipc-embed", bd && *bd ? bd : ".");
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "%s is not built (set BLIPC_BUILD_DIR to the build directory)\n", exe);
        return 1;
    }
    RUN(texts_as_arguments_json_and_plain);
    RUN(texts_on_stdin);
    RUN(usage_errors_exit_2);
    RUN(missing_model_dir_exits_1);
    return th_finish();
}
