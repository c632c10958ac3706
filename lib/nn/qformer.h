/* qformer.h — BLIP-2 Q-Former, query-only path (HF Blip2QFormerModel with
 * query_embeds only): LayerNorm(query_tokens), BERT post-LN layers with
 * self-attention, cross-attention to the image features every
 * cross_attention_frequency layers (starting at 0) and the *_query FFN; then
 * language_projection to the OPT width. Batched over images; fp32 compute. */
#ifndef BLIPC_NN_QFORMER_H
#define BLIPC_NN_QFORMER_H

#include "err.h"
#include "hfconfig.h"
#include "safetensors.h"

/* One attention block: BertAttention (self or cross) + BertSelfOutput. */
typedef struct blipc_qf_attn {
    const float *q_w, *q_b;   /* [Dq, Dq], [Dq] attention.query */
    const float *k_w, *k_b;   /* [Dq, Dkv], [Dq] attention.key (Dkv = Dq for self, Dv for cross) */
    const float *v_w, *v_b;   /* [Dq, Dkv], [Dq] attention.value */
    const float *o_w, *o_b;   /* [Dq, Dq], [Dq] output.dense */
    const float *ln_w, *ln_b; /* [Dq] output.LayerNorm */
} blipc_qf_attn;

typedef struct blipc_qf_layer {
    blipc_qf_attn self;       /* attention.* */
    blipc_qf_attn cross;      /* crossattention.* (only if has_cross) */
    int has_cross;            /* layer % cross_attention_frequency == 0 */
    const float *fc1_w, *fc1_b; /* [F, Dq], [F] intermediate_query.dense */
    const float *fc2_w, *fc2_b; /* [Dq, F], [Dq] output_query.dense */
    const float *ln_w, *ln_b;   /* [Dq] output_query.LayerNorm */
} blipc_qf_layer;

typedef struct blipc_qformer {
    blipc_blip2_qformer_config cfg;
    int n_query;               /* Q: num_query_tokens */
    int text_hidden;           /* Dt: OPT hidden size (projection output) */
    const float *query_tokens; /* [1, Q, Dq] */
    const float *ln_w, *ln_b;  /* [Dq] qformer.layernorm */
    const float *proj_w;       /* [Dt, Dq] language_projection.weight */
    const float *proj_b;       /* [Dt] */
    blipc_qf_layer *layers;    /* [num_hidden_layers], malloc'd */
} blipc_qformer;

blipc_status blipc__qformer_load(blipc_qformer *m, const blipc_blip2_config *cfg, blipc_safetensors *st,
                                 blipc_err *e);
void blipc__qformer_free(blipc_qformer *m);

/* Floats of scratch for B images with T image tokens each. */
size_t blipc__qformer_scratch_floats(const blipc_qformer *m, int B, int T);

/* image_embeds [B, T, Dv] -> out [B, Q, Dq] (last hidden state) and
 * proj [B, Q, Dt] (language_projection of it). */
void blipc__qformer_forward(const blipc_qformer *m, const float *image_embeds, int B, int T, float *out,
                            float *proj, float *scratch);

#endif
