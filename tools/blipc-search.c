/* blipc-search — find indexed images by meaning.
 *
 *   blipc-search [options] "QUERY"
 *
 * Embeds the query with the same sentence embedder used at indexing time and
 * runs an exact (store) or HNSW (OpenSearch) k-NN search; --hybrid combines it
 * with BM25 over captions and answers (min-max normalisation, weighted mean). */
#include "blipc.h"
#include "blipc_index.h"
#include "index_cli.h"
#ifdef HAVE_MODEL_RESOLVE
#include "model_resolve.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


#define PROG "blipc-search"
#define DEFAULT_EMBED_REPO "sentence-transformers/all-MiniLM-L12-v2"
#define MAX_FILTERS 32

static void usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " [options] QUERY\n"
            "Search the indexed images by meaning.\n\n"
            "  -k N                     number of results (default 10, at most 10000)\n"
            "  --hybrid                 combine vector and BM25 text scores (min-max + weighted mean)\n"
            "  --text-weight W          hybrid weight of the text score in [0,1] (default 0.3)\n"
            "  --filter FIELD=VALUE     exact match on a stored field (repeatable): path, id, width,\n"
            "                           height, image_description, answer_<question words>, ...\n"
            "  --embed-model DIR|REPO   sentence embedder (default " DEFAULT_EMBED_REPO ")\n"
            "                           (with --opensearch --model-id and no --embed-model, the\n"
            "                           cluster embeds the query: neural query)\n"
            "  --threads N              threads for the embedder\n"
            "  --json                   JSON output on stdout\n\n" INDEX_CLI_USAGE);
}

