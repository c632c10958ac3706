/* bert.c — BertModel forward (HF modeling_bert, eval mode, absolute positions,
 * token_type_ids = 0, post-LN layers, exact-erf GELU). */
#include "bert.h"
#include "bert_kernels.h"
#include "gemm_small.h"
#include "kernels.h"
#include "threads.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* BERT_X86 comes from bert_kernels.h */

/* ------------------------------------------------------------------ load */

static blipc_status get(blipc_safetensors *st, const char *prefix, const float **out, blipc_err *e, int ndim, int64_t d0,
                        int64_t d1, const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    int64_t shape[2] = {d0, d1};
    return blipc__st_get_f32(st, full, ndim, shape, out, e);
}

blipc_status blipc__bert_load(blipc_safetensors *st, const blipc_bert_config *c, blipc_bert_weights *w,
                              blipc_err *e) {
    memset(w, 0, sizeof *w);
    const int D = c->hidden_size, F = c->intermediate_size, L = c->num_hidden_layers;
    w->D = D;
    w->H = c->num_attention_heads;
    w->F = F;
    w->L = L;
    w->V = c->vocab_size;
    w->P = c->max_position_embeddings;
    w->eps = c->layer_norm_eps;
    if (D / w->H > 256)
        return blipc__errf(e, BLIPC_ERR_UNSUPPORTED, "config.json: head size %d (hidden_size / num_attention_heads) is over 256",
                           D / w->H);
    /* sentence-transformers saves a bare BertModel; a BertFor* checkpoint has "bert." */
    const char *pre = "";
    if (!blipc__st_find(st, "embeddings.word_embeddings.weight") &&
        blipc__st_find(st, "bert.embeddings.word_embeddings.weight"))
        pre = "bert.";
    blipc_status rc;
#define GET(dst, nd, a, b, nm)                                 \
    do {                                                       \
        if ((rc = get(st, pre, &(dst), e, nd, a, b, nm))) goto fail; \
    } while (0)
    GET(w->word_emb, 2, w->V, D, "embeddings.word_embeddings.weight");
    GET(w->pos_emb, 2, w->P, D, "embeddings.position_embeddings.weight");
    GET(w->type_emb, 2, c->type_vocab_size, D, "embeddings.token_type_embeddings.weight");
    GET(w->emb_ln_g, 1, D, 0, "embeddings.LayerNorm.weight");
    GET(w->emb_ln_b, 1, D, 0, "embeddings.LayerNorm.bias");
    w->layer = calloc((size_t)L, sizeof *w->layer);
    size_t per = (size_t)3 * D * D + (size_t)3 * D;
    w->qkv_buf = malloc((size_t)L * per * sizeof(float));
    if (!w->layer || !w->qkv_buf) {
        rc = blipc__errf(e, BLIPC_ERR_NOMEM, "BERT: cannot allocate the fused QKV weights (%zu bytes)",
                         (size_t)L * per * sizeof(float));
        goto fail;
    }
    for (int i = 0; i < L; i++) {
        blipc_bert_layer *ly = &w->layer[i];
        char nm[160];
        static const char *const qkv[3] = {"query", "key", "value"};
        float *qw = w->qkv_buf + (size_t)i * per, *qb = qw + (size_t)3 * D * D;
        for (int j = 0; j < 3; j++) {
            const float *t;
            snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.%s.weight", i, qkv[j]);
            GET(t, 2, D, D, nm);
            memcpy(qw + (size_t)j * D * D, t, (size_t)D * D * sizeof(float));
            snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.%s.bias", i, qkv[j]);
            GET(t, 1, D, 0, nm);
            memcpy(qb + (size_t)j * D, t, (size_t)D * sizeof(float));
        }
        ly->qkv_w = qw;
        ly->qkv_b = qb;
#define LGET(dst, nd, a, b, suffix)                                         \
    do {                                                                    \
        snprintf(nm, sizeof nm, "encoder.layer.%d.%s", i, suffix);          \
        GET(dst, nd, a, b, nm);                                             \
    } while (0)
        LGET(ly->attn_out_w, 2, D, D, "attention.output.dense.weight");
        LGET(ly->attn_out_b, 1, D, 0, "attention.output.dense.bias");
        LGET(ly->ln1_g, 1, D, 0, "attention.output.LayerNorm.weight");
        LGET(ly->ln1_b, 1, D, 0, "attention.output.LayerNorm.bias");
        LGET(ly->ffn_in_w, 2, F, D, "intermediate.dense.weight");
        LGET(ly->ffn_in_b, 1, F, 0, "intermediate.dense.bias");
        LGET(ly->ffn_out_w, 2, D, F, "output.dense.weight");
        LGET(ly->ffn_out_b, 1, D, 0, "output.dense.bias");
        LGET(ly->ln2_g, 1, D, 0, "output.LayerNorm.weight");
        LGET(ly->ln2_b, 1, D, 0, "output.LayerNorm.bias");
#undef LGET
    }
#undef GET
    if ((rc = blipc__bert_pack(w, e))) goto fail;
    return BLIPC_OK;
fail:
    blipc__bert_free(w);
    return rc;
}

