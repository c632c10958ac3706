/* test_generate.c — generation strategies (lib/pipe/generate.c) against plain
 * reference implementations written here, over toy language models.
 *
 * The toy LM keeps, for every KV "slot", the ids that slot has seen (its cache);
 * step() appends one id per slot and returns logits computed from that slot's
 * history only, so a missing or wrong copy_slots shows up as different logits.
 * The references never use slots: they call the logits function on the sequence
 * itself. The reference beam search follows HF's vectorised _beam_search
 * literally (full sorts, concatenate-and-sort merges, batch-wide stop condition). */
#include "generate.h"
#include "harness.h"

#include <stdint.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ toy models */

typedef void (*logits_fn)(const int32_t *seq, int len, int V, float *out, const void *ud);

#define TOY_CAP 96

typedef struct toy_lm {
    int V, n_slots;
    int32_t hist[64][TOY_CAP];
    int len[64];
    int32_t tmp[64][TOY_CAP];
    int tmplen[64];
    logits_fn fn;
    const void *ud;
    int n_steps, n_copies, fail_at_step, bad_calls;
} toy_lm;

static blipc_status toy_step(void *ctx, const int32_t *tokens, const int *slots, int n, float *logits, blipc_err *e) {
    toy_lm *m = ctx;
    if (m->fail_at_step && m->n_steps + 1 == m->fail_at_step)
        return blipc__errf(e, BLIPC_ERR_MODEL, "toy: injected failure");
    for (int i = 0; i < n; i++) {
        int s = slots[i];
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= slots[j] == s;
        if (s < 0 || s >= m->n_slots || dup || m->len[s] >= TOY_CAP || tokens[i] < 0 || tokens[i] >= m->V) {
            m->bad_calls++;
            return blipc__errf(e, BLIPC_ERR_INTERNAL, "toy: bad step call");
        }
        m->hist[s][m->len[s]++] = tokens[i];
        m->fn(m->hist[s], m->len[s], m->V, logits + (size_t)i * m->V, m->ud);
    }
    m->n_steps++;
    return BLIPC_OK;
}

/* a gather: every destination gets its source as it was before the call */
static blipc_status toy_copy(void *ctx, const int *src, const int *dst, int n, blipc_err *e) {
    toy_lm *m = ctx;
    for (int i = 0; i < n; i++) {
        if (src[i] < 0 || src[i] >= m->n_slots || dst[i] < 0 || dst[i] >= m->n_slots) {
            m->bad_calls++;
            return blipc__errf(e, BLIPC_ERR_INTERNAL, "toy: bad copy call");
        }
        memcpy(m->tmp[i], m->hist[src[i]], sizeof m->tmp[i]);
        m->tmplen[i] = m->len[src[i]];
    }
    for (int i = 0; i < n; i++) {
        memcpy(m->hist[dst[i]], m->tmp[i], sizeof m->tmp[i]);
        m->len[dst[i]] = m->tmplen[i];
    }
    m->n_copies += n;
    return BLIPC_OK;
}

static toy_lm *toy_new(int V, int n_slots, logits_fn fn, const void *ud) {
    toy_lm *m = calloc(1, sizeof *m);
    m->V = V;
    m->n_slots = n_slots;
    m->fn = fn;
    m->ud = ud;
    return m;
}

static blipc_lm toy_iface(toy_lm *m) {
    blipc_lm lm = {.ctx = m, .vocab_size = m->V, .max_seqs = m->n_slots, .step = toy_step, .copy_slots = toy_copy};
    return lm;
}

/* "prefill" prompts into slots 0..P-1 and return their last logits [P, V] */
static float *toy_prefill(toy_lm *m, int P, const int32_t *const *prompts, const int *np) {
    float *first = malloc((size_t)P * m->V * sizeof(float));
    for (int i = 0; i < P; i++) {
        memcpy(m->hist[i], prompts[i], (size_t)np[i] * sizeof(int32_t));
        m->len[i] = np[i];
        m->fn(prompts[i], np[i], m->V, first + (size_t)i * m->V, m->ud);
    }
    return first;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Random LM: logits in [-4, 4) from a hash of the whole sequence, and an EOS
 * logit that grows with the length so that sequences end now and then. */
typedef struct rand_lm {
    uint64_t salt;
    int eos;
    float eos_slope;
} rand_lm;

static void rand_logits(const int32_t *seq, int len, int V, float *out, const void *ud) {
    const rand_lm *r = ud;
    uint64_t h = 0xcbf29ce484222325ull ^ r->salt;
    for (int i = 0; i < len; i++) h = (h ^ (uint32_t)seq[i]) * 0x100000001b3ull;
    for (int v = 0; v < V; v++) {
        uint64_t x = mix64(h + 0x9E3779B97F4A7C15ull * (uint64_t)(v + 1));
        out[v] = (float)((double)(x >> 11) * 0x1.0p-53 * 8.0 - 4.0);
    }
    if (r->eos >= 0 && r->eos < V) out[r->eos] += r->eos_slope * (float)(len - 5);
}

/* ----------------------------------------------------- reference helpers */

/* HF RepetitionPenaltyLogitsProcessor: gather from the original scores, then scatter */
static void ref_processors(float *s, int V, const int32_t *seq, int len, int n_gen, const blipc_gen_params *p,
                           int eos) {
    if (p->repetition_penalty != 1.0f) {
        float orig[256];
        memcpy(orig, s, (size_t)V * sizeof(float));
        for (int i = 0; i < len; i++) {
            float x = orig[seq[i]];
            s[seq[i]] = x < 0 ? x * p->repetition_penalty : x / p->repetition_penalty;
        }
    }
    int n = p->no_repeat_ngram_size;
    if (n > 0 && len + 1 >= n) {
        /* every n-gram of the sequence; ban its last id if its first n-1 ids equal the current suffix */
        for (int start = 0; start + n <= len; start++) {
            int match = 1;
            for (int j = 0; j < n - 1; j++)
                if (seq[start + j] != seq[len - (n - 1) + j]) match = 0;
            if (match) s[seq[start + n - 1]] = -INFINITY;
        }
    }
    if (n_gen < p->min_new_tokens && eos >= 0) s[eos] = -INFINITY;
}

/* the same float32 formula as the library, so beam scores compare exactly */
static void ref_log_softmax(const float *x, float *out, int V) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)(x[i] - m));
    float lse = (float)log(sum);
    for (int i = 0; i < V; i++) out[i] = (x[i] - m) - lse;
}

typedef struct vi {
    float v;
    int i;
} vi;

static int cmp_desc(const void *a, const void *b) {
    const vi *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->i - y->i;
}

static int cmp_asc(const void *a, const void *b) {
    const vi *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i - y->i;
}

/* HF warpers, literally: temperature; top-k threshold from a full sort; top-p
 * from an ascending sort of every score, softmax, cumsum. */
