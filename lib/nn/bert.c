/* bert.c — BertModel forward (HF modeling_bert, eval mode, absolute positions,
 * token_type_ids = 0, post-LN layers, exact-erf GELU). */
#include "bert.h"
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BERT_X86 1
#endif

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

/* ---------------------------------------------------------------- kernels */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
/* dispatch on CPU features (arch=... clones dispatch on the CPU model name) */
#define BLIPC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BLIPC_CLONES
#endif

/* erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (|erf(4)| rounds to 1 in float);
 * coefficients fitted for this project (max error 3.7e-7 in float). */
BLIPC_CLONES static void gelu_generic(float *x, size_t n) {
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

#ifdef BERT_X86
/* The same rational erf with AVX-512 intrinsics: 1/Q by rcp14 and one Newton
 * step (relative error ~1e-8; Q >= 1) instead of a divide. */
__attribute__((target("avx512f"))) static void gelu_avx512(float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 mk = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(mk, x + i);
        __m512 a = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752440f));
        a = _mm512_min_ps(_mm512_max_ps(a, _mm512_set1_ps(-4.0f)), _mm512_set1_ps(4.0f));
        const __m512 z = _mm512_mul_ps(a, a);
        __m512 p = _mm512_set1_ps(1.974827455e-06f);
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.880425309e-04f));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(4.003680777e-03f));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(5.346758291e-02f));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.962497532e-01f));
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.128378987e+00f));
        __m512 q = _mm512_set1_ps(3.748089512e-05f);
        q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(1.216369099e-03f));
        q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(1.544449013e-02f));
        q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(1.164767519e-01f));
        q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(5.072529912e-01f));
        q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(1.0f));
        __m512 r = _mm512_rcp14_ps(q);
        r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
        const __m512 erf = _mm512_mul_ps(_mm512_mul_ps(a, p), r);
        const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), erf));
        _mm512_mask_storeu_ps(x + i, mk, y);
    }
}
#endif

void blipc__bert_gelu(float *x, size_t n) {
#ifdef BERT_X86
    if (__builtin_cpu_supports("avx512f")) {
        gelu_avx512(x, n);
        return;
    }
#endif
    gelu_generic(x, n);
}

/* Rows of y[M, D] <- LayerNorm(x + r + b) (r, b may be NULL; y may be x), in
 * float with 16 independent partial sums per row so the compiler can vectorise
 * the reductions (no -ffast-math needed); two-pass mean / variance. */
BLIPC_CLONES static void residual_layernorm(float *y, const float *x, const float *r, const float *b, const float *g,
                                            const float *beta, int M, int D, float eps) {
    for (int i = 0; i < M; i++) {
        float *xr = y + (size_t)i * D;
        const float *xin = x + (size_t)i * D;
        if (r) {
            const float *rr = r + (size_t)i * D;
            for (int d = 0; d < D; d++) xr[d] = xin[d] + (rr[d] + b[d]);
        } else if (xr != xin) {
            memcpy(xr, xin, (size_t)D * sizeof(float));
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

#ifdef BERT_X86
/* ------------------------------------------- panel GEMM (AVX-512F)
 * y[m, n0 + c] = sum_k x[m, k] Wp[k][c] (+ b[n0 + c]) for a tile of MR <= 8
 * rows x one panel (PN = 48 columns = 3 vectors): 24 accumulators, per k three
 * weight loads and MR broadcasts of x feeding 3 MR FMAs. No packing of x, no
 * horizontal sums; every output element is one FMA chain over k = 0..K-1 in
 * order, whatever M or the tile it falls in, so a row's result does not depend
 * on the other rows of the batch. */
__attribute__((target("avx512f"), always_inline)) static inline void panel_tile(const float *x, int ldx, const int MR,
                                                                                 int K, const float *wp,
                                                                                 const float *b, float *y, int ldy,
                                                                                 int nc, const int PF,
                                                                                 const float *pf) {
    __m512 acc[8][3];
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++)
#pragma GCC unroll 3
        for (int c = 0; c < 3; c++) acc[m][c] = _mm512_setzero_ps();
    const float *xr[8];
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++) xr[m] = x + (size_t)(m < MR ? m : 0) * ldx;
#pragma GCC unroll 2
    for (int k = 0; k < K; k++) {
        const float *wk = wp + (size_t)k * PN;
        const __m512 w0 = _mm512_load_ps(wk), w1 = _mm512_load_ps(wk + 16), w2 = _mm512_load_ps(wk + 32);
        if (PF) { /* the same k row of the next panel, into L2 */
            const float *pk = pf + (size_t)k * PN;
            _mm_prefetch((const char *)pk, _MM_HINT_T1);
            _mm_prefetch((const char *)(pk + 16), _MM_HINT_T1);
            _mm_prefetch((const char *)(pk + 32), _MM_HINT_T1);
        }
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            const __m512 xb = _mm512_set1_ps(xr[m][k]);
            acc[m][0] = _mm512_fmadd_ps(w0, xb, acc[m][0]);
            acc[m][1] = _mm512_fmadd_ps(w1, xb, acc[m][1]);
            acc[m][2] = _mm512_fmadd_ps(w2, xb, acc[m][2]);
        }
    }
    __mmask16 mk[3];
#pragma GCC unroll 3
    for (int c = 0; c < 3; c++) {
        const int left = nc - 16 * c;
        mk[c] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
    }
    __m512 bv[3];
#pragma GCC unroll 3
    for (int c = 0; c < 3; c++) bv[c] = b ? _mm512_maskz_loadu_ps(mk[c], b + 16 * c) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 3
        for (int c = 0; c < 3; c++)
            _mm512_mask_storeu_ps(y + (size_t)m * ldy + 16 * c, mk[c], _mm512_add_ps(acc[m][c], bv[c]));
}

