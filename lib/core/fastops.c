/* fastops.c — AVX-512 kernels for GELU, LayerNorm and multi-head attention
 * (see fastops.h). The attention packs each head's keys transposed so both
 * products are register-blocked broadcast-FMA loops (no per-head BLAS calls,
 * no BLAS threads), softmax uses a vectorised exp, and heads x query-row
 * blocks are split over the threads. */
#include "fastops.h"
#include "gemm_small.h"
#include "simd_math.h"
#include "threads.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FO_X86 1
#endif

static int fo_threads(void) {
    int n = openblas_get_num_threads();
    return n < 1 ? 1 : n;
}

#ifdef FO_X86

#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline


/* gelu(x) = 0.5 x (1 + erf(x/sqrt2)); erfc(z) = t exp(-z^2 - 1.26551223 + t P(t)),
 * t = 1 / (1 + z/2) (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7
 * for all z >= 0); x >= 0: 1 + erf = 2 - erfc(z), x < 0: 1 + erf = erfc(z). */
AVX512_INLINE __m512 gelu512(__m512 x) {
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752440f));
    /* t = 1 / (1 + z/2): rcp14 + one Newton step (~2^-28 relative), no divide */
    __m512 den = _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f));
    __m512 t = _mm512_rcp14_ps(den);
    t = _mm512_mul_ps(t, _mm512_fnmadd_ps(den, t, _mm512_set1_ps(2.0f)));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    p = _mm512_fnmadd_ps(z, z, p);
    __m512 erfc = _mm512_mul_ps(t, blipc__exp512(p));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 onep = _mm512_mask_mov_ps(_mm512_sub_ps(_mm512_set1_ps(2.0f), erfc), neg, erfc);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), onep);
}

typedef struct gelu_job {
    float *x;
    size_t n;
} gelu_job;

AVX512 static void gelu_range(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, gelu512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, gelu512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void gelu_part(void *arg, int i, int n) {
    gelu_job *j = arg;
    size_t per = ((j->n + (size_t)n - 1) / (size_t)n + 15) & ~(size_t)15;
    size_t b = per * (size_t)i;
    if (b >= j->n) return;
    size_t c = j->n - b < per ? j->n - b : per;
    gelu_range(j->x + b, c);
}

int blipc__fast_gelu_erf(float *x, size_t n) {
    if (blipc__cpu_isa() < 2) return 0;
    gelu_job j = {x, n};
    int nt = n >= 32768 ? fo_threads() : 1;
    blipc__parallel_for(nt, gelu_part, &j);
    return 1;
}

/* ---------------------------------------------------------------- layernorm */

typedef struct ln_job {
    float *y;
    const float *x, *g, *b;
    int M, D;
    float eps;
} ln_job;

AVX512 static void ln_rows(const ln_job *j, int m0, int m1) {
    const int D = j->D;
    for (int m = m0; m < m1; m++) {
        const float *xr = j->x + (size_t)m * D;
        float *yr = j->y + (size_t)m * D;
        /* sums in double lanes: the reference accumulates in double */
        __m512d s0 = _mm512_setzero_pd(), s1 = s0;
        int d = 0;
        for (; d + 16 <= D; d += 16) {
            __m512 a = _mm512_loadu_ps(xr + d);
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))));
        }
        double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
        for (; d < D; d++) s += xr[d];
        /* the mean as float hi + lo: x - mean keeps double-like precision when
         * the mean is large against the spread (as the double reference) */
        const double meand = s / D;
        const float mean = (float)meand, mlo = (float)(meand - (double)mean);
        const __m512 vm = _mm512_set1_ps(mean), vlo = _mm512_set1_ps(mlo);
        s0 = _mm512_setzero_pd(), s1 = s0;
        d = 0;
        for (; d + 16 <= D; d += 16) {
            __m512 a = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + d), vm), vlo);
            __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(a));
            __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
            s0 = _mm512_fmadd_pd(lo, lo, s0);
            s1 = _mm512_fmadd_pd(hi, hi, s1);
        }
        double v = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
        for (; d < D; d++) v += ((double)xr[d] - meand) * ((double)xr[d] - meand);
        const float rstd = (float)(1.0 / sqrt(v / D + (double)j->eps));
        const __m512 vr = _mm512_set1_ps(rstd);
        for (d = 0; d < D; d += 16) {
            __mmask16 k = D - d >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (D - d)) - 1);
            __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + d), vm), vlo), vr);
            __m512 g = j->g ? _mm512_maskz_loadu_ps(k, j->g + d) : _mm512_set1_ps(1.0f);
            __m512 b = j->b ? _mm512_maskz_loadu_ps(k, j->b + d) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(yr + d, k, _mm512_fmadd_ps(t, g, b));
        }
    }
}

