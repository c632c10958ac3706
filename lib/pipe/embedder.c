/* embedder.c — the public blipc_embedder API: WordPiece -> BertModel ->
 * sentence-transformers mean pooling over the attention mask -> L2 normalise.
 *
 * A call tokenizes (and validates) every text first, then runs the texts in
 * order of token count, in chunks of at most EMB_MAX_BATCH padded to the
 * chunk's longest text. Padding never changes a text's result: padded keys are
 * masked with -inf (their softmax weight is exactly 0) and every other
 * operation is row-wise, so a text gets the same vector alone or in any batch. */
#include "blipc.h"
#include "arena.h"
#include "bert.h"
#include "err.h"
#include "hfconfig.h"
#include "kernels.h"
#include "safetensors.h"
#include "threads.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define EMB_MAX_BATCH 32

struct blipc_embedder {
    blipc_bert_config cfg;
    blipc_safetensors *st;
    blipc_bert_weights w;
    blipc_tokenizer *tok;
    blipc_arena arena;     /* sized once for EMB_MAX_BATCH x max_seq_length */
    int n_threads;
    int max_len;           /* tokens per text incl. [CLS]/[SEP] */
    int32_t *ids, *mask;   /* [EMB_MAX_BATCH * max_len] one chunk */
    blipc_logger log;
    blipc_err err;
};

void blipc_embedder_default_params(blipc_embedder_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
}

void blipc_embedder_free(blipc_embedder *m) {
    if (!m) return;
    blipc__bert_free(&m->w);
    blipc__st_free(m->st);
    blipc_tokenizer_free(m->tok);
    blipc__arena_free(&m->arena);
    free(m->ids);
    free(m->mask);
    free(m);
}

static blipc_status emb_open(const char *dir, const blipc_embedder_params *p, blipc_embedder *m, blipc_err *e) {
    if (!dir) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "embedder: model_dir is NULL");
    if (!blipc__dir_exists(dir)) return blipc__errf(e, BLIPC_ERR_IO, "%s: model directory does not exist", dir);
    BLIPC_TRY(blipc__bert_config_load(dir, &m->cfg, e));
    if (!m->cfg.pooling_mean)
        return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "%s: only mean pooling is supported", dir);
    m->max_len = m->cfg.max_seq_length;
    if (p->max_seq_length < 0)
        return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "embedder params: max_seq_length %d is negative", p->max_seq_length);
    if (p->max_seq_length > 0) {
        if (p->max_seq_length < 2 || p->max_seq_length > m->cfg.max_position_embeddings)
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG,
                               "embedder params: max_seq_length %d is outside [2, max_position_embeddings %d]",
                               p->max_seq_length, m->cfg.max_position_embeddings);
        m->max_len = p->max_seq_length;
    }
    BLIPC_TRY(blipc__st_open_dir(dir, &m->st, e));
    BLIPC_TRY(blipc__bert_load(m->st, &m->cfg, &m->w, e));
    BLIPC_TRY(blipc__tokenizer_open(dir, &m->tok, e));
    if (blipc_tokenizer_get_kind(m->tok) != BLIPC_TOKENIZER_WORDPIECE)
        return blipc__errf(e, BLIPC_ERR_MODEL, "%s: the tokenizer is not WordPiece (no vocab.txt?)", dir);
    if (blipc_tokenizer_vocab_size(m->tok) > m->cfg.vocab_size)
        return blipc__errf(e, BLIPC_ERR_MODEL, "%s: tokenizer has %d tokens but config.json vocab_size is %d", dir,
                           blipc_tokenizer_vocab_size(m->tok), m->cfg.vocab_size);
    m->n_threads = p->n_threads > 0 ? p->n_threads : blipc__ncores();
    size_t cells = (size_t)EMB_MAX_BATCH * m->max_len;
    m->ids = malloc(cells * sizeof *m->ids);
    m->mask = malloc(cells * sizeof *m->mask);
    if (!m->ids || !m->mask) return blipc__errf(e, BLIPC_ERR_NOMEM, "embedder: out of memory");
    BLIPC_TRY(blipc__arena_init(&m->arena, blipc__bert_scratch_bytes(&m->w, EMB_MAX_BATCH, m->max_len, m->n_threads), e));
    blipc__logf(&m->log, BLIPC_LOG_INFO, "%s: BERT %d layers, hidden %d, %d heads, max_seq_length %d, %d threads", dir,
                m->cfg.num_hidden_layers, m->cfg.hidden_size, m->cfg.num_attention_heads, m->max_len, m->n_threads);
    return BLIPC_OK;
}