/* All row tiles of one panel; the last one also prefetches `next` (the next
 * panel this thread will read, or NULL) into L2, so that with few rows (batch
 * 1) streaming the weights from memory overlaps with the FMAs of the tiles
 * that find the panel in cache. */
#define PANEL_TILE_CASES(PF_, pf_)                                              \
    switch (mr) {                                                               \
    case 8: panel_tile(xm, ldx, 8, K, wp, b, ym, ldy, nc, PF_, pf_); break;     \
    case 7: panel_tile(xm, ldx, 7, K, wp, b, ym, ldy, nc, PF_, pf_); break;     \
    case 6: panel_tile(xm, ldx, 6, K, wp, b, ym, ldy, nc, PF_, pf_); break;     \
    case 5: panel_tile(xm, ldx, 5, K, wp, b, ym, ldy, nc, PF_, pf_); break;     \
    case 4: panel_tile(xm, ldx, 4, K, wp, b, ym, ldy, nc, PF_, pf_); break;     \
    case 3: panel_tile(xm, ldx, 3, K, wp, b, ym, ldy, nc, PF_, pf_); break;     \
    case 2: panel_tile(xm, ldx, 2, K, wp, b, ym, ldy, nc, PF_, pf_); break;     \
    default: panel_tile(xm, ldx, 1, K, wp, b, ym, ldy, nc, PF_, pf_); break;    \
    }
__attribute__((target("avx512f"))) static void panel_rows(const float *x, int ldx, int M, int K, const float *wp,
                                                          const float *b, float *y, int ldy, int nc,
                                                          const float *next) {
    for (int m0 = 0; m0 < M; m0 += 8) {
        const float *xm = x + (size_t)m0 * ldx;
        float *ym = y + (size_t)m0 * ldy;
        const int mr = M - m0 < 8 ? M - m0 : 8;
        if (next && m0 + 8 >= M) {
            PANEL_TILE_CASES(1, next)
        } else {
            PANEL_TILE_CASES(0, NULL)
        }
    }
}
#undef PANEL_TILE_CASES
#endif

/* This thread's share of y[M, N] = x[M, K] Wp + b over the packed panels
 * (whole panels per thread), optionally GELU'd. Rows go in blocks whose x
 * stays in L2 (~512 KiB) while this thread's panels stream past, and the GELU
 * runs on each block while it is still in cache. */
static void dense_packed(const float *x, int M, int K, const float *wp, const float *b, int N, float *y, int gelu,
                         int ti, int nt) {
#ifdef BERT_X86
    const int np = (N + PN - 1) / PN, per = (np + nt - 1) / nt;
    const int p0 = ti * per, p1 = p0 + per > np ? np : p0 + per;
    if (p0 >= p1) return;
    int mb = (int)(((size_t)512 << 10) / ((size_t)K * sizeof(float))) & ~7;
    if (mb < 8) mb = 8;
    const int n0 = p0 * PN, n1 = p1 * PN > N ? N : p1 * PN;
    for (int m0 = 0; m0 < M; m0 += mb) {
        const int rows = M - m0 < mb ? M - m0 : mb;
        for (int p = p0; p < p1; p++) {
            const int c0 = p * PN, nc = N - c0 < PN ? N - c0 : PN;
            panel_rows(x + (size_t)m0 * K, K, rows, K, wp + (size_t)p * K * PN, b ? b + c0 : NULL,
                       y + (size_t)m0 * N + c0, N, nc, p + 1 < p1 ? wp + (size_t)(p + 1) * K * PN : NULL);
        }
        if (gelu)
            for (int i = m0; i < m0 + rows; i++) blipc__bert_gelu(y + (size_t)i * N + n0, (size_t)(n1 - n0));
    }
#else
    (void)x, (void)M, (void)K, (void)wp, (void)b, (void)N, (void)y, (void)gelu, (void)ti, (void)nt;
#endif
}