static void ln_part(void *arg, int i, int n) {
    const ln_job *j = arg;
    int per = (j->M + n - 1) / n, m0 = i * per, m1 = m0 + per < j->M ? m0 + per : j->M;
    if (m0 < m1) ln_rows(j, m0, m1);
}

int blipc__fast_layernorm(float *y, const float *x, const float *gamma, const float *beta, int M, int D, float eps) {
    if (blipc__cpu_isa() < 2) return 0;
    if (M <= 0 || D <= 0) return 1;
    ln_job j = {y, x, gamma, beta, M, D, eps};
    int nt = (size_t)M * D >= 65536 && M > 1 ? fo_threads() : 1;
    blipc__parallel_for(nt, ln_part, &j);
    return 1;
}

/* ---------------------------------------------------------------- attention */

enum { ATT_RB = 64 }; /* query rows per task */

typedef struct att_job {
    const float *q, *k, *v;
    float *out;
    int ldq, ldk, ldv, ldo, Tq, Tk, H, dh, Tk32, nrb, ntask;
    float scale;
    const float *bias;
    int causal;
    float *scratch;
    size_t per_thread; /* floats */
} att_job;

static inline int att_limit(const att_job *j, int i) {
    if (j->causal < 0) return j->Tk;
    long lim = (long)i + j->causal + 1;
    return lim < j->Tk ? (int)(lim < 0 ? 0 : lim) : j->Tk;
}

/* S[r][j0 .. j0+32) = scale * q_r . Kt[:, j0 ..] for R rows. */
AVX512_INLINE void qk_block(const att_job *j, const float *const *qr, const float *Kt, float *S, int R, int j0) {
    __m512 a[4][2];
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
    for (int d = 0; d < j->dh; d++) {
        const float *kt = Kt + (size_t)d * j->Tk32 + j0;
        __m512 k0 = _mm512_load_ps(kt), k1 = _mm512_load_ps(kt + 16);
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 qb = _mm512_set1_ps(qr[r][d]);
            a[r][0] = _mm512_fmadd_ps(qb, k0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(qb, k1, a[r][1]);
        }
    }
    __m512 sc = _mm512_set1_ps(j->scale);
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        _mm512_storeu_ps(S + (size_t)r * j->Tk32 + j0, _mm512_mul_ps(a[r][0], sc));
        _mm512_storeu_ps(S + (size_t)r * j->Tk32 + j0 + 16, _mm512_mul_ps(a[r][1], sc));
    }
}

/* out_r[c0 .. c0+16*NC) = sum_{j < jn} P[r][j] V[j, c0 ..] for R rows, NC chunks (last masked). */
AVX512_INLINE void pv_block(const att_job *j, const float *vh, const float *P, float *const *orow, int R, int NC, int c0,
                            int jn) {
    __m512 a[4][4];
    __mmask16 mk[4];
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        int left = j->dh - c0 - 16 * c;
        mk[c] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) a[r][c] = _mm512_setzero_ps();
    }
    for (int jj = 0; jj < jn; jj++) {
        const float *vr = vh + (size_t)jj * j->ldv + c0;
        __m512 vv[4];
        #pragma GCC unroll 4
        for (int c = 0; c < NC; c++) vv[c] = _mm512_maskz_loadu_ps(mk[c], vr + 16 * c);
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 p = _mm512_set1_ps(P[(size_t)r * j->Tk32 + jj]);
            #pragma GCC unroll 4
            for (int c = 0; c < NC; c++) a[r][c] = _mm512_fmadd_ps(p, vv[c], a[r][c]);
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < NC; c++) _mm512_mask_storeu_ps(orow[r] + c0 + 16 * c, mk[c], a[r][c]);
}

/* Specialise the register blocks on constant R / NC. */
AVX512 static void qk_rows(const att_job *j, const float *const *qr, const float *Kt, float *S, int R, int j0) {
    switch (R) {
    case 4: qk_block(j, qr, Kt, S, 4, j0); break;
    case 3: qk_block(j, qr, Kt, S, 3, j0); break;
    case 2: qk_block(j, qr, Kt, S, 2, j0); break;
    default: qk_block(j, qr, Kt, S, 1, j0); break;
    }
}

#define PV_CASE(RR)                                                   \
    case RR:                                                          \
        switch (NC) {                                                 \
        case 4: pv_block(j, vh, P, orow, RR, 4, c0, jn); break;       \
        case 3: pv_block(j, vh, P, orow, RR, 3, c0, jn); break;       \
        case 2: pv_block(j, vh, P, orow, RR, 2, c0, jn); break;       \
        default: pv_block(j, vh, P, orow, RR, 1, c0, jn); break;      \
        }                                                             \
        break;

