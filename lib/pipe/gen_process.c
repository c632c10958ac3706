/* gen_process.c — logits processors and sampling warpers (HF's
 * logits_process.py), log_softmax, and the sampling RNG, for generate.c.
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
 * Sampling: softmax of the warped scores and a multinomial draw from a xoshiro256**
 * generator seeded (splitmix64) from p.seed. Nothing here allocates but
 * blipc__gen_ws_alloc and blipc__gen_warp. */
#include "gen_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------------- RNG */

/* xoshiro256** seeded through splitmix64 (both public domain algorithms by
 * Blackman and Vigna). Owned by one call: no global state. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void blipc__gen_rng_seed(gen_rng *r, uint64_t seed) {
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

void blipc__gen_ws_free(gen_ws *w) {
    free(w->logits);
    free(w->row);
    free(w->heap);
    free(w->sorted);
    free(w->stamp);
    memset(w, 0, sizeof *w);
}

blipc_status blipc__gen_ws_alloc(gen_ws *w, int V, int n_seq, blipc_err *e) {
    memset(w, 0, sizeof *w);
    w->V = V;
    w->logits = malloc((size_t)n_seq * (size_t)V * sizeof(float));
    w->row = malloc((size_t)V * sizeof(float));
    w->heap = malloc((size_t)V * sizeof(float));
    w->sorted = malloc((size_t)V * sizeof(sorted_val));
    w->stamp = calloc((size_t)V, sizeof(uint32_t));
    if (!w->logits || !w->row || !w->heap || !w->sorted || !w->stamp) {
        blipc__gen_ws_free(w);
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

void blipc__gen_apply_processors(float *s, const blipc_gen_config *cfg, int V, const int32_t *seq, int len, int n_gen,
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

void blipc__gen_warp_row(float *s, int V, const blipc_gen_params *p, gen_ws *w) {
    if (p->temperature != 1.0f)
        for (int i = 0; i < V; i++) s[i] = s[i] / p->temperature;
    if (p->top_k != 0) top_k_filter(s, V, p->top_k, w->heap);
    if (p->top_p < 1.0f) top_p_filter(s, V, p->top_p, w->sorted);
}

blipc_status blipc__gen_warp(float *scores, int vocab, const blipc_gen_params *p, blipc_err *e) {
    if (!scores || vocab < 1 || !p) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "gen_warp: bad arguments");
    gen_ws w;
    BLIPC_TRY(blipc__gen_ws_alloc(&w, vocab, 1, e));
    blipc__gen_warp_row(scores, vocab, p, &w);
    blipc__gen_ws_free(&w);
    return BLIPC_OK;
}

/* softmax + one multinomial draw; -1 when no token has a finite score */
int blipc__gen_sample_row(const float *s, int V, gen_rng *r) {
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
void blipc__gen_log_softmax_row(const float *x, float *out, int V) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++)
        if (x[i] > m) m = x[i];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)(x[i] - m));
    float lse = (float)log(sum);
    for (int i = 0; i < V; i++) out[i] = (x[i] - m) - lse;
}
