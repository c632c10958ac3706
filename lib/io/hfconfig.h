/* hfconfig.h — Hugging Face JSON configs into typed structs, with the defaults
 * transformers applies when a field is absent (configs are diff-style). */
#ifndef BLIPC_IO_HFCONFIG_H
#define BLIPC_IO_HFCONFIG_H

#include "err.h"
#include <cJSON.h>

/* ---- JSON helpers: each checks the type and names file + field on error ---- */
blipc_status blipc__json_load(const char *path, cJSON **out, blipc_err *e);
/* obj may be NULL (then the default is used). `where` = file path (+ section) for messages. */
blipc_status blipc__json_int(const cJSON *obj, const char *field, long long def, long long *out, const char *where,
                             blipc_err *e);
blipc_status blipc__json_num(const cJSON *obj, const char *field, double def, double *out, const char *where,
                             blipc_err *e);
blipc_status blipc__json_bool(const cJSON *obj, const char *field, int def, int *out, const char *where,
                              blipc_err *e);
/* Copies into buf (truncation is an error). */
blipc_status blipc__json_str(const cJSON *obj, const char *field, const char *def, char *buf, size_t cap,
                             const char *where, blipc_err *e);
/* A required positive integer. */
blipc_status blipc__json_req_int(const cJSON *obj, const char *field, long long *out, const char *where,
                                 blipc_err *e);

/* ---- BERT (all-MiniLM) ---- */
typedef struct blipc_bert_config {
    int vocab_size;          /* 30522 */
    int hidden_size;         /* 384 */
    int num_hidden_layers;   /* 12 */
    int num_attention_heads; /* 12 */
    int intermediate_size;   /* 1536 */
    int max_position_embeddings; /* 512 */
    int type_vocab_size;     /* 2 */
    float layer_norm_eps;    /* 1e-12 */
    char hidden_act[32];     /* "gelu" */
    /* sentence-transformers */
    int max_seq_length;      /* sentence_bert_config.json, default 128 (bounded by max_position_embeddings) */
    int pooling_mean;        /* 1_Pooling: pooling_mode_mean_tokens (only mode supported) */
    int normalize;           /* modules.json contains sentence_transformers.models.Normalize */
} blipc_bert_config;

/* Reads DIR/config.json (required fields: hidden_size etc. with BertConfig
 * defaults), DIR/sentence_bert_config.json, DIR/modules.json and the pooling
 * module config (all optional, with sentence-transformers defaults). */
blipc_status blipc__bert_config_load(const char *dir, blipc_bert_config *c, blipc_err *e);

/* ---- BLIP-2 (OPT) ---- */
typedef struct blipc_blip2_vision_config {
    int hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
    int image_size, patch_size, num_channels;
    float layer_norm_eps;
    int qkv_bias;
    char hidden_act[32];
} blipc_blip2_vision_config;

typedef struct blipc_blip2_qformer_config {
    int hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
    int cross_attention_frequency, encoder_hidden_size, vocab_size, max_position_embeddings;
    float layer_norm_eps;
    int use_qformer_text_input;
    char hidden_act[32];
} blipc_blip2_qformer_config;

typedef struct blipc_opt_config {
    int vocab_size, hidden_size, num_hidden_layers, ffn_dim, max_position_embeddings, num_attention_heads;
    int word_embed_proj_dim;
    int do_layer_norm_before, enable_bias, layer_norm_elementwise_affine, tie_word_embeddings;
    int bos_token_id, pad_token_id, eos_token_id;
    float layer_norm_eps; /* 1e-5: torch default, not in the config */
    char activation_function[32];
    char model_type[32];
} blipc_opt_config;

typedef struct blipc_blip2_config {
    blipc_blip2_vision_config vision;
    blipc_blip2_qformer_config qformer;
    blipc_opt_config text;
    int num_query_tokens;   /* 32 */
    int image_token_index;  /* -1 when absent (legacy configs) */
} blipc_blip2_config;

/* Reads DIR/config.json with transformers' Blip2Config defaults; checks that the
 * dimensions agree (vision hidden -> Q-Former encoder_hidden_size, heads divide
 * hidden sizes, ...). text_config.model_type must be "opt". */
blipc_status blipc__blip2_config_load(const char *dir, blipc_blip2_config *c, blipc_err *e);

#endif
