/* blipc-embed — sentence embeddings (all-MiniLM-L12-v2 style) for texts given as
 * arguments or read from stdin, one per line.
 *
 *   blipc-embed [--model DIR|ORG/NAME] [--threads N] [--json] [TEXT...]
 *
 * --model may be a Hugging Face repo id when the tools are built with
 * libblipc-hub (model_resolve.h); default sentence-transformers/all-MiniLM-L12-v2.
 *
 * Exit codes: 0 ok, 1 failure, 2 usage. */
#include "blipc.h"
#include "cli_util.h"
#ifdef HAVE_MODEL_RESOLVE
#include "model_resolve.h"
#endif

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 256 /* stdin lines embedded per call */

static void usage(FILE *f) {
    fprintf(f,
            "usage: blipc-embed [--model DIR] [--threads N] [--json] [TEXT...]\n"
            "\n"
            "Embed each TEXT (or, without TEXT arguments, each line of stdin) with a\n"
            "sentence-transformers model directory (config.json, model.safetensors, vocab.txt,\n"
            "modules.json, 1_Pooling/config.json): BERT, mean pooling, L2 normalisation.\n"
            "Prints one line per text: the vector as space-separated floats, or with --json\n"
            "{\"text\": ..., \"embedding\": [...]}.\n"
            "\n"
#ifdef HAVE_MODEL_RESOLVE
            "  --model M       a model directory, or a Hugging Face repo id (ORG/NAME[@REV], taken from the\n"
            "                  HF cache or downloaded); default " BLIPC_DEFAULT_EMBED_MODEL "\n"
#else
            "  --model DIR     the model directory (e.g. a snapshot of sentence-transformers/all-MiniLM-L12-v2)\n"
#endif
            "  --threads N     threads to use (default: number of cores)\n"
            "  --json          JSON lines output\n"
            "\n"
            "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

static int print_rows(const char *const *texts, size_t n, const float *v, int dim, int json) {
    for (size_t i = 0; i < n; i++) {
        const float *r = v + i * (size_t)dim;
        if (json) {
            cJSON *s = cJSON_CreateString(texts[i]);
            char *js = s ? cJSON_PrintUnformatted(s) : NULL;
            cJSON_Delete(s);
            if (!js) {
                fprintf(stderr, "blipc-embed: out of memory\n");
                return 1;
            }
            printf("{\"text\": %s, \"embedding\": [", js);
            cJSON_free(js);
            for (int d = 0; d < dim; d++) printf(d ? ", %.9g" : "%.9g", (double)r[d]);
            printf("]}\n");
        } else {
            for (int d = 0; d < dim; d++) printf(d ? " %.9g" : "%.9g", (double)r[d]);
            putchar('\n');
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "blipc-embed: cannot write the output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

static int embed_and_print(blipc_embedder *m, const char *const *texts, size_t n, int json, size_t first_line) {
    int dim = blipc_embedder_dim(m);
    float *v = malloc((n ? n : 1) * (size_t)dim * sizeof(float));
    if (!v) {
        fprintf(stderr, "blipc-embed: out of memory\n");
        return 1;
    }
    blipc_status st = blipc_embedder_embed(m, texts, n, v);
    if (st != BLIPC_OK) {
        if (first_line) /* stdin: the message's text index is relative to this batch */
            fprintf(stderr, "blipc-embed: stdin lines %zu..%zu: %s\n", first_line, first_line + n - 1,
                    blipc_embedder_errmsg(m));
        else
            fprintf(stderr, "blipc-embed: %s\n", blipc_embedder_errmsg(m));
        free(v);
        return 1;
    }
    int rc = print_rows(texts, n, v, dim, json);
    free(v);
    return rc;
}

static int run_stdin(blipc_embedder *m, int json) {
    char *lines[BATCH];
    size_t n = 0, line_no = 0, first = 1;
    int rc = 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while (!rc && (len = getline(&buf, &cap, stdin)) >= 0) {
        line_no++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
        if (memchr(buf, 0, (size_t)len)) {
            fprintf(stderr, "blipc-embed: stdin line %zu contains a NUL byte\n", line_no);
            rc = 1;
            break;
        }
        lines[n] = strdup(buf);
        if (!lines[n]) {
            fprintf(stderr, "blipc-embed: out of memory\n");
            rc = 1;
            break;
        }
        if (++n == BATCH) {
            rc = embed_and_print(m, (const char *const *)lines, n, json, first);
            for (size_t i = 0; i < n; i++) free(lines[i]);
            n = 0;
            first = line_no + 1;
        }
    }
    if (!rc && ferror(stdin)) {
        fprintf(stderr, "blipc-embed: reading stdin: %s\n", strerror(errno));
        rc = 1;
    }
    if (!rc && n) rc = embed_and_print(m, (const char *const *)lines, n, json, first);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(buf);
    return rc;
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int json = 0;
    long threads = 0;
    int first_pos = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            first_pos = i + 1;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "blipc-embed: %s needs a value\n", a);
                usage(stderr);
                return 2;
            }
            if (strcmp(a, "--model") == 0) {
                model = argv[++i];
            } else if (!cli_parse_long(argv[++i], 1, 1024, &threads)) {
                fprintf(stderr, "blipc-embed: --threads: \"%s\" is not an integer in [1, 1024]\n", argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "blipc-embed: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else {
            first_pos = i;
            break;
        }
    }
#ifdef HAVE_MODEL_RESOLVE
    char dir[4096];
    if (blipc_tool_resolve_model(model, BLIPC_DEFAULT_EMBED_MODEL, dir, sizeof dir, 1) != 0) return 1;
    model = dir;
#else
    if (!model) {
        fprintf(stderr, "blipc-embed: --model DIR is required\n");
        usage(stderr);
        return 2;
    }
#endif
    blipc_embedder_params p;
    blipc_embedder_default_params(&p);
    p.n_threads = (int)threads;
    char err[1024];
    blipc_embedder *m;
    if (blipc_embedder_open(model, &p, &m, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "blipc-embed: %s\n", err);
        return 1;
    }
    int rc = first_pos < argc
                 ? embed_and_print(m, (const char *const *)(argv + first_pos), (size_t)(argc - first_pos), json, 0)
                 : run_stdin(m, json);
    blipc_embedder_free(m);
    return rc;
}
