/* index_cli.h — option handling shared by blipc-index and blipc-search:
 * which index to open (embedded store or OpenSearch) and its connection
 * options, and where the embedding / caption models are. Header-only (static
 * functions), used by the two tools. */
#ifndef BLIPC_TOOLS_INDEX_CLI_H
#define BLIPC_TOOLS_INDEX_CLI_H

#include "blipc_index.h"
#ifdef HAVE_MODEL_RESOLVE
#include "model_resolve.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct index_cli {
    blipc_index_params p;
    char *user_buf;             /* owned copy of --user when it holds "U:P" */
    int verbose;
} index_cli;

static void index_cli_init(index_cli *c) {
    memset(c, 0, sizeof *c);
    blipc_index_default_params(&c->p);
}

static void index_cli_free(index_cli *c) {
    free(c->user_buf);
    c->user_buf = NULL;
}

#define INDEX_CLI_USAGE                                                                                     \
    "Index selection:\n"                                                                                    \
    "  --store FILE            embedded store file (default $XDG_DATA_HOME/blipc/index.sqlite,\n"           \
    "                          else ~/.local/share/blipc/index.sqlite)\n"                                   \
    "  --opensearch URL        use an OpenSearch cluster instead (e.g. https://localhost:9200)\n"           \
    "  --index NAME            OpenSearch index name (default blipc-images)\n"                              \
    "  --user USER[:PASSWORD]  basic auth (else $OPENSEARCH_USER / $OPENSEARCH_PASSWORD)\n"                \
    "  --cacert FILE           CA bundle for TLS\n"                                                         \
    "  --insecure              do not verify the server certificate\n"                                      \
    "  --aws-sigv4 SPEC        sign requests, e.g. aws:amz:us-east-1:es (credentials from --user)\n"        \
    "  --space-type S          k-NN space type when creating the index (default cosinesimil)\n"            \
    "  --ingest-pipeline NAME  server-side embedding through this ingest pipeline (needs --model-id)\n"     \
    "  --model-id ID           ML Commons model id (ingest pipeline / neural query)\n"

/* If argv[*i] is an index option, consume it (and its value) and return 1;
 * 0 if not ours; -1 on a usage error (message printed). */
static int index_cli_parse(index_cli *c, int argc, char **argv, int *i, const char *prog) {
    const char *a = argv[*i];
    static const char *const with_value[] = {"--store",    "--opensearch", "--index",       "--user",
                                             "--cacert",   "--space-type", "--ingest-pipeline", "--model-id",
                                             "--aws-sigv4", NULL};
    int takes = 0;
    for (int k = 0; with_value[k]; k++)
        if (!strcmp(a, with_value[k])) takes = 1;
    if (!takes) {
        if (!strcmp(a, "--insecure")) {
            c->p.insecure = 1;
            return 1;
        }
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", prog, a);
        return -1;
    }
    const char *v = argv[++*i];
    if (!strcmp(a, "--store")) c->p.store_path = v;
    else if (!strcmp(a, "--opensearch")) {
        c->p.backend = BLIPC_INDEX_OPENSEARCH;
        c->p.url = v;
    } else if (!strcmp(a, "--index")) c->p.index_name = v;
    else if (!strcmp(a, "--user")) {
        const char *colon = strchr(v, ':');
        if (colon) {
            free(c->user_buf);
            c->user_buf = strdup(v);
            if (!c->user_buf) {
                fprintf(stderr, "%s: out of memory\n", prog);
                return -1;
            }
            c->user_buf[colon - v] = 0;
            c->p.user = c->user_buf;
            c->p.password = c->user_buf + (colon - v) + 1;
        } else {
            c->p.user = v;
        }
    } else if (!strcmp(a, "--cacert")) c->p.cacert = v;
    else if (!strcmp(a, "--space-type")) c->p.space_type = v;
    else if (!strcmp(a, "--ingest-pipeline")) c->p.ingest_pipeline = v;
    else if (!strcmp(a, "--model-id")) c->p.model_id = v;
    else if (!strcmp(a, "--aws-sigv4")) c->p.aws_sigv4 = v;
    return 1;
}

/* After parsing: credentials from the environment, consistency checks.
 * Returns 0 or -1 (message printed). */
static int index_cli_finish(index_cli *c, const char *prog) {
    if (c->p.backend == BLIPC_INDEX_OPENSEARCH) {
        if (!c->p.user && getenv("OPENSEARCH_USER")) c->p.user = getenv("OPENSEARCH_USER");
        if (c->p.user && !c->p.password && getenv("OPENSEARCH_PASSWORD")) c->p.password = getenv("OPENSEARCH_PASSWORD");
        if (c->p.store_path) {
            fprintf(stderr, "%s: --store and --opensearch exclude each other\n", prog);
            return -1;
        }
        if (c->p.ingest_pipeline && !c->p.model_id) {
            fprintf(stderr, "%s: --ingest-pipeline needs --model-id (see blipc-index --register-model)\n", prog);
            return -1;
        }
    } else {
        const char *os_only = c->p.cacert ? "--cacert" : c->p.insecure ? "--insecure"
                            : c->p.ingest_pipeline ? "--ingest-pipeline" : c->p.user ? "--user"
                            : c->p.aws_sigv4 ? "--aws-sigv4" : NULL;
        if (os_only) {
            fprintf(stderr, "%s: %s only applies with --opensearch URL\n", prog, os_only);
            return -1;
        }
    }
    return 0;
}

/* Describe the target for messages: "store /path" or "opensearch URL/index". */
static void index_cli_describe(const index_cli *c, char *buf, size_t cap) {
    if (c->p.backend == BLIPC_INDEX_OPENSEARCH) {
        snprintf(buf, cap, "OpenSearch %s index %s", c->p.url, c->p.index_name ? c->p.index_name : "blipc-images");
    } else if (c->p.store_path) {
        snprintf(buf, cap, "store %s", c->p.store_path);
    } else {
        char d[2048];
        if (blipc_index_default_store_path(d, sizeof d) == BLIPC_OK) snprintf(buf, cap, "store %s", d);
        else snprintf(buf, cap, "store (no default path: set --store)");
    }
}

/* Minimal JSON string writer for the tools' --json output. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

static int parse_int_arg(const char *prog, const char *opt, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!v[0] || *end || x < lo || x > hi) {
        fprintf(stderr, "%s: %s %s: expected an integer in %d..%d\n", prog, opt, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* --embed-model / --caption-model (`what`): a local directory, or a Hub repo
 * id from the cache (pulled on first use) when built with tools/model_resolve;
 * NULL = default_repo. Writes the directory into dir; 0, or -1 after saying why. */
static int index_cli_resolve_model(const char *prog, const char *arg, const char *default_repo, const char *what,
                                   char *dir, size_t cap) {
#ifdef HAVE_MODEL_RESOLVE
    (void)prog;
    (void)what;
    return blipc_tool_resolve_model(arg, default_repo, dir, cap, 1) != 0 ? -1 : 0;
#else
    /* built without tools/model_resolve (no tool_common_dep): local directories only */
    if (!arg) {
        fprintf(stderr,
                "%s: no --%s-model given; pass a local model directory (the default %s is resolved from the\n"
                "Hugging Face cache only in builds with the hub resolver)\n",
                prog, what, default_repo);
        return -1;
    }
    struct stat sb;
    if (stat(arg, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "%s: --%s-model %s: not a directory (this build only accepts local model directories)\n",
                prog, what, arg);
        return -1;
    }
    snprintf(dir, cap, "%s", arg);
    return 0;
#endif
}

#endif
