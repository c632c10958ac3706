/* generate.c — the generation entry points over the blipc_lm "next logits"
 * interface, reproducing Hugging Face transformers' GenerationConfig semantics
 * (generation/utils.py, logits_process.py): parameter checks,
 * generation_config.json loading, the checks every call shares and the dispatch
 * to greedy search / multinomial sampling (gen_greedy.c) or beam search
 * (gen_beam.c). The logits processors and sampling warpers are in gen_process.c.
 *
 * All buffers are allocated once per call; the step loop allocates nothing. */
#include "gen_internal.h"

#include "fileutil.h"
#include "hfconfig.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int blipc__gen_report_progress(const blipc_gen_params *p, float frac) {
    if (!p->progress) return 1;
    return p->progress(p->progress_user, frac);
}

void blipc__gen_free_outputs(blipc_gen_output *out, int n) {
    for (int i = 0; i < n; i++) {
        free(out[i].tokens);
        out[i].tokens = NULL;
        out[i].n_tokens = 0;
        out[i].score = 0;
    }
}

blipc_status blipc__gen_alloc_outputs(blipc_gen_output *out, int n, int max_new, blipc_err *e) {
    for (int i = 0; i < n; i++) out[i] = (blipc_gen_output){0};
    for (int i = 0; i < n; i++) {
        out[i].tokens = malloc((size_t)max_new * sizeof(int32_t));
        if (!out[i].tokens) {
            blipc__gen_free_outputs(out, n);
            return blipc__errf(e, BLIPC_ERR_NOMEM, "generate: out of memory for outputs");
        }
    }
    return BLIPC_OK;
}

/* -------------------------------------------------------------- entry points */

blipc_status blipc__generate(const blipc_lm *lm, const blipc_gen_config *cfg, int n_prompts,
                             const float *first_logits, const int32_t *const *prompt_ids, const int *n_prompt_ids,
                             blipc_gen_output *out, blipc_err *e) {
    int max_new = 0, max_prompt = 0;
    BLIPC_TRY(check_call(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, &max_new, &max_prompt, e));
    if (n_prompts == 0) return BLIPC_OK;
    if (cfg->p.num_beams > 1)
        return blipc__gen_run_beam(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, max_new,
                                   max_prompt, e);
    return blipc__gen_run_sample(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, max_new, max_prompt,
                                 e);
}

blipc_status blipc__generate_beam(const blipc_lm *lm, const blipc_gen_config *cfg, int n_prompts,
                                  const float *first_logits, const int32_t *const *prompt_ids,
                                  const int *n_prompt_ids, blipc_gen_output *out, blipc_err *e) {
    int max_new = 0, max_prompt = 0;
    BLIPC_TRY(check_call(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, &max_new, &max_prompt, e));
    if (cfg->p.do_sample)
        return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "beam sampling (do_sample with beam search) is not supported");
    if (n_prompts == 0) return BLIPC_OK;
    return blipc__gen_run_beam(lm, cfg, n_prompts, first_logits, prompt_ids, n_prompt_ids, out, max_new, max_prompt, e);
}