static void ref_warp(float *s, int V, const blipc_gen_params *p) {
    vi srt[256];
    if (p->temperature != 1.0f)
        for (int v = 0; v < V; v++) s[v] = s[v] / p->temperature;
    if (p->top_k != 0) {
        int k = p->top_k < 1 ? 1 : p->top_k;
        if (k > V) k = V;
        for (int v = 0; v < V; v++) srt[v] = (vi){s[v], v};
        qsort(srt, (size_t)V, sizeof *srt, cmp_desc);
        float kth = srt[k - 1].v;
        for (int v = 0; v < V; v++)
            if (s[v] < kth) s[v] = -INFINITY;
    }
    if (p->top_p < 1.0f) {
        for (int v = 0; v < V; v++) srt[v] = (vi){s[v], v};
        qsort(srt, (size_t)V, sizeof *srt, cmp_asc);
        float m = srt[V - 1].v, sum = 0, cum = 0;
        for (int j = 0; j < V; j++) sum += expf(srt[j].v - m);
        int remove[256];
        for (int j = 0; j < V; j++) {
            cum += expf(srt[j].v - m) / sum;
            remove[j] = cum <= (float)(1.0 - (double)p->top_p);
        }
        remove[V - 1] = 0; /* min_tokens_to_keep = 1 */
        for (int j = 0; j < V; j++)
            if (remove[j]) s[srt[j].i] = -INFINITY;
    }
}

typedef struct ref_out {
    int32_t tok[64];
    int n;
    float score;
} ref_out;

static void ref_greedy(logits_fn fn, const void *ud, int V, const int32_t *prompt, int np, const blipc_gen_params *p,
                       int eos, ref_out *o) {
    int32_t seq[TOY_CAP];
    float s[256];
    memcpy(seq, prompt, (size_t)np * sizeof *seq);
    int len = np;
    o->n = 0;
    o->score = 0;
    for (int t = 0; t < p->max_new_tokens; t++) {
        fn(seq, len, V, s, ud);
        ref_processors(s, V, seq, len, t, p, eos);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (s[v] > s[best]) best = v;
        seq[len++] = best;
        o->tok[o->n++] = best;
        if (best == eos) break;
    }
}

/* HF _beam_search for a batch of prompts, step by step. */
#define RB 8
#define RK (2 * RB)
typedef struct ref_beam_state {
    int32_t run[RB][TOY_CAP];
    float rs[RB];
    int32_t fin[RB][64];
    int fin_len[RB];
    float fin_sc[RB];
    int fin_f[RB];
    int heur;
} ref_beam_state;

static void ref_beam(logits_fn fn, const void *ud, int V, int P, const int32_t *const *prompts, const int *np,
                     const blipc_gen_params *p, int eos, ref_out *res) {
    const int B = p->num_beams, K = 2 * B, max_new = p->max_new_tokens;
    ref_beam_state *st = calloc((size_t)P, sizeof *st);
    vi *acc = malloc((size_t)B * V * sizeof *acc);
    float lp[256];
    for (int q = 0; q < P; q++) {
        for (int b = 0; b < B; b++) {
            memcpy(st[q].run[b], prompts[q], (size_t)np[q] * sizeof(int32_t));
            st[q].rs[b] = b == 0 ? 0.0f : -1e9f;
            st[q].fin_sc[b] = -1e9f;
        }
        st[q].heur = 1;
    }
    for (int g = 0;; g++) { /* g = tokens generated before this step */
        int all_hit = 1;
        float lenpow = (float)pow((double)(g + 1), (double)p->length_penalty);
        for (int q = 0; q < P; q++) {
            ref_beam_state *S = &st[q];
            int len = np[q] + g;
            for (int b = 0; b < B; b++) {
                float lg[256];
                fn(S->run[b], len, V, lg, ud);
                ref_log_softmax(lg, lp, V);
                ref_processors(lp, V, S->run[b], len, g, p, eos);
                for (int v = 0; v < V; v++) acc[b * V + v] = (vi){lp[v] + S->rs[b], b * V + v};
            }
            qsort(acc, (size_t)B * V, sizeof *acc, cmp_desc);
            int hit[RK];
            vi runv[RK], mrg[RB + RK];
            for (int k = 0; k < K; k++) {
                hit[k] = (acc[k].i % V) == eos || g + 1 >= max_new;
                all_hit &= hit[k];
                runv[k] = (vi){acc[k].v + (hit[k] ? -1e9f : 0.0f), k};
            }
            /* finished: concat [finished ; candidates], sort, keep B */
            int full = 1;
            for (int b = 0; b < B; b++) full &= S->fin_f[b];
            for (int b = 0; b < B; b++) mrg[b] = (vi){S->fin_sc[b], b};
            for (int k = 0; k < K; k++) {
                float f = acc[k].v / lenpow;
                if (full && p->early_stopping) f += -1e9f;
                if (!S->heur) f += -1e9f;
                if (!(hit[k] && k < B)) f += -1e9f;
                mrg[B + k] = (vi){f, B + k};
            }
            qsort(mrg, (size_t)(B + K), sizeof *mrg, cmp_desc);
            int32_t nfin[RB][64];
            int nlen[RB], nf[RB];
            float nsc[RB];
            for (int b = 0; b < B; b++) {
                int m = mrg[b].i;
                nsc[b] = mrg[b].v;
                if (m < B) {
                    memcpy(nfin[b], S->fin[m], sizeof nfin[b]);
                    nlen[b] = S->fin_len[m];
                    nf[b] = S->fin_f[m];
                } else {
                    int k = m - B, beam = acc[k].i / V;
                    memcpy(nfin[b], S->run[beam] + np[q], (size_t)g * sizeof(int32_t));
                    nfin[b][g] = acc[k].i % V;
                    nlen[b] = g + 1;
                    nf[b] = hit[k] && k < B;
                }
            }
            /* running: candidates sorted by score with -1e9 on the hits */
            qsort(runv, (size_t)K, sizeof *runv, cmp_desc);
            int32_t nrun[RB][TOY_CAP];
            float nrs[RB];
            for (int b = 0; b < B; b++) {
                int k = runv[b].i, beam = acc[k].i / V;
                memcpy(nrun[b], S->run[beam], (size_t)len * sizeof(int32_t));
                nrun[b][len] = acc[k].i % V;
                nrs[b] = runv[b].v;
            }
            for (int b = 0; b < B; b++) {
                memcpy(S->fin[b], nfin[b], sizeof nfin[b]);
                S->fin_len[b] = nlen[b];
                S->fin_f[b] = nf[b];
                S->fin_sc[b] = nsc[b];
                memcpy(S->run[b], nrun[b], sizeof nrun[b]);
                S->rs[b] = nrs[b];
            }
        }
        /* cur_len += 1; early-stop heuristic per prompt; batch-wide stop */
        int improvement = 0, all_full = 1;
        for (int q = 0; q < P; q++) {
            ref_beam_state *S = &st[q];
            float best = S->rs[0] / lenpow, worst = S->fin_sc[0];
            for (int b = 0; b < B; b++) worst = S->fin_sc[b] < worst ? S->fin_sc[b] : worst;
            int any = 0;
            for (int b = 0; b < B; b++) {
                any |= best > (S->fin_f[b] ? worst : -1e9f);
                all_full &= S->fin_f[b];
            }
            S->heur = S->heur && any;
            improvement |= S->heur;
        }
        int exists_open = !(all_full && p->early_stopping);
        if (!(improvement && exists_open && !all_hit)) break;
    }
    for (int q = 0; q < P; q++) {
        memcpy(res[q].tok, st[q].fin[0], sizeof res[q].tok);
        res[q].n = st[q].fin_len[0];
        res[q].score = st[q].fin_sc[0];
    }
    free(acc);
    free(st);
}

