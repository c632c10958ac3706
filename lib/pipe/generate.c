/* generate.c — greedy search, multinomial sampling and beam search over the
 * blipc_lm "next logits" interface, reproducing Hugging Face transformers'
 * GenerationConfig semantics (generation/utils.py, logits_process.py).
 *
 * Logits processors, in HF's order (_get_logits_processor), for those we support:
 *   repetition_penalty      over every id of the sequence so far (prompt included):
 *                           score < 0 ? score * penalty : score / penalty, once per distinct id
 *   no_repeat_ngram_size    bans tokens that would complete an n-gram already present
 *   min_new_tokens          EOS = -inf while fewer than min_new_tokens were generated
 * then, only when sampling, the warpers: temperature (if != 1), top-k (if != 0,
 * keeps every token >= the k-th largest score), top-p (if < 1: ascending sort,
 * drop tokens whose cumulative probability <= 1 - top_p, always keep the largest).
 *
 * Greedy: argmax (first maximum wins) of the processed logits. Sampling: softmax
 * of the warped scores and a multinomial draw from a xoshiro256** generator seeded
 * (splitmix64) from p.seed. Every prompt owns a generator seeded the same way, so
 * a prompt samples the same tokens whether it runs alone or in a batch. EOS is
 * part of the output (HF's sequences include it); a finished prompt is simply no
 * longer stepped (HF pads it).
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
#include "generate.h"

#include "fileutil.h"
#include "hfconfig.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GEN_MAX_BEAMS 16
#define GEN_MAX_NEW_TOKENS 8192
#define HF_NEG 1.0e9f /* HF's "very large negative" beam score offset */

/* ------------------------------------------------------------- parameters */

static void gen_defaults(blipc_gen_params *gp) {
    memset(gp, 0, sizeof *gp);
    gp->max_new_tokens = 30; /* HF's default is max_length 20 incl. the prompt (33 ids for BLIP-2 already) */
    gp->min_new_tokens = 0;
    gp->num_beams = 1;
    gp->length_penalty = 1.0f;
    gp->early_stopping = 0;
    gp->do_sample = 0;
    gp->temperature = 1.0f;
    gp->top_k = 50;
    gp->top_p = 1.0f;
    gp->seed = 0;
    gp->repetition_penalty = 1.0f;
    gp->no_repeat_ngram_size = 0;
}

blipc_status blipc__gen_params_check(const blipc_gen_params *p, blipc_err *e) {
    if (!p) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "generation params: NULL");
    if (p->num_beams < 1 || p->num_beams > GEN_MAX_BEAMS)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "num_beams must be between 1 and %d (got %d)", GEN_MAX_BEAMS,
                           p->num_beams);
    if (p->max_new_tokens < 1 || p->max_new_tokens > GEN_MAX_NEW_TOKENS)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "max_new_tokens must be between 1 and %d (got %d)",
                           GEN_MAX_NEW_TOKENS, p->max_new_tokens);
    if (p->min_new_tokens < 0 || p->min_new_tokens > p->max_new_tokens)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG,
                           "min_new_tokens must be between 0 and max_new_tokens (%d) (got %d)", p->max_new_tokens,
                           p->min_new_tokens);
    if (!isfinite(p->length_penalty))
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "length_penalty must be finite (got %g)", (double)p->length_penalty);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "repetition_penalty must be a finite number > 0 (got %g)",
                           (double)p->repetition_penalty);
    if (p->no_repeat_ngram_size < 0)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "no_repeat_ngram_size must be >= 0 (got %d)",
                           p->no_repeat_ngram_size);
    /* The warpers are used only when sampling (HF ignores them otherwise, with a
     * warning), so a greedy config with e.g. temperature 0 stays valid. */
    if (p->do_sample) {
        if (!(p->temperature > 0) || !isfinite(p->temperature))
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "temperature must be a finite number > 0 (got %g)",
                               (double)p->temperature);
        if (p->top_k < 0) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "top_k must be >= 0 (got %d)", p->top_k);
        if (!(p->top_p > 0 && p->top_p <= 1))
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "top_p must be in (0, 1] (got %g)", (double)p->top_p);
        if (p->num_beams > 1)
            return blipc__errf(e, BLIPC_ERR_UNSUPPORTED,
                               "beam sampling (do_sample with num_beams %d > 1) is not supported: use do_sample with "
                               "num_beams 1, or beam search without do_sample",
                               p->num_beams);
    }
    return BLIPC_OK;
}

