/* opt.c — OPT decoder with a KV cache (see opt.h). */
#include "opt.h"
#include "kernels.h"
#include "threads.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { DIM_D, DIM_F, DIM_V, DIM_P2, DIM_COUNT };

#define OM(f) offsetof(blipc_opt, f)
#define OL(f) offsetof(blipc_opt_layer, f)
#define DP "language_model.model.decoder."
#define LP DP "layers.%d."
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const blipc_wspec opt_top[] = {
    {OM(embed), DP "embed_tokens.weight", 1, 2, {DIM_V, DIM_D}},
    {OM(pos), DP "embed_positions.weight", 0, 2, {DIM_P2, DIM_D}},
    {OM(ln_f_w), DP "final_layer_norm.weight", 0, 1, {DIM_D}},
    {OM(ln_f_b), DP "final_layer_norm.bias", 0, 1, {DIM_D}},
};
static const blipc_wspec opt_lm_head = {OM(lm_head), "language_model.lm_head.weight", 1, 2, {DIM_V, DIM_D}};

static const blipc_wspec opt_layer[] = {
    {OL(ln1_w), LP "self_attn_layer_norm.weight", 0, 1, {DIM_D}},
    {OL(ln1_b), LP "self_attn_layer_norm.bias", 0, 1, {DIM_D}},
    {OL(q_w), LP "self_attn.q_proj.weight", 1, 2, {DIM_D, DIM_D}},
    {OL(q_b), LP "self_attn.q_proj.bias", 0, 1, {DIM_D}},
    {OL(k_w), LP "self_attn.k_proj.weight", 1, 2, {DIM_D, DIM_D}},
    {OL(k_b), LP "self_attn.k_proj.bias", 0, 1, {DIM_D}},
    {OL(v_w), LP "self_attn.v_proj.weight", 1, 2, {DIM_D, DIM_D}},
    {OL(v_b), LP "self_attn.v_proj.bias", 0, 1, {DIM_D}},
    {OL(o_w), LP "self_attn.out_proj.weight", 1, 2, {DIM_D, DIM_D}},
    {OL(o_b), LP "self_attn.out_proj.bias", 0, 1, {DIM_D}},
    {OL(ln2_w), LP "final_layer_norm.weight", 0, 1, {DIM_D}},
    {OL(ln2_b), LP "final_layer_norm.bias", 0, 1, {DIM_D}},
    {OL(fc1_w), LP "fc1.weight", 1, 2, {DIM_F, DIM_D}},
    {OL(fc1_b), LP "fc1.bias", 0, 1, {DIM_F}},
    {OL(fc2_w), LP "fc2.weight", 1, 2, {DIM_D, DIM_F}},
    {OL(fc2_b), LP "fc2.bias", 0, 1, {DIM_D}},
};

blipc_status blipc__opt_load(blipc_opt *m, const blipc_opt_config *cfg, blipc_safetensors *st, blipc_wmode mode,
                             blipc_err *e) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int64_t dims[DIM_COUNT];
    dims[DIM_D] = cfg->hidden_size;
    dims[DIM_F] = cfg->ffn_dim;
    dims[DIM_V] = cfg->vocab_size;
    dims[DIM_P2] = (int64_t)cfg->max_position_embeddings + 2;
    BLIPC_TRY(blipc__load_table(st, m, opt_top, N_OF(opt_top), dims, 0, mode, e));
    if (blipc__st_find(st, opt_lm_head.name) || !cfg->tie_word_embeddings) {
        BLIPC_TRY(blipc__load_table(st, m, &opt_lm_head, 1, dims, 0, mode, e));
    } else {
        m->lm_head = m->embed;
        m->lm_head_tied = 1;
    }
    m->layers = calloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
    if (!m->layers) return blipc__errf(e, BLIPC_ERR_NOMEM, "OPT decoder: out of memory");
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        blipc_status rc = blipc__load_table(st, &m->layers[l], opt_layer, N_OF(opt_layer), dims, l, mode, e);
        if (rc) {
            blipc__opt_free(m);
            return rc;
        }
    }
    return BLIPC_OK;
}