/* ------------------------------------------------------------- utilities */

static blipc_gen_params defaults(void) {
    blipc_gen_params p;
    blipc_err e = {0};
    blipc__gen_config_load(NULL, &p, NULL, NULL, &e);
    return p;
}

static blipc_gen_config make_cfg(blipc_gen_params p, int eos) {
    blipc_gen_config c = {.p = p, .eos_token_id = eos, .pad_token_id = 1, .max_length_room = -1};
    return c;
}

/* run blipc__generate (or the forced beam path) over a fresh toy LM */
static blipc_status run_gen(logits_fn fn, const void *ud, int V, int P, const int32_t *const *prompts,
                            const int *np, const blipc_gen_config *cfg, int force_beam, blipc_gen_output *out,
                            blipc_err *e, toy_lm **keep) {
    toy_lm *m = toy_new(V, 64, fn, ud);
    float *first = toy_prefill(m, P, prompts, np);
    blipc_lm lm = toy_iface(m);
    blipc_status st = force_beam ? blipc__generate_beam(&lm, cfg, P, first, prompts, np, out, e)
                                 : blipc__generate(&lm, cfg, P, first, prompts, np, out, e);
    free(first);
    CHECK_EQ_INT(m->bad_calls, 0);
    if (keep)
        *keep = m;
    else
        free(m);
    return st;
}

static int same_tokens(const blipc_gen_output *o, const ref_out *r) {
    if (o->n_tokens != r->n) return 0;
    for (int i = 0; i < r->n; i++)
        if (o->tokens[i] != r->tok[i]) return 0;
    return 1;
}

static int same_out(const blipc_gen_output *a, const blipc_gen_output *b) {
    return a->n_tokens == b->n_tokens && !memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t)) &&
           a->score == b->score;
}

static void free_out(blipc_gen_output *o, int n) {
    for (int i = 0; i < n; i++) free(o[i].tokens);
}

static const int32_t PR0[] = {3, 7, 1}, PR1[] = {5}, PR2[] = {2, 2, 9, 4, 11}, PR3[] = {8, 0};
static const int32_t *const PROMPTS[] = {PR0, PR1, PR2, PR3};
static const int NP[] = {3, 1, 5, 2};

/* ------------------------------------------------------------------ tests */

TEST(greedy_matches_reference) {
    const int V = 24, eos = 5;
    int n_cases = 0, n_eos = 0, n_full = 0;
    for (int salt = 0; salt < 12; salt++) {
        rand_lm r = {.salt = (uint64_t)salt, .eos = eos, .eos_slope = 0.35f};
        blipc_gen_params p = defaults();
        p.max_new_tokens = 14;
        if (salt % 3 == 1) p.repetition_penalty = 1.7f;
        if (salt % 4 == 2) p.no_repeat_ngram_size = 2;
        if (salt % 5 == 3) p.min_new_tokens = 4;
        blipc_gen_config cfg = make_cfg(p, eos);
        for (int q = 0; q < 4; q++) {
            blipc_gen_output o;
            blipc_err e = {0};
            CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[q], &NP[q], &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
            ref_out ref;
            ref_greedy(rand_logits, &r, V, PROMPTS[q], NP[q], &p, eos, &ref);
            CHECKF(same_tokens(&o, &ref), "salt %d prompt %d: %d vs %d tokens", salt, q, o.n_tokens, ref.n);
            n_cases++;
            n_eos += o.n_tokens > 0 && o.tokens[o.n_tokens - 1] == eos;
            n_full += o.n_tokens == p.max_new_tokens;
            free_out(&o, 1);
        }
    }
    /* the cases cover both endings */
    CHECK(n_eos > 5);
    CHECK(n_full > 5);
    CHECK_EQ_INT(n_cases, 48);
}

TEST(greedy_eos_is_included_and_stops) {
    const int V = 16, eos = 2;
    rand_lm r = {.salt = 77, .eos = eos, .eos_slope = 0.6f};
    blipc_gen_params p = defaults();
    p.max_new_tokens = 30;
    blipc_gen_config cfg = make_cfg(p, eos);
    blipc_gen_output o;
    blipc_err e = {0};
    CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[0], &NP[0], &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    CHECK(o.n_tokens < 30);
    CHECK_EQ_INT(o.tokens[o.n_tokens - 1], eos);
    for (int i = 0; i + 1 < o.n_tokens; i++) CHECK(o.tokens[i] != eos);
    free_out(&o, 1);
    /* no EOS id: exactly max_new_tokens */
    cfg.eos_token_id = -1;
    CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[0], &NP[0], &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    CHECK_EQ_INT(o.n_tokens, 30);
    free_out(&o, 1);
    /* max_length_room clips max_new_tokens; 0 room is an error */
    cfg.max_length_room = 4;
    CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[0], &NP[0], &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    CHECK_EQ_INT(o.n_tokens, 4);
    free_out(&o, 1);
    cfg.max_length_room = 0;
    CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[0], &NP[0], &cfg, 0, &o, &e, NULL), BLIPC_ERR_LIMIT, e.msg);
}

/* an LM that always prefers EOS (id 0), then 1, 2, ... */
static void eos_first_logits(const int32_t *seq, int len, int V, float *out, const void *ud) {
    (void)seq, (void)len, (void)ud;
    for (int v = 0; v < V; v++) out[v] = 10.0f - (float)v;
}