static blipc_status cfg_int(const cJSON *root, const char *name, int *out, const char *path, blipc_err *e) {
    long long v;
    if (!cJSON_GetObjectItemCaseSensitive(root, name)) return BLIPC_OK;
    BLIPC_TRY(blipc__json_int(root, name, *out, &v, path, e));
    if (v < INT_MIN || v > INT_MAX)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" = %lld is out of range", path, name, v);
    *out = (int)v;
    return BLIPC_OK;
}

static blipc_status cfg_float(const cJSON *root, const char *name, float *out, const char *path, blipc_err *e) {
    double v;
    BLIPC_TRY(blipc__json_num(root, name, *out, &v, path, e));
    *out = (float)v;
    return BLIPC_OK;
}

/* eos_token_id: an int or a list of ints (we stop at the first one only). */
static blipc_status cfg_token_id(const cJSON *root, const char *name, int *out, const char *path, blipc_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v)) return BLIPC_OK;
    if (cJSON_IsArray(v)) {
        const cJSON *first = cJSON_GetArrayItem(v, 0);
        if (!first) return BLIPC_OK; /* [] = no EOS given */
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
                it->valuedouble > INT_MAX)
                return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be a token id or a list of token ids",
                                   path, name);
        }
        if (out) *out = (int)first->valuedouble;
        return BLIPC_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > INT_MAX)
        return blipc__errf(e, BLIPC_ERR_FORMAT, "%s: field \"%s\" must be a token id or a list of token ids", path,
                           name);
    if (out) *out = (int)v->valuedouble;
    return BLIPC_OK;
}

blipc_status blipc__gen_config_load(const char *dir, blipc_gen_params *gp, int *eos_token_id, int *pad_token_id,
                                    blipc_err *e) {
    if (!gp) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "generation_config.json: NULL params");
    gen_defaults(gp);
    if (!dir) return BLIPC_OK;
    char path[4096];
    BLIPC_TRY(blipc__path_join(path, sizeof path, dir, "generation_config.json", e));
    if (!blipc__file_exists(path)) return BLIPC_OK;
    cJSON *root;
    BLIPC_TRY(blipc__json_load(path, &root, e));
    blipc_status rc = BLIPC_OK;
    blipc_gen_params p = *gp;
    int eos = eos_token_id ? *eos_token_id : -1, pad = pad_token_id ? *pad_token_id : -1;
    if (!cJSON_IsObject(root)) rc = blipc__errf(e, BLIPC_ERR_FORMAT, "%s: not a JSON object", path);
    /* max_length (HF default 20) counts the prompt, which for BLIP-2 already holds
     * 32 image placeholders + BOS; it is ignored: only max_new_tokens is used. */
    if (!rc) rc = cfg_int(root, "max_new_tokens", &p.max_new_tokens, path, e);
    if (!rc) rc = cfg_int(root, "min_new_tokens", &p.min_new_tokens, path, e);
    if (!rc) rc = cfg_int(root, "num_beams", &p.num_beams, path, e);
    if (!rc) rc = blipc__json_bool(root, "do_sample", p.do_sample, &p.do_sample, path, e);
    if (!rc) rc = cfg_float(root, "temperature", &p.temperature, path, e);
    if (!rc) rc = cfg_int(root, "top_k", &p.top_k, path, e);
    if (!rc) rc = cfg_float(root, "top_p", &p.top_p, path, e);
    if (!rc) rc = cfg_float(root, "repetition_penalty", &p.repetition_penalty, path, e);
    if (!rc) rc = cfg_int(root, "no_repeat_ngram_size", &p.no_repeat_ngram_size, path, e);
    if (!rc) rc = cfg_float(root, "length_penalty", &p.length_penalty, path, e);
    if (!rc) {
        const cJSON *es = cJSON_GetObjectItemCaseSensitive(root, "early_stopping");
        if (cJSON_IsString(es) && es->valuestring && strcmp(es->valuestring, "never") == 0)
            rc = blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: field \"early_stopping\" = \"never\" is not supported",
                             path);
        else
            rc = blipc__json_bool(root, "early_stopping", p.early_stopping, &p.early_stopping, path, e);
    }
    if (!rc) rc = cfg_token_id(root, "eos_token_id", &eos, path, e);
    if (!rc) rc = cfg_token_id(root, "pad_token_id", &pad, path, e);
    if (!rc) {
        blipc_err ce = {0};
        rc = blipc__gen_params_check(&p, &ce);
        if (rc) rc = blipc__errf(e, rc == BLIPC_ERR_INVALID_ARG ? BLIPC_ERR_FORMAT : rc, "%s: %s", path, ce.msg);
    }
    cJSON_Delete(root);
    if (rc) return rc;
    *gp = p;
    if (eos_token_id) *eos_token_id = eos;
    if (pad_token_id) *pad_token_id = pad;
    return BLIPC_OK;
}