void blipc__bert_free(blipc_bert_weights *w) {
    if (!w) return;
    free(w->layer);
    free(w->qkv_buf);
    free(w->pack_buf);
    memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------ packing
 * W [N, K] (HF [out, in]) -> panels of PN output columns: panel p holds
 * W[p*PN + c][k] at [p][k][c], so the kernel reads one contiguous PN-wide row
 * of weights per k. Columns past N are zero. */
#define PN BLIPC_BERT_PANEL

static size_t packed_floats(int N, int K) { return (size_t)((N + PN - 1) / PN) * PN * (size_t)K; }

static void pack_panels(const float *W, int N, int K, float *out) {
    const int np = (N + PN - 1) / PN;
    for (int p = 0; p < np; p++) {
        float *panel = out + (size_t)p * K * PN;
        for (int c = 0; c < PN; c++) {
            const int n = p * PN + c;
            if (n < N) {
                const float *wr = W + (size_t)n * K;
                for (int k = 0; k < K; k++) panel[(size_t)k * PN + c] = wr[k];
            } else {
                for (int k = 0; k < K; k++) panel[(size_t)k * PN + c] = 0.0f;
            }
        }
    }
}

blipc_status blipc__bert_pack(blipc_bert_weights *w, blipc_err *e) {
    free(w->pack_buf);
    w->pack_buf = NULL;
    for (int i = 0; i < w->L; i++)
        w->layer[i].qkv_p = w->layer[i].attn_out_p = w->layer[i].ffn_in_p = w->layer[i].ffn_out_p = NULL;
    if (blipc__cpu_isa() < 2) return BLIPC_OK; /* the panel kernel is AVX-512 only */
    const int D = w->D, F = w->F;
    const size_t per = packed_floats(3 * D, D) + packed_floats(D, D) + packed_floats(F, D) + packed_floats(D, F);
    const size_t bytes = (size_t)w->L * per * sizeof(float);
    if (posix_memalign((void **)&w->pack_buf, 64, bytes) != 0) {
        w->pack_buf = NULL;
        return blipc__errf(e, BLIPC_ERR_NOMEM, "BERT: cannot allocate the packed linear weights (%zu bytes)", bytes);
    }
    for (int i = 0; i < w->L; i++) {
        blipc_bert_layer *ly = &w->layer[i];
        float *p = w->pack_buf + (size_t)i * per;
        pack_panels(ly->qkv_w, 3 * D, D, p);
        ly->qkv_p = p;
        p += packed_floats(3 * D, D);
        pack_panels(ly->attn_out_w, D, D, p);
        ly->attn_out_p = p;
        p += packed_floats(D, D);
        pack_panels(ly->ffn_in_w, F, D, p);
        ly->ffn_in_p = p;
        p += packed_floats(F, D);
        pack_panels(ly->ffn_out_w, D, F, p);
        ly->ffn_out_p = p;
    }
    return BLIPC_OK;
}

/* per-thread attention scratch: K^T [dh, Tp] + scores [AT_ROWS, Tp], Tp = T rounded up to 32 */
#define AT_ROWS 8
static size_t attn_tp(int T) { return (size_t)(T + 31) / 32 * 32; }

typedef struct attn_job {
    const float *qkv, *kbias;
    float *out, *scratch;
    int B, T, D, H, dh;
    float scale;
    int isa; /* blipc__cpu_isa() */
} attn_job;

static void attn_part(void *arg, int ti, int nt) {
    attn_job *j = arg;
    int tasks = j->B * j->H;
    const size_t Tp = attn_tp(j->T);
    float *kt = j->scratch + (size_t)ti * ((size_t)j->dh * Tp + AT_ROWS * Tp), *s = kt + (size_t)j->dh * Tp;
    for (int t = ti; t < tasks; t += nt) {
        int b = t / j->H, h = t % j->H;
        const float *kb = j->kbias + (size_t)b * j->T;
        int nk = j->T; /* keys after the last real one are right padding */
        while (nk > 0 && kb[nk - 1] != 0.0f) nk--;
        float *o = j->out + (size_t)b * j->T * j->D;
        if (nk == 0) { /* no real token at all: zeros, as a fully masked softmax */
            for (int i = 0; i < j->T; i++) memset(o + (size_t)i * j->D + (size_t)h * j->dh, 0, (size_t)j->dh * sizeof(float));
            continue;
        }
#ifdef BERT_X86
        if (j->isa == 2 && j->dh % 16 == 0) {
            const int tn = t + nt; /* this thread's next task */
            const float *pf = tn < tasks ? j->qkv + (size_t)(tn / j->H) * j->T * 3 * j->D + (size_t)(tn % j->H) * j->dh
                                         : NULL;
            blipc__bert_attn_head512(j->qkv + (size_t)b * j->T * 3 * j->D, j->T, nk, j->D, j->dh, h, j->scale, kb, o, kt, s, pf,
                         j->T);
            continue;
        }
#endif
        blipc__bert_attn_head(j->qkv + (size_t)b * j->T * 3 * j->D, j->T, nk, j->D, j->dh, h, j->scale, kb, o, kt, s);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


/* ------------------------------------------------------- the layer team
 * All encoder layers run inside ONE team of n threads that meet at a barrier
 * between phases (threads sleep in the barrier: nothing spins). Every BLAS call
 * is a single-threaded sgemm on a thread's share of the output columns, so
 * OpenBLAS's own pool stays idle: one parallel runtime at a time. */

typedef struct fwd_ctx {
    const blipc_bert_weights *w;
    float *x, *qkv, *tmp, *hid, *kbias, *ascr;
    float *x2, *priv;        /* few-row mode only (else NULL): second residual buffer, per-thread [2, M, D] */
    int B, T;
    float scale;
    blipc_bert_prof *prof;
    int nt;                  /* threads in the team */
    int isa;                 /* blipc__cpu_isa() */
    pthread_barrier_t bar;
} fwd_ctx;

static void team_sync(fwd_ctx *c) {
    if (c->nt > 1) pthread_barrier_wait(&c->bar);
}

/* y[:, cols of thread ti] = x W^T (+ b), optionally GELU'd: the packed panel
 * kernel when Wp is set, else sgemm / gemm_small (blipc__linear) on a share of
 * columns in multiples of 16 (with GELU, the bias is added in the GELU pass
 * instead of being copied into y for sgemm's beta = 1). */
static void dense_part(const float *x, int M, int K, const float *W, const float *Wp, const float *b, int N, float *y,
                       int gelu, int ti, int nt) {
    if (Wp) {
        blipc__bert_dense_packed(x, M, K, Wp, b, N, y, gelu, ti, nt);
        return;
    }
    int per = (N + nt - 1) / nt;
    per = (per + 15) / 16 * 16;
    int n0 = ti * per, n1 = n0 + per > N ? N : n0 + per;
    if (n0 >= n1) return;
    blipc__linear(x, M, K, 0, W + (size_t)n0 * K, b && !gelu ? b + n0 : NULL, n1 - n0, y + n0, N);
    if (gelu)
        for (int i = 0; i < M; i++) {
            float *yr = y + (size_t)i * N + n0;
            if (b)
                for (int n = 0; n < n1 - n0; n++) yr[n] += b[n0 + n];
            blipc__bert_gelu(yr, (size_t)(n1 - n0));
        }
}

static void rows_range(int M, int ti, int nt, int *lo, int *hi) {
    int per = (M + nt - 1) / nt;
    *lo = ti * per > M ? M : ti * per;
    *hi = *lo + per > M ? M : *lo + per;
}

/* Few rows (B*T <= FEW_ROWS, e.g. one short text): the phases are so short that
 * the barriers cost more than the work between them. Each thread computes the
 * attention of every head and the LayerNorms of every row itself (identical
 * results in every thread, into its own buffers) and goes straight on to its
 * columns of the next dense layer: 4 barriers per layer instead of 7. The
 * residual stream alternates between x and x2 so that no thread writes rows
 * another may still be reading. Same kernels, same per-row arithmetic as the
 * other mode: the results are identical. */
#define FEW_ROWS 64
static void team_main_few(fwd_ctx *c, int ti, blipc_bert_prof *prof) {
    const blipc_bert_weights *w = c->w;
    const int D = w->D, F = w->F, H = w->H, dh = D / H, nt = c->nt;
    const int M = c->B * c->T;
    double t0 = prof ? now() : 0, t1;
#define LAPX(field, sync)             \
    do {                              \
        if (sync) team_sync(c);       \
        if (prof) {                   \
            t1 = now();               \
            prof->field += t1 - t0;   \
            t0 = t1;                  \
        }                             \
    } while (0)
    int r0, r1;
    rows_range(M, ti, nt, &r0, &r1);
    float *xp = c->priv + (size_t)ti * 2 * M * D, *ctx = xp + (size_t)M * D;
    const size_t aslot = ((size_t)dh + AT_ROWS) * attn_tp(c->T);
    const float *xin = c->x; /* layer 0: the embeddings (read-only here) */
    float *xa = c->x, *xb = c->x2;
    for (int l = 0; l < w->L; l++) {
        const blipc_bert_layer *ly = &w->layer[l];
        dense_part(xin, M, D, ly->qkv_w, ly->qkv_p, ly->qkv_b, 3 * D, c->qkv, 0, ti, nt);
        LAPX(t_dense, 1);
        attn_job aj = {c->qkv, c->kbias, ctx, c->ascr + (size_t)ti * aslot, c->B, c->T, D, H, dh, c->scale, c->isa};
        attn_part(&aj, 0, 1); /* every head, into this thread's ctx */
        LAPX(t_attn, 0);
        dense_part(ctx, M, D, ly->attn_out_w, ly->attn_out_p, NULL, D, c->tmp, 0, ti, nt);
        LAPX(t_dense, 1);
        /* x2 = LN(x + tmp + b): all rows into xp, this thread's rows also into x2 */
        blipc__bert_residual_layernorm(xp, xa, c->tmp, ly->attn_out_b, ly->ln1_g, ly->ln1_b, M, D, w->eps);
        memcpy(xb + (size_t)r0 * D, xp + (size_t)r0 * D, (size_t)(r1 - r0) * D * sizeof(float));
        LAPX(t_norm, 0);
        dense_part(xp, M, D, ly->ffn_in_w, ly->ffn_in_p, ly->ffn_in_b, F, c->hid, 1, ti, nt);
        LAPX(t_dense, 1);
        dense_part(c->hid, M, F, ly->ffn_out_w, ly->ffn_out_p, NULL, D, c->tmp, 0, ti, nt);
        LAPX(t_dense, 1);
        /* x = LN(x2 + tmp + b) */
        blipc__bert_residual_layernorm(xp, xb, c->tmp, ly->ffn_out_b, ly->ln2_g, ly->ln2_b, M, D, w->eps);
        memcpy(xa + (size_t)r0 * D, xp + (size_t)r0 * D, (size_t)(r1 - r0) * D * sizeof(float));
        LAPX(t_norm, 0);
        xin = xp;
    }
#undef LAPX
    /* the caller joins the team before reading x */
}

static void team_main(fwd_ctx *c, int ti) {
    const blipc_bert_weights *w = c->w;
    const int D = w->D, F = w->F, H = w->H, dh = D / H, nt = c->nt;
    const int BT = c->B * c->T;
    blipc_bert_prof *prof = ti == 0 ? c->prof : NULL;
    double t0 = prof ? now() : 0, t1;
#define LAP(field)                    \
    do {                              \
        team_sync(c);                 \
        if (prof) {                   \
            t1 = now();               \
            prof->field += t1 - t0;   \
            t0 = t1;                  \
        }                             \
    } while (0)
    int r0, r1;
    rows_range(BT, ti, nt, &r0, &r1);
    if (c->priv) {
        team_main_few(c, ti, prof);
        return;
    }
    for (int l = 0; l < w->L; l++) {
        const blipc_bert_layer *ly = &w->layer[l];
        dense_part(c->x, BT, D, ly->qkv_w, ly->qkv_p, ly->qkv_b, 3 * D, c->qkv, 0, ti, nt);
        LAP(t_dense);
        attn_job aj = {c->qkv, c->kbias, c->tmp, c->ascr, c->B, c->T, D, H, dh, c->scale, c->isa};
        attn_part(&aj, ti, nt);
        LAP(t_attn);
        /* x = LN(x + dense(ctx) + b): dense into qkv (free now) */
        dense_part(c->tmp, BT, D, ly->attn_out_w, ly->attn_out_p, NULL, D, c->qkv, 0, ti, nt);
        LAP(t_dense);
        blipc__bert_residual_layernorm(c->x + (size_t)r0 * D, c->x + (size_t)r0 * D, c->qkv + (size_t)r0 * D, ly->attn_out_b, ly->ln1_g, ly->ln1_b,
                           r1 - r0, D, w->eps);
        LAP(t_norm);
        /* x = LN(x + W2 gelu(W1 x + b1) + b2) */
        dense_part(c->x, BT, D, ly->ffn_in_w, ly->ffn_in_p, ly->ffn_in_b, F, c->hid, 1, ti, nt);
        LAP(t_dense); /* includes the GELU of each thread's columns */
        dense_part(c->hid, BT, F, ly->ffn_out_w, ly->ffn_out_p, NULL, D, c->tmp, 0, ti, nt);
        LAP(t_dense);
        blipc__bert_residual_layernorm(c->x + (size_t)r0 * D, c->x + (size_t)r0 * D, c->tmp + (size_t)r0 * D, ly->ffn_out_b, ly->ln2_g, ly->ln2_b,
                           r1 - r0, D, w->eps);
        LAP(t_norm);
    }
#undef LAP
}

typedef struct team_arg {
    fwd_ctx *c;
    int ti;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *go; /* 0 wait, 1 run, -1 quit */
} team_arg;

static void *team_thread(void *p) {
    team_arg *a = p;
    pthread_mutex_lock(a->mu);
    while (*a->go == 0) pthread_cond_wait(a->cv, a->mu);
    int go = *a->go;
    pthread_mutex_unlock(a->mu);
    if (go > 0) team_main(a->c, a->ti);
    return NULL;
}

/* Start up to n-1 helpers (the team is whatever could be started), run, join. */
static void run_team(fwd_ctx *c, int n) {
    enum { MAXT = 64 };
    if (n > MAXT) n = MAXT;
    /* work too small to share: one thread */
    if ((size_t)c->B * c->T * c->w->D < 4096) n = 1;
    int prev_blas = openblas_get_num_threads();
    blipc__threads_set(1);
    pthread_t th[MAXT];
    team_arg args[MAXT];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int go = 0, started = 0;
    for (int i = 1; i < n; i++) {
        args[started + 1] = (team_arg){c, started + 1, &mu, &cv, &go};
        if (pthread_create(&th[started + 1], NULL, team_thread, &args[started + 1]) != 0) break;
        started++;
    }
    c->nt = started + 1;
    int ok = c->nt == 1 || pthread_barrier_init(&c->bar, NULL, (unsigned)c->nt) == 0;
    if (!ok) c->nt = 1;
    pthread_mutex_lock(&mu);
    go = ok ? 1 : -1; /* no barrier: helpers quit, the caller does everything */
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    team_main(c, 0);
    for (int i = 1; i <= started; i++) pthread_join(th[i], NULL);
    if (ok && c->nt > 1) pthread_barrier_destroy(&c->bar);
    blipc__threads_set(prev_blas);
}

/* ---------------------------------------------------------------- forward */

size_t blipc__bert_scratch_bytes(const blipc_bert_weights *w, int B, int T, int n_threads) {
    size_t BT = (size_t)B * T, D = (size_t)w->D, F = (size_t)w->F, dh = D / (size_t)w->H;
    if (n_threads < 1) n_threads = 1;
    size_t fl = BT * D        /* x */
                + BT * 3 * D  /* qkv */
                + BT * D      /* ctx / tmp */
                + BT * F      /* ffn hidden */
                + BT          /* key bias */
                + (size_t)n_threads * (dh + AT_ROWS) * attn_tp(T);
    if (n_threads > 1 && BT <= FEW_ROWS) fl += (2 * (size_t)n_threads + 1) * BT * D; /* few-row mode */
    return fl * sizeof(float) + 10 * 64; /* + alignment */
}

blipc_status blipc__bert_forward(const blipc_bert_weights *w, const int32_t *ids, const int32_t *mask, int B, int T,
                                 int n_threads, blipc_arena *a, float **out, blipc_bert_prof *prof, blipc_err *e) {
    *out = NULL;
    if (B <= 0 || T <= 0) return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "BERT forward: empty batch (B=%d, T=%d)", B, T);
    if (T > w->P)
        return blipc__errf(e, BLIPC_ERR_LIMIT, "BERT forward: %d tokens is over max_position_embeddings %d", T, w->P);
    const int D = w->D, F = w->F, H = w->H, dh = D / H;
    const size_t BT = (size_t)B * T;
    if (n_threads < 1) n_threads = 1;
    for (size_t i = 0; i < BT; i++)
        if (ids[i] < 0 || ids[i] >= w->V)
            return blipc__errf(e, BLIPC_ERR_INVALID_ARG, "BERT forward: input_ids[%zu][%zu] = %d is outside the vocabulary [0, %d)",
                               i / (size_t)T, i % (size_t)T, ids[i], w->V);
    size_t mark = blipc__arena_mark(a);
    float *x = blipc__arena_alloc(a, BT * D * sizeof(float));
    float *qkv = blipc__arena_alloc(a, BT * 3 * D * sizeof(float));
    float *tmp = blipc__arena_alloc(a, BT * D * sizeof(float));
    float *hid = blipc__arena_alloc(a, BT * F * sizeof(float));
    float *kbias = blipc__arena_alloc(a, BT * sizeof(float));
    float *ascr = blipc__arena_alloc(a, (size_t)n_threads * ((size_t)dh + AT_ROWS) * attn_tp(T) * sizeof(float));
    if (!x || !qkv || !tmp || !hid || !kbias || !ascr) {
        blipc__arena_reset(a, mark);
        return blipc__errf(e, BLIPC_ERR_LIMIT, "BERT forward: batch %d x %d tokens does not fit the activation arena (%zu bytes)",
                           B, T, a->cap);
    }
    /* few-row mode when its buffers fit (optional: the other mode gives the same results) */
    float *x2 = NULL, *priv = NULL;
    if (n_threads > 1 && BT <= FEW_ROWS && BT * D >= 4096) {
        size_t m2 = blipc__arena_mark(a);
        x2 = blipc__arena_alloc(a, BT * D * sizeof(float));
        priv = blipc__arena_alloc(a, 2 * (size_t)n_threads * BT * D * sizeof(float));
        if (!x2 || !priv) {
            blipc__arena_reset(a, m2);
            x2 = priv = NULL;
        }
    }
    double t0 = prof ? now() : 0;

    /* embeddings: word + position + token_type[0], then LayerNorm */
    for (size_t i = 0; i < BT; i++) {
        const float *we = w->word_emb + (size_t)ids[i] * D, *pe = w->pos_emb + (i % (size_t)T) * D;
        float *xr = x + i * D;
        for (int d = 0; d < D; d++) xr[d] = we[d] + pe[d] + w->type_emb[d];
        kbias[i] = mask && !mask[i] ? -INFINITY : 0.0f;
    }
    blipc__bert_residual_layernorm(x, x, NULL, NULL, w->emb_ln_g, w->emb_ln_b, (int)BT, D, w->eps);
    if (prof) prof->t_embed += now() - t0;

    fwd_ctx c = {w, x, qkv, tmp, hid, kbias, ascr, x2, priv, B, T, 1.0f / sqrtf((float)dh), prof, 1, blipc__cpu_isa(), .bar = {{0}}};
    run_team(&c, n_threads);
    if (prof) {
        prof->dense_flops += 2.0 * (double)BT * w->L * ((double)4 * D * D + 2.0 * D * F);
        prof->attn_flops += 4.0 * (double)B * T * T * D * w->L;
    }
    *out = x; /* the caller resets the arena when done with it */
    return BLIPC_OK;
}
