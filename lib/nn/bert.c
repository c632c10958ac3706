/* bert.c — BertModel forward (HF modeling_bert, eval mode, absolute positions,
 * token_type_ids = 0, post-LN layers, exact-erf GELU). */
#include "bert.h"
#include "kernels.h"
#include "threads.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    return BLIPC_OK;
fail:
    blipc__bert_free(w);
    return rc;
}

void blipc__bert_free(blipc_bert_weights *w) {
    if (!w) return;
    free(w->layer);
    free(w->qkv_buf);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------- kernels */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
/* dispatch on CPU features (arch=... clones dispatch on the CPU model name) */
#define BLIPC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BLIPC_CLONES
#endif

/* erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (|erf(4)| rounds to 1 in float);
 * coefficients fitted for this project (max error 3.7e-7 in float). */
BLIPC_CLONES void blipc__bert_gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float a = v * 0.70710678118654752440f;
        a = a > 4.0f ? 4.0f : a;
        a = a < -4.0f ? -4.0f : a;
        float z = a * a;
        float p = 1.974827455e-06f;
        p = p * z + 2.880425309e-04f;
        p = p * z + 4.003680777e-03f;
        p = p * z + 5.346758291e-02f;
        p = p * z + 1.962497532e-01f;
        p = p * z + 1.128378987e+00f;
        float q = 3.748089512e-05f;
        q = q * z + 1.216369099e-03f;
        q = q * z + 1.544449013e-02f;
        q = q * z + 1.164767519e-01f;
        q = q * z + 5.072529912e-01f;
        q = q * z + 1.0f;
        x[i] = 0.5f * v * (1.0f + a * p / q);
    }
}

/* Rows of x[M, D] <- LayerNorm(x + r + b) (r, b may be NULL), in float with 16
 * independent partial sums per row so the compiler can vectorise the
 * reductions (no -ffast-math needed); two-pass mean / variance. */
BLIPC_CLONES static void residual_layernorm(float *x, const float *r, const float *b, const float *g,
                                            const float *beta, int M, int D, float eps) {
    for (int i = 0; i < M; i++) {
        float *xr = x + (size_t)i * D;
        if (r) {
            const float *rr = r + (size_t)i * D;
            for (int d = 0; d < D; d++) xr[d] += rr[d] + b[d];
        }
        float acc[16] = {0};
        int d = 0;
        for (; d + 16 <= D; d += 16)
            for (int u = 0; u < 16; u++) acc[u] += xr[d + u];
        float sum = 0.0f;
        for (int u = 0; u < 16; u++) sum += acc[u];
        for (; d < D; d++) sum += xr[d];
        const float mean = sum / (float)D;
        float vacc[16] = {0};
        for (d = 0; d + 16 <= D; d += 16)
            for (int u = 0; u < 16; u++) {
                const float t = xr[d + u] - mean;
                vacc[u] += t * t;
            }
        float var = 0.0f;
        for (int u = 0; u < 16; u++) var += vacc[u];
        for (; d < D; d++) var += (xr[d] - mean) * (xr[d] - mean);
        const float rstd = 1.0f / sqrtf(var / (float)D + eps);
        for (d = 0; d < D; d++) xr[d] = (xr[d] - mean) * rstd * g[d] + beta[d];
    }
}

/* One (sequence, head) of scaled dot-product attention over a fused QKV row
 * block qkv[T, 3D]; out[T, D] (this head's dh columns). Keys j >= nk are padding
 * (right-padded batch: their softmax weight is exactly 0, so they are skipped).
 * kt: [dh, T] scratch (K transposed), s: [AT_QB, T] scratch (score rows).
 * Register-blocked: AT_QB query rows x AT_KB keys per block in Q.K^T, AT_QB rows
 * x dh in P.V, so each loaded K/V element is used AT_QB times. */