#ifdef BERT_X86
/* exp(x) for x <= 0 (scores minus their row maximum): n = round(x log2 e),
 * r = x - n ln2 (two-part ln2), degree-7 Taylor polynomial on |r| <= ln2/2
 * (relative error ~1e-8 before rounding), times 2^n with scalef. Below -100
 * (and -inf: masked keys) the result is exactly 0. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 exp_neg512(__m512 x) {
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-100.0f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-100.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x); /* ln2 = 0.693359375 - 2.12194440e-4 */
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}

/* attn_head for AVX-512 and dh a multiple of 16: blocks of AQ = 8 query rows
 * x 32 keys in Q.K^T and 8 rows x 32 dims in P.V (16 accumulators, each
 * loaded vector used 8 times); the scale is folded into Q; the softmax
 * normalisation is applied to the 8 x dh outputs instead of the 8 x nk
 * probabilities. kt: [dh, nkp] with nkp = nk rounded up to 32; s: [8, nkp]. */
#define AQ 8
__attribute__((target("avx512f"))) static void attn_head512(const float *qkv, int T, int nk, int D, int dh, int h,
                                                            float scale, const float *kbias, float *out, float *kt,
                                                            float *s, const float *pf, int pfT) {
    const int ld = 3 * D;
    const float *q = qkv + (size_t)h * dh, *k = qkv + D + (size_t)h * dh, *v = qkv + 2 * D + (size_t)h * dh;
    const int nkp = (nk + 31) & ~31;
    for (int j = 0; j < nk; j++) {
        const float *kr = k + (size_t)j * ld;
        for (int d = 0; d < dh; d++) kt[(size_t)d * nkp + j] = kr[d];
    }
    for (int d = 0; d < dh; d++)
        for (int j = nk; j < nkp; j++) kt[(size_t)d * nkp + j] = 0.0f;
    float qb[AQ][256] __attribute__((aligned(64)));
    float inv[AQ];
    /* pf: the q of row 0 of the thread's next (sequence, head), pfT rows: its
     * q/k/v rows (dh floats each, one row per 3D floats: a 4.6 KiB stride that
     * the hardware prefetchers do not follow) are prefetched into L2, spread
     * over this head's query blocks */
    const int pf_per = pf ? (pfT + (T + AQ - 1) / AQ - 1) / ((T + AQ - 1) / AQ) : 0;
    int pf_row = 0;
    for (int i0 = 0; i0 < T; i0 += AQ) {
        const int nq = T - i0 < AQ ? T - i0 : AQ;
        for (int r = 0; r < pf_per && pf_row < pfT; r++, pf_row++)
            for (int sec = 0; sec < 3; sec++)
                for (int d = 0; d < dh; d += 16)
                    _mm_prefetch((const char *)(pf + (size_t)pf_row * ld + (size_t)sec * D + d), _MM_HINT_T1);
        for (int ii = 0; ii < AQ; ii++)
            for (int d = 0; d < dh; d++) qb[ii][d] = ii < nq ? q[(size_t)(i0 + ii) * ld + d] * scale : 0.0f;
        /* scores S[8, nkp] = (scale Q) K^T */
        for (int j0 = 0; j0 < nkp; j0 += 32) {
            __m512 acc[AQ][2];
#pragma GCC unroll 8
            for (int ii = 0; ii < AQ; ii++) acc[ii][0] = acc[ii][1] = _mm512_setzero_ps();
            for (int d = 0; d < dh; d++) {
                const float *kr = kt + (size_t)d * nkp + j0;
                const __m512 k0 = _mm512_loadu_ps(kr), k1 = _mm512_loadu_ps(kr + 16);
#pragma GCC unroll 8
                for (int ii = 0; ii < AQ; ii++) {
                    const __m512 qd = _mm512_set1_ps(qb[ii][d]);
                    acc[ii][0] = _mm512_fmadd_ps(qd, k0, acc[ii][0]);
                    acc[ii][1] = _mm512_fmadd_ps(qd, k1, acc[ii][1]);
                }
            }
#pragma GCC unroll 8
            for (int ii = 0; ii < AQ; ii++) {
                _mm512_storeu_ps(s + (size_t)ii * nkp + j0, acc[ii][0]);
                _mm512_storeu_ps(s + (size_t)ii * nkp + j0 + 16, acc[ii][1]);
            }
        }
        /* softmax numerators over the nk real keys (keys >= nk: exp = 0) */
        for (int ii = 0; ii < nq; ii++) {
            float *sr = s + (size_t)ii * nkp;
            __m512 mx = _mm512_set1_ps(-INFINITY);
            for (int j = 0; j < nkp; j += 16) {
                const int left = nk - j;
                const __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
                /* kbias: 0, or -inf for a padding key before the last real one */
                __m512 x = _mm512_mask_add_ps(_mm512_set1_ps(-INFINITY), mk, _mm512_maskz_loadu_ps(mk, sr + j),
                                              _mm512_maskz_loadu_ps(mk, kbias + j));
                _mm512_storeu_ps(sr + j, x);
                mx = _mm512_max_ps(mx, x);
            }
            const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            __m512 sum = _mm512_setzero_ps();
            for (int j = 0; j < nkp; j += 16) {
                const __m512 ex = exp_neg512(_mm512_sub_ps(_mm512_loadu_ps(sr + j), m));
                _mm512_storeu_ps(sr + j, ex);
                sum = _mm512_add_ps(sum, ex);
            }
            inv[ii] = 1.0f / _mm512_reduce_add_ps(sum);
        }
        /* out rows = (P V) / row sums, 32 dims at a time */
        for (int d0 = 0; d0 < dh; d0 += 32) {
            const int two = dh - d0 >= 32;
            __m512 acc[AQ][2];
#pragma GCC unroll 8
            for (int ii = 0; ii < AQ; ii++) acc[ii][0] = acc[ii][1] = _mm512_setzero_ps();
            for (int j = 0; j < nk; j++) {
                const float *vj = v + (size_t)j * ld + d0;
                const __m512 v0 = _mm512_loadu_ps(vj), v1 = two ? _mm512_loadu_ps(vj + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
                for (int ii = 0; ii < AQ; ii++) {
                    const __m512 p = _mm512_set1_ps(s[(size_t)ii * nkp + j]);
                    acc[ii][0] = _mm512_fmadd_ps(p, v0, acc[ii][0]);
                    acc[ii][1] = _mm512_fmadd_ps(p, v1, acc[ii][1]);
                }
            }
            for (int ii = 0; ii < nq; ii++) {
                float *oi = out + (size_t)(i0 + ii) * D + (size_t)h * dh + d0;
                const __m512 iv = _mm512_set1_ps(inv[ii]);
                _mm512_storeu_ps(oi, _mm512_mul_ps(acc[ii][0], iv));
                if (two) _mm512_storeu_ps(oi + 16, _mm512_mul_ps(acc[ii][1], iv));
            }
        }
    }
}
#endif

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
            attn_head512(j->qkv + (size_t)b * j->T * 3 * j->D, j->T, nk, j->D, j->dh, h, j->scale, kb, o, kt, s, pf,
                         j->T);
            continue;
        }
