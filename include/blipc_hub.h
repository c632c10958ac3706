/*
 * blipc_hub.h — libblipc-hub: find models by name in the Hugging Face cache and
 * download what is missing (libcurl + libcrypto).
 *
 * The cache is the one Python's huggingface_hub uses ($HF_HUB_CACHE, else
 * $HF_HOME/hub, else ~/.cache/huggingface/hub), in the same layout:
 *
 *     models--ORG--NAME/refs/<revision>            the commit a branch/tag points to
 *     models--ORG--NAME/snapshots/<commit>/<file>  relative symlinks into blobs/
 *     models--ORG--NAME/blobs/<etag>               file contents (sha256 for LFS files)
 *     models--ORG--NAME/blobs/<etag>.incomplete    a download in progress (never used as a file)
 *     .locks/models--ORG--NAME/<etag>.lock         flock(2) lock while a blob downloads
 *
 * so weights downloaded by transformers are reused as they are, and the other way round.
 *
 * Quick example (error handling shortened):
 *
 *     blipc_hub *hub;
 *     char err[512], dir[4096];
 *     if (blipc_hub_open(NULL, &hub, err, sizeof err) != BLIPC_OK) { fprintf(stderr, "%s\n", err); return 1; }
 *     if (blipc_hub_resolve(hub, "Salesforce/blip2-opt-2.7b", dir, sizeof dir) != BLIPC_OK)
 *         fprintf(stderr, "%s\n", blipc_hub_errmsg(hub));
 *     else
 *         blipc_captioner_open(dir, NULL, &cap, err, sizeof err);
 *     blipc_hub_free(hub);
 *
 * Conventions are those of blipc.h: status codes, errmsg per handle, params with
 * a defaults function, *_free(NULL) no-op, the library never prints (progress and
 * log go to callbacks), one handle per thread (handles are independent).
 */
#ifndef BLIPC_HUB_H
#define BLIPC_HUB_H

#include "blipc.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct blipc_hub blipc_hub;

/* Progress events of a pull. */
typedef enum blipc_hub_event {
    BLIPC_HUB_EVENT_PLAN = 0,       /* once, before any download: n_files and bytes_total of what is missing */
    BLIPC_HUB_EVENT_FILE_START = 1, /* a file starts downloading (file_done > 0 when a partial download resumes) */
    BLIPC_HUB_EVENT_FILE_PROGRESS = 2,
    BLIPC_HUB_EVENT_FILE_DONE = 3,  /* the file was verified and moved into the cache */
    BLIPC_HUB_EVENT_RETRY = 4,      /* a transfer failed and will be retried (message says why) */
    BLIPC_HUB_EVENT_WAIT_LOCK = 5   /* another process is downloading this blob; waiting for it */
} blipc_hub_event;

typedef struct blipc_hub_progress {
    blipc_hub_event event;
    const char *repo_id;        /* "ORG/NAME" */
    const char *commit;         /* the snapshot's commit (40 hex), or "" before it is known */
    const char *filename;       /* current file (NULL for PLAN) */
    int file_index;             /* 0-based among the files to download */
    int n_files;                /* files to download (already cached ones are not counted) */
    uint64_t file_done, file_total;   /* bytes of the current file */
    uint64_t bytes_done, bytes_total; /* bytes of the whole pull (what is to be downloaded) */
    const char *message;        /* RETRY/WAIT_LOCK: why; else NULL */
} blipc_hub_progress;

/* Return 0 to abort (the call returns BLIPC_ERR_ABORTED; a partial download is kept
 * as blobs/<etag>.incomplete and resumes next time), non-zero to go on. */
typedef int (*blipc_hub_progress_fn)(void *user, const blipc_hub_progress *p);

