/* test_blip2.c — BLIP-2 (ViT-g -> Q-Former -> OPT) against the blip2-tiny
 * goldens of ../shared/fixtures (tolerances from its README), the KV cache,
 * the captioner API and bad inputs. */
#include "harness.h"

#include "blipc.h"
#include "hfconfig.h"
#include "opt.h"
#include "qformer.h"
#include "safetensors.h"
#include "vit.h"
#include "kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TOL_HIDDEN 2e-5
#define TOL_LOGITS 5e-5

static const char *model_dir(void) { return th_fixture("blip2-tiny"); }

/* ---------------------------------------------------------------- goldens */

static blipc_safetensors *golden;

static const float *gf(const char *name, size_t *n) {
    const blipc_st_tensor *t = blipc__st_find(golden, name);
    if (!t) {
        fprintf(stderr, "golden tensor %s missing\n", name);
        exit(1);
    }
    const float *p;
    blipc_err e;
    if (blipc__st_get_f32(golden, name, -1, NULL, &p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    if (n) *n = (size_t)t->numel;
    return p;
}

static const int64_t *gi(const char *name, size_t *n) {
    const int64_t *p;
    const blipc_st_tensor *t;
    blipc_err e;
    if (blipc__st_get_i64(golden, name, &p, &t, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    if (n) *n = (size_t)t->numel;
    return p;
}

/* A loaded model (internal structs) from a weights file of the fixture. */
typedef struct model {
    blipc_blip2_config cfg;
    blipc_safetensors *st;
    blipc_vit vit;
    blipc_qformer qf;
    blipc_opt opt;
} model;

static int model_load(model *m, const char *weights_file) {
    blipc_err e = {0};
    memset(m, 0, sizeof *m);
    if (blipc__blip2_config_load(model_dir(), &m->cfg, &e) ||
        blipc__st_open_file(th_fixture(weights_file), &m->st, &e) || blipc__vit_load(&m->vit, &m->cfg.vision, m->st, &e) ||
        blipc__qformer_load(&m->qf, &m->cfg, m->st, &e) ||
        blipc__opt_load(&m->opt, &m->cfg.text, m->st, BLIPC_WMODE_F32, &e)) {
        fprintf(stderr, "model load: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static void model_free(model *m) {
    blipc__vit_free(&m->vit);
    blipc__qformer_free(&m->qf);
    blipc__opt_free(&m->opt);
    blipc__st_free(m->st);
}

static model M32, M16; /* f32 and bf16 checkpoints */

static float *vision(const model *m, const float *pixels, int B) {
    size_t T = (size_t)m->vit.n_tokens, D = (size_t)m->cfg.vision.hidden_size;
    float *out = malloc((size_t)B * T * D * sizeof(float));
    float *scr = malloc(blipc__vit_scratch_floats(&m->vit, B) * sizeof(float));
    blipc__vit_forward(&m->vit, pixels, B, out, scr);
    free(scr);
    return out;
}

static void qformer(const model *m, const float *img, int B, float **out, float **proj) {
    int T = m->vit.n_tokens, Q = m->cfg.num_query_tokens;
    *out = malloc((size_t)B * Q * m->cfg.qformer.hidden_size * sizeof(float));
    *proj = malloc((size_t)B * Q * m->cfg.text.hidden_size * sizeof(float));
    float *scr = malloc(blipc__qformer_scratch_floats(&m->qf, B, T) * sizeof(float));
    blipc__qformer_forward(&m->qf, img, B, T, *out, *proj, scr);
    free(scr);
}

#define CHECK_CLOSE(got, gold_name, tol)                                                      \
    do {                                                                                      \
        size_t n__;                                                                           \
        const float *g__ = gf(gold_name, &n__);                                               \
        double d__ = th_max_abs_diff((got), g__, n__);                                        \
        CHECKF(d__ <= (tol), "%s: max abs diff %.3g > %.3g", gold_name, d__, (double)(tol));  \
    } while (0)

/* vision -> Q-Former -> projection for one golden pixel tensor, each stage checked
 * against its golden and the next stage also fed from the golden input. */
static void check_towers(const model *m, const char *pix, const char *vis, const char *qfo, const char *proj_name) {
    float *v = vision(m, gf(pix, NULL), 1);
    CHECK_CLOSE(v, vis, TOL_HIDDEN);
    float *q, *p;
    qformer(m, gf(vis, NULL), 1, &q, &p);
    CHECK_CLOSE(q, qfo, TOL_HIDDEN);
    CHECK_CLOSE(p, proj_name, TOL_HIDDEN);
    free(q);
    free(p);
    qformer(m, v, 1, &q, &p); /* end to end from our own vision output */
    CHECK_CLOSE(p, proj_name, TOL_HIDDEN);
    free(q);
    free(p);
    free(v);
}

TEST(vision_qformer_projection_match_golden) {
    check_towers(&M32, "pixel_values", "vision_last_hidden_state", "qformer_last_hidden_state", "language_projection");
}

TEST(photo_vision_qformer_projection_match_golden) {
    check_towers(&M32, "pixel_values_photo", "photo_vision_last_hidden_state", "photo_qformer_last_hidden_state",
                 "photo_language_projection");
}

TEST(bf16_weights_vision_qformer_projection_match_golden) {
    check_towers(&M16, "pixel_values", "bf16w_vision_last_hidden_state", "bf16w_qformer_last_hidden_state",
                 "bf16w_language_projection");
}

TEST(batched_vision_qformer_match_golden) {
    size_t n;
    const float *p0 = gf("pixel_values", &n), *p1 = gf("pixel_values_photo", NULL);
    float *pix = malloc(2 * n * sizeof(float));
    memcpy(pix, p0, n * sizeof(float));
    memcpy(pix + n, p1, n * sizeof(float));
    float *v = vision(&M32, pix, 2);
    CHECK_CLOSE(v, "batch_vision_last_hidden_state", TOL_HIDDEN);
    float *q, *p;
    qformer(&M32, v, 2, &q, &p);
    CHECK_CLOSE(q, "batch_qformer_last_hidden_state", TOL_HIDDEN);
    CHECK_CLOSE(p, "batch_language_projection", TOL_HIDDEN);
    free(q);
    free(p);
    free(v);
    free(pix);
}


/* inputs_embeds = [projection ; embed(ids)] for ids (BOS + prompt) */
static float *lm_inputs(const model *m, const float *proj, const int64_t *ids, int L) {
    int Q = m->cfg.num_query_tokens, D = m->cfg.text.hidden_size;
    float *x = malloc((size_t)(Q + L) * D * sizeof(float));
    memcpy(x, proj, (size_t)Q * D * sizeof(float));
    for (int i = 0; i < L; i++) {
        int32_t id = (int32_t)ids[i];
        blipc__opt_embed(&m->opt, &id, 1, x + (size_t)(Q + i) * D);
    }
    return x;
}

static blipc_opt_session *session(const model *m, int seqs, int pos, int rows) {
    blipc_opt_session *s;
    blipc_err e = {0};
    if (blipc__opt_session_new(&m->opt, 1, &s, &e) || blipc__opt_session_reserve(s, seqs, pos, rows, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    return s;
}

TEST(opt_inputs_embeds_and_all_position_logits_match_golden) {
    const model *m = &M32;
    size_t L;
    const int64_t *ids = gi("prompt_input_ids", &L);
    const int64_t *full = gi("lm_input_ids_prompt", NULL);
    int Q = m->cfg.num_query_tokens, T = Q + (int)L, V = m->cfg.text.vocab_size;
    for (int i = 0; i < Q; i++) CHECK_EQ_INT(full[i], m->cfg.image_token_index);
    for (size_t i = 0; i < L; i++) CHECK_EQ_INT(full[Q + i], ids[i]);
    CHECK_EQ_INT(ids[0], m->cfg.text.bos_token_id);
    float *x = lm_inputs(m, gf("language_projection", NULL), ids, (int)L);
    CHECK_CLOSE(x, "lm_inputs_embeds_prompt", TOL_HIDDEN);
    blipc_opt_session *s = session(m, 1, T, T);
    float *logits = malloc((size_t)T * V * sizeof(float));
    blipc_err e = {0};
    CHECK_STATUS(blipc__opt_prefill(s, x, 1, T, logits, 1, &e), BLIPC_OK, e.msg);
    CHECK_CLOSE(logits, "logits_prompt", TOL_LOGITS);
    CHECK_EQ_INT(blipc__opt_slot_len(s, 0), T);
    /* last-position-only variant */
    CHECK_STATUS(blipc__opt_prefill(s, x, 1, T, logits, 0, &e), BLIPC_OK, e.msg);
    const float *g = gf("logits_prompt", NULL) + (size_t)(T - 1) * V;
    CHECKF(th_max_abs_diff(logits, g, (size_t)V) <= TOL_LOGITS, "last logits");
    free(logits);
    free(x);
    blipc__opt_session_free(s);
}

TEST(opt_noprompt_and_batch_last_logits_match_golden) {
    const model *m = &M32;
    int Q = m->cfg.num_query_tokens, D = m->cfg.text.hidden_size, V = m->cfg.text.vocab_size;
    const int64_t bos = m->cfg.text.bos_token_id;
    float *x = lm_inputs(m, gf("language_projection", NULL), &bos, 1);
    blipc_opt_session *s = session(m, 2, 64, 64);
    float *logits = malloc((size_t)2 * V * sizeof(float));
    blipc_err e = {0};
    CHECK_STATUS(blipc__opt_prefill(s, x, 1, Q + 1, logits, 0, &e), BLIPC_OK, e.msg);
    CHECK_CLOSE(logits, "logits_noprompt_last", TOL_LOGITS);
    free(x);
    /* batch of 2 (synthetic, photo) with the same prompt */
    size_t L;
    const int64_t *ids = gi("prompt_input_ids", &L);
    const float *bp = gf("batch_language_projection", NULL);
    int T = Q + (int)L;
    float *x0 = lm_inputs(m, bp, ids, (int)L), *x1 = lm_inputs(m, bp + (size_t)Q * D, ids, (int)L);
    float *xb = malloc((size_t)2 * T * D * sizeof(float));
    memcpy(xb, x0, (size_t)T * D * sizeof(float));
    memcpy(xb + (size_t)T * D, x1, (size_t)T * D * sizeof(float));
    CHECK_STATUS(blipc__opt_prefill(s, xb, 2, T, logits, 0, &e), BLIPC_OK, e.msg);
    CHECK_CLOSE(logits, "batch_logits_prompt_last", TOL_LOGITS);
    /* photo alone */
    float *xp = lm_inputs(m, gf("photo_language_projection", NULL), ids, (int)L);
    CHECK_STATUS(blipc__opt_prefill(s, xp, 1, T, logits, 0, &e), BLIPC_OK, e.msg);
    CHECK_CLOSE(logits, "photo_logits_prompt_last", TOL_LOGITS);
    free(x0);
    free(x1);
    free(xb);
    free(xp);
    free(logits);
    blipc__opt_session_free(s);
}

/* Greedy decoding with the KV cache for B sequences (embeds [B, T, D]); tokens[B, n]. */
static void greedy(const model *m, const float *embeds, int B, int T, int n, int32_t *tokens) {
    int V = m->cfg.text.vocab_size;
    blipc_opt_session *s = session(m, B, T + n, B * T);
    float *logits = malloc((size_t)B * V * sizeof(float));
    int slots[16];
    int32_t cur[16];
    blipc_err e = {0};
    CHECK_STATUS(blipc__opt_prefill(s, embeds, B, T, logits, 0, &e), BLIPC_OK, e.msg);
    for (int i = 0; i < B; i++) slots[i] = i;
    for (int k = 0; k < n; k++) {
        for (int b = 0; b < B; b++) cur[b] = tokens[b * n + k] = blipc__argmax(logits + (size_t)b * V, V);
        if (k + 1 < n) CHECK_STATUS(blipc__opt_step(s, cur, slots, B, logits, &e), BLIPC_OK, e.msg);
    }
    free(logits);
    blipc__opt_session_free(s);
}

static void check_tokens(const int32_t *got, const char *gold_name, size_t n) {
    size_t gn;
    const int64_t *g = gi(gold_name, &gn);
    CHECK_EQ_INT(gn, n);
    int same = 1;
    for (size_t i = 0; i < n && i < gn; i++) same &= got[i] == g[i];
    CHECKF(same, "%s: greedy tokens differ", gold_name);
    if (!same)
        for (size_t i = 0; i < n && i < gn; i++) fprintf(stderr, "    [%zu] got %d want %lld\n", i, got[i], (long long)g[i]);
}

static void greedy_case(const model *m, const char *proj, int with_prompt, const char *gold) {
    size_t L = 1;
    const int64_t bos = m->cfg.text.bos_token_id;
    const int64_t *ids = with_prompt ? gi("prompt_input_ids", &L) : &bos;
    int T = m->cfg.num_query_tokens + (int)L;
    float *x = lm_inputs(m, gf(proj, NULL), ids, (int)L);
    int32_t tok[20];
    greedy(m, x, 1, T, 20, tok);
    check_tokens(tok, gold, 20);
    free(x);
}

TEST(greedy_tokens_with_kv_cache_match_golden) {
    greedy_case(&M32, "language_projection", 1, "greedy_prompt_tokens");
    greedy_case(&M32, "language_projection", 0, "greedy_noprompt_tokens");
    greedy_case(&M32, "photo_language_projection", 1, "photo_greedy_prompt_tokens");
    greedy_case(&M32, "photo_language_projection", 0, "photo_greedy_noprompt_tokens");
    greedy_case(&M16, "bf16w_language_projection", 1, "bf16w_greedy_prompt_tokens");
}

TEST(batched_greedy_tokens_match_golden) {
    const model *m = &M32;
    int Q = m->cfg.num_query_tokens, D = m->cfg.text.hidden_size;
    const float *bp = gf("batch_language_projection", NULL);
    for (int with_prompt = 0; with_prompt < 2; with_prompt++) {
        size_t L = 1;
        const int64_t bos = m->cfg.text.bos_token_id;
        const int64_t *ids = with_prompt ? gi("prompt_input_ids", &L) : &bos;
        int T = Q + (int)L;
        float *xb = malloc((size_t)2 * T * D * sizeof(float));
        for (int b = 0; b < 2; b++) {
            float *x = lm_inputs(m, bp + (size_t)b * Q * D, ids, (int)L);
            memcpy(xb + (size_t)b * T * D, x, (size_t)T * D * sizeof(float));
            free(x);
        }
        int32_t tok[40];
        greedy(m, xb, 2, T, 20, tok);
        check_tokens(tok, with_prompt ? "batch_greedy_prompt_tokens" : "batch_greedy_noprompt_tokens", 40);
        free(xb);
    }
}

/* copy_slots: swapping two slots' caches swaps their next-token logits, and a
 * copy duplicates a sequence exactly. */
TEST(kv_cache_copy_slots_permutes_sequences) {
    const model *m = &M32;
    int Q = m->cfg.num_query_tokens, D = m->cfg.text.hidden_size, V = m->cfg.text.vocab_size;
    const int64_t bos = m->cfg.text.bos_token_id;
    const float *bp = gf("batch_language_projection", NULL);
    int T = Q + 1;
    float *xb = malloc((size_t)2 * T * D * sizeof(float));
    for (int b = 0; b < 2; b++) {
        float *x = lm_inputs(m, bp + (size_t)b * Q * D, &bos, 1);
        memcpy(xb + (size_t)b * T * D, x, (size_t)T * D * sizeof(float));
        free(x);
    }
    blipc_opt_session *s = session(m, 3, T + 4, 2 * T);
    float *ref = malloc((size_t)3 * V * sizeof(float)), *got = malloc((size_t)3 * V * sizeof(float));
    blipc_err e = {0};
    int32_t tok[3] = {100, 100, 100};
    int s01[2] = {0, 1}, s10[2] = {1, 0}, s012[3] = {0, 1, 2};
    CHECK_STATUS(blipc__opt_prefill(s, xb, 2, T, ref, 0, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(blipc__opt_step(s, tok, s01, 2, ref, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(blipc__opt_prefill(s, xb, 2, T, got, 0, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(blipc__opt_copy_slots(s, s01, s10, 2, &e), BLIPC_OK, e.msg); /* swap */
    int src[1] = {1}, dst[1] = {2};
    CHECK_STATUS(blipc__opt_copy_slots(s, src, dst, 1, &e), BLIPC_OK, e.msg); /* slot 2 = old slot 0 */
    CHECK_STATUS(blipc__opt_step(s, tok, s012, 3, got, &e), BLIPC_OK, e.msg);
    CHECKF(th_max_abs_diff(got, ref + V, (size_t)V) <= 1e-5, "slot 0 should hold the old slot 1");
    CHECKF(th_max_abs_diff(got + V, ref, (size_t)V) <= 1e-5, "slot 1 should hold the old slot 0");
    CHECKF(th_max_abs_diff(got + 2 * (size_t)V, ref, (size_t)V) <= 1e-5, "slot 2 should copy the old slot 0");
    CHECK_EQ_INT(blipc__opt_slot_len(s, 2), T + 1);
    /* a slot that is full refuses another token */
    for (int k = 0; k < 3; k++) CHECK_STATUS(blipc__opt_step(s, tok, s012, 1, got, &e), BLIPC_OK, e.msg);
    CHECK_STATUS(blipc__opt_step(s, tok, s012, 1, got, &e), BLIPC_ERR_LIMIT, e.msg);
    free(ref);
    free(got);
    free(xb);
    blipc__opt_session_free(s);
}

int main(void) {
    th_require_file(th_fixture("blip2-tiny/golden.safetensors"));
    blipc_err e;
    if (blipc__st_open_file(th_fixture("blip2-tiny/golden.safetensors"), &golden, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    if (model_load(&M32, "blip2-tiny/model.safetensors") || model_load(&M16, "blip2-tiny/model-bf16.safetensors"))
        return 1;
    RUN(vision_qformer_projection_match_golden);
    RUN(photo_vision_qformer_projection_match_golden);
    RUN(bf16_weights_vision_qformer_projection_match_golden);
    RUN(batched_vision_qformer_match_golden);
    RUN(opt_inputs_embeds_and_all_position_logits_match_golden);
    RUN(opt_noprompt_and_batch_last_logits_match_golden);
    RUN(greedy_tokens_with_kv_cache_match_golden);
    RUN(batched_greedy_tokens_match_golden);
    RUN(kv_cache_copy_slots_permutes_sequences);
    model_free(&M32);
    model_free(&M16);
    blipc__st_free(golden);
    return th_finish();
}