void blipc__opt_free(blipc_opt *m) {
    if (!m) return;
    free(m->layers);
    m->layers = NULL;
}

void blipc__opt_embed(const blipc_opt *m, const int32_t *ids, int n, float *out) {
    const int D = m->cfg.hidden_size;
    for (int i = 0; i < n; i++) blipc__wmat_row(&m->embed, D, ids[i], out + (size_t)i * D);
}

/* ------------------------------------------------------------------ session */

struct blipc_opt_session {
    const blipc_opt *m;
    int n_threads;
    int max_seqs, max_pos, rows; /* reserved sizes */
    float *kc, *vc;   /* [L][max_seqs][max_pos][D] key / value cache */
    int *len;         /* [max_seqs] tokens held per slot */
    int *tmp_len;     /* [max_seqs] */
    float *stage;     /* [max_seqs][max_pos][D]: copy_slots staging */
    float *x, *h, *q, *k, *v, *ctx; /* [rows, D] */
    float *f;         /* [rows, F] */
    float *scores;    /* [max_pos, max_pos] */
    size_t bytes;
};

static void session_release(blipc_opt_session *s) {
    free(s->kc);
    free(s->vc);
    free(s->len);
    free(s->tmp_len);
    free(s->stage);
    free(s->x);
    free(s->h);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->ctx);
    free(s->f);
    free(s->scores);
    s->kc = s->vc = s->stage = s->x = s->h = s->q = s->k = s->v = s->ctx = s->f = s->scores = NULL;
    s->len = s->tmp_len = NULL;
    s->max_seqs = s->max_pos = s->rows = 0;
    s->bytes = 0;
}

blipc_status blipc__opt_session_new(const blipc_opt *m, int n_threads, blipc_opt_session **out, blipc_err *e) {
    *out = NULL;
    blipc_opt_session *s = calloc(1, sizeof *s);
    if (!s) return blipc__errf(e, BLIPC_ERR_NOMEM, "OPT session: out of memory");
    s->m = m;
    s->n_threads = n_threads;
    *out = s;
    return BLIPC_OK;
}

void blipc__opt_session_free(blipc_opt_session *s) {
    if (!s) return;
    session_release(s);
    free(s);
}

size_t blipc__opt_session_bytes(const blipc_opt_session *s) { return s ? s->bytes : 0; }

static float *falloc(size_t n, size_t *total) {
    *total += n * sizeof(float);
    return malloc((n ? n : 1) * sizeof(float));
}