TEST(min_new_tokens_suppresses_eos) {
    const int V = 8;
    blipc_gen_params p = defaults();
    p.max_new_tokens = 10;
    blipc_gen_config cfg = make_cfg(p, 0);
    blipc_gen_output o;
    blipc_err e = {0};
    CHECK_STATUS(run_gen(eos_first_logits, NULL, V, 1, &PROMPTS[1], &NP[1], &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    CHECK_EQ_INT(o.n_tokens, 1); /* EOS right away, and it is in the output */
    CHECK_EQ_INT(o.tokens[0], 0);
    free_out(&o, 1);
    cfg.p.min_new_tokens = 4;
    CHECK_STATUS(run_gen(eos_first_logits, NULL, V, 1, &PROMPTS[1], &NP[1], &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    CHECK_EQ_INT(o.n_tokens, 5);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(o.tokens[i], 1);
    CHECK_EQ_INT(o.tokens[4], 0);
    free_out(&o, 1);
    /* beam search too */
    cfg.p.num_beams = 3;
    CHECK_STATUS(run_gen(eos_first_logits, NULL, V, 1, &PROMPTS[1], &NP[1], &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    CHECK(o.n_tokens >= 5);
    for (int i = 0; i < 4 && i < o.n_tokens; i++) CHECK(o.tokens[i] != 0);
    free_out(&o, 1);
}

/* an LM that loves repeating the last id: logits positive, last id +5 */
static void repeat_logits(const int32_t *seq, int len, int V, float *out, const void *ud) {
    (void)ud;
    for (int v = 0; v < V; v++) out[v] = 1.0f + 0.01f * (float)v;
    out[seq[len - 1]] += 5.0f;
}

/* an LM that cycles 1 2 3 1 2 3 ... */
static void cycle_logits(const int32_t *seq, int len, int V, float *out, const void *ud) {
    (void)ud;
    for (int v = 0; v < V; v++) out[v] = 0.1f * (float)v;
    out[seq[len - 1] % 3 + 1] += 10.0f;
}

TEST(repetition_penalty_and_no_repeat_ngram) {
    const int V = 12;
    const int32_t prompt[] = {4};
    const int32_t *pp = prompt;
    int np = 1;
    blipc_gen_params p = defaults();
    p.max_new_tokens = 8;
    blipc_gen_config cfg = make_cfg(p, -1);
    blipc_gen_output o;
    blipc_err e = {0};
    /* without penalty: 4 4 4 ... */
    CHECK_STATUS(run_gen(repeat_logits, NULL, V, 1, &pp, &np, &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    for (int i = 0; i < o.n_tokens; i++) CHECK_EQ_INT(o.tokens[i], 4);
    free_out(&o, 1);
    /* a huge penalty makes every id seen (prompt included) lose to any unseen one */
    cfg.p.repetition_penalty = 1000.0f;
    CHECK_STATUS(run_gen(repeat_logits, NULL, V, 1, &pp, &np, &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    int seen[12] = {0};
    seen[4] = 1;
    for (int i = 0; i < o.n_tokens; i++) {
        CHECKF(!seen[o.tokens[i]], "token %d repeated at %d", o.tokens[i], i);
        seen[o.tokens[i]] = 1;
    }
    free_out(&o, 1);
    /* n-gram ban: the cycle repeats bigrams unless banned */
    const int32_t cyc[] = {1};
    pp = cyc;
    cfg.p.repetition_penalty = 1.0f;
    cfg.p.max_new_tokens = 10;
    CHECK_STATUS(run_gen(cycle_logits, NULL, V, 1, &pp, &np, &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    CHECK_EQ_INT(o.tokens[0], 2);
    CHECK_EQ_INT(o.tokens[3], 2); /* 1 2 3 1 2 ...: the bigram (1,2) repeats */
    free_out(&o, 1);
    for (int n = 1; n <= 3; n++) {
        for (int beams = 1; beams <= 2; beams++) {
            cfg.p.no_repeat_ngram_size = n;
            cfg.p.num_beams = beams;
            cfg.p.max_new_tokens = n == 1 ? 9 : 10;
            CHECK_STATUS(run_gen(cycle_logits, NULL, V, 1, &pp, &np, &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
            int32_t all[32];
            int len = 0;
            all[len++] = 1;
            for (int i = 0; i < o.n_tokens; i++) all[len++] = o.tokens[i];
            CHECK_EQ_INT(o.n_tokens, cfg.p.max_new_tokens);
            for (int a = 0; a + n <= len; a++)
                for (int b = a + 1; b + n <= len; b++)
                    CHECKF(memcmp(all + a, all + b, (size_t)n * sizeof(int32_t)) != 0,
                           "n=%d beams=%d: %d-gram at %d repeats at %d", n, beams, n, a, b);
            free_out(&o, 1);
        }
    }
}

TEST(warpers_match_reference) {
    const int V = 40;
    float s[40], r[40];
    int n = 0;
    for (int trial = 0; trial < 300; trial++) {
        uint64_t h = mix64((uint64_t)trial + 1000);
        for (int v = 0; v < V; v++) {
            h = mix64(h + (uint64_t)v);
            s[v] = (float)((double)(h >> 11) * 0x1.0p-53 * 10.0 - 5.0);
            if (trial % 7 == 0 && v % 5 == 0) s[v] = -INFINITY; /* some pre-filtered ids */
            if (trial % 5 == 0 && v % 4 == 1) s[v] = s[v - 1];   /* some ties */
        }
        blipc_gen_params p = defaults();
        p.do_sample = 1;
        p.temperature = (trial % 3 == 0) ? 1.0f : 0.5f + 0.1f * (float)(trial % 9);
        p.top_k = (int[]){0, 1, 3, 10, 50, 39}[trial % 6];
        p.top_p = (float[]){1.0f, 0.9f, 0.5f, 0.05f, 0.99f}[trial % 5];
        memcpy(r, s, sizeof s);
        blipc_err e = {0};
        CHECK_STATUS(blipc__gen_warp(s, V, &p, &e), BLIPC_OK, e.msg);
        ref_warp(r, V, &p);
        int same = 1, kept = 0;
        for (int v = 0; v < V; v++) {
            same &= (s[v] == r[v]) || (isinf(s[v]) && isinf(r[v]) && s[v] < 0 && r[v] < 0);
            kept += s[v] > -INFINITY;
        }
        CHECKF(same, "trial %d (k %d, p %g, T %g)", trial, p.top_k, (double)p.top_p, (double)p.temperature);
        CHECK(kept >= 1);
        if (p.top_k == 1 && trial % 5 != 0) CHECK_EQ_INT(kept, 1);
        n++;
    }
    /* by hand: top_p = 0.7 over probs {0.5, 0.3, 0.15, 0.05} keeps the two largest
     * (ascending cumsum 0.05, 0.20, 0.50 <= 0.3? 0.05 and 0.20 yes, 0.50 no). */
    float h4[4] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    blipc_gen_params p = defaults();
    p.do_sample = 1;
    p.top_k = 0;
    p.top_p = 0.7f;
    blipc_err e = {0};
    CHECK_STATUS(blipc__gen_warp(h4, 4, &p, &e), BLIPC_OK, e.msg);
    CHECK(isinf(h4[0]) && isinf(h4[2]) && !isinf(h4[1]) && !isinf(h4[3]));
    CHECK_EQ_INT(n, 300);
}

TEST(sampling_reproducible_and_within_filters) {
    const int V = 24, eos = 5;
    rand_lm r = {.salt = 9, .eos = eos, .eos_slope = 0.2f};
    blipc_gen_params p = defaults();
    p.do_sample = 1;
    p.max_new_tokens = 16;
    p.top_k = 6;
    p.top_p = 0.8f;
    p.temperature = 1.3f;
    p.repetition_penalty = 1.2f;
    p.seed = 1234;
    blipc_gen_config cfg = make_cfg(p, eos);
    blipc_gen_output a, b, c;
    blipc_err e = {0};
    CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[0], &NP[0], &cfg, 0, &a, &e, NULL), BLIPC_OK, e.msg);
    CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[0], &NP[0], &cfg, 0, &b, &e, NULL), BLIPC_OK, e.msg);
    CHECK(same_out(&a, &b));
    int differ = 0;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        cfg.p.seed = 1234 + seed;
        CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[0], &NP[0], &cfg, 0, &c, &e, NULL), BLIPC_OK, e.msg);
        differ += !same_out(&a, &c);
        free_out(&c, 1);
    }
    CHECK(differ >= 3);
    /* every sampled token survived the processors and warpers at its step */
    int32_t seq[TOY_CAP];
    memcpy(seq, PR0, sizeof PR0);
    int len = 3;
    for (int t = 0; t < a.n_tokens; t++) {
        float s[64];
        rand_logits(seq, len, V, s, &r);
        ref_processors(s, V, seq, len, t, &p, eos);
        ref_warp(s, V, &p);
        CHECKF(s[a.tokens[t]] > -INFINITY, "step %d: token %d was filtered out", t, a.tokens[t]);
        seq[len++] = a.tokens[t];
    }
    free_out(&a, 1);
    free_out(&b, 1);
}

TEST(sampling_top_k_1_is_greedy) {
    const int V = 24, eos = 5;
    for (int salt = 0; salt < 6; salt++) {
        rand_lm r = {.salt = (uint64_t)salt + 50, .eos = eos, .eos_slope = 0.3f};
        blipc_gen_params p = defaults();
        p.max_new_tokens = 12;
        p.no_repeat_ngram_size = salt % 2 ? 2 : 0;
        blipc_gen_config g = make_cfg(p, eos);
        p.do_sample = 1;
        p.top_k = 1;
        p.temperature = 0.7f;
        p.seed = (uint64_t)salt;
        blipc_gen_config s = make_cfg(p, eos);
        blipc_gen_output og, os;
        blipc_err e = {0};
        CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[2], &NP[2], &g, 0, &og, &e, NULL), BLIPC_OK, e.msg);
        CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[2], &NP[2], &s, 0, &os, &e, NULL), BLIPC_OK, e.msg);
        CHECK(same_out(&og, &os));
        free_out(&og, 1);
        free_out(&os, 1);
    }
}

/* first-token frequencies over many seeds follow softmax(logits / T) */
TEST(sampling_distribution) {
    const int V = 8, N = 4000;
    float lg[8] = {0.0f, 1.0f, -1.0f, 0.5f, 2.0f, -0.5f, 0.2f, 1.5f};
    const int32_t pr[] = {0};
    const int32_t *pp = pr;
    int np = 1;
    blipc_gen_params p = defaults();
    p.do_sample = 1;
    p.top_k = 0;
    p.temperature = 1.5f;
    p.max_new_tokens = 1;
    int cnt[8] = {0};
    toy_lm *m = toy_new(V, 1, eos_first_logits, NULL);
    blipc_lm lm = toy_iface(m);
    for (int i = 0; i < N; i++) {
        p.seed = (uint64_t)i * 7919u;
        blipc_gen_config cfg = make_cfg(p, -1);
        blipc_gen_output o;
        blipc_err e = {0};
        CHECK_STATUS(blipc__generate(&lm, &cfg, 1, lg, &pp, &np, &o, &e), BLIPC_OK, e.msg);
        cnt[o.tokens[0]]++;
        free_out(&o, 1);
    }
    double z = 0, pr_[8];
    for (int v = 0; v < V; v++) z += exp(lg[v] / 1.5);
    for (int v = 0; v < V; v++) {
        pr_[v] = exp(lg[v] / 1.5) / z;
        double f = (double)cnt[v] / N, sd = sqrt(pr_[v] * (1 - pr_[v]) / N);
        CHECKF(fabs(f - pr_[v]) < 5 * sd, "token %d: frequency %.4f, probability %.4f", v, f, pr_[v]);
    }
    free(m);
}

/* Hand-checked beam search. V = 4, EOS = 3, num_beams = 2, logits = ln(prob):
 *   after the prompt: p = {0: .5, 1: .3, 2: .15, EOS: .05}
 *   after [0]:        {0: .25, 1: .1, 2: .05, EOS: .6}
 *   after [1]:        {0: .03, 1: .02, 2: .9, EOS: .05}
 *   after [1 2]:      {0: .2, 1: .06, 2: .04, EOS: .7}
 *   after [0 0]:      {0: .4, 1: .3, 2: .2, EOS: .1}     otherwise uniform.
 * Step 1: candidates (beam 0 only) 0:-0.6931 1:-1.2040 2:-1.8971 EOS:-2.9957; EOS
 *   ranks 3rd >= num_beams: not a hypothesis. Beams [0] -0.6931, [1] -1.2040.
 * Step 2: [0 EOS] = -0.6931 + ln .6 = -1.2040 (rank 0: finished, score -1.2040 / 2^lp),
 *   [1 2] = -1.2040 + ln .9 = -1.3093, [0 0] = -2.0794, [0 1] = -2.9957.
 *   Beams [1 2], [0 0]; one finished slot still empty -> go on.
 * Step 3: [1 2 EOS] = -1.3093 + ln .7 = -1.6660 (rank 0: finished, -1.6660 / 3^lp),
 *   [1 2 0] = -2.9188, [0 0 0] = -2.9957, [0 0 1] = -3.2834.
 *   lp = 1: finished = {[1 2 EOS] -0.5553, [0 EOS] -0.6020}; heuristic: best running
 *   -2.9188 / 3 = -0.9729 is not above -0.6020 -> stop. Result [1 2 EOS], -0.5553.
 *   lp = 0: finished = {[0 EOS] -1.2040, [1 2 EOS] -1.6660}; -2.9188 < -1.6660 -> stop.
 *   Result [0 EOS], -1.2040 (= ln .3), which is also the greedy answer.
 * With max_new_tokens = 2 and lp = 1 the step-2 candidates all hit the length limit:
 *   [0 EOS] -1.2040 / 2 = -0.6020 beats the open beam [1 2] -1.3093 / 2 = -0.6547. */
typedef struct table_lm {
    int np;
} table_lm;

static void table_logits(const int32_t *seq, int len, int V, float *out, const void *ud) {
    const table_lm *t = ud;
    const int32_t *g = seq + t->np;
    int n = len - t->np;
    float pr[4] = {0.25f, 0.25f, 0.25f, 0.25f};
    if (n == 0) memcpy(pr, (float[]){0.5f, 0.3f, 0.15f, 0.05f}, sizeof pr);
    if (n == 1 && g[0] == 0) memcpy(pr, (float[]){0.25f, 0.1f, 0.05f, 0.6f}, sizeof pr);
    if (n == 1 && g[0] == 1) memcpy(pr, (float[]){0.03f, 0.02f, 0.9f, 0.05f}, sizeof pr);
    if (n == 2 && g[0] == 1 && g[1] == 2) memcpy(pr, (float[]){0.2f, 0.06f, 0.04f, 0.7f}, sizeof pr);
    if (n == 2 && g[0] == 0 && g[1] == 0) memcpy(pr, (float[]){0.4f, 0.3f, 0.2f, 0.1f}, sizeof pr);
    for (int v = 0; v < V; v++) out[v] = logf(pr[v]);
}

TEST(beam_search_by_hand) {
    const int32_t pr[] = {0, 1};
    const int32_t *pp = pr;
    int np = 2;
    table_lm t = {.np = 2};
    blipc_gen_params p = defaults();
    p.num_beams = 2;
    p.max_new_tokens = 10;
    for (int es = 0; es <= 1; es++) {
        p.early_stopping = es;
        p.length_penalty = 1.0f;
        blipc_gen_config cfg = make_cfg(p, 3);
        blipc_gen_output o;
        blipc_err e = {0};
        CHECK_STATUS(run_gen(table_logits, &t, 4, 1, &pp, &np, &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
        CHECK_EQ_INT(o.n_tokens, 3);
        CHECK(o.n_tokens == 3 && o.tokens[0] == 1 && o.tokens[1] == 2 && o.tokens[2] == 3);
        CHECKF(fabs(o.score - log(0.3 * 0.9 * 0.7) / 3) < 1e-5, "score %g", (double)o.score);
        free_out(&o, 1);
        cfg.p.length_penalty = 0.0f;
        CHECK_STATUS(run_gen(table_logits, &t, 4, 1, &pp, &np, &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
        CHECK(o.n_tokens == 2 && o.tokens[0] == 0 && o.tokens[1] == 3);
        CHECKF(fabs(o.score - log(0.3)) < 1e-5, "score %g", (double)o.score);
        free_out(&o, 1);
    }
    p.max_new_tokens = 2;
    p.length_penalty = 1.0f;
    blipc_gen_config cfg = make_cfg(p, 3);
    blipc_gen_output o;
    blipc_err e = {0};
    CHECK_STATUS(run_gen(table_logits, &t, 4, 1, &pp, &np, &cfg, 0, &o, &e, NULL), BLIPC_OK, e.msg);
    CHECK(o.n_tokens == 2 && o.tokens[0] == 0 && o.tokens[1] == 3);
    CHECKF(fabs(o.score - log(0.3) / 2) < 1e-5, "score %g", (double)o.score);
    free_out(&o, 1);
    /* the reference agrees on all of the above */
    ref_out ref;
    p.max_new_tokens = 10;
    ref_beam(table_logits, &t, 4, 1, &pp, &np, &p, 3, &ref);
    CHECK(ref.n == 3 && ref.tok[0] == 1 && ref.tok[1] == 2 && ref.tok[2] == 3);
}

TEST(beam_search_matches_reference) {
    const int V = 20, eos = 6;
    int n = 0, n_eos = 0, n_cut = 0, n_not_greedy = 0;
    for (int salt = 0; salt < 40; salt++) {
        rand_lm r = {.salt = (uint64_t)salt * 31 + 5, .eos = eos, .eos_slope = 0.25f + 0.05f * (float)(salt % 4)};
        blipc_gen_params p = defaults();
        p.num_beams = 2 + salt % 4;
        p.max_new_tokens = 6 + salt % 9;
        p.length_penalty = (float[]){1.0f, 0.0f, 2.0f, -0.5f, 1.0f}[salt % 5];
        p.early_stopping = (salt / 5) % 2;
        if (salt % 6 == 1) p.repetition_penalty = 1.5f;
        if (salt % 7 == 2) p.no_repeat_ngram_size = 2;
        if (salt % 8 == 3) p.min_new_tokens = 3;
        int P = 1 + salt % 4;
        blipc_gen_config cfg = make_cfg(p, eos);
        blipc_gen_output o[4];
        blipc_err e = {0};
        toy_lm *m;
        CHECK_STATUS(run_gen(rand_logits, &r, V, P, PROMPTS, NP, &cfg, 0, o, &e, &m), BLIPC_OK, e.msg);
        CHECK(m->n_copies > 0); /* the beams were reordered through copy_slots */
        free(m);
        ref_out ref[4];
        ref_beam(rand_logits, &r, V, P, PROMPTS, NP, &p, eos, ref);
        for (int q = 0; q < P; q++) {
            CHECKF(same_tokens(&o[q], &ref[q]), "salt %d prompt %d (beams %d lp %g es %d): %d vs %d tokens", salt, q,
                   p.num_beams, (double)p.length_penalty, p.early_stopping, o[q].n_tokens, ref[q].n);
            CHECKF(o[q].score == ref[q].score, "salt %d prompt %d: score %.9g vs %.9g", salt, q, (double)o[q].score,
                   (double)ref[q].score);
            n_eos += o[q].n_tokens > 0 && o[q].tokens[o[q].n_tokens - 1] == eos;
            n_cut += o[q].n_tokens == p.max_new_tokens && o[q].tokens[o[q].n_tokens - 1] != eos;
            ref_out g;
            blipc_gen_params gp = p;
            ref_greedy(rand_logits, &r, V, PROMPTS[q], NP[q], &gp, eos, &g);
            n_not_greedy += !same_tokens(&o[q], &g);
            n++;
        }
        free_out(o, P);
    }
    CHECK(n_eos > 10);
    CHECK(n_cut > 3);
    CHECK(n_not_greedy > 5); /* beam search really searched */
    CHECK(n > 80);
}

TEST(beam_with_one_beam_equals_greedy) {
    const int V = 24, eos = 5;
    for (int salt = 0; salt < 10; salt++) {
        rand_lm r = {.salt = (uint64_t)salt + 300, .eos = eos, .eos_slope = 0.35f};
        blipc_gen_params p = defaults();
        p.max_new_tokens = 12;
        p.early_stopping = salt % 2;
        p.length_penalty = (float[]){1.0f, 0.0f, 2.0f}[salt % 3];
        /* not repetition_penalty: beam search applies it to log-probs, greedy to
         * logits, so their argmax may differ (as in HF) */
        if (salt % 3 == 0) p.no_repeat_ngram_size = 2;
        if (salt % 4 == 1) p.min_new_tokens = 3;
        blipc_gen_config cfg = make_cfg(p, eos);
        blipc_gen_output g[4], b[4];
        blipc_err e = {0};
        CHECK_STATUS(run_gen(rand_logits, &r, V, 4, PROMPTS, NP, &cfg, 0, g, &e, NULL), BLIPC_OK, e.msg);
        CHECK_STATUS(run_gen(rand_logits, &r, V, 4, PROMPTS, NP, &cfg, 1, b, &e, NULL), BLIPC_OK, e.msg);
        for (int q = 0; q < 4; q++) {
            CHECKF(g[q].n_tokens == b[q].n_tokens &&
                       !memcmp(g[q].tokens, b[q].tokens, (size_t)g[q].n_tokens * sizeof(int32_t)),
                   "salt %d prompt %d", salt, q);
        }
        free_out(g, 4);
        free_out(b, 4);
    }
}

TEST(batch_equals_one_at_a_time) {
    const int V = 20, eos = 6;
    for (int mode = 0; mode < 3; mode++) {
        rand_lm r = {.salt = 4242 + (uint64_t)mode, .eos = eos, .eos_slope = 0.3f};
        blipc_gen_params p = defaults();
        p.max_new_tokens = 11;
        if (mode == 1) p.num_beams = 4;
        if (mode == 2) {
            p.do_sample = 1;
            p.top_p = 0.9f;
            p.seed = 99;
        }
        blipc_gen_config cfg = make_cfg(p, eos);
        blipc_gen_output all[4], one;
        blipc_err e = {0};
        CHECK_STATUS(run_gen(rand_logits, &r, V, 4, PROMPTS, NP, &cfg, 0, all, &e, NULL), BLIPC_OK, e.msg);
        for (int q = 0; q < 4; q++) {
            CHECK_STATUS(run_gen(rand_logits, &r, V, 1, &PROMPTS[q], &NP[q], &cfg, 0, &one, &e, NULL), BLIPC_OK,
                         e.msg);
            CHECKF(same_out(&all[q], &one), "mode %d prompt %d", mode, q);
            free_out(&one, 1);
        }
        free_out(all, 4);
    }
}

typedef struct prog {
    int calls, stop_at;
    float last;
    int monotonic;
} prog;

static int on_progress(void *user, float f) {
    prog *pg = user;
    pg->calls++;
    if (f < pg->last || f < 0 || f > 1) pg->monotonic = 0;
    pg->last = f;
    return pg->calls != pg->stop_at;
}

TEST(progress_and_abort) {
    const int V = 20, eos = -1;
    rand_lm r = {.salt = 5, .eos = eos};
    for (int beams = 1; beams <= 3; beams += 2) {
        prog pg = {.monotonic = 1};
        blipc_gen_params p = defaults();
        p.max_new_tokens = 7;
        p.num_beams = beams;
        p.progress = on_progress;
        p.progress_user = &pg;
        blipc_gen_config cfg = make_cfg(p, eos);
        blipc_gen_output o[2];
        blipc_err e = {0};
        CHECK_STATUS(run_gen(rand_logits, &r, V, 2, PROMPTS, NP, &cfg, 0, o, &e, NULL), BLIPC_OK, e.msg);
        CHECK_EQ_INT(pg.calls, 7);
        CHECK(pg.monotonic);
        CHECK(pg.last == 1.0f);
        free_out(o, 2);
        pg = (prog){.stop_at = 3, .monotonic = 1};
        CHECK_STATUS(run_gen(rand_logits, &r, V, 2, PROMPTS, NP, &cfg, 0, o, &e, NULL), BLIPC_ERR_ABORTED, e.msg);
        CHECK_EQ_INT(pg.calls, 3);
        CHECK(o[0].tokens == NULL && o[1].tokens == NULL);
        CHECK_CONTAINS(e.msg, "abort");
    }
}

TEST(lm_errors_propagate) {
    const int V = 20;
    rand_lm r = {.salt = 1, .eos = -1};
    for (int beams = 1; beams <= 2; beams++) {
        toy_lm *m = toy_new(V, 8, rand_logits, &r);
        m->fail_at_step = 2;
        float *first = toy_prefill(m, 2, PROMPTS, NP);
        blipc_lm lm = toy_iface(m);
        blipc_gen_params p = defaults();
        p.num_beams = beams;
        blipc_gen_config cfg = make_cfg(p, -1);
        blipc_gen_output o[2];
        blipc_err e = {0};
        CHECK_STATUS(blipc__generate(&lm, &cfg, 2, first, PROMPTS, NP, o, &e), BLIPC_ERR_MODEL, e.msg);
        CHECK_CONTAINS(e.msg, "generate: step 2");
        CHECK_CONTAINS(e.msg, "injected failure");
        CHECK(o[0].tokens == NULL && o[1].tokens == NULL);
        /* too few slots for the beams */
        lm.max_seqs = 3;
        cfg.p.num_beams = 2;
        CHECK_STATUS(blipc__generate(&lm, &cfg, 2, first, PROMPTS, NP, o, &e), BLIPC_ERR_LIMIT, e.msg);
        CHECK_CONTAINS(e.msg, "slots");
        free(first);
        free(m);
    }
}

static void check_bad(blipc_gen_params p, blipc_status want, const char *msg) {
    blipc_err e = {0};
    CHECK_STATUS(blipc__gen_params_check(&p, &e), want, e.msg);
    CHECK_CONTAINS(e.msg, msg);
    /* generate refuses them too, before touching anything */
    blipc_gen_config cfg = make_cfg(p, 2);
    blipc_lm lm = {.vocab_size = 4, .max_seqs = 4, .step = toy_step};
    float lg[4] = {0};
    blipc_gen_output o;
    blipc_err e2 = {0};
    CHECK_STATUS(blipc__generate(&lm, &cfg, 1, lg, NULL, NULL, &o, &e2), want, e2.msg);
    CHECK_CONTAINS(e2.msg, msg);
}

TEST(param_validation) {
    blipc_gen_params p = defaults();
    blipc_err e = {0};
    CHECK_STATUS(blipc__gen_params_check(&p, &e), BLIPC_OK, e.msg);
    p.num_beams = 0;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "num_beams must be between 1 and 16 (got 0)");
    p.num_beams = 1000;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "num_beams must be between 1 and 16 (got 1000)");
    p = defaults();
    p.max_new_tokens = 0;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "max_new_tokens must be between 1 and");
    p.max_new_tokens = 1 << 30;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "max_new_tokens");
    p = defaults();
    p.min_new_tokens = 31;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "min_new_tokens");
    p = defaults();
    p.repetition_penalty = 0;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "repetition_penalty");
    p = defaults();
    p.no_repeat_ngram_size = -1;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "no_repeat_ngram_size");
    p = defaults();
    p.length_penalty = NAN;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "length_penalty");
    p = defaults();
    p.do_sample = 1;
    p.temperature = 0;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "temperature must be a finite number > 0 (got 0)");
    p.temperature = INFINITY;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "temperature");
    p = defaults();
    p.do_sample = 1;
    p.top_p = 0;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "top_p must be in (0, 1]");
    p.top_p = 1.5f;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "top_p");
    p = defaults();
    p.do_sample = 1;
    p.top_k = -1;
    check_bad(p, BLIPC_ERR_INVALID_ARG, "top_k");
    p = defaults();
    p.do_sample = 1;
    p.num_beams = 4;
    check_bad(p, BLIPC_ERR_UNSUPPORTED, "beam sampling");
    /* sampling fields are not used (so not checked) by greedy search */
    p = defaults();
    p.temperature = 0;
    CHECK_STATUS(blipc__gen_params_check(&p, &e), BLIPC_OK, e.msg);
}

