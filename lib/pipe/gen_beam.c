/* gen_beam.c — beam search (HF's _beam_search), for generate.c.
 *
 * Beam search follows the vectorised _beam_search of transformers >= 4.50 (the
 * refactor of PR #35802, same in 4.5x and 5.x), step by step:
 *   log_probs = processors(log_softmax(logits)) + running beam score (beams other
 *   than 0 start at -1e9, so the first step expands beam 0 only);
 *   the top K = 2 * num_beams (beam, token) candidates; a candidate "hits" when its
 *   token is EOS or when the sequence reaches max_new_tokens;
 *   running beams for the next step = the best num_beams candidates after adding
 *   -1e9 to the hits;
 *   finished set (num_beams entries, initially -1e9 and not finished) = top
 *   num_beams of [finished set ; candidates] where a candidate's score is
 *   sum_logprobs / generated_len ** length_penalty, generated_len = new tokens
 *   including this one (HF passes cur_len + 1 - decoder_prompt_len; older 4.4x
 *   BeamHypotheses used the whole sequence length incl. the prompt unless
 *   generated_len was given), and a candidate only counts as finished when it hit
 *   and ranks among the top num_beams (others get -1e9 added);
 *   early stop heuristic (early_stopping False): a prompt stops improving once
 *   every finished slot is filled and best_running / generated_len ** lp is not
 *   above the worst finished score; early_stopping True also stops a prompt as soon
 *   as its num_beams slots are finished. At max_new_tokens every top-num_beams
 *   candidate is a hit, so the open beams join the finished set then.
 * The result is the best finished entry (its tokens end with EOS unless it was cut
 * by max_new_tokens) and its score. A prompt whose search is over is no longer
 * stepped: in HF it keeps running but its finished set can no longer change.
 * Tie-breaking among equal scores takes the lower (beam, token) index (torch.topk
 * leaves it unspecified). Float arithmetic is float32 where HF's is, but
 * log_softmax/softmax round differently from torch's kernels.
 *
 * All buffers are allocated once per call; the step loop allocates nothing. */
#include "gen_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HF_NEG 1.0e9f /* HF's "very large negative" beam score offset */

typedef struct beam_state {
    int B, K, cap, max_new;
    int32_t *run_seq[2]; /* [P*B, cap]: prompt + generated ids of each running beam (double-buffered) */
    float *run_score;    /* [P*B] */
    float *fin_score;    /* [P*B] finished set, sorted best first */
    int *fin_done;       /* [P*B] slot holds a finished hypothesis */
    int32_t *fin_tok;    /* [P*B, max_new] generated ids (EOS included) */
    int *fin_len;        /* [P*B] */
    /* scratch for one prompt */
    float *cand_v;       /* [K] accumulated log probs, best first */
    int *cand_f;         /* [K] flat index beam * V + token */
    int *cand_hit;       /* [K] */
    float *cand_run;     /* [K] */
    float *cand_fin;     /* [K] */
    int *picked;         /* [K + B] */
    float *m_score;      /* [B] merged finished set */
    int *m_done, *m_len;
    int32_t *m_tok;      /* [B, max_new] */
    float *new_score;    /* [B] */
    int *heur, *done;    /* [P] */
    int *rowi;           /* [P*B] logits row of each slot in the last step call */
    int *from;           /* [P*B] slot whose cache each new beam continues */
    int32_t *next_tok;   /* [P*B] token each new beam appends */
    int32_t *tok;        /* [P*B] step inputs */
    int *slots, *src, *dst;
} beam_state;

static void beam_free(beam_state *b) {
    free(b->run_seq[0]);
    free(b->run_seq[1]);
    free(b->run_score);
    free(b->fin_score);
    free(b->fin_done);
    free(b->fin_tok);
    free(b->fin_len);
    free(b->cand_v);
    free(b->cand_f);
    free(b->cand_hit);
    free(b->cand_run);
    free(b->cand_fin);
    free(b->picked);
    free(b->m_score);
    free(b->m_done);
    free(b->m_len);
    free(b->m_tok);
    free(b->new_score);
    free(b->heur);
    free(b->done);
    free(b->rowi);
    free(b->from);
    free(b->next_tok);
    free(b->tok);
    free(b->slots);
    free(b->src);
    free(b->dst);
}