#define AT_QB 4
#define AT_KB 16
BLIPC_CLONES static void attn_head(const float *qkv, int T, int nk, int D, int dh, int h, float scale,
                                   const float *kbias, float *out, float *kt, float *s) {
    const int ld = 3 * D;
    const float *q = qkv + (size_t)h * dh, *k = qkv + D + (size_t)h * dh, *v = qkv + 2 * D + (size_t)h * dh;
    const int nkp = (nk + AT_KB - 1) / AT_KB * AT_KB; /* padded key count for full blocks (<= T rounded up) */
    for (int d = 0; d < dh; d++) {
        float *kr = kt + (size_t)d * nkp;
        for (int j = 0; j < nk; j++) kr[j] = k[(size_t)j * ld + d];
        for (int j = nk; j < nkp; j++) kr[j] = 0.0f;
    }
    for (int i0 = 0; i0 < T; i0 += AT_QB) {
        const int nq = T - i0 < AT_QB ? T - i0 : AT_QB;
        float qb[AT_QB][256]; /* dh <= 256 checked by the caller */
        for (int ii = 0; ii < AT_QB; ii++)
            for (int d = 0; d < dh; d++) qb[ii][d] = ii < nq ? q[(size_t)(i0 + ii) * ld + d] : 0.0f;
        /* scores */
        for (int j0 = 0; j0 < nkp; j0 += AT_KB) {
            float acc[AT_QB][AT_KB];
            for (int ii = 0; ii < AT_QB; ii++)
                for (int jj = 0; jj < AT_KB; jj++) acc[ii][jj] = 0.0f;
            for (int d = 0; d < dh; d++) {
                const float *kr = kt + (size_t)d * nkp + j0;
                for (int ii = 0; ii < AT_QB; ii++) {
                    const float qd = qb[ii][d];
                    for (int jj = 0; jj < AT_KB; jj++) acc[ii][jj] += qd * kr[jj];
                }
            }
            for (int ii = 0; ii < AT_QB; ii++)
                for (int jj = 0; jj < AT_KB; jj++) s[(size_t)ii * nkp + j0 + jj] = acc[ii][jj] * scale;
        }
        /* softmax over the nk real keys */
        for (int ii = 0; ii < nq; ii++) {
            float *sr = s + (size_t)ii * nkp;
            float mx = -INFINITY;
            for (int j = 0; j < nk; j++) {
                sr[j] += kbias[j]; /* 0, or -inf for a padding key before the last real one */
                mx = sr[j] > mx ? sr[j] : mx;
            }
            float sum = 0.0f;
            for (int j = 0; j < nk; j++) {
                sr[j] = expf(sr[j] - mx);
                sum += sr[j];
            }
            const float inv = 1.0f / sum;
            for (int j = 0; j < nk; j++) sr[j] *= inv;
        }
        /* out rows = P . V */
        for (int d0 = 0; d0 < dh; d0 += 32) {
            const int nd = dh - d0 < 32 ? dh - d0 : 32;
            float acc[AT_QB][32];
            for (int ii = 0; ii < AT_QB; ii++)
                for (int dd = 0; dd < 32; dd++) acc[ii][dd] = 0.0f;
            if (nd == 32) {
                for (int j = 0; j < nk; j++) {
                    const float *vj = v + (size_t)j * ld + d0;
                    for (int ii = 0; ii < AT_QB; ii++) {
                        const float p = ii < nq ? s[(size_t)ii * nkp + j] : 0.0f;
                        for (int dd = 0; dd < 32; dd++) acc[ii][dd] += p * vj[dd];
                    }
                }
            } else {
                for (int j = 0; j < nk; j++) {
                    const float *vj = v + (size_t)j * ld + d0;
                    for (int ii = 0; ii < nq; ii++) {
                        const float p = s[(size_t)ii * nkp + j];
                        for (int dd = 0; dd < nd; dd++) acc[ii][dd] += p * vj[dd];
                    }
                }
            }
            for (int ii = 0; ii < nq; ii++) {
                float *oi = out + (size_t)(i0 + ii) * D + (size_t)h * dh + d0;
                for (int dd = 0; dd < nd; dd++) oi[dd] = acc[ii][dd];
            }
        }
    }
}

typedef struct attn_job {
    const float *qkv, *kbias;
    float *out, *scratch;
    int B, T, D, H, dh;
    float scale;
} attn_job;

static void attn_part(void *arg, int ti, int nt) {
    attn_job *j = arg;
    int tasks = j->B * j->H;
    const size_t Tp = (size_t)(j->T + AT_KB - 1) / AT_KB * AT_KB;
    float *kt = j->scratch + (size_t)ti * ((size_t)j->dh * Tp + AT_QB * Tp), *s = kt + (size_t)j->dh * Tp;
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
        attn_head(j->qkv + (size_t)b * j->T * 3 * j->D, j->T, nk, j->D, j->dh, h, j->scale, kb, o, kt, s);
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
    int B, T;
    float scale;
    blipc_bert_prof *prof;
    int nt;                  /* threads in the team */
    pthread_barrier_t bar;
} fwd_ctx;

static void team_sync(fwd_ctx *c) {
    if (c->nt > 1) pthread_barrier_wait(&c->bar);
}

