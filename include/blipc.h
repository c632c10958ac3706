/*
 * blipc.h — libblipc public API (C11, FFI-friendly).
 *
 * libblipc runs BLIP-2 (EVA ViT-g -> Q-Former -> OPT) image captioning / visual
 * question answering and all-MiniLM sentence embeddings on the CPU, reading
 * Hugging Face safetensors checkpoints directly.
 *
 * Quick example (error handling shortened):
 *
 *     char err[512];
 *     blipc_captioner *cap;
 *     if (blipc_captioner_open("/models/blip2-opt-2.7b", NULL, &cap, err, sizeof err) != BLIPC_OK) {
 *         fprintf(stderr, "%s\n", err); return 1;
 *     }
 *     blipc_gen_params gp;
 *     blipc_captioner_default_gen_params(cap, &gp);       // generation_config.json defaults
 *     const char *paths[] = { "beach.jpg" };
 *     blipc_captioner_caption_files(cap, paths, 1, NULL, &gp);
 *     if (blipc_captioner_result_status(cap, 0) == BLIPC_OK)
 *         printf("%s\n", blipc_captioner_result_text(cap, 0));
 *     blipc_captioner_free(cap);
 *
 *     blipc_embedder *emb;
 *     blipc_embedder_open("/models/all-MiniLM-L12-v2", NULL, &emb, err, sizeof err);
 *     float v[384];
 *     const char *texts[] = { "a woman playing with her dog on the beach" };
 *     blipc_embedder_embed(emb, texts, 1, v);
 *     blipc_embedder_free(emb);
 *
 * Conventions (every function follows them):
 *  - Every fallible call returns a blipc_status (0 = BLIPC_OK). Constructors hand the
 *    object out through a pointer and write a message into a caller buffer
 *    (errbuf may be NULL); later calls leave a message in the handle
 *    (blipc_*_errmsg), valid until the next call on that handle.
 *  - Params structs are passed by const pointer; NULL means "defaults". Fill them
 *    with the matching *_default_params function, then change what you need.
 *  - *_free(NULL) is a no-op. Everything the library allocates has a free.
 *  - The library never prints, exits or aborts; logging goes only to the
 *    callback set in the params (optional).
 *  - Thread rules: a handle may be used by one thread at a time. Separate handles
 *    are independent and may be used from separate threads concurrently (there is
 *    no global mutable state; note that OpenBLAS's own thread count is
 *    process-wide: the library sets it from n_threads before each BLAS-heavy call).
 *  - Text is UTF-8. Invalid UTF-8 is rejected with BLIPC_ERR_INVALID_ARG naming
 *    the text and byte offset.
 */
#ifndef BLIPC_H
#define BLIPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(BLIPC_BUILD)
#define BLIPC_API __declspec(dllexport)
#elif defined(__GNUC__) && defined(BLIPC_BUILD)
#define BLIPC_API __attribute__((visibility("default")))
#else
#define BLIPC_API
#endif

#define BLIPC_VERSION_MAJOR 0
#define BLIPC_VERSION_MINOR 1
#define BLIPC_VERSION_PATCH 0
#define BLIPC_VERSION_NUMBER (BLIPC_VERSION_MAJOR * 10000 + BLIPC_VERSION_MINOR * 100 + BLIPC_VERSION_PATCH)

/* ------------------------------------------------------------------ status */

/* Status codes. New codes are appended; values are never renumbered. */
typedef enum blipc_status {
    BLIPC_OK = 0,
    BLIPC_ERR_INVALID_ARG = 1,   /* a NULL/out-of-range argument or bad text */
    BLIPC_ERR_IO = 2,            /* a file or directory is missing or unreadable */
    BLIPC_ERR_FORMAT = 3,        /* a file is malformed (safetensors, JSON, image, vocab) */
    BLIPC_ERR_MODEL = 4,         /* checkpoint/config inconsistent: missing tensor, wrong shape, ... */
    BLIPC_ERR_NOMEM = 5,         /* an allocation failed */
    BLIPC_ERR_UNSUPPORTED = 6,   /* valid input this build does not handle */
    BLIPC_ERR_LIMIT = 7,         /* input over a limit (pixels, positions, batch) */
    BLIPC_ERR_ABORTED = 8,       /* a callback asked to stop */
    BLIPC_ERR_BUFFER_TOO_SMALL = 9, /* caller buffer too small; the size needed was returned */
    BLIPC_ERR_NETWORK = 10,      /* connection, TLS or protocol failure */
    BLIPC_ERR_NOT_FOUND = 11,    /* remote object (repo, file, index) does not exist */
    BLIPC_ERR_AUTH = 12,         /* 401/403 or missing credentials */
    BLIPC_ERR_STORE = 13,        /* index store failure (SQLite, OpenSearch) */
    BLIPC_ERR_INTERNAL = 14      /* a bug: please report */
} blipc_status;