blipc_status blipc__opt_session_reserve(blipc_opt_session *s, int max_seqs, int max_pos, int prefill_rows,
                                        blipc_err *e) {
    const blipc_opt_config *c = &s->m->cfg;
    if (max_seqs < 1 || max_pos < 1 || prefill_rows < 0)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "OPT session: bad sizes (%d slots, %d positions)", max_seqs,
                           max_pos);
    if (max_pos > c->max_position_embeddings)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "OPT session: %d positions needed, the model has %d (max_position_embeddings)",
                           max_pos, c->max_position_embeddings);
    if (max_seqs <= s->max_seqs && max_pos <= s->max_pos && prefill_rows <= s->rows) return BLIPC_OK;
    /* grow to cover both the old and the new request */
    if (s->max_seqs > max_seqs) max_seqs = s->max_seqs;
    if (s->max_pos > max_pos) max_pos = s->max_pos;
    if (s->rows > prefill_rows) prefill_rows = s->rows;
    session_release(s);
    const size_t D = (size_t)c->hidden_size, F = (size_t)c->ffn_dim, L = (size_t)c->num_hidden_layers;
    size_t rows = (size_t)(prefill_rows > max_seqs ? prefill_rows : max_seqs);
    size_t cache = L * (size_t)max_seqs * (size_t)max_pos * D;
    size_t total = 0;
    s->kc = falloc(cache, &total);
    s->vc = falloc(cache, &total);
    s->stage = falloc((size_t)max_seqs * max_pos * D, &total);
    s->x = falloc(rows * D, &total);
    s->h = falloc(rows * D, &total);
    s->q = falloc(rows * D, &total);
    s->k = falloc(rows * D, &total);
    s->v = falloc(rows * D, &total);
    s->ctx = falloc(rows * D, &total);
    s->f = falloc(rows * F, &total);
    s->scores = falloc((size_t)max_pos * max_pos, &total);
    s->len = calloc((size_t)max_seqs, sizeof(int));
    s->tmp_len = calloc((size_t)max_seqs, sizeof(int));
    if (!s->kc || !s->vc || !s->stage || !s->x || !s->h || !s->q || !s->k || !s->v || !s->ctx || !s->f ||
        !s->scores || !s->len || !s->tmp_len) {
        session_release(s);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "OPT session: cannot allocate %.1f MB for the KV cache and scratch "
                           "(%d slots x %d positions)", (double)total / 1e6, max_seqs, max_pos);
    }
    s->max_seqs = max_seqs;
    s->max_pos = max_pos;
    s->rows = (int)rows;
    s->bytes = total;
    return BLIPC_OK;
}

int blipc__opt_slot_len(const blipc_opt_session *s, int slot) {
    return slot >= 0 && slot < s->max_seqs ? s->len[slot] : 0;
}

static float *cache_at(const blipc_opt_session *s, float *base, int layer, int slot, int pos) {
    const size_t D = (size_t)s->m->cfg.hidden_size;
    return base + (((size_t)layer * s->max_seqs + (size_t)slot) * s->max_pos + (size_t)pos) * D;
}

/* y = x W^T + b: decode steps (rows != 0) use the row-invariant streaming
 * kernel so a sequence's numbers do not depend on the batch it runs in. */
static void lin(const blipc_opt_session *s, int rows, const float *x, int M, int K, const blipc_wmat *W,
                const float *b, int N, float *y) {
    if (rows) blipc__linear_rows(x, M, K, W, b, N, y, s->n_threads);
    else blipc__linear_w(x, M, K, 0, W, b, N, y, 0);
}

/* logits[M, V] = final_layer_norm(x[M, D]) . lm_head^T  (x is overwritten) */
static void lm_logits(blipc_opt_session *s, float *x, int M, float *logits, int rows) {
    const blipc_opt *m = s->m;
    const int D = m->cfg.hidden_size;
    blipc__layernorm(x, x, m->ln_f_w, m->ln_f_b, M, D, m->cfg.layer_norm_eps);
    lin(s, rows, x, M, D, &m->lm_head, NULL, m->cfg.vocab_size, logits);
}

/* FFN + residual for M rows of s->x */
static void ffn(blipc_opt_session *s, const blipc_opt_layer *L, int M, int rows) {
    const blipc_opt *m = s->m;
    const int D = m->cfg.hidden_size, F = m->cfg.ffn_dim;
    blipc__layernorm(s->h, s->x, L->ln2_w, L->ln2_b, M, D, m->cfg.layer_norm_eps);
    lin(s, rows, s->h, M, D, &L->fc1_w, L->fc1_b, F, s->f);
    blipc__relu(s->f, (size_t)M * F);
    lin(s, rows, s->f, M, F, &L->fc2_w, L->fc2_b, D, s->h);
    blipc__add(s->x, s->h, (size_t)M * D);
}

