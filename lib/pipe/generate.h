/* generate.h — generation strategies (greedy, beam search, sampling) over a
 * "next logits" interface, with HF GenerationConfig semantics.
 *
 * The decoder (OPT with KV cache) implements blipc_lm. The caller runs the
 * prefill itself and hands the last-position logits of each prompt to
 * blipc__generate, which drives everything else. */
#ifndef BLIPC_PIPE_GENERATE_H
#define BLIPC_PIPE_GENERATE_H

#include "blipc.h"
#include "err.h"
#include <stdint.h>

/* A batch of decoder sequences, each with its own KV cache slot. */
typedef struct blipc_lm {
    void *ctx;
    int vocab_size;
    int max_seqs; /* slots available (>= n_prompts * num_beams) */
    /* Append one token to each of the n sequences in slots[0..n) and write their
     * next-token logits to logits[n, vocab_size]. */
    blipc_status (*step)(void *ctx, const int32_t *tokens, const int *slots, int n, float *logits, blipc_err *e);
    /* Copy KV cache contents: for i in [0, n): slot dst[i] becomes a copy of slot
     * src[i] as it was before the call (a permutation-safe gather). */
    blipc_status (*copy_slots)(void *ctx, const int *src, const int *dst, int n, blipc_err *e);
} blipc_lm;

/* Generation parameters resolved from blipc_gen_params + the model. */
typedef struct blipc_gen_config {
    blipc_gen_params p;
    int eos_token_id;   /* 50118 for blip2-opt-2.7b */
    int pad_token_id;   /* 1 */
    int max_length_room; /* positions left after the prompt (max_new_tokens is clipped to it);
                          * 0 = no room (BLIPC_ERR_LIMIT), < 0 = no limit */
} blipc_gen_config;

/* Fill *gp with HF defaults overlaid with DIR/generation_config.json if present
 * (max_new_tokens, min_new_tokens, num_beams, do_sample, temperature, top_k,
 * top_p, repetition_penalty, no_repeat_ngram_size, length_penalty,
 * early_stopping, eos/pad ids). Missing file (or dir NULL) = defaults. eos/pad
 * may be NULL; they are written only when the file has them (pre-fill them
 * from config.json). */
blipc_status blipc__gen_config_load(const char *dir, blipc_gen_params *gp, int *eos_token_id, int *pad_token_id,
                                    blipc_err *e);
/* Validate parameters (num_beams 1..16, temperature > 0, 0 < top_p <= 1, ...);
 * messages name the field. */
blipc_status blipc__gen_params_check(const blipc_gen_params *p, blipc_err *e);

/* Output of one prompt. tokens: the new tokens (EOS included when generated, as
 * HF's sequences are; the captioner strips it when decoding text). */
typedef struct blipc_gen_output {
    int32_t *tokens; /* malloc'd by blipc__generate; caller frees */
    int n_tokens;
    float score;     /* beam score (sum logprob / len^lp) or 0 */
} blipc_gen_output;

/* Run generation for n_prompts prompts whose prefill used slots 0..n_prompts-1
 * and produced first_logits[n_prompts, vocab]. prompt_ids[i] (n_prompt_ids[i]
 * ids, the text prompt incl. BOS; may be used by repetition penalty /
 * no-repeat-ngram exactly as HF uses input_ids, which for BLIP-2 are the image
 * placeholders + BOS + prompt) feed the processors. out[n_prompts] receives the results. */
blipc_status blipc__generate(const blipc_lm *lm, const blipc_gen_config *cfg, int n_prompts,
                             const float *first_logits, const int32_t *const *prompt_ids, const int *n_prompt_ids,
                             blipc_gen_output *out, blipc_err *e);

/* Exposed for tests: HF's sampling warpers (temperature, top-k, top-p, in that
 * order) applied in place to one row of scores; and beam search forced even for
 * num_beams == 1 (HF would dispatch that to greedy). */
blipc_status blipc__gen_warp(float *scores, int vocab, const blipc_gen_params *p, blipc_err *e);
blipc_status blipc__generate_beam(const blipc_lm *lm, const blipc_gen_config *cfg, int n_prompts,
                                  const float *first_logits, const int32_t *const *prompt_ids,
                                  const int *n_prompt_ids, blipc_gen_output *out, blipc_err *e);

#endif
