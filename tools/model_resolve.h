/* model_resolve.h — how every tool turns --model into a local model directory.
 *
 *   an existing directory      -> itself (checked for completeness)
 *   ORG/NAME[@REVISION]        -> the Hugging Face cache snapshot (huggingface_hub layout),
 *                                 downloaded first if missing and allowed (progress on stderr)
 *   NULL                       -> default_repo
 *
 * Messages go to stderr; on failure they say exactly what is missing and how to get it. */
#ifndef BLIPC_TOOLS_MODEL_RESOLVE_H
#define BLIPC_TOOLS_MODEL_RESOLVE_H

#include "blipc.h"

#include <stddef.h>

#define BLIPC_DEFAULT_CAPTION_MODEL "Salesforce/blip2-opt-2.7b"
#define BLIPC_DEFAULT_EMBED_MODEL "sentence-transformers/all-MiniLM-L12-v2"

/* Returns 0 (dir filled) or a blipc_status (message already printed). allow_pull = 0 never
 * downloads (as with HF_HUB_OFFLINE=1). */
int blipc_tool_resolve_model(const char *arg_or_null, const char *default_repo, char *dir, size_t cap,
                             int allow_pull);

/* Progress printer shared with blipc-pull: a bar on a terminal, one line per file otherwise.
 * user: a blipc_tool_progress (may be zero-initialised). quiet = only errors. */
typedef struct blipc_tool_progress {
    int quiet;
    int tty;            /* set by blipc_tool_progress_init */
    double t_start, t_file, t_last;
    unsigned long long file_start_done;
    const char *cache_dir; /* shown in the "downloading ..." line (may be NULL) */
} blipc_tool_progress;
void blipc_tool_progress_init(blipc_tool_progress *p, int quiet);
struct blipc_hub_progress;
int blipc_tool_hub_progress(void *user, const struct blipc_hub_progress *p);
void blipc_tool_hub_log(void *user, blipc_log_level level, const char *msg);

/* "15.5 GB" style (decimal units, as the Hub shows sizes). */
const char *blipc_tool_human_bytes(unsigned long long n, char *buf, size_t cap);

#endif