#endif
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
        dense_packed(x, M, K, Wp, b, N, y, gelu, ti, nt);
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
        residual_layernorm(xp, xa, c->tmp, ly->attn_out_b, ly->ln1_g, ly->ln1_b, M, D, w->eps);
        memcpy(xb + (size_t)r0 * D, xp + (size_t)r0 * D, (size_t)(r1 - r0) * D * sizeof(float));
        LAPX(t_norm, 0);
        dense_part(xp, M, D, ly->ffn_in_w, ly->ffn_in_p, ly->ffn_in_b, F, c->hid, 1, ti, nt);
        LAPX(t_dense, 1);
        dense_part(c->hid, M, F, ly->ffn_out_w, ly->ffn_out_p, NULL, D, c->tmp, 0, ti, nt);
        LAPX(t_dense, 1);
        /* x = LN(x2 + tmp + b) */
        residual_layernorm(xp, xb, c->tmp, ly->ffn_out_b, ly->ln2_g, ly->ln2_b, M, D, w->eps);
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
        residual_layernorm(c->x + (size_t)r0 * D, c->x + (size_t)r0 * D, c->qkv + (size_t)r0 * D, ly->attn_out_b, ly->ln1_g, ly->ln1_b,
                           r1 - r0, D, w->eps);
        LAP(t_norm);
        /* x = LN(x + W2 gelu(W1 x + b1) + b2) */
        dense_part(c->x, BT, D, ly->ffn_in_w, ly->ffn_in_p, ly->ffn_in_b, F, c->hid, 1, ti, nt);
        LAP(t_dense); /* includes the GELU of each thread's columns */
        dense_part(c->hid, BT, F, ly->ffn_out_w, ly->ffn_out_p, NULL, D, c->tmp, 0, ti, nt);
        LAP(t_dense);
        residual_layernorm(c->x + (size_t)r0 * D, c->x + (size_t)r0 * D, c->tmp + (size_t)r0 * D, ly->ffn_out_b, ly->ln2_g, ly->ln2_b,
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
    residual_layernorm(x, x, NULL, NULL, w->emb_ln_g, w->emb_ln_b, (int)BT, D, w->eps);
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