blipc_status blipc__opt_prefill(blipc_opt_session *s, const float *embeds, int B, int T, float *logits,
                                int all_positions, blipc_err *e) {
    const blipc_opt *m = s->m;
    const int D = m->cfg.hidden_size, H = m->cfg.num_attention_heads, dh = D / H;
    if (B < 1 || T < 1) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "OPT prefill: empty input (%d x %d)", B, T);
    if (B > s->max_seqs || T > s->max_pos || B * T > s->rows)
        return blipc__errf(e, BLIPC_ERR_LIMIT,
                           "OPT prefill: %d sequences x %d positions exceed the session (%d slots x %d positions)", B,
                           T, s->max_seqs, s->max_pos);
    blipc__threads_set(s->n_threads);
    const int R = B * T;
    const float scale = 1.0f / sqrtf((float)dh);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *xr = s->x + ((size_t)b * T + t) * D;
            const float *er = embeds + ((size_t)b * T + t) * D, *pr = m->pos + (size_t)(t + 2) * D;
            for (int d = 0; d < D; d++) xr[d] = er[d] + pr[d];
        }
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const blipc_opt_layer *L = &m->layers[l];
        blipc__layernorm(s->h, s->x, L->ln1_w, L->ln1_b, R, D, m->cfg.layer_norm_eps);
        blipc__linear_w(s->h, R, D, 0, &L->q_w, L->q_b, D, s->q, 0);
        blipc__linear_w(s->h, R, D, 0, &L->k_w, L->k_b, D, s->k, 0);
        blipc__linear_w(s->h, R, D, 0, &L->v_w, L->v_b, D, s->v, 0);
        for (int b = 0; b < B; b++) {
            float *kc = cache_at(s, s->kc, l, b, 0), *vc = cache_at(s, s->vc, l, b, 0);
            memcpy(kc, s->k + (size_t)b * T * D, (size_t)T * D * sizeof(float));
            memcpy(vc, s->v + (size_t)b * T * D, (size_t)T * D * sizeof(float));
            blipc__attention(s->q + (size_t)b * T * D, D, kc, D, vc, D, s->ctx + (size_t)b * T * D, D, T, T, H, dh,
                             scale, NULL, 0, s->scores);
        }
        blipc__linear_w(s->ctx, R, D, 0, &L->o_w, L->o_b, D, s->h, 0);
        blipc__add(s->x, s->h, (size_t)R * D);
        ffn(s, L, R, 0);
    }
    for (int b = 0; b < B; b++) s->len[b] = T;
    if (all_positions) {
        lm_logits(s, s->x, R, logits, 0);
    } else {
        for (int b = 0; b < B; b++)
            memcpy(s->h + (size_t)b * D, s->x + ((size_t)b * T + T - 1) * D, (size_t)D * sizeof(float));
        lm_logits(s, s->h, B, logits, 0);
    }
    return BLIPC_OK;
}