static blipc_status beam_alloc(beam_state *b, int P, int B, int cap, int max_new, blipc_err *e) {
    memset(b, 0, sizeof *b);
    size_t n = (size_t)P * (size_t)B;
    int K = 2 * B;
    b->B = B;
    b->K = K;
    b->cap = cap;
    b->max_new = max_new;
    b->run_seq[0] = malloc(n * (size_t)cap * sizeof(int32_t));
    b->run_seq[1] = malloc(n * (size_t)cap * sizeof(int32_t));
    b->run_score = malloc(n * sizeof(float));
    b->fin_score = malloc(n * sizeof(float));
    b->fin_done = malloc(n * sizeof(int));
    b->fin_tok = malloc(n * (size_t)max_new * sizeof(int32_t));
    b->fin_len = malloc(n * sizeof(int));
    b->cand_v = malloc((size_t)K * sizeof(float));
    b->cand_f = malloc((size_t)K * sizeof(int));
    b->cand_hit = malloc((size_t)K * sizeof(int));
    b->cand_run = malloc((size_t)K * sizeof(float));
    b->cand_fin = malloc((size_t)K * sizeof(float));
    b->picked = malloc((size_t)(K + B) * sizeof(int));
    b->m_score = malloc((size_t)B * sizeof(float));
    b->m_done = malloc((size_t)B * sizeof(int));
    b->m_len = malloc((size_t)B * sizeof(int));
    b->m_tok = malloc((size_t)B * (size_t)max_new * sizeof(int32_t));
    b->new_score = malloc((size_t)B * sizeof(float));
    b->heur = malloc((size_t)P * sizeof(int));
    b->done = malloc((size_t)P * sizeof(int));
    b->rowi = malloc(n * sizeof(int));
    b->from = malloc(n * sizeof(int));
    b->next_tok = malloc(n * sizeof(int32_t));
    b->tok = malloc(n * sizeof(int32_t));
    b->slots = malloc(n * sizeof(int));
    b->src = malloc(n * sizeof(int));
    b->dst = malloc(n * sizeof(int));
    if (!b->run_seq[0] || !b->run_seq[1] || !b->run_score || !b->fin_score || !b->fin_done || !b->fin_tok ||
        !b->fin_len || !b->cand_v || !b->cand_f || !b->cand_hit || !b->cand_run || !b->cand_fin || !b->picked ||
        !b->m_score || !b->m_done || !b->m_len || !b->m_tok || !b->new_score || !b->heur || !b->done || !b->rowi ||
        !b->from || !b->next_tok || !b->tok || !b->slots || !b->src || !b->dst) {
        beam_free(b);
        memset(b, 0, sizeof *b);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "generate: out of memory for beam search (%d x %d beams)", P, B);
    }
    return BLIPC_OK;
}

/* Insert (v, f) into the descending top-K list; candidates arrive in increasing
 * f, so an equal score goes after the ones already there (lower index first). */
static void topk_insert(float *cv, int *cf, int *count, int K, float v, int f) {
    if (v != v) return; /* NaN */
    int n = *count;
    if (n == K) {
        if (!(v > cv[K - 1])) return;
        n = K - 1;
    }
    int j = n;
    while (j > 0 && cv[j - 1] < v) {
        cv[j] = cv[j - 1];
        cf[j] = cf[j - 1];
        j--;
    }
    cv[j] = v;
    cf[j] = f;
    *count = n + 1;
}

/* Stable top-m selection of indices from vals[0..n) (ties: lower index first). */
static void pick_top(const float *vals, int n, int m, int *picked) {
    /* n <= 48: selection by repeated scans; used[] marked through picked */
    for (int k = 0; k < m; k++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int used = 0;
            for (int q = 0; q < k; q++)
                if (picked[q] == i) {
                    used = 1;
                    break;
                }
            if (used) continue;
            if (best < 0 || vals[i] > vals[best] || (vals[best] != vals[best] && vals[i] == vals[i])) best = i;
        }
        picked[k] = best;
    }
}

