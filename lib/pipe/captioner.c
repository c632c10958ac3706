/* captioner.c — BLIP-2 captioning / VQA pipeline and the public
 * blipc_captioner_* API: image -> preprocess -> ViT -> Q-Former -> projection ->
 * OPT prefill ([projected queries ; embed(BOS + prompt)]) -> generation with the
 * KV cache -> decode. Images run in batches of up to max_batch. */
#include "captioner_internal.h"
#include "generate.h"
#include "image.h"
#include "kernels.h"
#include "opt.h"
#include "qformer.h"
#include "threads.h"
#include "tokenizer.h"
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cap_result {
    blipc_status status;
    char *error;      /* malloc'd message when status != OK */
    char *text;       /* malloc'd caption (NULL when failed) */
    int32_t *tokens;  /* new tokens (EOS included when generated) */
    int n_tokens;
    int width, height;
    int done;         /* captioned or failed (else: the call stopped before it) */
} cap_result;

struct blipc_captioner {
    blipc_captioner_params p;
    blipc_blip2_config cfg;
    blipc_preproc_config pp;
    blipc_safetensors *st;
    blipc_tokenizer *tok;     /* NULL when opened without one */
    blipc_vit vit;
    blipc_qformer qf;
    blipc_opt opt;
    blipc_opt_session *sess;
    blipc_gen_params gen_defaults;
    int eos_id, pad_id;
    int max_batch, n_threads;
    int call_batch;           /* min(images of the call, max_batch) */
    int S, Tv, Q, Dv, Dq, Dt, V;
    /* batch buffers, sized for max_batch at open */
    float *pixels;            /* [mb, 3, S, S] */
    float *vis;               /* [mb, Tv, Dv] */
    float *qfo;               /* [mb, Q, Dq] */
    float *proj;              /* [mb, Q, Dt] */
    float *scratch;           /* max(vit, qformer) scratch */
    float *logits;            /* [mb, V] */
    float *embeds;            /* [mb, Q + L, Dt], grown per call (outside the decode loop) */
    size_t embeds_cap;
    /* results of the last call */
    cap_result *res;
    size_t n_res;
    /* debug tensors of the last call (successful images in order) */
    float *dbg[4];
    size_t *dbg_idx;         /* result index of each kept row */
    size_t dbg_n, dbg_cap;
    blipc_caption_timings tm;
    blipc_logger log;
    blipc_err err;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}


/* ------------------------------------------------------------- parameters */

void blipc_captioner_default_params(blipc_captioner_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->max_batch = 8;
    p->weights = BLIPC_WEIGHTS_AUTO;
    blipc_image_default_params(&p->image);
}

/* HF's generation defaults (generate.c's, without a generation_config.json) */
static void hf_gen_defaults(blipc_gen_params *gp) { (void)blipc__gen_config_load(NULL, gp, NULL, NULL, NULL); }

void blipc_captioner_default_gen_params(const blipc_captioner *c, blipc_gen_params *gp) {
    if (!gp) return;
    if (c) *gp = c->gen_defaults;
    else hf_gen_defaults(gp);
}

/* ------------------------------------------------------------------- open */

static blipc_status load_progress(blipc_captioner *c, float f, blipc_err *e) {
    if (c->p.load_progress && !c->p.load_progress(c->p.load_progress_user, f))
        return blipc__errf(e, BLIPC_ERR_ABORTED, "loading aborted by the progress callback");
    return BLIPC_OK;
}

static blipc_wmode weight_mode(blipc_weight_type w) {
    switch (w) {
    case BLIPC_WEIGHTS_F32: return BLIPC_WMODE_F32;
    case BLIPC_WEIGHTS_BF16: return BLIPC_WMODE_BF16;
    default: return BLIPC_WMODE_AS_STORED;
    }
}

static float *falloc(size_t n) { return malloc((n ? n : 1) * sizeof(float)); }

