/* bert_kernels.c — the encoder's compute kernels: GELU, residual + LayerNorm,
 * the packed-panel dense product and attention heads (split out of bert.c). */
#include "bert.h"
#include "bert_kernels.h"
#include "gemm_small.h"
#include "kernels.h"
#include "simd_math.h"
#include "threads.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define PN BLIPC_BERT_PANEL

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
BLIPC_CLONES void blipc__bert_residual_layernorm(float *y, const float *x, const float *r, const float *b, const float *g,
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
BLIPC_CLONES void blipc__bert_attn_head(const float *qkv, int T, int nk, int D, int dh, int h, float scale,
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
void blipc__bert_dense_packed(const float *x, int M, int K, const float *wp, const float *b, int N, float *y, int gelu,
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
/* blipc__bert_attn_head for AVX-512 and dh a multiple of 16: blocks of AQ = 8 query rows
 * x 32 keys in Q.K^T and 8 rows x 32 dims in P.V (16 accumulators, each
 * loaded vector used 8 times); the scale is folded into Q; the softmax
 * normalisation is applied to the 8 x dh outputs instead of the 8 x nk
 * probabilities. kt: [dh, nkp] with nkp = nk rounded up to 32; s: [8, nkp]. */
#define AQ 8
__attribute__((target("avx512f"))) void blipc__bert_attn_head512(const float *qkv, int T, int nk, int D, int dh, int h,
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
                const __m512 ex = blipc__exp512(_mm512_sub_ps(_mm512_loadu_ps(sr + j), m));
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