blipc_status blipc_embedder_open(const char *model_dir, const blipc_embedder_params *p, blipc_embedder **out,
                                 char *errbuf, size_t errbuf_size) {
    blipc_err e;
    blipc__err_clear(&e);
    if (!out) {
        blipc__errf(&e, BLIPC_ERR_INVALID_ARG, "blipc_embedder_open: out is NULL");
        blipc__err_copy(&e, errbuf, errbuf_size);
        return e.status;
    }
    *out = NULL;
    blipc_embedder_params defaults;
    blipc_embedder_default_params(&defaults);
    if (!p) p = &defaults;
    blipc_embedder *m = calloc(1, sizeof *m);
    if (!m) {
        blipc__errf(&e, BLIPC_ERR_NOMEM, "blipc_embedder_open: out of memory");
        blipc__err_copy(&e, errbuf, errbuf_size);
        return e.status;
    }
    m->log.fn = p->log_fn;
    m->log.user = p->log_user;
    blipc_status rc = emb_open(model_dir, p, m, &e);
    if (rc) {
        blipc__logf(&m->log, BLIPC_LOG_ERROR, "%s", e.msg);
        blipc_embedder_free(m);
        blipc__err_copy(&e, errbuf, errbuf_size);
        return rc;
    }
    blipc__err_copy(&e, errbuf, errbuf_size);
    *out = m;
    return BLIPC_OK;
}

int blipc_embedder_dim(const blipc_embedder *m) { return m ? m->cfg.hidden_size : 0; }

const char *blipc_embedder_errmsg(const blipc_embedder *m) { return m ? m->err.msg : "embedder is NULL"; }

typedef struct emb_text {
    int32_t *ids;
    size_t n;
    size_t index;  /* position in the caller's array */
} emb_text;

static int cmp_len(const void *a, const void *b) {
    const emb_text *x = a, *y = b;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* stable */
}

static blipc_status embed_chunk(blipc_embedder *m, const emb_text *t, int B, float *out, blipc_err *e) {
    const int D = m->cfg.hidden_size;
    int T = 0;
    for (int b = 0; b < B; b++) T = (int)t[b].n > T ? (int)t[b].n : T;
    for (int b = 0; b < B; b++) {
        int32_t *ir = m->ids + (size_t)b * T, *mr = m->mask + (size_t)b * T;
        for (int i = 0; i < T; i++) {
            ir[i] = i < (int)t[b].n ? t[b].ids[i] : 0; /* [PAD] */
            mr[i] = i < (int)t[b].n;
        }
    }
    size_t mark = blipc__arena_mark(&m->arena);
    float *hs;
    blipc__threads_set(m->n_threads);
    blipc_status rc = blipc__bert_forward(&m->w, m->ids, m->mask, B, T, m->n_threads, &m->arena, &hs, NULL, e);
    if (!rc) {
        for (int b = 0; b < B; b++) {
            float *o = out + t[b].index * (size_t)D;
            blipc__mean_pool(hs + (size_t)b * T * D, m->mask + (size_t)b * T, T, D, o);
            if (m->cfg.normalize) blipc__l2_normalize(o, D);
        }
    }
    blipc__arena_reset(&m->arena, mark);
    return rc;
}

blipc_status blipc_embedder_embed(blipc_embedder *m, const char *const *texts, size_t n, float *out) {
    if (!m) return BLIPC_ERR_INVALID_ARG;
    blipc_err *e = &m->err;
    blipc__err_clear(e);
    if (n == 0) return BLIPC_OK;
    if (!texts || !out) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "blipc_embedder_embed: %s is NULL", texts ? "out" : "texts");
    emb_text *t = calloc(n, sizeof *t);
    if (!t) return blipc__errf(e, BLIPC_ERR_NOMEM, "blipc_embedder_embed: out of memory for %zu texts", n);
    blipc_status rc = BLIPC_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        t[i].index = i;
        if (!texts[i]) {
            rc = blipc__errf(e, BLIPC_ERR_INVALID_ARG, "text %zu is NULL", i);
            break;
        }
        rc = blipc__tokenizer_encode(m->tok, texts[i], strlen(texts[i]), 1, m->max_len, &t[i].ids, &t[i].n, e);
        if (rc) {
            blipc__err_prefix(e, "text %zu", i);
            break;
        }
        if (t[i].n == 0 || t[i].n > (size_t)m->max_len)
            rc = blipc__errf(e, BLIPC_ERR_INTERNAL, "text %zu: tokenizer returned %zu ids (max_length %d)", i, t[i].n,
                             m->max_len);
    }
    if (!rc) {
        qsort(t, n, sizeof *t, cmp_len);
        for (size_t i = 0; i < n && !rc; i += EMB_MAX_BATCH) {
            int B = n - i < EMB_MAX_BATCH ? (int)(n - i) : EMB_MAX_BATCH;
            rc = embed_chunk(m, t + i, B, out, e);
        }
    }
    for (size_t i = 0; i < n; i++) free(t[i].ids);
    free(t);
    return rc;
}