/* Static English name/description of a status code. Never NULL. */
BLIPC_API const char *blipc_status_str(blipc_status s);

/* "MAJOR.MINOR.PATCH" */
BLIPC_API const char *blipc_version(void);

/* ----------------------------------------------------------------- logging */

typedef enum blipc_log_level {
    BLIPC_LOG_DEBUG = 0,
    BLIPC_LOG_INFO = 1,
    BLIPC_LOG_WARN = 2,
    BLIPC_LOG_ERROR = 3
} blipc_log_level;

/* Optional log sink: called from the thread that called into the library. */
typedef void (*blipc_log_fn)(void *user, blipc_log_level level, const char *msg);

/* Optional progress callback: fraction in [0,1]; return 0 to abort (the call then
 * returns BLIPC_ERR_ABORTED), non-zero to go on. */
typedef int (*blipc_progress_fn)(void *user, float fraction);

/* --------------------------------------------------------------- tokenizer */

/* A tokenizer read from a model directory: WordPiece (vocab.txt, BERT) or GPT-2
 * byte-level BPE (vocab.json + merges.txt, OPT). Immutable after open: may be
 * shared by threads. */
typedef struct blipc_tokenizer blipc_tokenizer;

typedef enum blipc_tokenizer_kind {
    BLIPC_TOKENIZER_WORDPIECE = 1,
    BLIPC_TOKENIZER_BPE = 2
} blipc_tokenizer_kind;

BLIPC_API blipc_status blipc_tokenizer_open(const char *model_dir, blipc_tokenizer **out,
                                            char *errbuf, size_t errbuf_size);
BLIPC_API void blipc_tokenizer_free(blipc_tokenizer *t);
BLIPC_API blipc_tokenizer_kind blipc_tokenizer_get_kind(const blipc_tokenizer *t);
BLIPC_API int32_t blipc_tokenizer_vocab_size(const blipc_tokenizer *t);

/* Encode `len` bytes of UTF-8 `text` as HF's tokenizer(text) does: with the
 * model's special tokens (BERT: [CLS] .. [SEP]; OPT: BOS first) when
 * add_special != 0. max_length > 0 truncates as sentence-transformers does
 * (keeping the special tokens); 0 = no truncation. Writes up to `cap` ids; *n_ids
 * receives the number of ids the full result has. If cap < *n_ids, returns
 * BLIPC_ERR_BUFFER_TOO_SMALL (ids holds the first cap). errbuf (may be NULL)
 * receives the reason for a failure. */
BLIPC_API blipc_status blipc_tokenizer_encode(const blipc_tokenizer *t, const char *text, size_t len,
                                              int add_special, int max_length, int32_t *ids, size_t cap,
                                              size_t *n_ids, char *errbuf, size_t errbuf_size);

/* Decode ids to UTF-8 (NUL-terminated), as HF's tokenizer.decode(ids,
 * skip_special_tokens). *len receives the text length without the NUL; if
 * cap <= *len returns BLIPC_ERR_BUFFER_TOO_SMALL. */
BLIPC_API blipc_status blipc_tokenizer_decode(const blipc_tokenizer *t, const int32_t *ids, size_t n,
                                              int skip_special, char *text, size_t cap, size_t *len);

/* The vocabulary string of one id (e.g. "##ing", "Ġthe"), or NULL if out of range.
 * Valid as long as the tokenizer. */