/* y[:, cols of thread ti] = x W^T (+ b), optionally GELU'd; columns split in multiples of 16 */
static void dense_part(const float *x, int M, int K, const float *W, const float *b, int N, float *y, int gelu, int ti,
                       int nt) {
    int per = (N + nt - 1) / nt;
    per = (per + 15) / 16 * 16;
    int n0 = ti * per, n1 = n0 + per > N ? N : n0 + per;
    if (n0 >= n1) return;
    blipc__linear(x, M, K, 0, W + (size_t)n0 * K, b ? b + n0 : NULL, n1 - n0, y + n0, N);
    if (gelu)
        for (int i = 0; i < M; i++) blipc__bert_gelu(y + (size_t)i * N + n0, (size_t)(n1 - n0));
}

static void rows_range(int M, int ti, int nt, int *lo, int *hi) {
    int per = (M + nt - 1) / nt;
    *lo = ti * per > M ? M : ti * per;
    *hi = *lo + per > M ? M : *lo + per;
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
    for (int l = 0; l < w->L; l++) {
        const blipc_bert_layer *ly = &w->layer[l];
        dense_part(c->x, BT, D, ly->qkv_w, ly->qkv_b, 3 * D, c->qkv, 0, ti, nt);
        LAP(t_dense);
        attn_job aj = {c->qkv, c->kbias, c->tmp, c->ascr, c->B, c->T, D, H, dh, c->scale};
        attn_part(&aj, ti, nt);
        LAP(t_attn);
        /* x = LN(x + dense(ctx) + b): dense into qkv (free now) */
        dense_part(c->tmp, BT, D, ly->attn_out_w, NULL, D, c->qkv, 0, ti, nt);
        LAP(t_dense);
        residual_layernorm(c->x + (size_t)r0 * D, c->qkv + (size_t)r0 * D, ly->attn_out_b, ly->ln1_g, ly->ln1_b,
                           r1 - r0, D, w->eps);
        LAP(t_norm);
        /* x = LN(x + W2 gelu(W1 x + b1) + b2) */
        dense_part(c->x, BT, D, ly->ffn_in_w, ly->ffn_in_b, F, c->hid, 1, ti, nt);
        LAP(t_dense); /* includes the GELU of each thread's columns */
        dense_part(c->hid, BT, F, ly->ffn_out_w, NULL, D, c->tmp, 0, ti, nt);
        LAP(t_dense);
        residual_layernorm(c->x + (size_t)r0 * D, c->tmp + (size_t)r0 * D, ly->ffn_out_b, ly->ln2_g, ly->ln2_b,
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
                + (size_t)n_threads * (dh + AT_QB) * ((size_t)(T + AT_KB - 1) / AT_KB * AT_KB);
    return fl * sizeof(float) + 8 * 64; /* + alignment */
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
    float *ascr = blipc__arena_alloc(a, (size_t)n_threads * ((size_t)dh + AT_QB) *
                                             ((size_t)(T + AT_KB - 1) / AT_KB * AT_KB) * sizeof(float));
    if (!x || !qkv || !tmp || !hid || !kbias || !ascr) {
        blipc__arena_reset(a, mark);
        return blipc__errf(e, BLIPC_ERR_LIMIT, "BERT forward: batch %d x %d tokens does not fit the activation arena (%zu bytes)",
                           B, T, a->cap);
    }
    double t0 = prof ? now() : 0;

    /* embeddings: word + position + token_type[0], then LayerNorm */
    for (size_t i = 0; i < BT; i++) {
        const float *we = w->word_emb + (size_t)ids[i] * D, *pe = w->pos_emb + (i % (size_t)T) * D;
        float *xr = x + i * D;
        for (int d = 0; d < D; d++) xr[d] = we[d] + pe[d] + w->type_emb[d];
        kbias[i] = mask && !mask[i] ? -INFINITY : 0.0f;
    }
    residual_layernorm(x, NULL, NULL, w->emb_ln_g, w->emb_ln_b, (int)BT, D, w->eps);
    if (prof) prof->t_embed += now() - t0;

    fwd_ctx c = {w, x, qkv, tmp, hid, kbias, ascr, B, T, 1.0f / sqrtf((float)dh), prof, 1, .bar = {{0}}};
    run_team(&c, n_threads);
    if (prof) {
        prof->dense_flops += 2.0 * (double)BT * w->L * ((double)4 * D * D + 2.0 * D * F);
        prof->attn_flops += 4.0 * (double)B * T * T * D * w->L;
    }
    *out = x; /* the caller resets the arena when done with it */
    return BLIPC_OK;
}