blipc_status blipc__gen_run_beam(const blipc_lm *lm, const blipc_gen_config *cfg, int P, const float *first,
                                 const int32_t *const *prompt_ids, const int *n_prompt_ids, blipc_gen_output *out,
                                 int max_new, int max_prompt, blipc_err *e) {
    const int V = lm->vocab_size;
    const blipc_gen_params *p = &cfg->p;
    const int B = p->num_beams, K = 2 * B;
    const int eos = cfg->eos_token_id;
    if (V < 2) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "generate: beam search needs vocab_size >= 2");
    if ((long long)P * B > lm->max_seqs)
        return blipc__errf(e, BLIPC_ERR_LIMIT,
                           "generate: %d prompts x %d beams need %lld sequence slots, the decoder has %d", P, B,
                           (long long)P * B, lm->max_seqs);
    if (!lm->copy_slots) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "generate: beam search needs copy_slots");
    const int cap = max_prompt + max_new;
    gen_ws w;
    BLIPC_TRY(blipc__gen_ws_alloc(&w, V, P * B, e));
    beam_state s;
    blipc_status rc = beam_alloc(&s, P, B, cap, max_new, e);
    if (rc) {
        blipc__gen_ws_free(&w);
        return rc;
    }
    rc = blipc__gen_alloc_outputs(out, P, max_new, e);
    if (rc) goto done;

    int cur = 0;
    for (int q = 0; q < P; q++) {
        int np = n_prompt_ids ? n_prompt_ids[q] : 0;
        for (int b = 0; b < B; b++) {
            size_t k = (size_t)q * B + b;
            if (np) memcpy(s.run_seq[0] + k * cap, prompt_ids[q], (size_t)np * sizeof(int32_t));
            s.run_score[k] = b == 0 ? 0.0f : -HF_NEG;
            s.fin_score[k] = -HF_NEG;
            s.fin_done[k] = 0;
            s.fin_len[k] = 0;
        }
        s.heur[q] = 1;
        s.done[q] = 0;
    }

    for (int t = 0;; t++) {
        const int at_max = t + 1 >= max_new;
        /* HF divides by python float (len ** lp), applied to float32 tensors */
        const float lenpow = (float)pow((double)(t + 1), (double)p->length_penalty);
        for (int q = 0; q < P; q++) {
            if (s.done[q]) continue;
            const int np = n_prompt_ids ? n_prompt_ids[q] : 0;
            int count = 0;
            /* a. log_softmax, processors, + running score; top K over (beam, token) */
            for (int b = 0; b < B; b++) {
                size_t k = (size_t)q * B + b;
                const float *row = t == 0 ? first + (size_t)q * V : w.logits + (size_t)s.rowi[k] * V;
                blipc__gen_log_softmax_row(row, w.row, V);
                blipc__gen_apply_processors(w.row, cfg, V, s.run_seq[cur] + k * cap, np + t, t, &w);
                const float rs = s.run_score[k];
                for (int v = 0; v < V; v++) topk_insert(s.cand_v, s.cand_f, &count, K, w.row[v] + rs, b * V + v);
            }
            if (count < K) { /* only NaN scores: cannot happen with finite logits */
                rc = blipc__errf(e, BLIPC_ERR_MODEL, "generate: step %d, prompt %d: NaN scores", t, q);
                goto done;
            }
            /* b. which candidates hit a stopping criterion (EOS or max length) */
            for (int c = 0; c < K; c++) s.cand_hit[c] = at_max || (s.cand_f[c] % V) == eos;
            /* c. finished set: merge [finished ; candidates], keep the best B */
            int all_fin = 1;
            for (int b = 0; b < B; b++) all_fin &= s.fin_done[(size_t)q * B + b];
            for (int c = 0; c < K; c++) {
                float f = s.cand_v[c] / lenpow;
                f += (all_fin && p->early_stopping) ? -HF_NEG : -0.0f;
                f += s.heur[q] ? -0.0f : -HF_NEG;
                int did = s.cand_hit[c] && c < B;
                f += did ? -0.0f : -HF_NEG;
                s.cand_fin[c] = f;
            }
            {
                float merged[GEN_MAX_BEAMS * 3];
                for (int b = 0; b < B; b++) merged[b] = s.fin_score[(size_t)q * B + b];
                for (int c = 0; c < K; c++) merged[B + c] = s.cand_fin[c];
                pick_top(merged, B + K, B, s.picked);
                for (int b = 0; b < B; b++) {
                    int m = s.picked[b];
                    int32_t *dt = s.m_tok + (size_t)b * max_new;
                    s.m_score[b] = merged[m];
                    if (m < B) {
                        size_t k = (size_t)q * B + m;
                        s.m_done[b] = s.fin_done[k];
                        s.m_len[b] = s.fin_len[k];
                        memcpy(dt, s.fin_tok + k * max_new, (size_t)s.fin_len[k] * sizeof(int32_t));
                    } else {
                        int c = m - B, beam = s.cand_f[c] / V;
                        const int32_t *sq = s.run_seq[cur] + ((size_t)q * B + beam) * cap + np;
                        s.m_done[b] = s.cand_hit[c] && c < B;
                        s.m_len[b] = t + 1;
                        memcpy(dt, sq, (size_t)t * sizeof(int32_t));
                        dt[t] = s.cand_f[c] % V;
                    }
                }
                for (int b = 0; b < B; b++) {
                    size_t k = (size_t)q * B + b;
                    s.fin_score[k] = s.m_score[b];
                    s.fin_done[k] = s.m_done[b];
                    s.fin_len[k] = s.m_len[b];
                    memcpy(s.fin_tok + k * max_new, s.m_tok + (size_t)b * max_new,
                           (size_t)s.m_len[b] * sizeof(int32_t));
                }
            }
            /* d. running beams for the next step: best B after -1e9 on the hits */
            for (int c = 0; c < K; c++) s.cand_run[c] = s.cand_v[c] + (s.cand_hit[c] ? -HF_NEG : -0.0f);
            pick_top(s.cand_run, K, B, s.picked);
            for (int b = 0; b < B; b++) {
                int c = s.picked[b], beam = s.cand_f[c] / V;
                size_t k = (size_t)q * B + b;
                const int32_t *from = s.run_seq[cur] + ((size_t)q * B + beam) * cap;
                int32_t *to = s.run_seq[cur ^ 1] + k * cap;
                memcpy(to, from, (size_t)(np + t) * sizeof(int32_t));
                to[np + t] = s.cand_f[c] % V;
                s.new_score[b] = s.cand_run[c];
                s.from[k] = t == 0 ? q : q * B + beam;
                s.next_tok[k] = s.cand_f[c] % V;
            }
            for (int b = 0; b < B; b++) s.run_score[(size_t)q * B + b] = s.new_score[b];
            /* e. early-stop heuristic (cur_len now counts the new token) */
            {
                float best = s.run_score[(size_t)q * B] / lenpow, minf = INFINITY;
                all_fin = 1;
                for (int b = 0; b < B; b++) {
                    size_t k = (size_t)q * B + b;
                    all_fin &= s.fin_done[k];
                    if (s.fin_score[k] < minf) minf = s.fin_score[k];
                }
                int improvable = 0;
                for (int b = 0; b < B; b++) improvable |= best > (s.fin_done[(size_t)q * B + b] ? minf : -HF_NEG);
                s.heur[q] = s.heur[q] && improvable;
                s.done[q] = !s.heur[q] || (p->early_stopping && all_fin) || at_max;
            }
        }
        cur ^= 1;
        int n_run = 0;
        for (int q = 0; q < P; q++) n_run += !s.done[q];
        if (!blipc__gen_report_progress(p, n_run ? (float)(t + 1) / (float)max_new : 1.0f)) {
            rc = blipc__errf(e, BLIPC_ERR_ABORTED, "generate: aborted by the progress callback after %d tokens",
                             t + 1);
            goto done;
        }
        if (n_run == 0) break;
        /* f. reorder the caches (a gather), then feed the new tokens. At t == 0
         * every beam continues its prompt's prefill slot q; the copies are listed by
         * decreasing destination so that even a sequential copy reads each prefill
         * slot before it is overwritten. */
        int n_copy = 0, n_step = 0;
        for (int q = P - 1; q >= 0; q--) {
            if (s.done[q]) continue;
            for (int b = B - 1; b >= 0; b--) {
                int k = q * B + b;
                if (s.from[k] == k) continue;
                s.src[n_copy] = s.from[k];
                s.dst[n_copy] = k;
                n_copy++;
            }
        }
        for (int q = 0; q < P; q++) {
            if (s.done[q]) continue;
            for (int b = 0; b < B; b++) {
                int k = q * B + b;
                s.slots[n_step] = k;
                s.rowi[k] = n_step;
                s.tok[n_step] = s.next_tok[k];
                n_step++;
            }
        }
        if (n_copy) {
            rc = lm->copy_slots(lm->ctx, s.src, s.dst, n_copy, e);
            if (rc) {
                blipc__err_prefix(e, "generate: step %d: reordering beams", t + 1);
                goto done;
            }
        }
        rc = lm->step(lm->ctx, s.tok, s.slots, n_step, w.logits, e);
        if (rc) {
            blipc__err_prefix(e, "generate: step %d", t + 1);
            goto done;
        }
    }
    for (int q = 0; q < P; q++) {
        size_t k = (size_t)q * B; /* finished set is sorted: slot 0 is the best */
        out[q].n_tokens = s.fin_len[k];
        memcpy(out[q].tokens, s.fin_tok + k * max_new, (size_t)s.fin_len[k] * sizeof(int32_t));
        out[q].score = s.fin_score[k];
    }
done:
    if (rc) blipc__gen_free_outputs(out, P);
    beam_free(&s);
    blipc__gen_ws_free(&w);
    return rc;
}