blipc_status blipc__captioner_open_from(const blipc_blip2_config *cfg, blipc_safetensors *st, blipc_tokenizer *tok,
                                        const blipc_preproc_config *pp, const blipc_captioner_params *p,
                                        blipc_captioner **out, blipc_err *e) {
    *out = NULL;
    blipc_captioner *c = calloc(1, sizeof *c);
    if (!c) {
        blipc__st_free(st);
        blipc_tokenizer_free(tok);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "captioner: out of memory");
    }
    c->st = st;
    c->tok = tok;
    if (p) c->p = *p;
    else blipc_captioner_default_params(&c->p);
    c->log.fn = c->p.log_fn;
    c->log.user = c->p.log_user;
    c->cfg = *cfg;
    if (pp) c->pp = *pp;
    else blipc__preproc_config_default(&c->pp);
    blipc_status rc = BLIPC_OK;
    if (c->p.max_batch < 0 || c->p.max_batch > 256)
        rc = blipc__errf(e, BLIPC_ERR_INVALID_ARG, "captioner params: max_batch %d is outside [0, 256]", c->p.max_batch);
    if (!rc && (c->p.n_threads < 0 || c->p.n_threads > 1024))
        rc = blipc__errf(e, BLIPC_ERR_INVALID_ARG, "captioner params: n_threads %d is outside [0, 1024]", c->p.n_threads);
    if (!rc && (int)c->p.weights != BLIPC_WEIGHTS_AUTO && c->p.weights != BLIPC_WEIGHTS_F32 &&
        c->p.weights != BLIPC_WEIGHTS_BF16)
        rc = blipc__errf(e, BLIPC_ERR_INVALID_ARG, "captioner params: unknown weights type %d", (int)c->p.weights);
    c->max_batch = c->p.max_batch ? c->p.max_batch : 8;
    c->n_threads = c->p.n_threads > 0 ? c->p.n_threads : blipc__ncores();
    if (!rc && (c->pp.height != cfg->vision.image_size || c->pp.width != cfg->vision.image_size))
        rc = blipc__errf(e, BLIPC_ERR_MODEL,
                         "preprocessor_config.json: size %dx%d does not match vision_config.image_size %d",
                         c->pp.width, c->pp.height, cfg->vision.image_size);
    if (!rc) rc = load_progress(c, 0.0f, e);
    if (!rc) rc = blipc__vit_load(&c->vit, &cfg->vision, st, e);
    if (!rc) rc = load_progress(c, 0.3f, e);
    if (!rc) rc = blipc__qformer_load(&c->qf, cfg, st, e);
    if (!rc) rc = load_progress(c, 0.4f, e);
    if (!rc) rc = blipc__opt_load(&c->opt, &cfg->text, st, weight_mode(c->p.weights), e);
    if (!rc) rc = load_progress(c, 0.9f, e);
    if (!rc) rc = blipc__opt_session_new(&c->opt, c->n_threads, &c->sess, e);
    if (!rc) {
        c->S = cfg->vision.image_size;
        c->Tv = c->vit.n_tokens;
        c->Q = cfg->num_query_tokens;
        c->Dv = cfg->vision.hidden_size;
        c->Dq = cfg->qformer.hidden_size;
        c->Dt = cfg->text.hidden_size;
        c->V = cfg->text.vocab_size;
        size_t mb = (size_t)c->max_batch;
        size_t sv = blipc__vit_scratch_floats(&c->vit, c->max_batch);
        size_t sq = blipc__qformer_scratch_floats(&c->qf, c->max_batch, c->Tv);
        c->pixels = falloc(mb * 3 * (size_t)c->S * c->S);
        c->vis = falloc(mb * c->Tv * c->Dv);
        c->qfo = falloc(mb * c->Q * c->Dq);
        c->proj = falloc(mb * c->Q * c->Dt);
        c->scratch = falloc(sv > sq ? sv : sq);
        c->logits = falloc(mb * c->V);
        if (!c->pixels || !c->vis || !c->qfo || !c->proj || !c->scratch || !c->logits)
            rc = blipc__errf(e, BLIPC_ERR_NOMEM, "captioner: cannot allocate activations for max_batch %d",
                             c->max_batch);
    }
    c->eos_id = cfg->text.eos_token_id;
    c->pad_id = cfg->text.pad_token_id;
    hf_gen_defaults(&c->gen_defaults);
    if (!rc) rc = load_progress(c, 1.0f, e);
    if (rc) {
        blipc_captioner_free(c);
        return rc;
    }
    *out = c;
    return BLIPC_OK;
}