/* -------------------------------------------------------------------- RNG */

/* xoshiro256** seeded through splitmix64 (both public domain algorithms by
 * Blackman and Vigna). Owned by one call: no global state. */
typedef struct gen_rng {
    uint64_t s[4];
} gen_rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(gen_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(gen_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* uniform in [0, 1) with 53 random bits */
static double rng_uniform(gen_rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* ---------------------------------------------------------------- workspace */

typedef struct sorted_val {
    float v;
    int i;
} sorted_val;

typedef struct gen_ws {
    int V;
    float *logits;        /* [n_seq, V] lm step output */
    float *row;           /* [V] scores being processed */
    float *heap;          /* [V] top-k min-heap */
    sorted_val *sorted;   /* [V] top-p sort */
    uint32_t *stamp;      /* [V] repetition penalty: ids already penalised this row */
    uint32_t stamp_gen;
} gen_ws;

static void ws_free(gen_ws *w) {
    free(w->logits);
    free(w->row);
    free(w->heap);
    free(w->sorted);
    free(w->stamp);
    memset(w, 0, sizeof *w);
}

static blipc_status ws_alloc(gen_ws *w, int V, int n_seq, blipc_err *e) {
    memset(w, 0, sizeof *w);
    w->V = V;
    w->logits = malloc((size_t)n_seq * (size_t)V * sizeof(float));
    w->row = malloc((size_t)V * sizeof(float));
    w->heap = malloc((size_t)V * sizeof(float));
    w->sorted = malloc((size_t)V * sizeof(sorted_val));
    w->stamp = calloc((size_t)V, sizeof(uint32_t));
    if (!w->logits || !w->row || !w->heap || !w->sorted || !w->stamp) {
        ws_free(w);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "generate: out of memory for %d sequences x %d logits", n_seq, V);
    }
    return BLIPC_OK;
}

/* --------------------------------------------------------------- processors */

static void repetition_penalty(float *s, int V, const int32_t *seq, int len, float penalty, gen_ws *w) {
    if (++w->stamp_gen == 0) { /* wrapped: reset the marks */
        memset(w->stamp, 0, (size_t)V * sizeof *w->stamp);
        w->stamp_gen = 1;
    }
    for (int i = 0; i < len; i++) {
        int t = seq[i];
        if (t < 0 || t >= V || w->stamp[t] == w->stamp_gen) continue;
        w->stamp[t] = w->stamp_gen;
        s[t] = s[t] < 0 ? s[t] * penalty : s[t] / penalty;
    }
}

/* Ban seq[j+n-1] for every earlier n-gram whose first n-1 ids equal the last
 * n-1 ids of the sequence (HF's _get_ngrams / _get_generated_ngrams). */
static void no_repeat_ngram(float *s, int V, const int32_t *seq, int len, int n) {
    if (len + 1 < n) return;
    const int32_t *key = seq + len - (n - 1);
    for (int j = 0; j + n <= len; j++) {
        if (n > 1 && memcmp(seq + j, key, (size_t)(n - 1) * sizeof *seq) != 0) continue;
        int t = seq[j + n - 1];
        if (t >= 0 && t < V) s[t] = -INFINITY;
    }
}

static void apply_processors(float *s, const blipc_gen_config *cfg, int V, const int32_t *seq, int len, int n_gen,
                             gen_ws *w) {
    const blipc_gen_params *p = &cfg->p;
    if (p->repetition_penalty != 1.0f) repetition_penalty(s, V, seq, len, p->repetition_penalty, w);
    if (p->no_repeat_ngram_size > 0) no_repeat_ngram(s, V, seq, len, p->no_repeat_ngram_size);
    if (n_gen < p->min_new_tokens && cfg->eos_token_id >= 0 && cfg->eos_token_id < V) s[cfg->eos_token_id] = -INFINITY;
}

/* min-heap of floats */
static void heap_down(float *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l] < h[m]) m = l;
        if (r < n && h[r] < h[m]) m = r;
        if (m == i) return;
        float t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* TopKLogitsWarper: remove scores < the k-th largest (ties at the k-th are kept). */
static void top_k_filter(float *s, int V, int k, float *heap) {
    if (k < 1) k = 1; /* min_tokens_to_keep */
    if (k >= V) return;
    for (int i = 0; i < k; i++) heap[i] = s[i];
    for (int i = k / 2 - 1; i >= 0; i--) heap_down(heap, k, i);
    for (int i = k; i < V; i++) {
        if (s[i] > heap[0]) {
            heap[0] = s[i];
            heap_down(heap, k, 0);
        }
    }
    float kth = heap[0];
    for (int i = 0; i < V; i++)
        if (s[i] < kth) s[i] = -INFINITY;
}

/* strict total order: by score, then by token id */
static int sv_less(sorted_val a, sorted_val b) { return a.v < b.v || (a.v == b.v && a.i < b.i); }

static void sv_sift(sorted_val *a, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && sv_less(a[m], a[l])) m = l;
        if (r < n && sv_less(a[m], a[r])) m = r;
        if (m == i) return;
        sorted_val t = a[i];
        a[i] = a[m];
        a[m] = t;
        i = m;
    }
}