int main(int argc, char **argv) {
    index_cli ic;
    index_cli_init(&ic);
    ic.p.read_only = 1;
    const char *query = NULL, *embed_model = NULL;
    int k = 10, hybrid = 0, json = 0, threads = 0;
    double text_weight = 0.3;
    blipc_index_filter filters[MAX_FILTERS];
    char *filter_buf[MAX_FILTERS] = {0};
    size_t n_filters = 0;
    int rc = 2;
    blipc_embedder *emb = NULL;
    blipc_index *ix = NULL;
    float *vec = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = index_cli_parse(&ic, argc, argv, &i, PROG);
        if (r < 0) goto out;
        if (r > 0) continue;
        int has_next = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--hybrid")) hybrid = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--")) {
            if (i + 1 < argc) query = argv[++i];
        } else if ((!strcmp(a, "-k") || !strcmp(a, "--filter") || !strcmp(a, "--embed-model") ||
                    !strcmp(a, "--threads") || !strcmp(a, "--text-weight")) && !has_next) {
            fprintf(stderr, PROG ": %s needs a value\n", a);
            goto out;
        } else if (!strcmp(a, "-k")) {
            if (parse_int_arg(PROG, a, argv[++i], 1, 10000, &k)) goto out;
        } else if (!strcmp(a, "--threads")) {
            if (parse_int_arg(PROG, a, argv[++i], 1, 1024, &threads)) goto out;
        } else if (!strcmp(a, "--text-weight")) {
            char *end;
            text_weight = strtod(argv[++i], &end);
            if (*end || !(text_weight >= 0 && text_weight <= 1)) {
                fprintf(stderr, PROG ": --text-weight %s: expected a number in [0,1]\n", argv[i]);
                goto out;
            }
        } else if (!strcmp(a, "--embed-model")) embed_model = argv[++i];
        else if (!strcmp(a, "--filter")) {
            const char *v = argv[++i];
            const char *eq = strchr(v, '=');
            if (!eq || eq == v) {
                fprintf(stderr, PROG ": --filter %s: expected FIELD=VALUE\n", v);
                goto out;
            }
            if (n_filters == MAX_FILTERS) {
                fprintf(stderr, PROG ": at most %d filters\n", MAX_FILTERS);
                goto out;
            }
            char *copy = strdup(v);
            if (!copy) goto out;
            copy[eq - v] = 0;
            filter_buf[n_filters] = copy;
            filters[n_filters].field = copy;
            filters[n_filters].value = copy + (eq - v) + 1;
            n_filters++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, PROG ": unknown option %s (see --help)\n", a);
            goto out;
        } else if (query) {
            fprintf(stderr, PROG ": more than one QUERY given (quote the query: \"a dog on a beach\")\n");
            goto out;
        } else {
            query = a;
        }
    }
    if (index_cli_finish(&ic, PROG)) goto out;
    if (!query) {
        fprintf(stderr, PROG ": no QUERY given (see --help)\n");
        goto out;
    }
    int blank = 1;
    for (const char *p = query; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') blank = 0;
    if (blank) {
        fprintf(stderr, PROG ": the query is empty: describe what to look for, e.g. " PROG " \"a dog on a beach\"\n");
        goto out;
    }

    char err[2048], target[2300];
    index_cli_describe(&ic, target, sizeof target);
    int server_embeds = ic.p.backend == BLIPC_INDEX_OPENSEARCH && ic.p.model_id && !embed_model;
    int dim = 0;
    if (!server_embeds) {
        char dir[4096];
        if (index_cli_resolve_model(PROG, embed_model, DEFAULT_EMBED_REPO, "embed", dir, sizeof dir)) goto out;
        blipc_embedder_params ep;
        blipc_embedder_default_params(&ep);
        ep.n_threads = threads;
        blipc_status st = blipc_embedder_open(dir, &ep, &emb, err, sizeof err);
        if (st != BLIPC_OK) {
            fprintf(stderr, PROG ": embed model %s: %s\n", dir, err);
            goto out;
        }
        dim = blipc_embedder_dim(emb);
        vec = malloc((size_t)dim * sizeof(float));
        if (!vec) goto out;
        const char *texts[] = {query};   /* longer than max_seq_length: truncated by the embedder */
        st = blipc_embedder_embed(emb, texts, 1, vec);
        if (st != BLIPC_OK) {
            fprintf(stderr, PROG ": embedding the query: %s\n", blipc_embedder_errmsg(emb));
            goto out;
        }
    }
    blipc_status st = blipc_index_open(&ic.p, &ix, err, sizeof err);
    if (st != BLIPC_OK) {
        fprintf(stderr, PROG ": %s: %s\n", target, err);
        goto out;
    }
    blipc_index_query q;
    blipc_index_default_query(&q);
    q.text = query;
    q.vector = vec;
    q.dim = dim;
    q.k = k;
    q.hybrid = hybrid;
    q.text_weight = (float)text_weight;
    q.vector_weight = (float)(1.0 - text_weight);
    q.filters = filters;
    q.n_filters = n_filters;
    st = blipc_index_search(ix, &q);
    if (st != BLIPC_OK) {
        fprintf(stderr, PROG ": %s: %s\n", target, blipc_index_errmsg(ix));
        goto out;
    }
    size_t n = blipc_index_hit_count(ix);
    if (json) {
        printf("{\"query\":");
        json_str(stdout, query);
        printf(",\"k\":%d,\"hybrid\":%s,\"hits\":[", k, hybrid ? "true" : "false");
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"rank\":%zu,\"score\":%.6f,\"id\":", i ? "," : "", i + 1, blipc_index_hit_score(ix, i));
            json_str(stdout, blipc_index_hit_id(ix, i));
            printf(",\"path\":");
            json_str(stdout, blipc_index_hit_path(ix, i));
            printf(",\"image_description\":");
            json_str(stdout, blipc_index_hit_caption(ix, i));
            double ts = blipc_index_hit_text_score(ix, i), vs = blipc_index_hit_vector_score(ix, i);
            if (hybrid) {
                if (isnan(ts)) printf(",\"text_score\":null");
                else printf(",\"text_score\":%.6f", ts);
                if (isnan(vs)) printf(",\"vector_score\":null");
                else printf(",\"vector_score\":%.6f", vs);
            }
            printf("}");
        }
        printf("]}\n");
    } else {
        if (n == 0) fprintf(stderr, PROG ": no results in %s\n", target);
        for (size_t i = 0; i < n; i++)
            printf("%3zu  %.4f  %s\n     %s\n", i + 1, blipc_index_hit_score(ix, i), blipc_index_hit_path(ix, i),
                   blipc_index_hit_caption(ix, i));
    }
    rc = 0;
out:
    for (size_t i = 0; i < n_filters; i++) free(filter_buf[i]);
    free(vec);
    blipc_embedder_free(emb);
    blipc_index_close(ix);
    index_cli_free(&ic);
    return rc;
}