static blipc_status open_dir(const char *dir, const blipc_captioner_params *p, blipc_captioner **out, blipc_err *e) {
    blipc_blip2_config cfg;
    blipc_preproc_config pp;
    char path[4096];
    BLIPC_TRY(blipc__blip2_config_load(dir, &cfg, e));
    BLIPC_TRY(blipc__path_join(path, sizeof path, dir, "preprocessor_config.json", e));
    if (!blipc__file_exists(path))
        return blipc__errf(e, BLIPC_ERR_IO, "%s: missing (the image processor settings of the checkpoint)", path);
    BLIPC_TRY(blipc__preproc_config_load(path, &pp, e));
    static const char *const tok_files[] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        BLIPC_TRY(blipc__path_join(path, sizeof path, dir, tok_files[i], e));
        if (!blipc__file_exists(path))
            return blipc__errf(e, BLIPC_ERR_IO, "%s: missing (the OPT tokenizer needs vocab.json and merges.txt)",
                               path);
    }
    blipc_tokenizer *tok = NULL;
    BLIPC_TRY(blipc__tokenizer_open(dir, &tok, e));
    if (blipc_tokenizer_get_kind(tok) != BLIPC_TOKENIZER_BPE) {
        blipc_tokenizer_free(tok);
        return blipc__errf(e, BLIPC_ERR_MODEL, "%s: the tokenizer is not byte-level BPE (OPT)", dir);
    }
    blipc_safetensors *st = NULL;
    blipc_status rc = blipc__st_open_dir(dir, &st, e);
    if (rc) {
        blipc_tokenizer_free(tok);
        return rc;
    }
    blipc_captioner *c;
    BLIPC_TRY(blipc__captioner_open_from(&cfg, st, tok, &pp, p, &c, e));
    /* generation defaults: HF GenerationConfig overlaid with generation_config.json;
       eos: text_config.eos_token_id unless generation_config.json says otherwise */
    int eos = c->eos_id, pad = c->pad_id;
    rc = blipc__gen_config_load(dir, &c->gen_defaults, &eos, &pad, e);
    if (rc) {
        blipc_captioner_free(c);
        return rc;
    }
    c->eos_id = eos;
    c->pad_id = pad;
    blipc__logf(&c->log, BLIPC_LOG_INFO, "%s: BLIP-2 loaded (vision %dx%d, Q-Former %dx%d, %d queries, OPT %dx%d, vocab %d)",
                dir, cfg.vision.num_hidden_layers, cfg.vision.hidden_size, cfg.qformer.num_hidden_layers,
                cfg.qformer.hidden_size, cfg.num_query_tokens, cfg.text.num_hidden_layers, cfg.text.hidden_size,
                cfg.text.vocab_size);
    *out = c;
    return BLIPC_OK;
}

blipc_status blipc_captioner_open(const char *model_dir, const blipc_captioner_params *p, blipc_captioner **out,
                                  char *errbuf, size_t errbuf_size) {
    blipc_err e = {0};
    blipc_status rc;
    if (out) *out = NULL;
    if (!model_dir || !out)
        rc = blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_captioner_open: %s is NULL", model_dir ? "out" : "model_dir");
    else
        rc = open_dir(model_dir, p, out, &e);
    if (rc) blipc__err_copy(&e, errbuf, errbuf_size);
    else if (errbuf && errbuf_size) errbuf[0] = 0;
    return rc;
}