BLIPC_API const char *blipc_tokenizer_id_to_token(const blipc_tokenizer *t, int32_t id);

/* ---------------------------------------------------------------- embedder */

/* all-MiniLM-L12-v2 style sentence embedder (BertModel + sentence-transformers
 * mean pooling + L2 normalisation). One handle per thread. */
typedef struct blipc_embedder blipc_embedder;

typedef struct blipc_embedder_params {
    int n_threads;          /* 0 = number of cores */
    int max_seq_length;     /* 0 = from sentence_bert_config.json (128 for all-MiniLM-L12-v2) */
    blipc_log_fn log_fn;    /* optional */
    void *log_user;
} blipc_embedder_params;

BLIPC_API void blipc_embedder_default_params(blipc_embedder_params *p);

/* Open a sentence-transformers model directory (config.json, model.safetensors or
 * sharded, vocab.txt, modules.json, 1_Pooling/config.json, sentence_bert_config.json). */
BLIPC_API blipc_status blipc_embedder_open(const char *model_dir, const blipc_embedder_params *p,
                                           blipc_embedder **out, char *errbuf, size_t errbuf_size);
BLIPC_API void blipc_embedder_free(blipc_embedder *e);

/* Embedding dimension (384 for all-MiniLM-L12-v2). */
BLIPC_API int blipc_embedder_dim(const blipc_embedder *e);

/* Embed n NUL-terminated UTF-8 texts into out[n * dim] (row i = text i), each
 * L2-normalised. Texts longer than max_seq_length tokens are truncated; the empty
 * string is valid ([CLS][SEP]); n == 0 does nothing and returns BLIPC_OK. */
BLIPC_API blipc_status blipc_embedder_embed(blipc_embedder *e, const char *const *texts, size_t n,
                                            float *out);
BLIPC_API const char *blipc_embedder_errmsg(const blipc_embedder *e);

/* ------------------------------------------------------------------- image */

/* A decoded 8-bit RGB image (HWC). */
typedef struct blipc_image blipc_image;

typedef struct blipc_image_params {
    uint64_t max_pixels;    /* refuse larger images (decompression bombs); 0 = default 178956970 (PIL's limit x2) */
    int exif_transpose;     /* 1 = apply EXIF orientation (HF load_image); 0 = ignore it (the BLIP-2 processor) */
} blipc_image_params;

BLIPC_API void blipc_image_default_params(blipc_image_params *p);

/* Decode a file (JPEG, PNG, BMP, GIF first frame, ...) and convert to RGB as
 * PIL's convert("RGB") does. */
BLIPC_API blipc_status blipc_image_load_file(const char *path, const blipc_image_params *p,
                                             blipc_image **out, char *errbuf, size_t errbuf_size);
/* Decode an encoded image held in memory. */
BLIPC_API blipc_status blipc_image_load_memory(const void *data, size_t size, const blipc_image_params *p,
                                               blipc_image **out, char *errbuf, size_t errbuf_size);
/* Wrap a copy of an RGB buffer (row stride in bytes; 0 = width * 3). */
BLIPC_API blipc_status blipc_image_from_rgb(const uint8_t *rgb, int width, int height, size_t stride,
                                            blipc_image **out, char *errbuf, size_t errbuf_size);
BLIPC_API void blipc_image_free(blipc_image *img);
BLIPC_API int blipc_image_width(const blipc_image *img);
BLIPC_API int blipc_image_height(const blipc_image *img);
/* HWC RGB bytes, width*3 per row, valid as long as the image. */
BLIPC_API const uint8_t *blipc_image_rgb(const blipc_image *img);

/* -------------------------------------------------------------- captioner */

/* BLIP-2 (OPT) captioner / VQA. One handle per thread. */
typedef struct blipc_captioner blipc_captioner;

/* Weight storage for the OPT decoder's linear layers. */
typedef enum blipc_weight_type {
    BLIPC_WEIGHTS_AUTO = 0,   /* as stored: f32 stays f32, f16/bf16 stay 16-bit (upcast exactly when computing) */
    BLIPC_WEIGHTS_F32 = 1,    /* convert everything to f32 at load */
    BLIPC_WEIGHTS_BF16 = 2    /* store decoder weights as bf16 (halves decode memory traffic; not bit-exact vs f32) */
} blipc_weight_type;

