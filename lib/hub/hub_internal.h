/* hub_internal.h — internals of libblipc-hub shared between its files (and the tests). */
#ifndef BLIPC_HUB_INTERNAL_H
#define BLIPC_HUB_INTERNAL_H

#include "blipc_hub.h"
#include "err.h"
#include "fileutil.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#define BLIPC_HUB_PATH_MAX 4096

struct blipc_hub {
    char *endpoint;   /* no trailing slash */
    char *token;      /* NULL = none */
    char *cache_dir;
    int offline, allow_pull, symlinks, verify, max_retries, retry_delay_ms;
    long connect_timeout_s, stall_timeout_s;
    blipc_hub_progress_fn progress;
    void *progress_user;
    blipc_logger log;
    cJSON *manifest;  /* weights/manifest.json, or NULL when not found (built-in kinds are used) */
    char manifest_path[BLIPC_HUB_PATH_MAX];
    void *curl;       /* one CURL easy handle, reused (keeps connections alive) */
    blipc_err err;
};

/* ---- repo specs: "ORG/NAME[@REV]" */
typedef struct blipc__hub_spec {
    char repo[200];
    char rev[256];    /* "main" when not given */
} blipc__hub_spec;

blipc_status blipc__hub_parse_spec(const char *s, blipc__hub_spec *sp, blipc_err *e);
int blipc__hub_is_commit(const char *s);
/* A file name from a listing/index is safe to use under snapshots/<commit>/ */
int blipc__hub_safe_filename(const char *name);

/* ---- string lists */
typedef struct blipc__strlist {
    char **v;
    size_t n, cap;
} blipc__strlist;
blipc_status blipc__strlist_add(blipc__strlist *l, const char *s, blipc_err *e); /* no duplicates */
int blipc__strlist_has(const blipc__strlist *l, const char *s);
void blipc__strlist_free(blipc__strlist *l);

/* ---- cache layout (cache.c) */
/* <cache>/models--ORG--NAME */
blipc_status blipc__hub_repo_dir(const blipc_hub *h, const char *repo, char *buf, size_t cap, blipc_err *e);
/* The commit a revision names in the cache: rev itself when it is a commit, else refs/<rev>.
 * BLIPC_ERR_NOT_FOUND when the cache does not know it. */