/* in-place heapsort, ascending (qsort may allocate; the step loop must not) */
static void sv_sort(sorted_val *a, int n) {
    for (int i = n / 2 - 1; i >= 0; i--) sv_sift(a, n, i);
    for (int end = n - 1; end > 0; end--) {
        sorted_val t = a[0];
        a[0] = a[end];
        a[end] = t;
        sv_sift(a, end, 0);
    }
}

/* TopPLogitsWarper: sort ascending, softmax, cumulative sum; drop tokens whose
 * cumulative probability <= 1 - top_p, keeping at least the largest one. Tokens
 * already at -inf have probability 0 and stay removed, so only the finite ones
 * are sorted. Equal scores are ordered by token id (a stable sort). */
static void top_p_filter(float *s, int V, float top_p, sorted_val *sv) {
    int n = 0;
    for (int i = 0; i < V; i++)
        if (s[i] > -INFINITY) sv[n++] = (sorted_val){s[i], i}; /* NaN excluded */
    if (n <= 1) return;
    sv_sort(sv, n);
    float m = sv[n - 1].v, sum = 0;
    for (int j = 0; j < n; j++) sum += expf(sv[j].v - m);
    float thr = (float)(1.0 - (double)top_p), cum = 0; /* HF: python float 1 - top_p */
    for (int j = 0; j < n - 1; j++) { /* the last (largest) is always kept */
        cum += expf(sv[j].v - m) / sum;
        if (cum <= thr)
            s[sv[j].i] = -INFINITY;
        else
            break; /* cumulative sums only grow */
    }
}

static void warp(float *s, int V, const blipc_gen_params *p, gen_ws *w) {
    if (p->temperature != 1.0f)
        for (int i = 0; i < V; i++) s[i] = s[i] / p->temperature;
    if (p->top_k != 0) top_k_filter(s, V, p->top_k, w->heap);
    if (p->top_p < 1.0f) top_p_filter(s, V, p->top_p, w->sorted);
}