static void results_clear(blipc_captioner *c) {
    for (size_t i = 0; i < c->n_res; i++) {
        free(c->res[i].error);
        free(c->res[i].text);
        free(c->res[i].tokens);
    }
    free(c->res);
    c->res = NULL;
    c->n_res = 0;
}

void blipc_captioner_free(blipc_captioner *c) {
    if (!c) return;
    results_clear(c);
    for (int i = 0; i < 4; i++) free(c->dbg[i]);
    free(c->dbg_idx);
    blipc__opt_session_free(c->sess);
    blipc__vit_free(&c->vit);
    blipc__qformer_free(&c->qf);
    blipc__opt_free(&c->opt);
    free(c->pixels);
    free(c->vis);
    free(c->qfo);
    free(c->proj);
    free(c->scratch);
    free(c->logits);
    free(c->embeds);
    blipc_tokenizer_free(c->tok);
    blipc__st_free(c->st);
    free(c);
}

/* ---------------------------------------------------------------- running */

static void result_fail(cap_result *r, const blipc_err *e) {
    r->done = 1;
    r->status = e->status ? e->status : BLIPC_ERR_INTERNAL;
    free(r->error);
    r->error = xstrdup(e->msg[0] ? e->msg : blipc_status_str(r->status));
}

/* Keep the intermediates of B images for blipc_captioner_dump. */
static blipc_status debug_keep(blipc_captioner *c, int B, const size_t *idx, blipc_err *e) {
    size_t per[4] = {(size_t)3 * c->S * c->S, (size_t)c->Tv * c->Dv, (size_t)c->Q * c->Dq, (size_t)c->Q * c->Dt};
    const float *src[4] = {c->pixels, c->vis, c->qfo, c->proj};
    if (c->dbg_n + (size_t)B > c->dbg_cap) {
        size_t nc = c->dbg_cap ? c->dbg_cap : 8;
        while (nc < c->dbg_n + (size_t)B) nc *= 2;
        for (int i = 0; i < 4; i++) {
            float *p = realloc(c->dbg[i], nc * per[i] * sizeof(float));
            if (!p) return blipc__errf(e, BLIPC_ERR_NOMEM, "keep_debug_tensors: out of memory");
            c->dbg[i] = p;
        }
        size_t *pi = realloc(c->dbg_idx, nc * sizeof *pi);
        if (!pi) return blipc__errf(e, BLIPC_ERR_NOMEM, "keep_debug_tensors: out of memory");
        c->dbg_idx = pi;
        c->dbg_cap = nc;
    }
    for (int i = 0; i < 4; i++)
        memcpy(c->dbg[i] + c->dbg_n * per[i], src[i], (size_t)B * per[i] * sizeof(float));
    for (int b = 0; b < B; b++) c->dbg_idx[c->dbg_n + (size_t)b] = idx[b];
    c->dbg_n += (size_t)B;
    return BLIPC_OK;
}

/* Run B images whose pixels are in c->pixels through the model and generation;
 * results go to c->res[idx[b]]. ids: BOS + prompt (L ids); gc resolved. */
