/* qformer.c — BLIP-2 Q-Former, query-only path (see qformer.h). */
#include "qformer.h"
#include "blocks.h"
#include "kernels.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { DIM_DQ, DIM_DV, DIM_F, DIM_DT, DIM_1, DIM_Q, DIM_COUNT };

#define QM(f) offsetof(blipc_qformer, f)
#define QL(f) offsetof(blipc_qf_layer, f)
#define QA(blk, f) (offsetof(blipc_qf_layer, blk) + offsetof(blipc_qf_attn, f))
#define LP "qformer.encoder.layer.%d."
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const blipc_wspec qf_top[] = {
    {QM(query_tokens), "query_tokens", 0, 3, {DIM_1, DIM_Q, DIM_DQ}},
    {QM(ln_w), "qformer.layernorm.weight", 0, 1, {DIM_DQ}},
    {QM(ln_b), "qformer.layernorm.bias", 0, 1, {DIM_DQ}},
    {QM(proj_w), "language_projection.weight", 0, 2, {DIM_DT, DIM_DQ}},
    {QM(proj_b), "language_projection.bias", 0, 1, {DIM_DT}},
};

static const blipc_wspec qf_layer[] = {
    {QA(self, q_w), LP "attention.attention.query.weight", 0, 2, {DIM_DQ, DIM_DQ}},
    {QA(self, q_b), LP "attention.attention.query.bias", 0, 1, {DIM_DQ}},
    {QA(self, k_w), LP "attention.attention.key.weight", 0, 2, {DIM_DQ, DIM_DQ}},
    {QA(self, k_b), LP "attention.attention.key.bias", 0, 1, {DIM_DQ}},
    {QA(self, v_w), LP "attention.attention.value.weight", 0, 2, {DIM_DQ, DIM_DQ}},
    {QA(self, v_b), LP "attention.attention.value.bias", 0, 1, {DIM_DQ}},
    {QA(self, o_w), LP "attention.output.dense.weight", 0, 2, {DIM_DQ, DIM_DQ}},
    {QA(self, o_b), LP "attention.output.dense.bias", 0, 1, {DIM_DQ}},
    {QA(self, ln_w), LP "attention.output.LayerNorm.weight", 0, 1, {DIM_DQ}},
    {QA(self, ln_b), LP "attention.output.LayerNorm.bias", 0, 1, {DIM_DQ}},
    {QL(fc1_w), LP "intermediate_query.dense.weight", 0, 2, {DIM_F, DIM_DQ}},
    {QL(fc1_b), LP "intermediate_query.dense.bias", 0, 1, {DIM_F}},
    {QL(fc2_w), LP "output_query.dense.weight", 0, 2, {DIM_DQ, DIM_F}},
    {QL(fc2_b), LP "output_query.dense.bias", 0, 1, {DIM_DQ}},
    {QL(ln_w), LP "output_query.LayerNorm.weight", 0, 1, {DIM_DQ}},
    {QL(ln_b), LP "output_query.LayerNorm.bias", 0, 1, {DIM_DQ}},
};

static const blipc_wspec qf_cross[] = {
    {QA(cross, q_w), LP "crossattention.attention.query.weight", 0, 2, {DIM_DQ, DIM_DQ}},
    {QA(cross, q_b), LP "crossattention.attention.query.bias", 0, 1, {DIM_DQ}},
    {QA(cross, k_w), LP "crossattention.attention.key.weight", 0, 2, {DIM_DQ, DIM_DV}},
    {QA(cross, k_b), LP "crossattention.attention.key.bias", 0, 1, {DIM_DQ}},
    {QA(cross, v_w), LP "crossattention.attention.value.weight", 0, 2, {DIM_DQ, DIM_DV}},
    {QA(cross, v_b), LP "crossattention.attention.value.bias", 0, 1, {DIM_DQ}},
    {QA(cross, o_w), LP "crossattention.output.dense.weight", 0, 2, {DIM_DQ, DIM_DQ}},
    {QA(cross, o_b), LP "crossattention.output.dense.bias", 0, 1, {DIM_DQ}},
    {QA(cross, ln_w), LP "crossattention.output.LayerNorm.weight", 0, 1, {DIM_DQ}},
    {QA(cross, ln_b), LP "crossattention.output.LayerNorm.bias", 0, 1, {DIM_DQ}},
};