typedef struct blipc_captioner_params {
    int n_threads;              /* 0 = number of cores */
    int max_batch;              /* largest batch caption_* will run at once; 0 = 8 */
    blipc_weight_type weights;  /* default BLIPC_WEIGHTS_AUTO */
    blipc_image_params image;   /* used by caption_files */
    int keep_debug_tensors;     /* 1 = keep intermediates of the last call for blipc_captioner_dump */
    blipc_log_fn log_fn;        /* optional */
    void *log_user;
    blipc_progress_fn load_progress; /* optional, called while mapping/converting weights */
    void *load_progress_user;
} blipc_captioner_params;

BLIPC_API void blipc_captioner_default_params(blipc_captioner_params *p);

/* Generation parameters; names and meaning as in HF GenerationConfig. */
typedef struct blipc_gen_params {
    int max_new_tokens;         /* default 30 */
    int min_new_tokens;         /* default 0 */
    int num_beams;              /* 1 = greedy/sampling; 1..16 */
    float length_penalty;       /* beam search: score = sum_logprob / len^length_penalty; default 1 */
    int early_stopping;         /* beam search: 1 = stop when num_beams hypotheses are done; 0 (default) = HF's heuristic */
    int do_sample;              /* 0 = greedy/beam */
    float temperature;          /* default 1 */
    int top_k;                  /* default 50 (0 = off) */
    float top_p;                /* default 1 (off) */
    uint64_t seed;              /* sampling seed (default 0); same seed, same output, alone or in a batch */
    float repetition_penalty;   /* default 1 (off) */
    int no_repeat_ngram_size;   /* default 0 (off) */
    blipc_progress_fn progress; /* optional, called after each generated token; return 0 to abort */
    void *progress_user;
} blipc_gen_params;

BLIPC_API blipc_status blipc_captioner_open(const char *model_dir, const blipc_captioner_params *p,
                                            blipc_captioner **out, char *errbuf, size_t errbuf_size);
BLIPC_API void blipc_captioner_free(blipc_captioner *c);

/* HF defaults overlaid with the model's generation_config.json. */
BLIPC_API void blipc_captioner_default_gen_params(const blipc_captioner *c, blipc_gen_params *gp);

/* Caption (prompt == NULL or "") or answer a prompt ("Question: ...? Answer:") for
 * n images. Per-image results replace the previous ones; the call returns
 * BLIPC_OK when it ran (even if some images failed: check each result's status),
 * or an error that concerns the whole call (bad params, prompt too long, ...). */
BLIPC_API blipc_status blipc_captioner_caption_files(blipc_captioner *c, const char *const *paths, size_t n,
                                                     const char *prompt, const blipc_gen_params *gp);
BLIPC_API blipc_status blipc_captioner_caption_images(blipc_captioner *c, const blipc_image *const *images,
                                                      size_t n, const char *prompt, const blipc_gen_params *gp);

/* Results of the last caption_* call, i < n. Strings/arrays are valid until the
 * next caption_* call or free. */
BLIPC_API size_t blipc_captioner_result_count(const blipc_captioner *c);
BLIPC_API blipc_status blipc_captioner_result_status(const blipc_captioner *c, size_t i);
BLIPC_API const char *blipc_captioner_result_error(const blipc_captioner *c, size_t i);
BLIPC_API const char *blipc_captioner_result_text(const blipc_captioner *c, size_t i);
BLIPC_API const int32_t *blipc_captioner_result_tokens(const blipc_captioner *c, size_t i, size_t *n_tokens);
BLIPC_API int blipc_captioner_result_image_size(const blipc_captioner *c, size_t i, int *width, int *height);

/* Write debug tensors of the last call's images (pixel_values, vision output,
 * Q-Former output, projected query embeds) as one safetensors file. */
BLIPC_API blipc_status blipc_captioner_dump(blipc_captioner *c, const char *path);

BLIPC_API const char *blipc_captioner_errmsg(const blipc_captioner *c);

#ifdef __cplusplus
}
#endif
#endif /* BLIPC_H */