static blipc_status run_batch(blipc_captioner *c, int B, const size_t *idx, const int32_t *ids, int L,
                              const int32_t *proc_ids, int n_proc_ids, const blipc_gen_config *gc, blipc_err *e) {
    const int Q = c->Q, Dt = c->Dt, T = Q + L;
    blipc__threads_set(c->n_threads);
    double t0 = now_ms();
    blipc__vit_forward(&c->vit, c->pixels, B, c->vis, c->scratch);
    double t1 = now_ms();
    blipc__qformer_forward(&c->qf, c->vis, B, c->Tv, c->qfo, c->proj, c->scratch);
    double t2 = now_ms();
    c->tm.vision_ms += t1 - t0;
    c->tm.qformer_ms += t2 - t1;
    if (c->p.keep_debug_tensors) BLIPC_TRY(debug_keep(c, B, idx, e));

    /* inputs_embeds = [projected queries ; embed(BOS + prompt)] (HF's masked_scatter
       of the image placeholders gives the same rows) */
    float *emb = c->embeds;
    blipc__opt_embed(&c->opt, ids, L, emb + (size_t)Q * Dt);
    for (int b = 0; b < B; b++) {
        float *eb = emb + (size_t)b * T * Dt;
        if (b) memcpy(eb + (size_t)Q * Dt, emb + (size_t)Q * Dt, (size_t)L * Dt * sizeof(float));
        memcpy(eb, c->proj + (size_t)b * Q * Dt, (size_t)Q * Dt * sizeof(float));
    }
    /* KV slots / prefill rows for the largest batch of this call (grown only when a
       call needs more; no allocation inside the decode loop) */
    int slots = c->call_batch * gc->p.num_beams;
    int max_new = gc->p.max_new_tokens < gc->max_length_room ? gc->p.max_new_tokens : gc->max_length_room;
    BLIPC_TRY(blipc__opt_session_reserve(c->sess, slots, T + (max_new > 0 ? max_new : 1), c->call_batch * T, e));
    c->tm.kv_bytes = blipc__opt_session_bytes(c->sess);
    double t3 = now_ms();
    BLIPC_TRY(blipc__opt_prefill(c->sess, emb, B, T, c->logits, 0, e));
    double t4 = now_ms();
    c->tm.prefill_ms += t4 - t3;

    blipc_lm lm;
    blipc__opt_lm(c->sess, &lm);
    const int32_t *pids[256];
    int npids[256];
    for (int b = 0; b < B; b++) {
        pids[b] = proc_ids;
        npids[b] = n_proc_ids;
    }
    blipc_gen_output outs[256];
    memset(outs, 0, sizeof outs);
    blipc_status rc = blipc__generate(&lm, gc, B, c->logits, pids, npids, outs, e);
    double t5 = now_ms();
    c->tm.decode_ms += t5 - t4;
    int longest = 0;
    for (int b = 0; b < B; b++) longest = outs[b].n_tokens > longest ? outs[b].n_tokens : longest;
    c->tm.decode_steps += longest > 1 ? longest - 1 : 0;
    for (int b = 0; b < B && !rc; b++) {
        cap_result *r = &c->res[idx[b]];
        r->tokens = outs[b].tokens;
        r->n_tokens = outs[b].n_tokens;
        outs[b].tokens = NULL;
        r->status = BLIPC_OK;
        r->done = 1;
        int n = r->n_tokens;
        if (n > 0 && r->tokens[n - 1] == c->eos_id) n--; /* EOS stripped from the text */
        if (c->tok) {
            size_t len;
            blipc_err de = {0};
            if (blipc__tokenizer_decode(c->tok, r->tokens, (size_t)n, 1, -1, &r->text, &len, &de)) result_fail(r, &de);
        } else {
            r->text = xstrdup("");
            if (!r->text) r->status = BLIPC_ERR_NOMEM;
        }
    }
    for (int b = 0; b < B; b++) free(outs[b].tokens);
    c->tm.n_images += B;
    return rc;
}

typedef struct img_source {
    const char *const *paths;
    const blipc_image *const *images;
    const float *pixels;
} img_source;