static const char *write_cfg(const char *name, const char *json) {
    static char dir[1024];
    char path[1100];
    snprintf(dir, sizeof dir, "%s/%s", th_tmpdir(), name);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    th_write_file(path, json, strlen(json));
    return dir;
}

TEST(gen_config_load) {
    blipc_gen_params p;
    blipc_err e = {0};
    int eos = 50118, pad = 1;
    /* defaults (HF's, with max_new_tokens 30) when there is no file */
    CHECK_STATUS(blipc__gen_config_load(th_tmpdir(), &p, &eos, &pad, &e), BLIPC_OK, e.msg);
    CHECK_EQ_INT(p.max_new_tokens, 30);
    CHECK_EQ_INT(p.num_beams, 1);
    CHECK_EQ_INT(p.top_k, 50);
    CHECK(p.top_p == 1.0f && p.temperature == 1.0f && p.repetition_penalty == 1.0f && p.length_penalty == 1.0f);
    CHECK(!p.do_sample && !p.early_stopping && p.min_new_tokens == 0 && p.no_repeat_ngram_size == 0);
    CHECK(eos == 50118 && pad == 1);
    /* the real blip2-opt-2.7b file */
    const char *d = write_cfg("blip2", "{\"_from_model_config\": true, \"bos_token_id\": 2, \"eos_token_id\": 50118,"
                                       " \"pad_token_id\": 1, \"transformers_version\": \"4.27.0.dev0\"}");
    eos = -1;
    pad = -1;
    CHECK_STATUS(blipc__gen_config_load(d, &p, &eos, &pad, &e), BLIPC_OK, e.msg);
    CHECK(eos == 50118 && pad == 1 && p.max_new_tokens == 30);
    /* every field */
    d = write_cfg("all", "{\"max_new_tokens\": 12, \"max_length\": 5, \"min_new_tokens\": 2, \"num_beams\": 5,"
                         " \"do_sample\": false, \"temperature\": 0.7, \"top_k\": 7, \"top_p\": 0.9,"
                         " \"repetition_penalty\": 1.5, \"no_repeat_ngram_size\": 3, \"length_penalty\": 0.6,"
                         " \"early_stopping\": true, \"eos_token_id\": [50118, 2], \"pad_token_id\": null}");
    CHECK_STATUS(blipc__gen_config_load(d, &p, &eos, &pad, &e), BLIPC_OK, e.msg);
    CHECK(p.max_new_tokens == 12 && p.min_new_tokens == 2 && p.num_beams == 5 && !p.do_sample);
    CHECK(fabsf(p.temperature - 0.7f) < 1e-6f && p.top_k == 7 && fabsf(p.top_p - 0.9f) < 1e-6f);
    CHECK(p.repetition_penalty == 1.5f && p.no_repeat_ngram_size == 3 && fabsf(p.length_penalty - 0.6f) < 1e-6f);
    CHECK(p.early_stopping == 1 && eos == 50118 && pad == 1);
    /* NULL eos/pad are fine */
    CHECK_STATUS(blipc__gen_config_load(d, &p, NULL, NULL, &e), BLIPC_OK, e.msg);
    /* wrong types name the file and the field */
    struct {
        const char *name, *json, *field;
        blipc_status want;
    } bad[] = {
        {"b1", "{\"num_beams\": \"4\"}", "num_beams", BLIPC_ERR_FORMAT},
        {"b2", "{\"do_sample\": 1}", "do_sample", BLIPC_ERR_FORMAT},
        {"b3", "{\"top_p\": \"x\"}", "top_p", BLIPC_ERR_FORMAT},
        {"b4", "{\"eos_token_id\": \"\\n\"}", "eos_token_id", BLIPC_ERR_FORMAT},
        {"b5", "{\"eos_token_id\": [1, \"a\"]}", "eos_token_id", BLIPC_ERR_FORMAT},
        {"b6", "{\"max_new_tokens\": 2.5}", "max_new_tokens", BLIPC_ERR_FORMAT},
        {"b7", "{\"num_beams\": 0}", "num_beams", BLIPC_ERR_FORMAT},
        {"b8", "{\"early_stopping\": \"never\"}", "early_stopping", BLIPC_ERR_UNSUPPORTED},
        {"b9", "[1, 2]", "not a JSON object", BLIPC_ERR_FORMAT},
        {"b10", "{\"num_beams\": ", "invalid JSON", BLIPC_ERR_FORMAT},
        {"b11", "{\"top_k\": 1e12}", "top_k", BLIPC_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = write_cfg(bad[i].name, bad[i].json);
        p.max_new_tokens = 77;
        CHECK_STATUS(blipc__gen_config_load(d, &p, &eos, &pad, &e), bad[i].want, e.msg);
        CHECK_CONTAINS(e.msg, "generation_config.json");
        CHECK_CONTAINS(e.msg, bad[i].field);
    }
}

int main(void) {
    RUN(greedy_matches_reference);
    RUN(greedy_eos_is_included_and_stops);
    RUN(min_new_tokens_suppresses_eos);
    RUN(repetition_penalty_and_no_repeat_ngram);
    RUN(warpers_match_reference);
    RUN(sampling_reproducible_and_within_filters);
    RUN(sampling_top_k_1_is_greedy);
    RUN(sampling_distribution);
    RUN(beam_search_by_hand);
    RUN(beam_search_matches_reference);
    RUN(beam_with_one_beam_equals_greedy);
    RUN(batch_equals_one_at_a_time);
    RUN(progress_and_abort);
    RUN(lm_errors_propagate);
    RUN(param_validation);
    RUN(gen_config_load);
    return th_finish();
}