AVX512 static void pv_rows(const att_job *j, const float *vh, const float *P, float *const *orow, int R, int NC,
                           int c0, int jn) {
    switch (R) {
        PV_CASE(4)
        PV_CASE(3)
        PV_CASE(2)
    default:
        switch (NC) {
        case 4: pv_block(j, vh, P, orow, 1, 4, c0, jn); break;
        case 3: pv_block(j, vh, P, orow, 1, 3, c0, jn); break;
        case 2: pv_block(j, vh, P, orow, 1, 2, c0, jn); break;
        default: pv_block(j, vh, P, orow, 1, 1, c0, jn); break;
        }
    }
}

/* In place softmax of S[0 .. Tk) with bias and the causal limit; entries at
 * or beyond `lim` become 0. A fully masked row becomes all zeros. */
AVX512 static void softmax_row512(float *S, int Tk, int lim, const float *bias) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int jj = 0; jj < lim; jj += 16) {
        __mmask16 k = lim - jj >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (lim - jj)) - 1);
        __m512 s = _mm512_maskz_loadu_ps(k, S + jj);
        if (bias) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(k, bias + jj));
        s = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), k, s);
        _mm512_storeu_ps(S + jj, s); /* S has Tk32 >= lim rounded to 16 columns */
        mx = _mm512_max_ps(mx, s);
    }
    float m = _mm512_reduce_max_ps(mx);
    if (m == -INFINITY) {
        memset(S, 0, (size_t)Tk * sizeof(float));
        return;
    }
    __m512 vm = _mm512_set1_ps(m), sum = _mm512_setzero_ps();
    for (int jj = 0; jj < lim; jj += 16) {
        __m512 e = blipc__exp512(_mm512_sub_ps(_mm512_loadu_ps(S + jj), vm));
        _mm512_storeu_ps(S + jj, e);
        sum = _mm512_add_ps(sum, e);
    }
    /* lanes past lim were -inf -> exp = 0 */
    __m512 inv = _mm512_set1_ps((float)(1.0 / (double)_mm512_reduce_add_ps(sum)));
    for (int jj = 0; jj < lim; jj += 16) _mm512_storeu_ps(S + jj, _mm512_mul_ps(_mm512_loadu_ps(S + jj), inv));
    int z = (lim + 15) & ~15;
    if (z < Tk) memset(S + z, 0, (size_t)(Tk - z) * sizeof(float));
}

/* One query row against the keys directly (KV-cache steps): dot products over
 * dh with masked loads, no K^T packing. */
AVX512 static void att_row_direct(const att_job *j, int h, int i, float *S) {
    const int dh = j->dh, Tk = j->Tk, lim = att_limit(j, i);
    const float *qr = j->q + (size_t)i * j->ldq + (size_t)h * dh;
    for (int jj = 0; jj < lim; jj++) {
        const float *kr = j->k + (size_t)jj * j->ldk + (size_t)h * dh;
        __m512 a = _mm512_setzero_ps();
        for (int d = 0; d < dh; d += 16) {
            __mmask16 k = dh - d >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (dh - d)) - 1);
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, qr + d), _mm512_maskz_loadu_ps(k, kr + d), a);
        }
        S[jj] = _mm512_reduce_add_ps(a) * j->scale;
    }
    softmax_row512(S, Tk, lim, j->bias);
    float *o = j->out + (size_t)i * j->ldo + (size_t)h * dh;
    const float *vh = j->v + (size_t)h * dh;
    for (int d = 0; d < dh; d += 64) {
        __m512 acc[4];
        __mmask16 mk[4];
        for (int c = 0; c < 4; c++) {
            int left = dh - d - 16 * c;
            mk[c] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
            acc[c] = _mm512_setzero_ps();
        }
        for (int jj = 0; jj < lim; jj++) {
            __m512 p = _mm512_set1_ps(S[jj]);
            const float *vr = vh + (size_t)jj * j->ldv + d;
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) acc[c] = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(mk[c], vr + 16 * c), acc[c]);
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) _mm512_mask_storeu_ps(o + d + 16 * c, mk[c], acc[c]);
    }
}