static blipc_status caption_common(blipc_captioner *c, const img_source *src, size_t n, const int32_t *prompt_ids,
                                   size_t n_ids, const blipc_gen_params *gp_in) {
    blipc_err *e = &c->err;
    blipc__err_clear(e);
    results_clear(c);
    c->dbg_n = 0;
    memset(&c->tm, 0, sizeof c->tm);
    blipc_gen_config gc;
    memset(&gc, 0, sizeof gc);
    gc.p = gp_in ? *gp_in : c->gen_defaults;
    gc.eos_token_id = c->eos_id;
    gc.pad_token_id = c->pad_id;
    BLIPC_TRY(blipc__gen_params_check(&gc.p, e));
    if (n == 0) return BLIPC_OK;
    if (n > ((size_t)1 << 28)) return blipc__errf(e, BLIPC_ERR_LIMIT, "caption: %zu images is too many", n);

    /* ids = BOS + prompt; the ids HF's processors see also hold the Q image placeholders */
    const int32_t bos = c->cfg.text.bos_token_id;
    const int32_t *ids = prompt_ids;
    size_t L = n_ids;
    if (!ids || !L) {
        ids = &bos;
        L = 1;
    }
    const int Q = c->Q, maxpos = c->cfg.text.max_position_embeddings;
    if ((size_t)Q + L >= (size_t)maxpos)
        return blipc__errf(e, BLIPC_ERR_LIMIT,
                           "prompt: %zu tokens (BOS included) + %d image query tokens need %zu positions; the decoder "
                           "has %d (text_config.max_position_embeddings) and one must remain for generation",
                           L, Q, (size_t)Q + L, maxpos);
    for (size_t i = 0; i < L; i++)
        if (ids[i] < 0 || ids[i] >= c->V)
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "prompt: token id %d is outside the vocabulary (%d)",
                               (int)ids[i], c->V);
    const int T = Q + (int)L;
    gc.max_length_room = maxpos - T;
    size_t need = (size_t)c->max_batch * T * c->Dt;
    if (need > c->embeds_cap) {
        float *p = realloc(c->embeds, need * sizeof(float));
        if (!p) return blipc__errf(e, BLIPC_ERR_NOMEM, "caption: cannot allocate the decoder inputs");
        c->embeds = p;
        c->embeds_cap = need;
    }
    int32_t *proc_ids = malloc(((size_t)Q + L) * sizeof(int32_t));
    if (!proc_ids) return blipc__errf(e, BLIPC_ERR_NOMEM, "caption: out of memory");
    int n_proc = 0;
    if (c->cfg.image_token_index >= 0)
        for (int i = 0; i < Q; i++) proc_ids[n_proc++] = c->cfg.image_token_index;
    for (size_t i = 0; i < L; i++) proc_ids[n_proc++] = ids[i];

    c->res = calloc(n, sizeof *c->res);
    if (!c->res) {
        free(proc_ids);
        return blipc__errf(e, BLIPC_ERR_NOMEM, "caption: out of memory");
    }
    c->n_res = n;
    c->call_batch = n < (size_t)c->max_batch ? (int)n : c->max_batch;
    const size_t img_floats = (size_t)3 * c->S * c->S;
    size_t *idx = malloc((size_t)c->max_batch * sizeof *idx);
    blipc_status rc = idx ? BLIPC_OK : blipc__errf(e, BLIPC_ERR_NOMEM, "caption: out of memory");
    size_t i = 0;
    while (!rc && i < n) {
        int B = 0;
        for (; i < n && B < c->max_batch; i++) {
            cap_result *r = &c->res[i];
            blipc_err ie = {0};
            float *dst = c->pixels + (size_t)B * img_floats;
            double t0 = now_ms();
            if (src->pixels) {
                memcpy(dst, src->pixels + i * img_floats, img_floats * sizeof(float));
                r->width = r->height = c->S;
            } else {
                blipc_image *loaded = NULL;
                const blipc_image *img = NULL;
                blipc_status st = BLIPC_OK;
                if (src->paths) {
                    if (!src->paths[i]) st = blipc__errf(&ie, BLIPC_ERR_INVALID_ARG, "image %zu: path is NULL", i);
                    else st = blipc__image_load_file(src->paths[i], &c->p.image, &loaded, &ie);
                    img = loaded;
                } else {
                    img = src->images[i];
                    if (!img) st = blipc__errf(&ie, BLIPC_ERR_INVALID_ARG, "image %zu: NULL", i);
                }
                t0 = now_ms(); /* decode is not preprocessing */
                if (!st) {
                    r->width = img->width;
                    r->height = img->height;
                    st = blipc__preprocess_image(img, &c->pp, dst, NULL, &ie);
                }
                blipc_image_free(loaded);
                if (st) {
                    result_fail(r, &ie);
                    continue;
                }
            }
            c->tm.preprocess_ms += now_ms() - t0;
            idx[B++] = i;
        }
        if (B == 0) break;
        rc = run_batch(c, B, idx, ids, (int)L, proc_ids, n_proc, &gc, e);
        if (rc == BLIPC_ERR_ABORTED || rc == BLIPC_ERR_INVALID_ARG) break; /* concerns the whole call */
        if (rc) { /* e.g. out of memory in this batch: report on its images, go on */
            for (int b = 0; b < B; b++) result_fail(&c->res[idx[b]], e);
            rc = BLIPC_OK;
            blipc__err_clear(e);
        }
    }
    free(idx);
    free(proc_ids);
    /* images the call never reached (it stopped early) report why */
    for (size_t k = 0; k < n; k++)
        if (!c->res[k].done) {
            blipc_err ne = {0};
            blipc__errf(&ne, rc ? rc : BLIPC_ERR_INTERNAL, "image %zu: not captioned: %s", k,
                        rc ? e->msg : "the call stopped early");
            result_fail(&c->res[k], &ne);
        }
    return rc;
}

