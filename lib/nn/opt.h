/* opt.h — OPT decoder (HF OPTForCausalLM) with a KV cache, as used by BLIP-2:
 * learned positions (offset 2), pre-LN layers, q scaled by dh^-0.5, causal
 * attention, ReLU FFN, final LayerNorm, logits = h . lm_head^T over the full
 * vocabulary (tied to embed_tokens unless the checkpoint stores lm_head).
 *
 * The model (blipc_opt) is immutable weights; a session (blipc_opt_session)
 * holds the per-sequence KV cache slots and scratch, sized by
 * blipc__opt_session_reserve before a run so the decode loop allocates nothing.
 * No padding is supported inside a sequence (BLIP-2 prompts are unpadded):
 * positions are 0..len-1 (+2 table offset) per slot. */
#ifndef BLIPC_NN_OPT_H
#define BLIPC_NN_OPT_H

#include "blocks.h"
#include "err.h"
#include "hfconfig.h"
#include "safetensors.h"
#include "generate.h"

typedef struct blipc_opt_layer {
    const float *ln1_w, *ln1_b; /* [D] self_attn_layer_norm */
    blipc_wmat q_w, k_w, v_w;   /* [D, D] self_attn.{q,k,v}_proj.weight */
    const float *q_b, *k_b, *v_b; /* [D] */
    blipc_wmat o_w;             /* [D, D] self_attn.out_proj.weight */
    const float *o_b;           /* [D] */
    const float *ln2_w, *ln2_b; /* [D] final_layer_norm (of the layer) */
    blipc_wmat fc1_w;           /* [F, D] fc1.weight */
    const float *fc1_b;         /* [F] */
    blipc_wmat fc2_w;           /* [D, F] fc2.weight */
    const float *fc2_b;         /* [D] */
} blipc_opt_layer;

typedef struct blipc_opt {
    blipc_opt_config cfg;
    blipc_wmat embed;          /* [V, D] decoder.embed_tokens.weight */
    const float *pos;          /* [max_position_embeddings + 2, D] decoder.embed_positions.weight */
    const float *ln_f_w;       /* [D] decoder.final_layer_norm */
    const float *ln_f_b;       /* [D] */
    blipc_wmat lm_head;        /* [V, D] language_model.lm_head.weight, or == embed (tied) */
    int lm_head_tied;          /* 1 when lm_head is embed_tokens */
    blipc_opt_layer *layers;   /* [num_hidden_layers], malloc'd */
} blipc_opt;

/* mode: storage of the big matrices (layers' linears, embed, lm_head). */
blipc_status blipc__opt_load(blipc_opt *m, const blipc_opt_config *cfg, blipc_safetensors *st, blipc_wmode mode,
                             blipc_err *e);
void blipc__opt_free(blipc_opt *m);

/* Embedding rows for ids (no position, no scale): out[n, D]. Ids must be < V. */
void blipc__opt_embed(const blipc_opt *m, const int32_t *ids, int n, float *out);

typedef struct blipc_opt_session blipc_opt_session;

blipc_status blipc__opt_session_new(const blipc_opt *m, int n_threads, blipc_opt_session **out, blipc_err *e);
void blipc__opt_session_free(blipc_opt_session *s);
/* Make room for max_seqs slots of max_pos positions and a prefill of
 * prefill_rows rows (B x T). Grows (reallocates) only when needed; previous
 * cache contents are discarded when it does. */
blipc_status blipc__opt_session_reserve(blipc_opt_session *s, int max_seqs, int max_pos, int prefill_rows,
                                        blipc_err *e);
/* Bytes held by the session (cache + scratch). */
size_t blipc__opt_session_bytes(const blipc_opt_session *s);

/* Prefill B sequences of T embeddings each (embeds [B, T, D]; positions
 * 0..T-1) into slots 0..B-1, replacing their contents. logits: [B, V] for the
 * last position, or [B, T, V] for every position when all_positions != 0. */
blipc_status blipc__opt_prefill(blipc_opt_session *s, const float *embeds, int B, int T, float *logits,
                                int all_positions, blipc_err *e);
/* One token per sequence (batched: one GEMM per weight). logits [n, V]. */
blipc_status blipc__opt_step(blipc_opt_session *s, const int32_t *tokens, const int *slots, int n, float *logits,
                             blipc_err *e);
/* slot dst[i] becomes a copy of slot src[i] as it was before the call. */
blipc_status blipc__opt_copy_slots(blipc_opt_session *s, const int *src, const int *dst, int n, blipc_err *e);
/* Tokens held in a slot. */
int blipc__opt_slot_len(const blipc_opt_session *s, int slot);
/* The blipc_lm interface over a session (slots = the reserved max_seqs). */
void blipc__opt_lm(blipc_opt_session *s, blipc_lm *lm);

#endif