blipc_status blipc__gen_warp(float *scores, int vocab, const blipc_gen_params *p, blipc_err *e) {
    if (!scores || vocab < 1 || !p) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "gen_warp: bad arguments");
    gen_ws w;
    BLIPC_TRY(ws_alloc(&w, vocab, 1, e));
    warp(scores, vocab, p, &w);
    ws_free(&w);
    return BLIPC_OK;
}

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

/* softmax + one multinomial draw; -1 when no token has a finite score */
static int sample_row(const float *s, int V, gen_rng *r) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++)
        if (s[i] > m) m = s[i];
    if (!(m > -INFINITY) || !(m < INFINITY)) return -1;
    double total = 0;
    for (int i = 0; i < V; i++)
        if (s[i] > -INFINITY) total += exp((double)(s[i] - m));
    double u = rng_uniform(r) * total, c = 0;
    int last = -1;
    for (int i = 0; i < V; i++) {
        if (!(s[i] > -INFINITY)) continue;
        double pv = exp((double)(s[i] - m));
        if (pv <= 0) continue;
        c += pv;
        last = i;
        if (u < c) return i;
    }
    return last;
}

/* log_softmax in float32: (x - max) - log(sum exp(x - max)) */
static void log_softmax_row(const float *x, float *out, int V) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++)
        if (x[i] > m) m = x[i];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)(x[i] - m));
    float lse = (float)log(sum);
    for (int i = 0; i < V; i++) out[i] = (x[i] - m) - lse;
}

/* ------------------------------------------------------------ common checks */

static blipc_status check_call(const blipc_lm *lm, const blipc_gen_config *cfg, int n_prompts, const float *first,
                               const int32_t *const *prompt_ids, const int *n_prompt_ids, blipc_gen_output *out,
                               int *max_new, int *max_prompt, blipc_err *e) {
    if (!lm || !lm->step || !cfg || n_prompts < 0 || (n_prompts > 0 && (!first || !out)))
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "generate: NULL or invalid argument");
    for (int i = 0; i < n_prompts; i++) out[i] = (blipc_gen_output){0}; /* callers may free them on any error */
    if (lm->vocab_size < 1 || lm->vocab_size > INT_MAX / (2 * GEN_MAX_BEAMS))
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "generate: vocab_size %d", lm->vocab_size);
    BLIPC_TRY(blipc__gen_params_check(&cfg->p, e));
    if (cfg->max_length_room == 0)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "generate: the prompt leaves no position for new tokens");
    *max_new = cfg->p.max_new_tokens;
    if (cfg->max_length_room > 0 && cfg->max_length_room < *max_new) *max_new = cfg->max_length_room;
    *max_prompt = 0;
    for (int i = 0; i < n_prompts; i++) {
        int n = n_prompt_ids ? n_prompt_ids[i] : 0;
        if (n < 0 || (n > 0 && (!prompt_ids || !prompt_ids[i])))
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "generate: prompt %d: bad prompt ids", i);
        if (n > INT_MAX / 2 - GEN_MAX_NEW_TOKENS)
            return blipc__errf(e, BLIPC_ERR_LIMIT, "generate: prompt %d: %d ids", i, n);
        if (n > *max_prompt) *max_prompt = n;
    }
    return BLIPC_OK;
}

static int report_progress(const blipc_gen_params *p, float frac) {
    if (!p->progress) return 1;
    return p->progress(p->progress_user, frac);
}

static void free_outputs(blipc_gen_output *out, int n) {
    for (int i = 0; i < n; i++) {
        free(out[i].tokens);
        out[i].tokens = NULL;
        out[i].n_tokens = 0;
        out[i].score = 0;
    }
}

static blipc_status alloc_outputs(blipc_gen_output *out, int n, int max_new, blipc_err *e) {
    for (int i = 0; i < n; i++) out[i] = (blipc_gen_output){0};
    for (int i = 0; i < n; i++) {
        out[i].tokens = malloc((size_t)max_new * sizeof(int32_t));
        if (!out[i].tokens) {
            free_outputs(out, n);
            return blipc__errf(e, BLIPC_ERR_NOMEM, "generate: out of memory for outputs");
        }
    }
    return BLIPC_OK;
}

/* --------------------------------------------------------- greedy / sample */

