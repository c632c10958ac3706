/* gen_greedy.c — greedy search and multinomial sampling (HF's _sample), for
 * generate.c.
 *
 * Greedy: argmax (first maximum wins) of the processed logits. Sampling: softmax
 * of the warped scores and a multinomial draw from a xoshiro256** generator seeded
 * (splitmix64) from p.seed. Every prompt owns a generator seeded the same way, so
 * a prompt samples the same tokens whether it runs alone or in a batch. EOS is
 * part of the output (HF's sequences include it); a finished prompt is simply no
 * longer stepped (HF pads it).
 *
 * All buffers are allocated once per call; the step loop allocates nothing. */
#include "gen_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* first maximum wins (torch.argmax); NaN never wins; all -inf -> 0 */
static int argmax_row(const float *s, int V) {
    int best = 0;
    float bv = -INFINITY;
    for (int i = 0; i < V; i++)
        if (s[i] > bv) {
            bv = s[i];
            best = i;
        }
    return best;
}

blipc_status blipc__gen_run_sample(const blipc_lm *lm, const blipc_gen_config *cfg, int P, const float *first,
                                   const int32_t *const *prompt_ids, const int *n_prompt_ids, blipc_gen_output *out,
                                   int max_new, int max_prompt, blipc_err *e) {
    const int V = lm->vocab_size;
    const blipc_gen_params *p = &cfg->p;
    if (lm->max_seqs < P)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "generate: %d prompts but the decoder has %d sequence slots", P,
                           lm->max_seqs);
    const int cap = max_prompt + max_new;
    gen_ws w;
    BLIPC_TRY(blipc__gen_ws_alloc(&w, V, P, e));
    int32_t *seq = malloc((size_t)P * (size_t)cap * sizeof *seq);
    int *len = malloc((size_t)P * sizeof *len);
    int *active = malloc((size_t)P * sizeof *active);
    int *rowi = malloc((size_t)P * sizeof *rowi);
    int32_t *tok = malloc((size_t)P * sizeof *tok);
    int *slots = malloc((size_t)P * sizeof *slots);
    gen_rng *rng = malloc((size_t)P * sizeof *rng);
    blipc_status rc = BLIPC_OK;
    if (!seq || !len || !active || !rowi || !tok || !slots || !rng)
        rc = blipc__errf(e, BLIPC_ERR_NOMEM, "generate: out of memory");
    if (!rc) rc = blipc__gen_alloc_outputs(out, P, max_new, e);
    if (rc) goto done;
    for (int i = 0; i < P; i++) {
        len[i] = n_prompt_ids ? n_prompt_ids[i] : 0;
        if (len[i]) memcpy(seq + (size_t)i * cap, prompt_ids[i], (size_t)len[i] * sizeof *seq);
        active[i] = 1;
        rowi[i] = i;
        blipc__gen_rng_seed(&rng[i], p->seed);
    }
    for (int t = 0;; t++) {
        const float *base = t == 0 ? first : w.logits;
        int n_next = 0;
        for (int i = 0; i < P; i++) {
            if (!active[i]) continue;
            memcpy(w.row, base + (size_t)rowi[i] * V, (size_t)V * sizeof(float));
            int32_t *s = seq + (size_t)i * cap;
            blipc__gen_apply_processors(w.row, cfg, V, s, len[i], t, &w);
            int next;
            if (p->do_sample) {
                blipc__gen_warp_row(w.row, V, p, &w);
                next = blipc__gen_sample_row(w.row, V, &rng[i]);
                if (next < 0) {
                    rc = blipc__errf(e, BLIPC_ERR_MODEL,
                                     "generate: step %d, prompt %d: no token left to sample (every score is -inf or "
                                     "NaN)",
                                     t, i);
                    goto done;
                }
            } else {
                next = argmax_row(w.row, V);
            }
            s[len[i]++] = next;
            out[i].tokens[out[i].n_tokens++] = next;
            if (next == cfg->eos_token_id || t + 1 >= max_new) {
                active[i] = 0;
            } else {
                tok[n_next] = next;
                slots[n_next] = i;
                rowi[i] = n_next;
                n_next++;
            }
        }
        if (!blipc__gen_report_progress(p, n_next ? (float)(t + 1) / (float)max_new : 1.0f)) {
            rc = blipc__errf(e, BLIPC_ERR_ABORTED, "generate: aborted by the progress callback after %d tokens",
                             t + 1);
            goto done;
        }
        if (n_next == 0) break;
        rc = lm->step(lm->ctx, tok, slots, n_next, w.logits, e);
        if (rc) {
            blipc__err_prefix(e, "generate: step %d", t + 1);
            goto done;
        }
    }
done:
    if (rc) blipc__gen_free_outputs(out, P);
    free(seq);
    free(len);
    free(active);
    free(rowi);
    free(tok);
    free(slots);
    free(rng);
    blipc__gen_ws_free(&w);
    return rc;
}