static blipc_status tokenize_prompt(blipc_captioner *c, const char *prompt, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!prompt || !*prompt) return BLIPC_OK;
    if (!c->tok)
        return blipc__errf(&c->err, BLIPC_ERR_INVALID_ARG, "prompt: this captioner has no tokenizer (opened from parts)");
    blipc_status rc = blipc__tokenizer_encode(c->tok, prompt, strlen(prompt), 1, 0, ids, n, &c->err);
    if (rc) blipc__err_prefix(&c->err, "prompt: ");
    return rc;
}

static blipc_status caption_text(blipc_captioner *c, const img_source *src, size_t n, const char *prompt,
                                 const blipc_gen_params *gp) {
    int32_t *ids;
    size_t nid;
    blipc__err_clear(&c->err);
    results_clear(c);
    BLIPC_TRY(tokenize_prompt(c, prompt, &ids, &nid));
    blipc_status rc = caption_common(c, src, n, ids, nid, gp);
    free(ids);
    return rc;
}

blipc_status blipc_captioner_caption_files(blipc_captioner *c, const char *const *paths, size_t n, const char *prompt,
                                           const blipc_gen_params *gp) {
    if (!c) return BLIPC_ERR_INVALID_ARG;
    if (!paths && n) {
        results_clear(c);
        return blipc__errf(&c->err, BLIPC_ERR_INVALID_ARG, "caption_files: paths is NULL");
    }
    img_source src = {paths, NULL, NULL};
    return caption_text(c, &src, n, prompt, gp);
}

blipc_status blipc_captioner_caption_images(blipc_captioner *c, const blipc_image *const *images, size_t n,
                                            const char *prompt, const blipc_gen_params *gp) {
    if (!c) return BLIPC_ERR_INVALID_ARG;
    if (!images && n) {
        results_clear(c);
        return blipc__errf(&c->err, BLIPC_ERR_INVALID_ARG, "caption_images: images is NULL");
    }
    img_source src = {NULL, images, NULL};
    return caption_text(c, &src, n, prompt, gp);
}