typedef struct blipc_hub_params {
    const char *endpoint;    /* NULL = $HF_ENDPOINT, else "https://huggingface.co" */
    const char *token;       /* NULL = $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN, else the file $HF_HOME/token */
    const char *cache_dir;   /* NULL = $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub */
    const char *manifest_path; /* NULL = $BLIPC_MANIFEST, else the installed weights manifest (see docs/models.md) */
    int offline;             /* 1 = never touch the network. 0 = online unless $HF_HUB_OFFLINE is 1/true/yes/on */
    int allow_pull;          /* blipc_hub_resolve: 1 (default) = download what the cache lacks; 0 = cache only */
    int use_env;             /* 1 (default) = NULL fields above come from the HF_* environment; 0 = ignore it */
    int symlinks;            /* 1 (default) = snapshot entries are relative symlinks into blobs/, falling back
                                to plain files where the filesystem has no symlinks; 0 = always plain files */
    int verify;              /* 1 = blipc_hub_pull re-hashes cached LFS blobs (sha256) and re-fetches bad ones;
                                0 (default) = cached files are checked by size only. Downloads are always hashed. */
    int max_retries;         /* retries of a failed transfer (connection lost, 5xx, 429, bad checksum); default 5 */
    int retry_delay_ms;      /* first backoff delay, doubled each retry (capped at 30 s); default 1000 */
    long connect_timeout_s;  /* default 15 */
    long stall_timeout_s;    /* abort a transfer that receives nothing for this long; default 60 */
    blipc_hub_progress_fn progress; /* optional */
    void *progress_user;
    blipc_log_fn log_fn;     /* optional */
    void *log_user;
} blipc_hub_params;

BLIPC_API void blipc_hub_default_params(blipc_hub_params *p);

/* Open a hub handle (no network access, no files created). errbuf may be NULL. */
BLIPC_API blipc_status blipc_hub_open(const blipc_hub_params *p, blipc_hub **out, char *errbuf,
                                      size_t errbuf_size);
BLIPC_API void blipc_hub_free(blipc_hub *hub);
BLIPC_API const char *blipc_hub_errmsg(const blipc_hub *hub);

/* The cache directory in use (valid as long as the handle). */
BLIPC_API const char *blipc_hub_cache_dir(const blipc_hub *hub);
/* 1 when the handle never touches the network. */
BLIPC_API int blipc_hub_is_offline(const blipc_hub *hub);

/* Resolve a model name to a local directory holding every file the engine needs:
 *  - an existing directory: itself (checked for completeness);
 *  - "ORG/NAME" or "ORG/NAME@REVISION" (branch, tag or 40-hex commit; default "main"):
 *    the snapshot directory in the cache. A complete cached snapshot is used without
 *    any network request; otherwise, when online and allow_pull, the missing files are
 *    downloaded (as blipc_hub_pull). Offline or allow_pull == 0, a missing file is an
 *    error naming it and how to get it.
 * The path (NUL-terminated) goes to dir; if it does not fit, BLIPC_ERR_BUFFER_TOO_SMALL. */
BLIPC_API blipc_status blipc_hub_resolve(blipc_hub *hub, const char *model, char *dir, size_t cap);

/* Ask the Hub for the current commit of "ORG/NAME[@REVISION]" and download every file
 * the engine needs that the cache lacks (verified by size and sha256 / git oid, moved
 * atomically into blobs/). Updates refs/<revision>. Writes the snapshot directory to dir
 * (may be NULL). BLIPC_ERR_NOT_FOUND (unknown repo, revision or required file),
 * BLIPC_ERR_AUTH (401/403: gated or private repo), BLIPC_ERR_NETWORK, BLIPC_ERR_IO
 * (disk full, no permission), BLIPC_ERR_UNSUPPORTED (not a model this engine runs),
 * BLIPC_ERR_ABORTED (progress callback). */
BLIPC_API blipc_status blipc_hub_pull(blipc_hub *hub, const char *repo_spec, char *dir, size_t cap);

/* Check that a local model directory is complete and is a model this engine supports
 * (kind detected from config.json, required files present, safetensors shards all there
 * and not truncated, config values as the weights manifest expects for repo_id when
 * repo_id is given, may be NULL). The kind ("blip-2", "sentence-transformers") goes to
 * kind (may be NULL). */
BLIPC_API blipc_status blipc_hub_check_dir(blipc_hub *hub, const char *dir, const char *repo_id, char *kind,
                                           size_t kind_cap);

#ifdef __cplusplus
}
#endif
#endif /* BLIPC_HUB_H */