AVX512 static void att_task(const att_job *j, int task, float *Kt, float *S, int *cur_h) {
    const int h = task / j->nrb, rb = task % j->nrb, dh = j->dh, Tk = j->Tk, T32 = j->Tk32;
    if (j->Tq <= 2) { /* decode steps: packing K^T would cost as much as the products */
        for (int i = 0; i < j->Tq; i++) att_row_direct(j, h, i, S);
        return;
    }
    const int i0 = rb * ATT_RB, i1 = i0 + ATT_RB < j->Tq ? i0 + ATT_RB : j->Tq;
    if (*cur_h != h) {
        /* Kt[d][jj] = k[jj, h*dh + d], zero-padded to Tk32 columns */
        for (int jj = 0; jj < Tk; jj++) {
            const float *kr = j->k + (size_t)jj * j->ldk + (size_t)h * dh;
            for (int d = 0; d < dh; d++) Kt[(size_t)d * T32 + jj] = kr[d];
        }
        if (T32 > Tk)
            for (int d = 0; d < dh; d++) memset(Kt + (size_t)d * T32 + Tk, 0, (size_t)(T32 - Tk) * sizeof(float));
        *cur_h = h;
    }
    /* scores */
    for (int i = i0; i < i1; i += 4) {
        int R = i1 - i < 4 ? i1 - i : 4;
        const float *qr[4];
        for (int r = 0; r < 4; r++) qr[r] = j->q + (size_t)(i + (r < R ? r : 0)) * j->ldq + (size_t)h * dh;
        int lim = att_limit(j, i + R - 1); /* the widest row of the group */
        for (int j0 = 0; j0 < lim; j0 += 32) qk_rows(j, qr, Kt, S + (size_t)(i - i0) * T32, R, j0);
    }
    for (int i = i0; i < i1; i++) softmax_row512(S + (size_t)(i - i0) * T32, Tk, att_limit(j, i), j->bias);
    /* out = P V */
    const float *vh = j->v + (size_t)h * dh;
    for (int i = i0; i < i1; i += 4) {
        int R = i1 - i < 4 ? i1 - i : 4;
        float *orow[4];
        for (int r = 0; r < 4; r++) orow[r] = j->out + (size_t)(i + (r < R ? r : 0)) * j->ldo + (size_t)h * dh;
        int jn = att_limit(j, i + R - 1);
        for (int c0 = 0; c0 < dh; c0 += 64) {
            int NC = (dh - c0 + 15) / 16;
            if (NC > 4) NC = 4;
            pv_rows(j, vh, S + (size_t)(i - i0) * T32, orow, R, NC, c0, jn);
        }
    }
}

static void att_part(void *arg, int ti, int nt) {
    const att_job *j = arg;
    int t0 = (int)((long)j->ntask * ti / nt), t1 = (int)((long)j->ntask * (ti + 1) / nt);
    float *Kt = j->scratch + (size_t)ti * j->per_thread;
    float *S = Kt + (size_t)j->dh * j->Tk32;
    int cur_h = -1;
    for (int t = t0; t < t1; t++) att_task(j, t, Kt, S, &cur_h);
}

int blipc__fast_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, float *out,
                          int ldo, int Tq, int Tk, int H, int dh, float scale, const float *key_bias, int causal) {
    if (blipc__cpu_isa() < 2) return 0;
    if (Tq <= 0 || H <= 0 || dh <= 0) return 1;
    if (Tk <= 0) return 0; /* degenerate: let the reference define it */
    att_job j = {q, k, v, out, ldq, ldk, ldv, ldo, Tq, Tk, H, dh, (Tk + 31) & ~31, 0, 0, scale, key_bias, causal,
                 NULL, 0};
    j.nrb = (Tq + ATT_RB - 1) / ATT_RB;
    j.ntask = H * j.nrb;
    double work = (double)Tq * Tk * H * dh;
    int nt = work >= 1e6 ? fo_threads() : 1;
    if (nt > j.ntask) nt = j.ntask;
    int rows = Tq < ATT_RB ? Tq : ATT_RB;
    /* per thread: Kt [dh][Tk32] + S [rows][Tk32], 64-byte multiples */
    j.per_thread = (((size_t)dh + (size_t)rows) * (size_t)j.Tk32 + 15) & ~(size_t)15;
    size_t total = j.per_thread * (size_t)nt;
    float stack_buf[8192] __attribute__((aligned(64)));
    float *heap = NULL;
    if (total <= sizeof stack_buf / sizeof stack_buf[0]) {
        j.scratch = stack_buf;
    } else {
        if (posix_memalign((void **)&heap, 64, total * sizeof(float))) return 0;
        j.scratch = heap;
    }
    blipc__parallel_for(nt, att_part, &j);
    free(heap);
    return 1;
}

#else /* no x86 intrinsics: always the reference path */

int blipc__fast_gelu_erf(float *x, size_t n) {
    (void)x, (void)n;
    return 0;
}
int blipc__fast_layernorm(float *y, const float *x, const float *gamma, const float *beta, int M, int D, float eps) {
    (void)y, (void)x, (void)gamma, (void)beta, (void)M, (void)D, (void)eps;
    return 0;
}
int blipc__fast_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, float *out,
                          int ldo, int Tq, int Tk, int H, int dh, float scale, const float *key_bias, int causal) {
    (void)q, (void)ldq, (void)k, (void)ldk, (void)v, (void)ldv, (void)out, (void)ldo, (void)Tq, (void)Tk, (void)H;
    (void)dh, (void)scale, (void)key_bias, (void)causal;
    return 0;
}

#endif