blipc_status blipc__captioner_caption_pixels(blipc_captioner *c, const float *pixels, size_t n,
                                             const int32_t *prompt_ids, size_t n_ids, const blipc_gen_params *gp) {
    if (!c) return BLIPC_ERR_INVALID_ARG;
    if (!pixels && n) return blipc__errf(&c->err, BLIPC_ERR_INVALID_ARG, "caption_pixels: pixels is NULL");
    img_source src = {NULL, NULL, pixels};
    return caption_common(c, &src, n, prompt_ids, n_ids, gp);
}

const blipc_caption_timings *blipc__captioner_timings(const blipc_captioner *c) { return c ? &c->tm : NULL; }

/* ---------------------------------------------------------------- results */

size_t blipc_captioner_result_count(const blipc_captioner *c) { return c ? c->n_res : 0; }

blipc_status blipc_captioner_result_status(const blipc_captioner *c, size_t i) {
    if (!c || i >= c->n_res) return BLIPC_ERR_INVALID_ARG;
    return c->res[i].status;
}

const char *blipc_captioner_result_error(const blipc_captioner *c, size_t i) {
    if (!c || i >= c->n_res) return NULL;
    return c->res[i].error;
}

const char *blipc_captioner_result_text(const blipc_captioner *c, size_t i) {
    if (!c || i >= c->n_res) return NULL;
    return c->res[i].text;
}

const int32_t *blipc_captioner_result_tokens(const blipc_captioner *c, size_t i, size_t *n_tokens) {
    if (n_tokens) *n_tokens = 0;
    if (!c || i >= c->n_res || c->res[i].status) return NULL;
    if (n_tokens) *n_tokens = (size_t)c->res[i].n_tokens;
    return c->res[i].tokens;
}

int blipc_captioner_result_image_size(const blipc_captioner *c, size_t i, int *width, int *height) {
    if (!c || i >= c->n_res || !c->res[i].width) return 0;
    if (width) *width = c->res[i].width;
    if (height) *height = c->res[i].height;
    return 1;
}

blipc_status blipc_captioner_dump(blipc_captioner *c, const char *path) {
    if (!c) return BLIPC_ERR_INVALID_ARG;
    blipc__err_clear(&c->err);
    if (!path) return blipc__errf(&c->err, BLIPC_ERR_INVALID_ARG, "dump: path is NULL");
    if (!c->p.keep_debug_tensors)
        return blipc__errf(&c->err, BLIPC_ERR_INVALID_ARG,
                           "dump: the captioner was opened without keep_debug_tensors = 1");
    if (!c->dbg_n) return blipc__errf(&c->err, BLIPC_ERR_INVALID_ARG, "dump: the last call captioned no image");
    int64_t N = (int64_t)c->dbg_n;
    blipc_st_write_tensor t[4] = {
        {"pixel_values", BLIPC_DT_F32, 4, {N, 3, c->S, c->S}, c->dbg[0]},
        {"vision_last_hidden_state", BLIPC_DT_F32, 3, {N, c->Tv, c->Dv}, c->dbg[1]},
        {"qformer_last_hidden_state", BLIPC_DT_F32, 3, {N, c->Q, c->Dq}, c->dbg[2]},
        {"language_projection", BLIPC_DT_F32, 3, {N, c->Q, c->Dt}, c->dbg[3]},
    };
    /* which results the rows belong to */
    size_t cap = 16 + c->dbg_n * 24;
    char *rows = malloc(cap);
    if (!rows) return blipc__errf(&c->err, BLIPC_ERR_NOMEM, "dump: out of memory");
    size_t k = 0;
    rows[0] = 0;
    for (size_t i = 0; i < c->dbg_n; i++) k += (size_t)snprintf(rows + k, cap - k, "%s%zu", i ? "," : "", c->dbg_idx[i]);
    const char *meta[] = {"image_indices", rows, "producer", "libblipc"};
    blipc_status rc = blipc__st_write(path, t, 4, meta, 2, &c->err);
    free(rows);
    return rc;
}

const char *blipc_captioner_errmsg(const blipc_captioner *c) { return c ? c->err.msg : "captioner is NULL"; }