blipc_status blipc__hub_cached_commit(const char *repo_dir, const char *rev, char commit[41], blipc_err *e);
blipc_status blipc__hub_write_ref(const char *repo_dir, const char *rev, const char *commit, blipc_err *e);
/* printf into a path buffer; BLIPC_ERR_LIMIT when it does not fit. */
blipc_status blipc__hub_pathf(char *buf, size_t cap, blipc_err *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
blipc_status blipc__mkdirs(const char *path, blipc_err *e);       /* mkdir -p */
blipc_status blipc__mkdirs_parent(const char *path, blipc_err *e);/* mkdir -p dirname(path) */
/* Put blob into snapshots/<commit>/<filename> (relative symlink, or a moved/copied file
 * without symlinks). new_blob = the blob was just downloaded (may be moved). */
blipc_status blipc__hub_link_pointer(const blipc_hub *h, const char *repo_dir, const char *commit,
                                     const char *filename, const char *etag, int new_blob, blipc_err *e);
/* Create/lock .locks/models--ORG--NAME/<etag>.lock (flock, compatible with Python's filelock).
 * Returns the fd in *fd. Calls the progress callback while waiting (abort -> BLIPC_ERR_ABORTED). */
blipc_status blipc__hub_lock(blipc_hub *h, const char *repo, const char *etag, const char *filename, int *fd,
                             blipc_err *e);
void blipc__hub_unlock(int fd);
/* Hash a whole file: sha256 hex (64) when want_git == 0, git blob sha1 hex (40) when 1. */
blipc_status blipc__hub_hash_file(const char *path, int want_git, char *hex, blipc_err *e);

/* ---- model kinds and the weights manifest (manifest.c) */
typedef struct blipc__hub_kind {
    char name[32];
    blipc__strlist required, optional; /* besides the weights */
} blipc__hub_kind;

blipc_status blipc__hub_load_manifest(blipc_hub *h, const char *path_param, int use_env, blipc_err *e);
/* Kind of a model from its parsed config.json (and whether modules.json exists for BERT). */
blipc_status blipc__hub_detect_kind(const blipc_hub *h, const cJSON *config, const char *config_path,
                                    blipc__hub_kind *k, blipc_err *e);
void blipc__hub_kind_free(blipc__hub_kind *k);
/* Check config values the manifest expects (kind-level, and repo-level when repo != NULL). */
blipc_status blipc__hub_check_config(const blipc_hub *h, const cJSON *config, const char *config_path,
                                     const char *kind, const char *repo, blipc_err *e);
/* Shard file names from a model.safetensors.index.json text. */
blipc_status blipc__hub_index_shards(const char *json, const char *path, blipc__strlist *out, blipc_err *e);
/* A safetensors file is complete: 8 + header + the data its header describes == file size. */
blipc_status blipc__hub_check_safetensors(const char *path, blipc_err *e);
/* Full check of a model directory (see blipc_hub_check_dir). missing (may be NULL) collects
 * the names of the missing required files. */
blipc_status blipc__hub_check_dir(const blipc_hub *h, const char *dir, const char *repo, char *kind, size_t kind_cap,
                                  blipc__strlist *missing, blipc_err *e);
/* The manifest's approximate size of a known repo (0 if unknown). */
uint64_t blipc__hub_manifest_bytes(const blipc_hub *h, const char *repo);

/* ---- HTTP (http.c) */
typedef struct blipc__http_resp {
    long status;
    char etag[160];          /* normalized (no W/, no quotes) X-Linked-Etag, else ETag */
    char commit[64];         /* X-Repo-Commit */
    char location[2048];     /* Location of a 3xx */
    char error_code[64];     /* X-Error-Code */
    char error_message[256]; /* X-Error-Message */
    int64_t size;            /* X-Linked-Size, else Content-Length; -1 unknown */
    int64_t range_start;     /* start of Content-Range for a 206; -1 none */
    int curl_code;           /* CURLcode of a failed transfer, else 0 */
} blipc__http_resp;

/* HEAD url with Accept-Encoding: identity; redirects are not followed, except relative
 * ones (renamed repos), as huggingface_hub does. */
blipc_status blipc__http_head(blipc_hub *h, const char *url, blipc__http_resp *r, blipc_err *e);
/* GET a small body (<= max bytes) into a malloc'd NUL-terminated buffer. */
blipc_status blipc__http_get_mem(blipc_hub *h, const char *url, size_t max, char **body, size_t *n,
                                 blipc__http_resp *r, blipc_err *e);

/* State of one file download (the sink of blipc__http_get_file). */
typedef struct blipc__dl {
    int fd;
    uint64_t offset;         /* bytes already in the file (resume point) */
    uint64_t expected;       /* total size */
    void *hash;              /* EVP_MD_CTX* over everything in the file so far */
    int git;                 /* hash is a git blob sha1 */
    int write_errno;         /* set when writing to disk failed */
    int aborted;             /* the progress callback said stop */
    int restarted;           /* server ignored the Range: file was truncated */
    int bad_range;           /* 206 with a Content-Range not starting at offset */
    uint64_t written;        /* bytes written this request */
    /* progress */
    blipc_hub *hub;
    blipc_hub_progress *prog;
    uint64_t pull_base;      /* bytes_done of the pull before this file */
    double last_report;
    uint64_t last_offset;
} blipc__dl;

/* GET url into dl->fd from dl->offset (Range when > 0), following redirects; auth only
 * if with_auth. Returns BLIPC_OK when the transfer ended normally (the caller checks size). */
blipc_status blipc__http_get_file(blipc_hub *h, const char *url, int with_auth, blipc__dl *dl,
                                  blipc__http_resp *r, blipc_err *e);
/* Status of a failed HTTP response, with a message naming what and what to do. */
blipc_status blipc__http_status_error(const blipc_hub *h, const blipc__http_resp *r, const char *what,
                                      blipc_err *e);
/* 1 for errors worth retrying (connection lost, timeouts, 5xx, 429). */
int blipc__http_transient(const blipc__http_resp *r, blipc_status st);
/* Percent-encode (keep '/' when keep_slash). */
blipc_status blipc__url_quote(const char *s, int keep_slash, char *out, size_t cap, blipc_err *e);
/* Same scheme+host+port. */
int blipc__url_same_host(const char *a, const char *b);
void blipc__hub_sleep_ms(int ms);
double blipc__now(void);

/* ---- hashing helpers (http.c) */
void *blipc__hash_new(int git, uint64_t size);
int blipc__hash_update(void *ctx, const void *data, size_t n);
void blipc__hash_hex(void *ctx, char *hex); /* finalizes and frees */
void blipc__hash_free(void *ctx);

#endif