blipc_status blipc__qformer_load(blipc_qformer *m, const blipc_blip2_config *cfg, blipc_safetensors *st,
                                 blipc_err *e) {
    memset(m, 0, sizeof *m);
    m->cfg = cfg->qformer;
    m->n_query = cfg->num_query_tokens;
    m->text_hidden = cfg->text.hidden_size;
    int64_t dims[DIM_COUNT];
    dims[DIM_DQ] = m->cfg.hidden_size;
    dims[DIM_DV] = m->cfg.encoder_hidden_size;
    dims[DIM_F] = m->cfg.intermediate_size;
    dims[DIM_DT] = m->text_hidden;
    dims[DIM_1] = 1;
    dims[DIM_Q] = m->n_query;
    BLIPC_TRY(blipc__load_table(st, m, qf_top, N_OF(qf_top), dims, 0, BLIPC_WMODE_F32, e));
    m->layers = calloc((size_t)m->cfg.num_hidden_layers, sizeof *m->layers);
    if (!m->layers) return blipc__errf(e, BLIPC_ERR_NOMEM, "Q-Former: out of memory");
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        blipc_qf_layer *L = &m->layers[l];
        L->has_cross = l % m->cfg.cross_attention_frequency == 0;
        blipc_status rc = blipc__load_table(st, L, qf_layer, N_OF(qf_layer), dims, l, BLIPC_WMODE_F32, e);
        if (!rc && L->has_cross) rc = blipc__load_table(st, L, qf_cross, N_OF(qf_cross), dims, l, BLIPC_WMODE_F32, e);
        if (rc) {
            blipc__qformer_free(m);
            return rc;
        }
    }
    return BLIPC_OK;
}

void blipc__qformer_free(blipc_qformer *m) {
    if (!m) return;
    free(m->layers);
    m->layers = NULL;
}

size_t blipc__qformer_scratch_floats(const blipc_qformer *m, int B, int T) {
    size_t Q = (size_t)m->n_query, Dq = (size_t)m->cfg.hidden_size, F = (size_t)m->cfg.intermediate_size;
    size_t BQ = (size_t)B * Q;
    size_t sc = Q * (Q > (size_t)T ? Q : (size_t)T);
    /* a, q, ctx, tmp [BQ, Dq]; k, v [B*max(T,Q), Dq]; f [BQ, F]; scores */
    size_t kv = (size_t)B * ((size_t)T > Q ? (size_t)T : Q) * Dq;
    return 4 * BQ * Dq + 2 * kv + BQ * F + sc + 64;
}

/* x <- LN(x + dense(attn(q = x, kv = src))) for each of the B images. */
static void attn_block(const blipc_qformer *m, const blipc_qf_attn *A, float *x, const float *src, int Tk, int Dkv,
                       int B, float *q, float *k, float *v, float *ctx, float *tmp, float *scores) {
    const int Q = m->n_query, Dq = m->cfg.hidden_size, H = m->cfg.num_attention_heads, dh = Dq / H;
    const float scale = 1.0f / sqrtf((float)dh);
    blipc__linear(x, B * Q, Dq, 0, A->q_w, A->q_b, Dq, q, 0);
    blipc__linear(src, B * Tk, Dkv, 0, A->k_w, A->k_b, Dq, k, 0);
    blipc__linear(src, B * Tk, Dkv, 0, A->v_w, A->v_b, Dq, v, 0);
    for (int b = 0; b < B; b++)
        blipc__attention(q + (size_t)b * Q * Dq, Dq, k + (size_t)b * Tk * Dq, Dq, v + (size_t)b * Tk * Dq, Dq,
                         ctx + (size_t)b * Q * Dq, Dq, Q, Tk, H, dh, scale, NULL, -1, scores);
    blipc__linear(ctx, B * Q, Dq, 0, A->o_w, A->o_b, Dq, tmp, 0);
    blipc__add(tmp, x, (size_t)B * Q * Dq);
    blipc__layernorm(x, tmp, A->ln_w, A->ln_b, B * Q, Dq, m->cfg.layer_norm_eps);
}

void blipc__qformer_forward(const blipc_qformer *m, const float *image_embeds, int B, int T, float *out,
                            float *proj, float *scratch) {
    const int Q = m->n_query, Dq = m->cfg.hidden_size, F = m->cfg.intermediate_size, Dv = m->cfg.encoder_hidden_size;
    const size_t BQ = (size_t)B * Q, kvn = (size_t)B * (T > Q ? T : Q) * Dq;
    const float eps = m->cfg.layer_norm_eps;
    float *x = out;
    float *q = scratch, *ctx = q + BQ * Dq, *tmp = ctx + BQ * Dq, *k = tmp + BQ * Dq, *v = k + kvn;
    float *f = v + kvn, *scores = f + BQ * F;

    for (int b = 0; b < B; b++)
        blipc__layernorm(x + (size_t)b * Q * Dq, m->query_tokens, m->ln_w, m->ln_b, Q, Dq, eps);
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const blipc_qf_layer *L = &m->layers[l];
        attn_block(m, &L->self, x, x, Q, Dq, B, q, k, v, ctx, tmp, scores);
        if (L->has_cross) attn_block(m, &L->cross, x, image_embeds, T, Dv, B, q, k, v, ctx, tmp, scores);
        blipc__linear(x, (int)BQ, Dq, 0, L->fc1_w, L->fc1_b, F, f, 0);
        blipc__gelu_erf(f, BQ * F);
        blipc__linear(f, (int)BQ, F, 0, L->fc2_w, L->fc2_b, Dq, tmp, 0);
        blipc__add(tmp, x, BQ * Dq);
        blipc__layernorm(x, tmp, L->ln_w, L->ln_b, (int)BQ, Dq, eps);
    }
    if (proj) blipc__linear(x, (int)BQ, Dq, 0, m->proj_w, m->proj_b, m->text_hidden, proj, 0);
}
