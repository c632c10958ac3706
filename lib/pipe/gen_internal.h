/* gen_internal.h — names shared by the generation files of lib/pipe only:
 * generate.c (checks, config, entry points), gen_process.c (processors, warpers,
 * RNG), gen_greedy.c (greedy / sampling) and gen_beam.c (beam search). */
#ifndef BLIPC_PIPE_GEN_INTERNAL_H
#define BLIPC_PIPE_GEN_INTERNAL_H

#include "generate.h"

#include <stdint.h>

#define GEN_MAX_BEAMS 16
#define GEN_MAX_NEW_TOKENS 8192

/* xoshiro256** state (gen_process.c). Owned by one call: no global state. */
typedef struct gen_rng {
    uint64_t s[4];
} gen_rng;

typedef struct sorted_val {
    float v;
    int i;
} sorted_val;

/* Per-call workspace */
typedef struct gen_ws {
    int V;
    float *logits;        /* [n_seq, V] lm step output */
    float *row;           /* [V] scores being processed */
    float *heap;          /* [V] top-k min-heap */
    sorted_val *sorted;   /* [V] top-p sort */
    uint32_t *stamp;      /* [V] repetition penalty: ids already penalised this row */
    uint32_t stamp_gen;
} gen_ws;

/* gen_process.c */
void blipc__gen_rng_seed(gen_rng *r, uint64_t seed);
blipc_status blipc__gen_ws_alloc(gen_ws *w, int V, int n_seq, blipc_err *e);
void blipc__gen_ws_free(gen_ws *w);
/* repetition penalty, no-repeat-ngram, min_new_tokens (seq[0..len): the sequence
 * so far, n_gen of them generated) */
void blipc__gen_apply_processors(float *s, const blipc_gen_config *cfg, int V, const int32_t *seq, int len, int n_gen,
                                 gen_ws *w);
/* temperature, top-k, top-p */
void blipc__gen_warp_row(float *s, int V, const blipc_gen_params *p, gen_ws *w);
/* softmax + one multinomial draw; -1 when no token has a finite score */
int blipc__gen_sample_row(const float *s, int V, gen_rng *r);
void blipc__gen_log_softmax_row(const float *x, float *out, int V);

/* generate.c */
int blipc__gen_report_progress(const blipc_gen_params *p, float frac);
blipc_status blipc__gen_alloc_outputs(blipc_gen_output *out, int n, int max_new, blipc_err *e);
void blipc__gen_free_outputs(blipc_gen_output *out, int n);

/* gen_greedy.c / gen_beam.c: the strategies, called by blipc__generate* after the
 * shared checks (max_new: max_new_tokens clipped to the room; max_prompt: the
 * longest prompt) */
blipc_status blipc__gen_run_sample(const blipc_lm *lm, const blipc_gen_config *cfg, int P, const float *first,
                                   const int32_t *const *prompt_ids, const int *n_prompt_ids, blipc_gen_output *out,
                                   int max_new, int max_prompt, blipc_err *e);
blipc_status blipc__gen_run_beam(const blipc_lm *lm, const blipc_gen_config *cfg, int P, const float *first,
                                 const int32_t *const *prompt_ids, const int *n_prompt_ids, blipc_gen_output *out,
                                 int max_new, int max_prompt, blipc_err *e);

#endif
