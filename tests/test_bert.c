/* test_bert.c — BertModel forward + the sentence embedder against the
 * minilm-tiny goldens (README "minilm-tiny", tolerances from its table), and the
 * embedder's API behaviour (batching, empty/long/invalid text, sharded weights). */
#include "harness.h"

#include "arena.h"
#include "bert.h"
#include "gemm_small.h"
#include "blipc.h"
#include "hfconfig.h"
#include "kernels.h"
#include "safetensors.h"
#include "threads.h"

#include <cJSON.h>
#include <stdint.h>
#include <unistd.h>

#define GOLD_B 8
#define GOLD_T 128

static const char *model_dir(void) { return th_fixture("minilm-tiny"); }

typedef struct gold {
    blipc_safetensors *st;
    const int64_t *ids64, *mask64;
    const float *lhs, *pooled, *emb;
    int32_t ids[GOLD_B * GOLD_T], mask[GOLD_B * GOLD_T];
    int D;
} gold;

static int gold_open(gold *g) {
    blipc_err e;
    memset(g, 0, sizeof *g);
    if (blipc__st_open_file(th_fixture("minilm-tiny/golden.safetensors"), &g->st, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    const blipc_st_tensor *ti;
    int ok = !blipc__st_get_i64(g->st, "input_ids", &g->ids64, &ti, &e) && ti->shape[0] == GOLD_B &&
             ti->shape[1] == GOLD_T && !blipc__st_get_i64(g->st, "attention_mask", &g->mask64, NULL, &e) &&
             !blipc__st_get_f32(g->st, "last_hidden_state", -1, NULL, &g->lhs, &e) &&
             !blipc__st_get_f32(g->st, "mean_pooled", -1, NULL, &g->pooled, &e) &&
             !blipc__st_get_f32(g->st, "sentence_embeddings", -1, NULL, &g->emb, &e);
    if (!ok) {
        fprintf(stderr, "golden: %s\n", e.msg);
        return -1;
    }
    g->D = (int)blipc__st_find(g->st, "last_hidden_state")->shape[2];
    for (int i = 0; i < GOLD_B * GOLD_T; i++) {
        g->ids[i] = (int32_t)g->ids64[i];
        g->mask[i] = (int32_t)g->mask64[i];
    }
    return 0;
}

/* drop the packed panels: forward() takes the sgemm / gemm_small path */
static void unpack(blipc_bert_weights *w) {
    free(w->pack_buf);
    w->pack_buf = NULL;
    for (int l = 0; l < w->L; l++)
        w->layer[l].qkv_p = w->layer[l].attn_out_p = w->layer[l].ffn_in_p = w->layer[l].ffn_out_p = NULL;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* compare embeddings row by row: max abs 2e-6 and cosine >= 1 - 1e-6 */
static void check_embeddings(const float *got, const float *want, int n, int D, const char *what) {
    for (int i = 0; i < n; i++) {
        double d = th_max_abs_diff(got + (size_t)i * D, want + (size_t)i * D, (size_t)D);
        double c = cosine(got + (size_t)i * D, want + (size_t)i * D, D);
        CHECKF(d <= 2e-6, "%s: sentence %d: max abs diff %.3g > 2e-6", what, i, d);
        CHECKF(c >= 1 - 1e-6, "%s: sentence %d: cosine %.9f < 1 - 1e-6", what, i, c);
    }
}

TEST(bert_forward_matches_golden_from_ids) {
    gold g;
    if (gold_open(&g)) {
        CHECK(0);
        return;
    }
    blipc_err e;
    blipc_bert_config cfg;
    blipc_safetensors *st = NULL;
    blipc_bert_weights w;
    CHECK_STATUS(blipc__bert_config_load(model_dir(), &cfg, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(blipc__st_open_dir(model_dir(), &st, &e), BLIPC_OK, e.msg);
    if (!st) goto done;
    CHECK_STATUS(blipc__bert_load(st, &cfg, &w, &e), BLIPC_OK, e.msg);
    CHECK_EQ_INT(w.D, g.D);
    /* the load packs the weights on AVX-512 CPUs (panel kernel); then the
     * sgemm / gemm_small path on the same weights */
    fprintf(stderr, "  weights %s after load\n", w.pack_buf ? "packed" : "not packed (no AVX-512)");
    for (int run = 0; run < 4; run++) {
        const int threads = 1 + run % 2;
        if (run == 2) unpack(&w);
        fprintf(stderr, "  %s path:\n", w.pack_buf ? "packed" : "unpacked");
        blipc_arena a;
        float *hs = NULL;
        CHECK_STATUS(blipc__arena_init(&a, blipc__bert_scratch_bytes(&w, GOLD_B, GOLD_T, threads), &e), BLIPC_OK, e.msg);
        blipc_bert_prof prof = {0};
        CHECK_STATUS(blipc__bert_forward(&w, g.ids, g.mask, GOLD_B, GOLD_T, threads, &a, &hs, &prof, &e), BLIPC_OK,
                     e.msg);
        if (hs) {
            /* real tokens: 2e-5 (padded rows are computed too; checked with the same bound) */
            double dreal = 0, dpad = 0;
            for (int i = 0; i < GOLD_B * GOLD_T; i++) {
                double d = th_max_abs_diff(hs + (size_t)i * g.D, g.lhs + (size_t)i * g.D, (size_t)g.D);
                if (g.mask[i]) dreal = d > dreal ? d : dreal;
                else dpad = d > dpad ? d : dpad;
            }
            fprintf(stderr, "  %d thread(s): last_hidden_state max abs diff %.3g (real) %.3g (padded)\n", threads, dreal, dpad);
            CHECKF(dreal <= 2e-5, "last_hidden_state (real tokens) max abs diff %.3g", dreal);
            CHECKF(dpad <= 2e-5, "last_hidden_state (padded rows) max abs diff %.3g", dpad);
            float pooled[GOLD_B * 64], emb[GOLD_B * 64];
            for (int b = 0; b < GOLD_B; b++) {
                blipc__mean_pool(hs + (size_t)b * GOLD_T * g.D, g.mask + b * GOLD_T, GOLD_T, g.D, pooled + b * g.D);
                memcpy(emb + b * g.D, pooled + b * g.D, (size_t)g.D * sizeof(float));
                blipc__l2_normalize(emb + b * g.D, g.D);
            }
            double dp = th_max_abs_diff(pooled, g.pooled, (size_t)GOLD_B * g.D);
            fprintf(stderr, "  mean_pooled max abs diff %.3g\n", dp);
            CHECKF(dp <= 1e-5, "mean_pooled max abs diff %.3g", dp);
            check_embeddings(emb, g.emb, GOLD_B, g.D, "forward from golden ids");
            CHECK(prof.dense_flops > 0);
        }
        blipc__arena_free(&a);
    }
    blipc__bert_free(&w);
done:
    blipc__st_free(st);
    blipc__st_free(g.st);
}

/* ---- the optimised forward against a plain reference built from the core
 * kernels (blipc__linear / blipc__attention / blipc__layernorm / gelu_erf), at a
 * head size of 32 as in MiniLM (the fixture has 8), odd T, and masks with
 * holes and right padding ---- */
static uint64_t rs = 12345;
static float urand(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static float *rnd_buf(size_t n, float scale, float offset) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * urand();
    return p;
}

static void reference_forward(const blipc_bert_weights *w, const int32_t *ids, const int32_t *mask, int B, int T,
                              float *x) {
    const int D = w->D, F = w->F, H = w->H, dh = D / H;
    float *qkv = malloc((size_t)T * 3 * D * sizeof(float)), *ctx = malloc((size_t)T * D * sizeof(float)),
          *tmp = malloc((size_t)T * D * sizeof(float)), *hid = malloc((size_t)T * F * sizeof(float)),
          *sc = malloc((size_t)T * T * sizeof(float)), *kb = malloc((size_t)T * sizeof(float));
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * T * D;
        for (int t = 0; t < T; t++) {
            for (int d = 0; d < D; d++)
                xb[t * D + d] = w->word_emb[(size_t)ids[b * T + t] * D + d] + w->pos_emb[(size_t)t * D + d] + w->type_emb[d];
            kb[t] = mask[b * T + t] ? 0.0f : -INFINITY;
        }
        blipc__layernorm(xb, xb, w->emb_ln_g, w->emb_ln_b, T, D, w->eps);
        for (int l = 0; l < w->L; l++) {
            const blipc_bert_layer *ly = &w->layer[l];
            blipc__linear(xb, T, D, 0, ly->qkv_w, ly->qkv_b, 3 * D, qkv, 0);
            blipc__attention(qkv, 3 * D, qkv + D, 3 * D, qkv + 2 * D, 3 * D, ctx, D, T, T, H, dh, 1.0f / sqrtf((float)dh),
                             kb, -1, sc);
            blipc__linear(ctx, T, D, 0, ly->attn_out_w, ly->attn_out_b, D, tmp, 0);
            blipc__add(xb, tmp, (size_t)T * D);
            blipc__layernorm(xb, xb, ly->ln1_g, ly->ln1_b, T, D, w->eps);
            blipc__linear(xb, T, D, 0, ly->ffn_in_w, ly->ffn_in_b, F, hid, 0);
            blipc__gelu_erf(hid, (size_t)T * F);
            blipc__linear(hid, T, F, 0, ly->ffn_out_w, ly->ffn_out_b, D, tmp, 0);
            blipc__add(xb, tmp, (size_t)T * D);
            blipc__layernorm(xb, xb, ly->ln2_g, ly->ln2_b, T, D, w->eps);
        }
    }
    free(qkv), free(ctx), free(tmp), free(hid), free(sc), free(kb);
}

TEST(bert_forward_matches_kernel_reference_dh32) {
    const int D = 64, H = 2, F = 256, L = 2, V = 100, P = 64, B = 3, T = 37;
    blipc_bert_weights w = {.D = D, .H = H, .F = F, .L = L, .V = V, .P = P, .eps = 1e-12f};
    float *owned[64];
    int no = 0;
#define R(n, sc, off) (owned[no++] = rnd_buf((n), (sc), (off)))
    w.word_emb = R((size_t)V * D, 0.05f, 0);
    w.pos_emb = R((size_t)P * D, 0.05f, 0);
    w.type_emb = R(2 * (size_t)D, 0.05f, 0);
    w.emb_ln_g = R(D, 0.1f, 1);
    w.emb_ln_b = R(D, 0.05f, 0);
    w.layer = calloc(L, sizeof *w.layer);
    w.qkv_buf = malloc(sizeof(float)); /* freed by blipc__bert_free */
    for (int l = 0; l < L; l++) {
        blipc_bert_layer *ly = &w.layer[l];
        ly->qkv_w = R((size_t)3 * D * D, 0.2f, 0);
        ly->qkv_b = R(3 * (size_t)D, 0.05f, 0);
        ly->attn_out_w = R((size_t)D * D, 0.2f, 0);
        ly->attn_out_b = R(D, 0.05f, 0);
        ly->ln1_g = R(D, 0.1f, 1);
        ly->ln1_b = R(D, 0.05f, 0);
        ly->ffn_in_w = R((size_t)F * D, 0.2f, 0);
        ly->ffn_in_b = R(F, 0.05f, 0);
        ly->ffn_out_w = R((size_t)D * F, 0.1f, 0);
        ly->ffn_out_b = R(D, 0.05f, 0);
        ly->ln2_g = R(D, 0.1f, 1);
        ly->ln2_b = R(D, 0.05f, 0);
    }
#undef R
    int32_t ids[3 * 37], mask[3 * 37];
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)((i * 7919) % V);
        int t = i % T, b = i / T;
        mask[i] = b == 0 ? 1 : b == 1 ? t < 20 : (t < 30 && t % 5 != 3); /* full, right-padded, holes */
    }
    float *ref = malloc((size_t)B * T * D * sizeof(float));
    reference_forward(&w, ids, mask, B, T, ref);
    float *first = malloc((size_t)B * T * D * sizeof(float));
    for (int run = 0; run < 4; run++) {
        const int threads = 1 + run % 2;
        if (run == 2) { /* the same through the packed panels (no-op without AVX-512) */
            blipc_err pe;
            CHECK_STATUS(blipc__bert_pack(&w, &pe), BLIPC_OK, pe.msg);
            if (!w.pack_buf) break;
        }
        blipc_arena a;
        blipc_err e;
        float *hs = NULL;
        blipc__arena_init(&a, blipc__bert_scratch_bytes(&w, B, T, threads), &e);
        CHECK_STATUS(blipc__bert_forward(&w, ids, mask, B, T, threads, &a, &hs, NULL, &e), BLIPC_OK, e.msg);
        double worst = 0;
        for (int i = 0; hs && i < B * T; i++) {
            if (!mask[i]) continue; /* padded query rows: not used by pooling */
            double d = th_max_abs_diff(hs + (size_t)i * D, ref + (size_t)i * D, (size_t)D);
            worst = d > worst ? d : worst;
        }
        fprintf(stderr, "  %s, %d thread(s): max abs diff vs kernel reference %.3g\n",
                w.pack_buf ? "packed" : "unpacked", threads, worst);
        CHECKF(worst <= 2e-5, "forward vs reference: %.3g", worst);
        if (hs && w.pack_buf && threads == 1) memcpy(first, hs, (size_t)B * T * D * sizeof(float));
        if (hs && w.pack_buf && threads == 2) {
            /* packed: every row is computed the same way whatever the batch and the
             * thread count, so the results are identical, not just close */
            CHECK(memcmp(first, hs, (size_t)B * T * D * sizeof(float)) == 0);
            /* sequence 1 (20 real tokens) alone, unpadded: its real rows equal the batch's */
            blipc__arena_reset(&a, 0);
            float *one = NULL;
            CHECK_STATUS(blipc__bert_forward(&w, ids + T, mask + T, 1, 20, 2, &a, &one, NULL, &e), BLIPC_OK, e.msg);
            if (one) CHECK(memcmp(one, first + (size_t)T * D, (size_t)20 * D * sizeof(float)) == 0);
        }
        if (hs) {
            /* 2 x 32 tokens = 64 rows: with 2 threads the few-row mode (4 barriers per
             * layer, attention and LayerNorm in every thread); 1 thread: the other mode */
            int32_t ids2[64], mask2[64];
            for (int i = 0; i < 64; i++) {
                ids2[i] = ids[(i / 32) * T + i % 32];
                mask2[i] = mask[(i / 32) * T + i % 32];
            }
            float *r1 = NULL, *r2 = NULL;
            blipc_arena a1, a2;
            CHECK_STATUS(blipc__arena_init(&a1, blipc__bert_scratch_bytes(&w, 2, 32, 1), &e), BLIPC_OK, e.msg);
            CHECK_STATUS(blipc__arena_init(&a2, blipc__bert_scratch_bytes(&w, 2, 32, 2), &e), BLIPC_OK, e.msg);
            CHECK_STATUS(blipc__bert_forward(&w, ids2, mask2, 2, 32, 1, &a1, &r1, NULL, &e), BLIPC_OK, e.msg);
            CHECK_STATUS(blipc__bert_forward(&w, ids2, mask2, 2, 32, 2, &a2, &r2, NULL, &e), BLIPC_OK, e.msg);
            float *ref2 = malloc((size_t)64 * D * sizeof(float));
            reference_forward(&w, ids2, mask2, 2, 32, ref2);
            double d1 = 0, d2 = 0;
            for (int i = 0; r1 && r2 && i < 64; i++) {
                if (!mask2[i]) continue;
                double u = th_max_abs_diff(r1 + (size_t)i * D, ref2 + (size_t)i * D, (size_t)D);
                double v = th_max_abs_diff(r2 + (size_t)i * D, ref2 + (size_t)i * D, (size_t)D);
                d1 = u > d1 ? u : d1;
                d2 = v > d2 ? v : d2;
            }
            fprintf(stderr, "  2 x 32: max abs diff vs reference %.3g (1 thread) %.3g (2 threads, few-row mode)\n", d1, d2);
            CHECKF(d1 <= 2e-5 && d2 <= 2e-5, "2 x 32 vs reference: %.3g / %.3g", d1, d2);
            if (r1 && r2 && w.pack_buf) CHECK(memcmp(r1, r2, (size_t)64 * D * sizeof(float)) == 0);
            free(ref2);
            blipc__arena_free(&a1);
            blipc__arena_free(&a2);
        }
        blipc__arena_free(&a);
    }
    free(first);
    /* input checks */
    {
        blipc_arena a;
        blipc_err e;
        float *hs;
        blipc__arena_init(&a, blipc__bert_scratch_bytes(&w, 1, P, 1), &e);
        int32_t bad[2] = {1, V};
        CHECK_STATUS(blipc__bert_forward(&w, bad, NULL, 1, 2, 1, &a, &hs, NULL, &e), BLIPC_ERR_INVALID_ARG, e.msg);
        CHECK_CONTAINS(e.msg, "input_ids[0][1]");
        int32_t *many = calloc(2 * (size_t)P + 2, sizeof *many);
        CHECK_STATUS(blipc__bert_forward(&w, many, NULL, 1, P + 1, 1, &a, &hs, NULL, &e), BLIPC_ERR_LIMIT, e.msg);
        CHECK_CONTAINS(e.msg, "max_position_embeddings");
        CHECK_STATUS(blipc__bert_forward(&w, many, NULL, 2, P, 1, &a, &hs, NULL, &e), BLIPC_ERR_LIMIT, e.msg);
        CHECK_CONTAINS(e.msg, "arena");
        free(many);
        blipc__arena_free(&a);
    }
    free(ref);
    for (int i = 0; i < no; i++) free(owned[i]);
    blipc__bert_free(&w);
}

/* the sentences of sentences.json through the public API (tokenizer included) */
static int load_sentences(char ***out) {
    size_t n;
    char *txt = th_read_file(th_fixture("minilm-tiny/sentences.json"), &n);
    if (!txt) return -1;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    cJSON *arr = cJSON_GetObjectItem(root, "sentences");
    int k = cJSON_GetArraySize(arr);
    char **s = calloc((size_t)k, sizeof *s);
    for (int i = 0; i < k; i++) s[i] = strdup(cJSON_GetArrayItem(arr, i)->valuestring);
    cJSON_Delete(root);
    *out = s;
    return k;
}

static void free_sentences(char **s, int k) {
    for (int i = 0; i < k; i++) free(s[i]);
    free(s);
}

TEST(embedder_matches_golden_from_text) {
    gold g;
    if (gold_open(&g)) {
        CHECK(0);
        return;
    }
    char **s = NULL;
    int k = load_sentences(&s);
    CHECK_EQ_INT(k, GOLD_B);
    char err[1024] = "";
    blipc_embedder *m = NULL;
    CHECK_STATUS(blipc_embedder_open(model_dir(), NULL, &m, err, sizeof err), BLIPC_OK, err);
    if (m && k == GOLD_B) {
        CHECK_EQ_INT(blipc_embedder_dim(m), g.D);
        float out[GOLD_B * 64];
        CHECK_STATUS(blipc_embedder_embed(m, (const char *const *)s, (size_t)k, out), BLIPC_OK, blipc_embedder_errmsg(m));
        check_embeddings(out, g.emb, GOLD_B, g.D, "embedder batch of 8");
        /* one at a time, and in reverse order: same vectors */
        for (int i = 0; i < k; i++) {
            float one[64];
            CHECK_STATUS(blipc_embedder_embed(m, (const char *const *)&s[i], 1, one), BLIPC_OK, blipc_embedder_errmsg(m));
            check_embeddings(one, g.emb + (size_t)i * g.D, 1, g.D, "embedder single");
            double d = th_max_abs_diff(one, out + (size_t)i * g.D, (size_t)g.D);
            CHECKF(d <= 1e-6, "sentence %d alone vs in the batch: %.3g", i, d);
        }
        const char *rev[GOLD_B];
        for (int i = 0; i < k; i++) rev[i] = s[k - 1 - i];
        float out2[GOLD_B * 64];
        CHECK_STATUS(blipc_embedder_embed(m, rev, (size_t)k, out2), BLIPC_OK, blipc_embedder_errmsg(m));
        for (int i = 0; i < k; i++)
            check_embeddings(out2 + (size_t)i * g.D, g.emb + (size_t)(k - 1 - i) * g.D, 1, g.D, "reversed batch");
    }
    blipc_embedder_free(m);
    free_sentences(s, k);
    blipc__st_free(g.st);
}

TEST(embedder_large_batch_equals_single) {
    /* 70 texts (3 chunks of the internal batch), mixed lengths */
    char err[1024] = "";
    blipc_embedder *m = NULL;
    CHECK_STATUS(blipc_embedder_open(model_dir(), NULL, &m, err, sizeof err), BLIPC_OK, err);
    if (!m) return;
    int D = blipc_embedder_dim(m);
    enum { N = 70 };
    char *texts[N];
    for (int i = 0; i < N; i++) {
        size_t len = 1 + (size_t)((i * 37) % 300);
        texts[i] = malloc(len + 1);
        for (size_t j = 0; j < len; j++) texts[i][j] = (j % 6 == 5) ? ' ' : (char)('a' + (i + j * 7) % 26);
        texts[i][len] = 0;
    }
    float *all = malloc((size_t)N * D * sizeof(float)), *one = malloc((size_t)D * sizeof(float));
    CHECK_STATUS(blipc_embedder_embed(m, (const char *const *)texts, N, all), BLIPC_OK, blipc_embedder_errmsg(m));
    double worst = 0;
    for (int i = 0; i < N; i++) {
        CHECK_STATUS(blipc_embedder_embed(m, (const char *const *)&texts[i], 1, one), BLIPC_OK, blipc_embedder_errmsg(m));
        double d = th_max_abs_diff(one, all + (size_t)i * D, (size_t)D);
        worst = d > worst ? d : worst;
        double nn = 0;
        for (int j = 0; j < D; j++) nn += (double)one[j] * one[j];
        CHECKF(fabs(nn - 1) < 1e-5, "text %d: |v|^2 = %.8f", i, nn);
    }
    CHECKF(worst <= 1e-6, "single vs batched max abs diff %.3g", worst);
    /* AVX-512: packed weights, one kernel for every batch size -> bit-identical */
    if (blipc__cpu_isa() == 2) CHECKF(worst == 0, "packed path: single vs batched differ (%.3g)", worst);
    for (int i = 0; i < N; i++) free(texts[i]);
    free(all);
    free(one);
    blipc_embedder_free(m);
}

TEST(embedder_text_edge_cases) {
    char err[1024] = "";
    blipc_embedder *m = NULL;
    CHECK_STATUS(blipc_embedder_open(model_dir(), NULL, &m, err, sizeof err), BLIPC_OK, err);
    if (!m) return;
    int D = blipc_embedder_dim(m);
    float *v = calloc(4 * (size_t)D, sizeof(float));
    /* empty batch */
    CHECK_STATUS(blipc_embedder_embed(m, NULL, 0, NULL), BLIPC_OK, blipc_embedder_errmsg(m));
    /* empty string = [CLS][SEP]: a valid unit vector */
    const char *empty[] = {""};
    CHECK_STATUS(blipc_embedder_embed(m, empty, 1, v), BLIPC_OK, blipc_embedder_errmsg(m));
    double nn = 0;
    for (int j = 0; j < D; j++) nn += (double)v[j] * v[j];
    CHECKF(fabs(nn - 1) < 1e-5, "empty string: |v|^2 = %f", nn);
    /* 100,000 characters: truncated to max_seq_length -> same as its first words */
    char *big = malloc(100001);
    for (int i = 0; i < 100000; i++) big[i] = (i % 5 == 4) ? ' ' : 'a' + (i % 5);
    big[100000] = 0;
    char *prefix = strndup(big, 5 * 200); /* 200 words >> 126 word pieces */
    const char *two[] = {big, prefix};
    CHECK_STATUS(blipc_embedder_embed(m, two, 2, v), BLIPC_OK, blipc_embedder_errmsg(m));
    CHECKF(th_max_abs_diff(v, v + D, (size_t)D) <= 1e-6, "long text is not its truncation");
    /* invalid UTF-8: names the text index and the byte offset; nothing written matters */
    const char *bad[] = {"fine", "ok \xff here"};
    CHECK_STATUS(blipc_embedder_embed(m, bad, 2, v), BLIPC_ERR_INVALID_ARG, blipc_embedder_errmsg(m));
    CHECK_CONTAINS(blipc_embedder_errmsg(m), "text 1");
    CHECK_CONTAINS(blipc_embedder_errmsg(m), "byte offset 3");
    const char *trunc_seq[] = {"caf\xc3"};
    CHECK_STATUS(blipc_embedder_embed(m, trunc_seq, 1, v), BLIPC_ERR_INVALID_ARG, blipc_embedder_errmsg(m));
    CHECK_CONTAINS(blipc_embedder_errmsg(m), "text 0");
    const char *nul[] = {"a", NULL};
    CHECK_STATUS(blipc_embedder_embed(m, nul, 2, v), BLIPC_ERR_INVALID_ARG, blipc_embedder_errmsg(m));
    CHECK_CONTAINS(blipc_embedder_errmsg(m), "text 1");
    /* the handle still works after errors */
    CHECK_STATUS(blipc_embedder_embed(m, empty, 1, v), BLIPC_OK, blipc_embedder_errmsg(m));
    free(big);
    free(prefix);
    free(v);
    blipc_embedder_free(m);
    blipc_embedder_free(NULL);
}

TEST(embedder_params) {
    char err[1024] = "";
    blipc_embedder *m = NULL;
    blipc_embedder_params p;
    blipc_embedder_default_params(&p);
    p.max_seq_length = 100000;
    CHECK_STATUS(blipc_embedder_open(model_dir(), &p, &m, err, sizeof err), BLIPC_ERR_INVALID_ARG, err);
    CHECK_CONTAINS(err, "max_seq_length");
    CHECK(m == NULL);
    CHECK_STATUS(blipc_embedder_open(model_dir(), NULL, NULL, err, sizeof err), BLIPC_ERR_INVALID_ARG, err);
    CHECK_STATUS(blipc_embedder_open(NULL, NULL, &m, err, sizeof err), BLIPC_ERR_INVALID_ARG, err);
    /* max_seq_length 8 truncates: the long golden sentence equals its first 6 word pieces */
    p.max_seq_length = 8;
    p.n_threads = 1;
    CHECK_STATUS(blipc_embedder_open(model_dir(), &p, &m, err, sizeof err), BLIPC_OK, err);
    if (m) {
        const char *t[] = {"the quick brown fox jumps over the lazy dog", "the quick brown fox jumps over"};
        float v[2 * 64];
        CHECK_STATUS(blipc_embedder_embed(m, t, 2, v), BLIPC_OK, blipc_embedder_errmsg(m));
        int D = blipc_embedder_dim(m);
        CHECKF(th_max_abs_diff(v, v + D, (size_t)D) <= 1e-6, "max_seq_length 8 did not truncate");
    }
    blipc_embedder_free(m);
}

TEST(gelu_fast_matches_erf) {
    enum { N = 200001 };
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) a[i] = b[i] = -10.0f + 20.0f * (float)i / (N - 1);
    a[N - 1] = b[N - 1] = INFINITY;
    blipc__gelu_erf(a, N);
    blipc__bert_gelu(b, N);
    double worst = 0;
    for (int i = 1; i < N - 1; i++) {
        double d = fabs((double)a[i] - b[i]);
        double tol = 1e-6 * (fabs(a[i]) > 1 ? fabs(a[i]) : 1);
        if (d / tol > worst) worst = d / tol;
    }
    CHECKF(worst <= 1, "fast GELU deviates from the erff one by %.3g x tolerance", worst);
    CHECK(b[N - 1] == INFINITY);
    free(a);
    free(b);
}

int main(void) {
    th_require_file(th_fixture("minilm-tiny/model.safetensors"));
    th_require_file(th_fixture("minilm-tiny/golden.safetensors"));
    RUN(gelu_fast_matches_erf);
    RUN(bert_forward_matches_golden_from_ids);
    RUN(bert_forward_matches_kernel_reference_dh32);
    if (access(th_fixture("minilm-tiny/vocab.txt"), R_OK) != 0) {
        fprintf(stderr, "SKIP (partly): %s is absent: the tokenizer/embedder tests need it\n",
                th_fixture("minilm-tiny/vocab.txt"));
    } else {
        RUN(embedder_matches_golden_from_text);
        RUN(embedder_large_batch_equals_single);
        RUN(embedder_text_edge_cases);
        RUN(embedder_params);
    }
    return th_finish();
}