static blipc_status run_sample(const blipc_lm *lm, const blipc_gen_config *cfg, int P, const float *first,
                               const int32_t *const *prompt_ids, const int *n_prompt_ids, blipc_gen_output *out,
                               int max_new, int max_prompt, blipc_err *e) {
    const int V = lm->vocab_size;
    const blipc_gen_params *p = &cfg->p;
    if (lm->max_seqs < P)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "generate: %d prompts but the decoder has %d sequence slots", P,
                           lm->max_seqs);
    const int cap = max_prompt + max_new;
    gen_ws w;
    BLIPC_TRY(ws_alloc(&w, V, P, e));
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
    if (!rc) rc = alloc_outputs(out, P, max_new, e);
    if (rc) goto done;
    for (int i = 0; i < P; i++) {
        len[i] = n_prompt_ids ? n_prompt_ids[i] : 0;
        if (len[i]) memcpy(seq + (size_t)i * cap, prompt_ids[i], (size_t)len[i] * sizeof *seq);
        active[i] = 1;
        rowi[i] = i;
        rng_seed(&rng[i], p->seed);
    }
    for (int t = 0;; t++) {
        const float *base = t == 0 ? first : w.logits;
        int n_next = 0;
        for (int i = 0; i < P; i++) {
            if (!active[i]) continue;
            memcpy(w.row, base + (size_t)rowi[i] * V, (size_t)V * sizeof(float));
            int32_t *s = seq + (size_t)i * cap;
            apply_processors(w.row, cfg, V, s, len[i], t, &w);
            int next;
            if (p->do_sample) {
                warp(w.row, V, p, &w);
                next = sample_row(w.row, V, &rng[i]);
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
        if (!report_progress(p, n_next ? (float)(t + 1) / (float)max_new : 1.0f)) {
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
    if (rc) free_outputs(out, P);
    free(seq);
    free(len);
    free(active);
    free(rowi);
    free(tok);
    free(slots);
    free(rng);
    ws_free(&w);
    return rc;
}

/* -------------------------------------------------------------- beam search */

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

static blipc_status run_beam(const blipc_lm *lm, const blipc_gen_config *cfg, int P, const float *first,
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
    BLIPC_TRY(ws_alloc(&w, V, P * B, e));
    beam_state s;
    blipc_status rc = beam_alloc(&s, P, B, cap, max_new, e);
    if (rc) {
        ws_free(&w);
        return rc;
    }
    rc = alloc_outputs(out, P, max_new, e);
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
                log_softmax_row(row, w.row, V);
                apply_processors(w.row, cfg, V, s.run_seq[cur] + k * cap, np + t, t, &w);
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
        if (!report_progress(p, n_run ? (float)(t + 1) / (float)max_new : 1.0f)) {
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
    if (rc) free_outputs(out, P);
    beam_free(&s);
    ws_free(&w);
    return rc;
}

/* -------------------------------------------------------------- entry points */

blipc_status blipc__generate(const blipc_lm *lm, const blipc_gen_config *cfg, int n_prompts,
                             const float *first_logits, const int32_t *const *prompt_ids, const int *n_prompt_ids,
                             blipc_gen_output *out, blipc_err *e) {
    int max_new = 0, max_prompt = 0;
    BLIPC_TRY(check_call(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, &max_new, &max_prompt, e));
    if (n_prompts == 0) return BLIPC_OK;
    if (cfg->p.num_beams > 1)
        return run_beam(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, max_new, max_prompt, e);
    return run_sample(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, max_new, max_prompt, e);
}

blipc_status blipc__generate_beam(const blipc_lm *lm, const blipc_gen_config *cfg, int n_prompts,
                                  const float *first_logits, const int32_t *const *prompt_ids,
                                  const int *n_prompt_ids, blipc_gen_output *out, blipc_err *e) {
    int max_new = 0, max_prompt = 0;
    BLIPC_TRY(check_call(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, &max_new, &max_prompt, e));
    if (cfg->p.do_sample)
        return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "beam sampling (do_sample with beam search) is not supported");
    if (n_prompts == 0) return BLIPC_OK;
    return run_beam(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, max_new, max_prompt, e);
}
