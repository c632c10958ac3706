/* blipc-pull — download models into the Hugging Face cache (the layout huggingface_hub uses).
 *
 *   blipc-pull [options] [ORG/NAME[@REVISION]...]
 *
 * With no repo, pulls the two default models. Prints each snapshot directory on stdout. */
#include "blipc_hub.h"
#include "model_resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: blipc-pull [options] [ORG/NAME[@REVISION]...]\n"
            "Download what the engine needs of each model into the Hugging Face cache\n"
            "(default: %s and %s).\n"
            "Prints the snapshot directory of each model on stdout.\n\n"
            "options:\n"
            "  --cache DIR       cache directory (default $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)\n"
            "  --endpoint URL    Hub endpoint (default $HF_ENDPOINT or https://huggingface.co)\n"
            "  --verify          re-hash cached files (sha256) and fetch again any that are corrupt\n"
            "  --check           do not download: check that the cache holds a complete snapshot\n"
            "  --no-symlinks     store plain files in snapshots/ instead of symlinks into blobs/\n"
            "  --retries N       retries of a failed transfer (default 5)\n"
            "  -q, --quiet       no progress output\n"
            "  -h, --help        this help\n"
            "environment: HF_TOKEN (gated/private repos), HF_HUB_OFFLINE=1 (no network), HF_HOME, HF_HUB_CACHE,\n"
            "HF_ENDPOINT. See docs/models.md.\n",
            BLIPC_DEFAULT_CAPTION_MODEL, BLIPC_DEFAULT_EMBED_MODEL);
}

int main(int argc, char **argv) {
    blipc_hub_params hp;
    blipc_hub_default_params(&hp);
    int quiet = 0, check = 0;
    const char *repos[64];
    int nrepos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--cache") && i + 1 < argc) hp.cache_dir = argv[++i];
        else if (!strcmp(a, "--endpoint") && i + 1 < argc) hp.endpoint = argv[++i];
        else if (!strcmp(a, "--verify")) hp.verify = 1;
        else if (!strcmp(a, "--check")) check = 1;
        else if (!strcmp(a, "--no-symlinks")) hp.symlinks = 0;
        else if (!strcmp(a, "--retries") && i + 1 < argc) hp.max_retries = atoi(argv[++i]);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "blipc-pull: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (nrepos < 64) {
            repos[nrepos++] = a;
        } else {
            fprintf(stderr, "blipc-pull: too many repos\n");
            return 2;
        }
    }
    if (nrepos == 0) {
        repos[nrepos++] = BLIPC_DEFAULT_CAPTION_MODEL;
        repos[nrepos++] = BLIPC_DEFAULT_EMBED_MODEL;
    }
    blipc_tool_progress prog;
    blipc_tool_progress_init(&prog, quiet);
    hp.progress = blipc_tool_hub_progress;
    hp.progress_user = &prog;
    hp.log_fn = blipc_tool_hub_log;
    hp.log_user = &prog;
    if (check) hp.allow_pull = 0;
    blipc_hub *hub;
    char err[1024];
    if (blipc_hub_open(&hp, &hub, err, sizeof err) != BLIPC_OK) {
        fprintf(stderr, "blipc-pull: %s\n", err);
        return 1;
    }
    prog.cache_dir = blipc_hub_cache_dir(hub);
    int rc = 0;
    for (int i = 0; i < nrepos; i++) {
        char dir[4096];
        blipc_status st = check ? blipc_hub_resolve(hub, repos[i], dir, sizeof dir)
                                : blipc_hub_pull(hub, repos[i], dir, sizeof dir);
        if (st != BLIPC_OK) {
            fprintf(stderr, "blipc-pull: %s: %s (%s)\n", repos[i], blipc_hub_errmsg(hub), blipc_status_str(st));
            if (st == BLIPC_ERR_AUTH)
                fprintf(stderr, "  set HF_TOKEN to an access token of an account that may read %s\n", repos[i]);
            else if (st == BLIPC_ERR_NETWORK && !blipc_hub_is_offline(hub))
                fprintf(stderr, "  check the network or HF_ENDPOINT; an interrupted download resumes on the next run\n");
            rc = 1;
            continue;
        }
        printf("%s\n", dir);
        fflush(stdout);
    }
    blipc_hub_free(hub);
    return rc;
}