blipc_status blipc__opt_step(blipc_opt_session *s, const int32_t *tokens, const int *slots, int n, float *logits,
                             blipc_err *e) {
    const blipc_opt *m = s->m;
    const int D = m->cfg.hidden_size, H = m->cfg.num_attention_heads, dh = D / H;
    if (n < 1 || n > s->max_seqs || n > s->rows)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "OPT step: %d sequences (session has %d slots)", n, s->max_seqs);
    for (int i = 0; i < n; i++) {
        if (slots[i] < 0 || slots[i] >= s->max_seqs)
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "OPT step: slot %d out of range [0, %d)", slots[i],
                               s->max_seqs);
        if (s->len[slots[i]] >= s->max_pos)
            return blipc__errf(e, BLIPC_ERR_LIMIT, "OPT step: slot %d is full (%d positions)", slots[i], s->max_pos);
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab_size)
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "OPT step: token id %d outside the vocabulary (%d)",
                               (int)tokens[i], m->cfg.vocab_size);
    }
    blipc__threads_set(s->n_threads);
    const float scale = 1.0f / sqrtf((float)dh);
    blipc__opt_embed(m, tokens, n, s->x);
    for (int i = 0; i < n; i++) blipc__add(s->x + (size_t)i * D, m->pos + (size_t)(s->len[slots[i]] + 2) * D, (size_t)D);
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const blipc_opt_layer *L = &m->layers[l];
        blipc__layernorm(s->h, s->x, L->ln1_w, L->ln1_b, n, D, m->cfg.layer_norm_eps);
        blipc__linear_rows(s->h, n, D, &L->q_w, L->q_b, D, s->q, s->n_threads);
        blipc__linear_rows(s->h, n, D, &L->k_w, L->k_b, D, s->k, s->n_threads);
        blipc__linear_rows(s->h, n, D, &L->v_w, L->v_b, D, s->v, s->n_threads);
        for (int i = 0; i < n; i++) {
            int sl = slots[i], p = s->len[sl];
            float *kc = cache_at(s, s->kc, l, sl, 0), *vc = cache_at(s, s->vc, l, sl, 0);
            memcpy(kc + (size_t)p * D, s->k + (size_t)i * D, (size_t)D * sizeof(float));
            memcpy(vc + (size_t)p * D, s->v + (size_t)i * D, (size_t)D * sizeof(float));
            blipc__attention(s->q + (size_t)i * D, D, kc, D, vc, D, s->ctx + (size_t)i * D, D, 1, p + 1, H, dh, scale,
                             NULL, -1, s->scores);
        }
        blipc__linear_rows(s->ctx, n, D, &L->o_w, L->o_b, D, s->h, s->n_threads);
        blipc__add(s->x, s->h, (size_t)n * D);
        ffn(s, L, n, 1);
    }
    for (int i = 0; i < n; i++) s->len[slots[i]]++;
    lm_logits(s, s->x, n, logits, 1);
    return BLIPC_OK;
}

blipc_status blipc__opt_copy_slots(blipc_opt_session *s, const int *src, const int *dst, int n, blipc_err *e) {
    const size_t D = (size_t)s->m->cfg.hidden_size;
    if (n < 0 || n > s->max_seqs)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "OPT copy_slots: %d copies (session has %d slots)", n, s->max_seqs);
    for (int i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= s->max_seqs || dst[i] < 0 || dst[i] >= s->max_seqs)
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "OPT copy_slots: slot %d -> %d out of range [0, %d)", src[i],
                               dst[i], s->max_seqs);
    for (int i = 0; i < n; i++) s->tmp_len[i] = s->len[src[i]];
    float *caches[2] = {s->kc, s->vc};
    for (int l = 0; l < s->m->cfg.num_hidden_layers; l++)
        for (int c = 0; c < 2; c++) {
            /* gather every source first (permutation-safe), then scatter */
            for (int i = 0; i < n; i++)
                if (src[i] != dst[i])
                    memcpy(s->stage + (size_t)i * s->max_pos * D, cache_at(s, caches[c], l, src[i], 0),
                           (size_t)s->tmp_len[i] * D * sizeof(float));
            for (int i = 0; i < n; i++)
                if (src[i] != dst[i])
                    memcpy(cache_at(s, caches[c], l, dst[i], 0), s->stage + (size_t)i * s->max_pos * D,
                           (size_t)s->tmp_len[i] * D * sizeof(float));
        }
    for (int i = 0; i < n; i++) s->len[dst[i]] = s->tmp_len[i];
    return BLIPC_OK;
}

static blipc_status lm_step(void *ctx, const int32_t *tokens, const int *slots, int n, float *logits, blipc_err *e) {
    return blipc__opt_step(ctx, tokens, slots, n, logits, e);
}

static blipc_status lm_copy(void *ctx, const int *src, const int *dst, int n, blipc_err *e) {
    return blipc__opt_copy_slots(ctx, src, dst, n, e);
}

void blipc__opt_lm(blipc_opt_session *s, blipc_lm *lm) {
    lm->ctx = s;
    lm->vocab_size = s->m->cfg.vocab_size;
    lm->max_seqs = s->max_seqs;
    lm->step = lm_step;
    lm->copy_slots = lm_copy;
}
