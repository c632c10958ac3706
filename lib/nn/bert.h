/* bert.h — BertModel (as HF transformers' modeling_bert, eval mode) over float32
 * weights: embeddings (word + position + token_type 0) -> LayerNorm -> post-LN
 * encoder layers. Returns last_hidden_state; pooling is the pipeline's business.
 *
 * Weights come from a safetensors reader by their HF names (bare BertModel keys
 * as sentence-transformers saves them, or with a "bert." prefix). F32 tensors are
 * used in place from the mapping; copies made: the fused Q|K|V matrix, and on
 * AVX-512 CPUs every linear weight repacked into column panels (blipc__bert_pack). */
#ifndef BLIPC_NN_BERT_H
#define BLIPC_NN_BERT_H

#include "arena.h"
#include "err.h"
#include "hfconfig.h"
#include "safetensors.h"

#include <stdint.h>

/* D = hidden_size, F = intermediate_size, V = vocab_size, P = max_position_embeddings,
 * TV = type_vocab_size. Linear weights are HF layout [out, in]. */
typedef struct blipc_bert_layer {
    const float *qkv_w;    /* [3D, D] attention.self.{query,key,value}.weight stacked (rows 0..D-1 = query) */
    const float *qkv_b;    /* [3D]    attention.self.{query,key,value}.bias stacked */
    const float *attn_out_w; /* [D, D] attention.output.dense.weight */
    const float *attn_out_b; /* [D]    attention.output.dense.bias */
    const float *ln1_g;    /* [D]     attention.output.LayerNorm.weight */
    const float *ln1_b;    /* [D]     attention.output.LayerNorm.bias */
    const float *ffn_in_w; /* [F, D]  intermediate.dense.weight */
    const float *ffn_in_b; /* [F]     intermediate.dense.bias */
    const float *ffn_out_w; /* [D, F] output.dense.weight */
    const float *ffn_out_b; /* [D]    output.dense.bias */
    const float *ln2_g;    /* [D]     output.LayerNorm.weight */
    const float *ln2_b;    /* [D]     output.LayerNorm.bias */
    /* the same four linear weights repacked by blipc__bert_pack (NULL when not
     * packed): panels of BLIPC_BERT_PANEL output columns, [ceil(N/P)][K][P],
     * the last panel zero-padded */
    const float *qkv_p, *attn_out_p, *ffn_in_p, *ffn_out_p;
} blipc_bert_layer;

#define BLIPC_BERT_PANEL 48

typedef struct blipc_bert_weights {
    int D, H, F, L, V, P;  /* hidden, heads, intermediate, layers, vocab, positions */
    float eps;             /* layer_norm_eps */
    const float *word_emb; /* [V, D]  embeddings.word_embeddings.weight */
    const float *pos_emb;  /* [P, D]  embeddings.position_embeddings.weight */
    const float *type_emb; /* [TV, D] embeddings.token_type_embeddings.weight (row 0 used) */
    const float *emb_ln_g; /* [D]     embeddings.LayerNorm.weight */
    const float *emb_ln_b; /* [D]     embeddings.LayerNorm.bias */
    blipc_bert_layer *layer; /* [L] */
    float *qkv_buf;        /* owned: [L, 3D, D] + [L, 3D] fused Q|K|V weights and biases */
    float *pack_buf;       /* owned: the packed panels of every layer (NULL when not packed) */
} blipc_bert_weights;

/* Load from a reader (which must outlive the weights). Shapes are checked
 * against the config; errors name the tensor and file. */
blipc_status blipc__bert_load(blipc_safetensors *st, const blipc_bert_config *cfg, blipc_bert_weights *w,
                              blipc_err *e);
void blipc__bert_free(blipc_bert_weights *w);

/* Repack the linear weights into column panels for forward()'s own AVX-512
 * kernel (every row of a batch then takes the same kernel whatever the batch
 * size: a text's vector does not depend on its batch). Called by
 * blipc__bert_load; a no-op returning BLIPC_OK on CPUs without AVX-512F (the
 * forward then uses sgemm / gemm_small). Also for weights built by hand (bench,
 * tests): the layer's weight pointers must be set. */
blipc_status blipc__bert_pack(blipc_bert_weights *w, blipc_err *e);

/* Arena bytes forward() needs for a batch of B sequences of T tokens using
 * n_threads threads (the attention keeps one T x T score block per thread). */
size_t blipc__bert_scratch_bytes(const blipc_bert_weights *w, int B, int T, int n_threads);

/* Optional time breakdown of forward() (seconds, accumulated) and the FLOPs of
 * its dense (linear) layers. */
typedef struct blipc_bert_prof {
    double t_embed, t_dense, t_attn, t_norm, t_gelu;
    double dense_flops, attn_flops;
} blipc_bert_prof;

/* last_hidden_state [B, T, D] for ids[B*T] (each in [0, V)) and mask[B*T]
 * (1 = real token, 0 = padding: masked out as attention keys; padded rows are
 * computed too, attending to the real tokens, as HF does). T <= P. The output
 * lives in `scratch` (valid until the caller resets the arena). n_threads is
 * used by the non-BLAS kernels (attention, layernorm, GELU); the BLAS thread
 * count is the caller's (blipc__threads_set). */
blipc_status blipc__bert_forward(const blipc_bert_weights *w, const int32_t *ids, const int32_t *mask, int B, int T,
                                 int n_threads, blipc_arena *scratch, float **out, blipc_bert_prof *prof,
                                 blipc_err *e);

/* GELU (exact erf form) with a vectorisable erf approximation (|error| < 4e-7
 * against erff): used by forward(); tested against blipc__gelu_erf. */
void blipc__bert_gelu(float *x, size_t n);

#endif
